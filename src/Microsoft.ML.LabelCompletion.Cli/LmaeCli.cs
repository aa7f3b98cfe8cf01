using System.CommandLine;
using System.Globalization;
using System.Numerics;
using System.Runtime.InteropServices;
using Microsoft.ML.LabelCompletion.Cli.Commands;

namespace Microsoft.ML.LabelCompletion.Cli;

/// <summary>
/// The <c>lmae</c> command line: <c>train</c>, <c>complete</c>, <c>evaluate</c>, <c>check</c> and <c>bench</c>. Wrong arguments and user mistakes
/// (a missing folder, a wrong format, a zip that is not an L-MAE model) are reported as one line on standard error with a
/// non-zero exit code; <c>--verbose</c> adds the stack trace.
/// </summary>
public static class LmaeCli
{
    /// <summary>Exit code of a successful run.</summary>
    public const int Success = 0;

    /// <summary>Exit code when a command failed while running (bad data, missing files, not a model).</summary>
    public const int Failure = 1;

    /// <summary>Exit code for wrong command-line arguments.</summary>
    public const int UsageError = 2;

    /// <summary>Exit code when a command was interrupted (Ctrl+C, SIGTERM): 128 + SIGINT, as shells report it.</summary>
    public const int Cancelled = 130;

    /// <summary>Runs <c>lmae</c> on the process console (progress drawn in place when standard output is a terminal).</summary>
    /// <param name="args">Command-line arguments.</param>
    /// <returns>The exit code (<see cref="Success"/>, <see cref="Failure"/> or <see cref="UsageError"/>).</returns>
    /// <remarks>
    /// The first Ctrl+C (SIGINT) or a SIGTERM asks the running command to stop: training stops before its next step and
    /// writes a checkpoint, completion stops before its next file; every file on disk is whole (atomic writes). A second
    /// Ctrl+C ends the process at once.
    /// </remarks>
    public static int Run(string[] args)
    {
        using var cancellation = new CancellationTokenSource();
        void OnCancelKey(object? sender, ConsoleCancelEventArgs e)
        {
            if (cancellation.IsCancellationRequested) return; // the second Ctrl+C: default handling, the process ends
            e.Cancel = true;
            Console.Error.WriteLine("lmae: stopping (Ctrl+C again to stop at once)...");
            cancellation.Cancel();
        }
        Console.CancelKeyPress += OnCancelKey;
        using var terminate = PosixSignalRegistration.Create(PosixSignal.SIGTERM, context =>
        {
            context.Cancel = true; // stop like Ctrl+C, then exit with Cancelled
            cancellation.Cancel();
        });
        try
        {
            return Run(args, Console.Out, Console.Error, interactive: !Console.IsOutputRedirected, cancellation.Token);
        }
        finally
        {
            Console.CancelKeyPress -= OnCancelKey;
        }
    }

    /// <summary>Runs <c>lmae</c> in-process with its output captured (for tests and hosts): progress is written as plain lines.</summary>
    /// <param name="args">Command-line arguments.</param>
    /// <param name="output">Receives standard output.</param>
    /// <param name="error">Receives standard error.</param>
    /// <returns>The exit code (<see cref="Success"/>, <see cref="Failure"/> or <see cref="UsageError"/>).</returns>
    public static int Run(string[] args, TextWriter output, TextWriter error) => Run(args, output, error, interactive: false, CancellationToken.None);

    /// <summary>Runs <c>lmae</c> in-process with its output captured; <paramref name="cancellation"/> acts as Ctrl+C.</summary>
    /// <param name="args">Command-line arguments.</param>
    /// <param name="output">Receives standard output.</param>
    /// <param name="error">Receives standard error.</param>
    /// <param name="cancellation">Stops the command as Ctrl+C does (exit code <see cref="Cancelled"/>).</param>
    /// <returns>The exit code.</returns>
    public static int Run(string[] args, TextWriter output, TextWriter error, CancellationToken cancellation)
        => Run(args, output, error, interactive: false, cancellation);

    private static int Run(string[] args, TextWriter output, TextWriter error, bool interactive, CancellationToken cancellation)
    {
        ArgumentNullException.ThrowIfNull(args);
        var console = new CliConsole(output, error, interactive) { Cancellation = cancellation };
        var verbose = new Option<bool>("--verbose") { Description = "Print the stack trace of errors.", Recursive = true };
        var root = new RootCommand("lmae: complete partially annotated segmentation labels with L-MAE (Microsoft.ML.LabelCompletion).")
        {
            TrainCommand.Create(console),
            CompleteCommand.Create(console),
            EvaluateCommand.Create(console),
            CheckCommand.Create(console),
            BenchCommand.Create(console),
        };
        root.Add(verbose);

        ReadNumbersInvariantly(root);

        var parse = root.Parse(args);
        if (parse.Errors.Count > 0)
        {
            string command = parse.CommandResult.Command is RootCommand ? "lmae" : $"lmae {parse.CommandResult.Command.Name}";
            // One line: every parse error, most specific first (an unrecognized token explains a missing command), whitespace collapsed.
            var messages = parse.Errors.Select(e => OneLine(e.Message)).Distinct()
                .OrderBy(m => m.StartsWith("Unrecognized", StringComparison.Ordinal) ? 0 : 1);
            error.WriteLine($"lmae: {string.Join(" ", messages)} (see '{command} --help')");
            return UsageError;
        }
        try
        {
            return parse.Invoke(new InvocationConfiguration
            {
                Output = output, Error = error, EnableDefaultExceptionHandler = false,
                ProcessTerminationTimeout = null, // Ctrl+C and SIGTERM are ours (Run): commands stop cleanly, never killed midway
            });
        }
        catch (Exception e) when (e is not OutOfMemoryException)
        {
            bool cancelled = e is OperationCanceledException;
            error.WriteLine(cancelled ? "lmae: cancelled." : $"lmae: error: {Describe(e)}");
            if (parse.GetValue(verbose)) error.WriteLine(e.ToString());
            return cancelled ? Cancelled : Failure;
        }
    }

    /// <summary>
    /// Gives every floating-point option of <paramref name="command"/> and its subcommands a parser that reads the invariant
    /// culture: <c>--lr 0.001</c> means one thousandth whatever the process culture (System.CommandLine's own parser reads the
    /// current culture, where a German one takes <c>0.001</c> for 1). The process culture itself is left as it is.
    /// </summary>
    internal static void ReadNumbersInvariantly(System.CommandLine.Command command)
    {
        foreach (var option in command.Options)
        {
            switch (option)
            {
                case Option<double> d when d.CustomParser is null:
                    d.CustomParser = r => ParseInvariant<double>(r, option.Name) ?? 0;
                    break;
                case Option<double?> d when d.CustomParser is null:
                    d.CustomParser = r => ParseInvariant<double>(r, option.Name);
                    break;
                case Option<float> f when f.CustomParser is null:
                    f.CustomParser = r => ParseInvariant<float>(r, option.Name) ?? 0;
                    break;
                case Option<float?> f when f.CustomParser is null:
                    f.CustomParser = r => ParseInvariant<float>(r, option.Name);
                    break;
            }
        }
        foreach (var sub in command.Subcommands) ReadNumbersInvariantly(sub);
    }

    private static T? ParseInvariant<T>(System.CommandLine.Parsing.ArgumentResult result, string name) where T : struct, IFloatingPointIeee754<T>
    {
        if (result.Tokens.Count != 1)
        {
            result.AddError($"Option '{name}' expects one number.");
            return null;
        }
        string token = result.Tokens[0].Value;
        if (T.TryParse(token, NumberStyles.Float, CultureInfo.InvariantCulture, out T value)) return value;
        result.AddError($"Cannot parse argument '{token}' for option '{name}' as a number (digits with '.' as the decimal point, e.g. 0.5 or 1e-3).");
        return null;
    }

    private static string OneLine(string message) =>
        string.Join(' ', message.Split((char[])['\r', '\n', '\t', ' '], StringSplitOptions.RemoveEmptyEntries));

    /// <summary>One line for an exception: the user-facing message, with the innermost ML.NET/IO cause when it says more.</summary>
    private static string Describe(Exception e)
    {
        if (e is CliException) return e.Message;
        var inner = e;
        while (inner is System.Reflection.TargetInvocationException or AggregateException && inner.InnerException is not null) inner = inner.InnerException;
        return DataSets.FirstLine($"{inner.Message}");
    }
}
