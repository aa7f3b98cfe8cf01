// The runtime (CoreCLR) honours this attribute by name: an assembly that carries it may use the non-public types and
// members of the named assembly. The compiler does not know it; it sees those members through the publicized
// reference assemblies of build/MLNetInternals.targets.
[assembly: System.Runtime.CompilerServices.IgnoresAccessChecksTo("Microsoft.ML.Core")]
[assembly: System.Runtime.CompilerServices.IgnoresAccessChecksTo("Microsoft.ML.Data")]

namespace System.Runtime.CompilerServices;

/// <summary>Lets this assembly use the non-public API of the named assembly at run time (read by the runtime, not the compiler).</summary>
[AttributeUsage(AttributeTargets.Assembly, AllowMultiple = true)]
internal sealed class IgnoresAccessChecksToAttribute : Attribute
{
    /// <summary>Creates the attribute for one assembly.</summary>
    /// <param name="assemblyName">The simple name of the assembly whose access checks are skipped.</param>
    public IgnoresAccessChecksToAttribute(string assemblyName) => AssemblyName = assemblyName;

    /// <summary>The simple name of the assembly whose access checks are skipped.</summary>
    public string AssemblyName { get; }
}
