using System.Diagnostics;
using System.Globalization;
using System.Text.RegularExpressions;

namespace Microsoft.ML.LabelCompletion.Cli;

/// <summary>One epoch of the training curves.</summary>
/// <param name="Epoch">1-based epoch.</param>
/// <param name="TrainLoss">Mean training loss of the epoch.</param>
/// <param name="ValidationLoss">Validation loss, when a validation set was given.</param>
/// <param name="ValidationPaMiou">Validation PA-mIoU (0..100), when a validation set was given.</param>
/// <param name="LearningRate">Learning rate at the end of the epoch.</param>
/// <param name="Seconds">Wall-clock seconds since training started, at the end of the epoch.</param>
internal sealed record EpochRecord(int Epoch, double TrainLoss, double? ValidationLoss, double? ValidationPaMiou, double LearningRate, double Seconds);

/// <summary>
/// Follows training through <see cref="MLContext.Log"/>: the estimator logs every step at trace level
/// (<c>Epoch e/E, step s/S: loss L, X images/s.</c>) and every epoch at info level
/// (<c>Epoch e/E: loss L, X images/s, learning rate R[, validation loss V][, validation PA-mIoU P].</c>). Step messages drive the
/// progress display (in place on a terminal, a line every few seconds otherwise); epoch messages become <see cref="Epochs"/>.
/// </summary>
internal sealed partial class TrainingMonitor : IDisposable
{
    private const string Number = @"[-+]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?|NaN|-?∞|-?Infinity";

    private readonly MLContext _ml;
    private readonly CliConsole _console;
    private readonly Stopwatch _clock = Stopwatch.StartNew();
    private readonly List<EpochRecord> _epochs = new();
    private readonly object _lock = new();
    private TimeSpan? _lastPlainLine;
    private int _liveLineLength;

    public TrainingMonitor(MLContext ml, CliConsole console)
    {
        _ml = ml;
        _console = console;
        _ml.Log += OnLog;
    }

    /// <summary>The epochs reported so far.</summary>
    public IReadOnlyList<EpochRecord> Epochs
    {
        get
        {
            lock (_lock) return _epochs.ToArray();
        }
    }

    /// <summary>Training time budget, if any: the time left never exceeds what remains of it.</summary>
    public TimeSpan? TimeLimit { get; init; }

    /// <summary>Minimum time between two plain (non-terminal) step lines.</summary>
    public TimeSpan PlainStepInterval { get; init; } = TimeSpan.FromSeconds(10);

    [GeneratedRegex(@"^Epoch (?<e>\d+)/(?<E>\d+), step (?<s>\d+)(?:/(?<S>\d+))?: loss (?<loss>" + Number + @"), (?<ips>" + Number + @") images/s")]
    private static partial Regex StepPattern();

    [GeneratedRegex(@"^Epoch (?<e>\d+)/(?<E>\d+): loss (?<loss>" + Number + @"), (?<ips>" + Number + @") images/s, learning rate (?<lr>" + Number
        + @")(?:, validation loss (?<vl>" + Number + @"))?(?:, validation PA-mIoU (?<pa>" + Number + @"))?")]
    private static partial Regex EpochPattern();

    /// <summary>Clears the live line (call before printing anything else after training).</summary>
    public void Finish()
    {
        lock (_lock)
        {
            if (_liveLineLength > 0)
            {
                _console.Out.Write('\r' + new string(' ', _liveLineLength) + '\r');
                _liveLineLength = 0;
            }
        }
    }

    /// <summary>Stops listening to the log.</summary>
    public void Dispose() => _ml.Log -= OnLog;

    /// <summary>Handles one message (public to the tests through <see cref="Observe"/>).</summary>
    private void OnLog(object? sender, LoggingEventArgs e) => Observe(e.RawMessage ?? e.Message);

    /// <summary>Parses one raw log message; returns true when it was a training progress message.</summary>
    internal bool Observe(string message)
    {
        if (string.IsNullOrEmpty(message) || !message.StartsWith("Epoch ", StringComparison.Ordinal)) return false;
        var step = StepPattern().Match(message);
        if (step.Success)
        {
            OnStep(Int(step, "e"), Int(step, "E"), Int(step, "s"), step.Groups["S"].Success ? Int(step, "S") : null, Num(step, "loss"), Num(step, "ips"));
            return true;
        }
        var epoch = EpochPattern().Match(message);
        if (epoch.Success)
        {
            OnEpoch(new EpochRecord(Int(epoch, "e"), Num(epoch, "loss"), OptionalNum(epoch, "vl"), OptionalNum(epoch, "pa"), Num(epoch, "lr"),
                _clock.Elapsed.TotalSeconds), Int(epoch, "E"), Num(epoch, "ips"));
            return true;
        }
        return false;
    }

    private void OnStep(int epoch, int epochs, int step, int? steps, double loss, double imagesPerSecond)
    {
        string left = "";
        if (steps is int perEpoch && perEpoch > 0)
        {
            long done = (long)(epoch - 1) * perEpoch + step, total = (long)epochs * perEpoch;
            var remaining = TimeSpan.FromSeconds(_clock.Elapsed.TotalSeconds / done * (total - done));
            if (TimeLimit is TimeSpan limit && limit - _clock.Elapsed < remaining)
                remaining = limit > _clock.Elapsed ? limit - _clock.Elapsed : TimeSpan.Zero;
            left = $"  left {Format(remaining)}";
        }
        string line = string.Create(CultureInfo.InvariantCulture,
            $"epoch {epoch}/{epochs}  step {step}{(steps is int s ? $"/{s}" : "")}  loss {loss:F4}  {imagesPerSecond:F1} img/s{left}");
        lock (_lock)
        {
            if (_console.Interactive)
            {
                string padded = line.PadRight(_liveLineLength);
                _console.Out.Write('\r' + padded);
                _console.Out.Flush();
                _liveLineLength = line.Length;
            }
            else if (_lastPlainLine is not TimeSpan last || _clock.Elapsed - last >= PlainStepInterval)
            {
                _console.Out.WriteLine(line);
                _lastPlainLine = _clock.Elapsed;
            }
        }
    }

    private void OnEpoch(EpochRecord record, int epochs, double imagesPerSecond)
    {
        string validation = record.ValidationLoss is double vl ? string.Create(CultureInfo.InvariantCulture, $"  val loss {vl:F4}") : "";
        if (record.ValidationPaMiou is double pa) validation += string.Create(CultureInfo.InvariantCulture, $"  val PA-mIoU {pa:F2}");
        string line = string.Create(CultureInfo.InvariantCulture,
            $"epoch {record.Epoch}/{epochs} done  loss {record.TrainLoss:F4}{validation}  lr {record.LearningRate:G3}  {imagesPerSecond:F1} img/s  {Format(TimeSpan.FromSeconds(record.Seconds))}");
        lock (_lock)
        {
            _epochs.Add(record);
            if (_liveLineLength > 0)
            {
                _console.Out.Write('\r' + new string(' ', _liveLineLength) + '\r');
                _liveLineLength = 0;
            }
            _console.Out.WriteLine(line);
        }
    }

    private static string Format(TimeSpan t) =>
        t.TotalHours >= 1 ? $"{(int)t.TotalHours}:{t.Minutes:00}:{t.Seconds:00}" : $"{t.Minutes:00}:{t.Seconds:00}";

    private static int Int(Match m, string group) => int.Parse(m.Groups[group].Value, CultureInfo.InvariantCulture);

    private static double Num(Match m, string group) => ParseNumber(m.Groups[group].Value);

    private static double? OptionalNum(Match m, string group) => m.Groups[group].Success ? ParseNumber(m.Groups[group].Value) : null;

    private static double ParseNumber(string text) => text switch
    {
        "NaN" => double.NaN,
        "∞" or "Infinity" => double.PositiveInfinity,
        "-∞" or "-Infinity" => double.NegativeInfinity,
        _ => double.Parse(text, NumberStyles.Float, CultureInfo.InvariantCulture),
    };
}
