using System.CommandLine;
using System.Globalization;
using Microsoft.ML.LabelCompletion.Benchmarks;
using Microsoft.ML.LabelCompletion.Data;

namespace Microsoft.ML.LabelCompletion.Cli.Commands;

/// <summary>
/// <c>lmae bench --only label-errors</c>: corrupts the labels of <c>--data</c> with <see cref="LabelErrorGenerator"/> (seed
/// <c>--seed</c>) and measures how well <c>--model</c>'s label check finds the errors, against NearestKnown disagreement on the
/// same folds and a random ranking (<see cref="LabelErrorBenchmark"/>); one JSON line per record.
/// </summary>
internal sealed class LabelErrorsBench
{
    private LabelErrorsBench()
    {
    }

    public Option<string?> Model { get; } = new("--model") { Description = "label-errors: the model zip whose check is measured.", HelpName = "FILE" };
    public Option<int?> Limit { get; } = new("--limit") { Description = "label-errors: only the first N images of the split.", HelpName = "N" };
    public Option<int> Folds { get; } = new("--folds") { Description = "label-errors: folds of the patch grid. Default 4.", DefaultValueFactory = _ => 4, HelpName = "K" };
    public Option<float> Threshold { get; } = new("--threshold") { Description = "label-errors: smallest probability of the model's class for a suspected pixel. Default 0.5.", DefaultValueFactory = _ => 0.5f, HelpName = "P" };
    public Option<double> ImageRate { get; } = new("--image-rate") { Description = "label-errors: share of images that get errors. Default 0.5.", DefaultValueFactory = _ => 0.5 };
    public Option<double> RelabelRate { get; } = new("--relabel-rate") { Description = "label-errors: chance of an object to be relabelled to a confusable class. Default 0.15.", DefaultValueFactory = _ => 0.15 };
    public Option<double> EraseRate { get; } = new("--erase-rate") { Description = "label-errors: chance of an object to be erased to its surrounding class. Default 0.10.", DefaultValueFactory = _ => 0.10 };
    public Option<double> ShiftRate { get; } = new("--shift-rate") { Description = "label-errors: chance of an object's boundary to shift by 1-4 pixels. Default 0.15.", DefaultValueFactory = _ => 0.15 };
    public Option<double> MissSmallRate { get; } = new("--miss-small-rate") { Description = "label-errors: chance of a small object (at most 400 pixels) to be missed. Default 0.3.", DefaultValueFactory = _ => 0.3 };

    public IEnumerable<Option> All => [Model, Limit, Folds, Threshold, ImageRate, RelabelRate, EraseRate, ShiftRate, MissSmallRate];

    public static LabelErrorsBench Options() => new();

    public static IEnumerable<string> Run(ParseResult parse, LabelErrorsBench o, string? dataDir, string? format, string split, int seed, CliConsole console)
    {
        string modelPath = parse.GetValue(o.Model) ?? throw new CliException("the label-errors benchmark needs --model.");
        if (dataDir is null || format is null) throw new CliException("the label-errors benchmark needs --data and --format (clean labels to corrupt).");
        int folds = parse.GetValue(o.Folds);
        float threshold = parse.GetValue(o.Threshold);
        if (folds < 2) throw new CliException($"--folds must be at least 2, not {folds}.");
        if (!(threshold > 0 && threshold <= 1)) throw new CliException($"--threshold must be in (0, 1], not {threshold.ToString(CultureInfo.InvariantCulture)}.");
        int? limit = parse.GetValue(o.Limit);
        if (limit is < 1) throw new CliException($"--limit must be at least 1, not {limit}.");
        var ml = new MLContext(seed: 0);
        using var model = ModelFiles.Load(ml, modelPath);
        var opened = DataSets.Open(ml, dataDir, format, split, model.NumberOfClasses, model.Options.UnknownLabel, console);
        if (opened.NumberOfClasses != model.NumberOfClasses)
            throw new CliException($"the model knows {model.NumberOfClasses} classes but the data has {opened.NumberOfClasses}.");
        int count = Math.Min(limit ?? int.MaxValue, opened.Dataset.Count);
        var data = opened.Dataset.Pairs.Take(count)
            .Select(pair => (SegmentationFiles.ReadImage(pair.ImagePath), SegmentationFiles.ReadLabel(pair.LabelPath, opened.Dataset.LabelMapping)))
            .ToArray();
        var generator = new LabelErrorGeneratorOptions
        {
            Seed = seed, ImageRate = parse.GetValue(o.ImageRate), RelabelRate = parse.GetValue(o.RelabelRate), EraseRate = parse.GetValue(o.EraseRate),
            ShiftRate = parse.GetValue(o.ShiftRate), MissSmallRate = parse.GetValue(o.MissSmallRate),
        };
        var check = new LabelErrorOptions { NumberOfFolds = folds, ConfidenceThreshold = threshold, CancellationToken = console.Cancellation };
        IReadOnlyList<BenchmarkRecord> records;
        try
        {
            records = LabelErrorBenchmark.Run(model, data, generator, check, batch: 1, progress: line => console.Error.WriteLine(line));
        }
        catch (ArgumentException e)
        {
            throw new CliException($"label-errors: {e.Message}", e);
        }
        return records.Select(r => r.Add("data", opened.Description).Add("model", Path.GetFileName(modelPath)).ToJsonLine());
    }
}
