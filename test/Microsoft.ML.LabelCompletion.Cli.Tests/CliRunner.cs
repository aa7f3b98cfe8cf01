namespace Microsoft.ML.LabelCompletion.Cli.Tests;

/// <summary>What one in-process run of <c>lmae</c> returned and printed.</summary>
public sealed record CliResult(int ExitCode, string Output, string Error)
{
    /// <summary>The non-empty lines of standard error.</summary>
    public string[] ErrorLines => Error.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);

    public override string ToString() => $"exit {ExitCode}\n--- stdout\n{Output}\n--- stderr\n{Error}";
}

/// <summary>Runs the CLI through its entry method with captured output.</summary>
public static class CliRunner
{
    public static CliResult Run(params string[] args)
    {
        using var output = new StringWriter();
        using var error = new StringWriter();
        int code = LmaeCli.Run(args, output, error);
        return new CliResult(code, output.ToString(), error.ToString());
    }
}
