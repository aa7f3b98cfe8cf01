namespace Microsoft.ML.LabelCompletion.Cli;

/// <summary>Where a command writes: results and progress to <see cref="Out"/>, errors and warnings to <see cref="Error"/>.</summary>
/// <param name="Out">Standard output.</param>
/// <param name="Error">Standard error.</param>
/// <param name="Interactive">True when <see cref="Out"/> is a terminal: progress is drawn in place instead of printed as lines.</param>
internal sealed record CliConsole(TextWriter Out, TextWriter Error, bool Interactive)
{
    /// <summary>The process console; interactive when standard output is not redirected.</summary>
    public static CliConsole System() => new(Console.Out, Console.Error, !Console.IsOutputRedirected);

    /// <summary>Cancelled by Ctrl+C or SIGTERM (or by the host): commands stop within one step and leave only whole files.</summary>
    public CancellationToken Cancellation { get; init; }

    /// <summary>Writes a warning line to <see cref="Error"/>.</summary>
    public void Warn(string message) => Error.WriteLine($"lmae: warning: {message}");
}
