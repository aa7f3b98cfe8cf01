namespace Microsoft.ML.LabelCompletion.Cli;

/// <summary>Process entry point of the <c>lmae</c> tool.</summary>
public static class Program
{
    /// <summary>
    /// Runs <c>lmae</c> with the process's arguments on the console. The tool is the host process, so it applies the
    /// library's process tuning (<see cref="LabelCompletionProcessTuning"/>) first, unless <c>bench --library-defaults</c>
    /// asks to measure the library's defaults.
    /// </summary>
    /// <param name="args">Command-line arguments.</param>
    /// <returns>The exit code: 0 on success, 1 for an error while running, 2 for wrong arguments.</returns>
    public static int Main(string[] args)
    {
        if (!args.Contains(Commands.BenchCommand.LibraryDefaultsOption)) LabelCompletionProcessTuning.Apply();
        return LmaeCli.Run(args);
    }
}
