// MSBuild task (compiled by RoslynCodeTaskFactory against netstandard, references Mono.Cecil): writes a
// "publicized" copy of each input assembly, used only as a compile-time reference (see MLNetInternals.targets).
//
// In the copy, for every type of a namespace that starts with one of the given prefixes (nested types included,
// compiler-generated ones skipped):
//   - the type becomes public (nested: nested public);
//   - internal members become public;
//   - private protected and protected internal members become protected;
//   - private and protected members stay as they are (publicizing private members only adds hiding warnings
//     and name clashes in derived classes, and nothing outside the assembly may use them).
// Types outside the prefixes (polyfills such as System.Runtime.CompilerServices.* compiled into the assembly)
// stay untouched so they cannot clash with the framework's own types.
// The runtime keeps loading the original assemblies; [IgnoresAccessChecksTo] in the consuming assembly lets it
// reach the members the compiler was allowed to see.
using System;
using System.IO;
using System.Linq;
using Microsoft.Build.Framework;
using Microsoft.Build.Utilities;
using Mono.Cecil;

public class PublicizeAssemblies : Task
{
    /// <summary>Assemblies to publicize.</summary>
    [Required] public ITaskItem[] Assemblies { get; set; }

    /// <summary>Folder the copies are written to (same file names).</summary>
    [Required] public string OutputDirectory { get; set; }

    /// <summary>Namespace prefixes whose types are publicized, separated by ';'.</summary>
    [Required] public string NamespacePrefixes { get; set; }

    /// <summary>The copies written (or already up to date).</summary>
    [Output] public ITaskItem[] PublicizedAssemblies { get; set; }

    public override bool Execute()
    {
        var prefixes = NamespacePrefixes.Split(new[] { ';' }, StringSplitOptions.RemoveEmptyEntries).Select(p => p.Trim()).ToArray();
        Directory.CreateDirectory(OutputDirectory);
        var written = new ITaskItem[Assemblies.Length];
        for (int i = 0; i < Assemblies.Length; i++)
        {
            string source = Assemblies[i].GetMetadata("FullPath");
            string target = Path.Combine(OutputDirectory, Path.GetFileName(source));
            try
            {
                var resolver = new DefaultAssemblyResolver();
                resolver.AddSearchDirectory(Path.GetDirectoryName(source));
                var readerParameters = new ReaderParameters { AssemblyResolver = resolver, ReadSymbols = false, InMemory = true };
                using (var assembly = AssemblyDefinition.ReadAssembly(source, readerParameters))
                {
                    int changed = 0;
                    foreach (var module in assembly.Modules)
                        foreach (var type in module.Types)
                            changed += Publicize(type, prefixes, inScope: false);
                    string temporary = target + ".tmp";
                    assembly.Write(temporary);
                    if (File.Exists(target)) File.Delete(target);
                    File.Move(temporary, target);
                    Log.LogMessage(MessageImportance.Normal, "Publicized " + changed + " types and members of " + source + " into " + target + ".");
                }
            }
            catch (Exception e)
            {
                Log.LogError("Could not publicize " + source + ": " + e.Message);
                return false;
            }
            written[i] = new TaskItem(target);
            Assemblies[i].CopyMetadataTo(written[i]);
        }
        PublicizedAssemblies = written;
        return !Log.HasLoggedErrors;
    }

    private static bool IsCompilerGenerated(ICustomAttributeProvider provider)
        => provider.HasCustomAttributes && provider.CustomAttributes.Any(a => a.AttributeType.FullName == "System.Runtime.CompilerServices.CompilerGeneratedAttribute");

    private static int Publicize(TypeDefinition type, string[] prefixes, bool inScope)
    {
        if (!inScope)
        {
            if (type.IsNested || !prefixes.Any(p => type.Namespace == p || type.Namespace.StartsWith(p + ".", StringComparison.Ordinal)))
                return 0;
        }
        if (IsCompilerGenerated(type) || type.Name.StartsWith("<", StringComparison.Ordinal))
            return 0;

        int changed = 0;
        var visibility = type.Attributes & TypeAttributes.VisibilityMask;
        var wanted = type.IsNested ? TypeAttributes.NestedPublic : TypeAttributes.Public;
        if (visibility != wanted)
        {
            type.Attributes = (type.Attributes & ~TypeAttributes.VisibilityMask) | wanted;
            changed++;
        }

        foreach (var method in type.Methods)
        {
            if (IsCompilerGenerated(method)) continue;
            var access = method.Attributes & MethodAttributes.MemberAccessMask;
            MethodAttributes? next = null;
            if (access == MethodAttributes.Assembly) next = MethodAttributes.Public;
            else if (access == MethodAttributes.FamANDAssem || access == MethodAttributes.FamORAssem) next = MethodAttributes.Family;
            if (next.HasValue)
            {
                method.Attributes = (method.Attributes & ~MethodAttributes.MemberAccessMask) | next.Value;
                changed++;
            }
        }

        foreach (var field in type.Fields)
        {
            if (IsCompilerGenerated(field)) continue;
            var access = field.Attributes & FieldAttributes.FieldAccessMask;
            FieldAttributes? next = null;
            if (access == FieldAttributes.Assembly) next = FieldAttributes.Public;
            else if (access == FieldAttributes.FamANDAssem || access == FieldAttributes.FamORAssem) next = FieldAttributes.Family;
            if (next.HasValue)
            {
                field.Attributes = (field.Attributes & ~FieldAttributes.FieldAccessMask) | next.Value;
                changed++;
            }
        }

        foreach (var nested in type.NestedTypes)
            changed += Publicize(nested, prefixes, inScope: true);
        return changed;
    }
}
