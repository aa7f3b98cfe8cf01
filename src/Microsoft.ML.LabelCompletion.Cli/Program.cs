namespace Microsoft.ML.LabelCompletion.Cli;

/// <summary>Process entry point of the <c>lmae</c> tool.</summary>
public static class Program
{
    /// <summary>Runs <c>lmae</c> with the process's arguments on the console.</summary>
    /// <param name="args">Command-line arguments.</param>
    /// <returns>The exit code: 0 on success, 1 for an error while running, 2 for wrong arguments.</returns>
    public static int Main(string[] args) => LmaeCli.Run(args);
}
