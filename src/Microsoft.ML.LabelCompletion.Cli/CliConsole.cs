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

/// <summary>
/// A progress line of a long command: printed at most every half second on a terminal (drawn in place) and every 10 s
/// otherwise (one line each), always for the last item.
/// </summary>
internal sealed class ProgressLine(CliConsole console)
{
    private readonly global::System.Diagnostics.Stopwatch _clock = global::System.Diagnostics.Stopwatch.StartNew();
    private TimeSpan _last;

    /// <summary>Time since the line was created.</summary>
    public TimeSpan Elapsed => _clock.Elapsed;

    /// <summary>Prints <paramref name="text"/>(elapsed seconds) when its interval has passed or when <paramref name="final"/>.</summary>
    public void Report(bool final, Func<double, string> text)
    {
        if (!final && _clock.Elapsed - _last <= TimeSpan.FromSeconds(console.Interactive ? 0.5 : 10)) return;
        _last = _clock.Elapsed;
        string line = text(Math.Max(1e-9, _clock.Elapsed.TotalSeconds));
        if (console.Interactive) console.Out.Write('\r' + line);
        else console.Out.WriteLine(line);
    }

    /// <summary>Ends the line drawn in place (a terminal only).</summary>
    public void End()
    {
        if (console.Interactive) console.Out.WriteLine();
    }
}

