using System.Reflection;

namespace Microsoft.ML.LabelCompletion.Internal;

/// <summary>The library's version, as recorded in saved models and checkpoints.</summary>
internal static class LibraryInfo
{
    /// <summary>The informational version of this assembly (the package version), or its assembly version.</summary>
    public static string Version { get; } =
        typeof(LibraryInfo).Assembly.GetCustomAttribute<AssemblyInformationalVersionAttribute>()?.InformationalVersion
        ?? typeof(LibraryInfo).Assembly.GetName().Version?.ToString()
        ?? "unknown";
}
