using System.Diagnostics;
using System.Globalization;
using Microsoft.ML.LabelCompletion.Model;

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
/// Follows training as the estimator's <see cref="LabelCompletionOptions.Progress"/>: step records drive the progress display
/// (in place on a terminal, a line every few seconds otherwise); end-of-epoch records become <see cref="Epochs"/> and one line
/// each. Numbers are written in the invariant culture; the process culture is left as it is.
/// </summary>
internal sealed class TrainingMonitor : IProgress<TrainingProgress>
{
    private readonly CliConsole _console;
    private readonly Stopwatch _clock = Stopwatch.StartNew();
    private readonly List<EpochRecord> _epochs = new();
    private readonly object _lock = new();
    private TimeSpan? _lastPlainLine;
    private int _liveLineLength;

    public TrainingMonitor(CliConsole console) => _console = console;

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

    /// <summary>Takes one record from the trainer (called on the training thread).</summary>
    public void Report(TrainingProgress value)
    {
        ArgumentNullException.ThrowIfNull(value);
        if (value.EndOfEpoch)
            OnEpoch(new EpochRecord(value.Epoch, value.Loss, value.ValidationLoss, value.ValidationPaMiou, value.LearningRate, _clock.Elapsed.TotalSeconds),
                value.Epochs, value.ImagesPerSecond);
        else
            OnStep(value.Epoch, value.Epochs, value.Step, value.StepsPerEpoch, value.Loss, value.ImagesPerSecond);
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
}
