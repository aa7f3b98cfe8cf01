// Does completing partial labels with an L-MAE help train a better segmentation model? This program runs the whole story
// with ML.NET and TorchSharp:
//   1. loads a training split and a test split (CamVid in the SegNet layout with --data, else synthetic scenes);
//   2. hides the evaluation protocol's random 16-pixel patches in the training labels (ratio 0.5, seed 0);
//   3. trains an L-MAE on those degraded labels only (mlContext.Transforms.CompleteLabels, Fit, Transform), or loads one
//      with --lmae-model;
//   4. trains the same small segmentation network (frozen ImageNet ResNet18 body + light decoder), same seed and budget,
//      on each label set ("arm"): 1 full labels, 2 degraded labels (holes ignored), 3 holes filled by NearestKnown,
//      4 holes filled by the L-MAE, 5 as 4 with pixels below --confidence ignored;
//   5. scores each network on the test split (full-image mIoU over all classes, void/unknown pixels ignored) and writes
//      results.md and results.csv into --out.
//
//   dotnet run --project samples/LabelCompletion.Downstream -c Release                       (synthetic scenes)
//   dotnet run --project samples/LabelCompletion.Downstream -c Release -- --data DIR         (CamVid)
//   ... -- --help                                                                            (every option)
using System.Diagnostics;
using System.Globalization;
using System.Text;
using LabelCompletion.Downstream;
using Microsoft.ML;
using Microsoft.ML.LabelCompletion;
using Microsoft.ML.LabelCompletion.Data;
using Microsoft.ML.LabelCompletion.Evaluation;
using Microsoft.ML.LabelCompletion.Model;
using Microsoft.ML.LabelCompletion.Synthetic;
using TorchSharp;
using static System.FormattableString;

DownstreamOptions o;
try
{
    o = DownstreamOptions.Parse(args);
}
catch (ArgumentException e)
{
    Console.Error.WriteLine($"error: {e.Message}");
    Console.Error.WriteLine("run with --help for the options.");
    return 2;
}
if (o.Help)
{
    Console.WriteLine(DownstreamOptions.HelpText);
    return 0;
}
try
{
    Run(o);
    return 0;
}
catch (Exception e) when (e is IOException or InvalidDataException or ArgumentException or UnauthorizedAccessException)
{
    Console.Error.WriteLine($"error: {e.Message}");
    return 1;
}

static void Run(DownstreamOptions o)
{
    var total = Stopwatch.StartNew();
    // This program's main job is training, so it opts into the library's process-wide tuning (allocator, NNPACK), as the
    // lmae tool does; a library never does that on its own.
    LabelCompletionProcessTuning.Apply();
    torch.set_num_threads(o.Threads);
    Directory.CreateDirectory(o.Output);
    var ml = new MLContext(seed: o.Seed);
    const byte Unknown = 255;

    // 1. The data: image files (LoadImages reads them for the L-MAE), decoded images and full labels.
    var (train, test, classNames, description) = o.DataFolder is null ? SyntheticData(ml, o) : CamVidData(ml, o);
    int classes = classNames.Length;
    Console.WriteLine($"data: {description}; {train.Count} training and {test.Count} test images, {classes} classes");
    var trainTruth = train.Select(s => s.Label).ToArray();
    var testTruth = test.Select(s => s.Label).ToArray();

    // 2. Degrade the training labels with the protocol's patches.
    var protocol = new EvaluationProtocol(classes, o.MaskRatio, Unknown, classNames);
    var (degraded, holes) = LabelSets.Degrade(trainTruth, protocol);

    var labelSets = new Dictionary<int, LabelMap[]> { [1] = trainTruth, [2] = degraded };
    if (o.Arms.Contains(3)) labelSets[3] = LabelSets.NearestKnown(degraded, holes, Unknown);

    // 3. The L-MAE, trained on the degraded labels only, completes them.
    string lmaeNote = "";
    if (o.Arms.Contains(4) || o.Arms.Contains(5))
    {
        var degradedData = LabelSets.ToDataView(ml, train.Select(s => s.ImagePath).ToArray(), degraded);
        ITransformer lmae;
        var clock = Stopwatch.StartNew();
        if (o.LmaeModel is not null)
        {
            lmae = ml.Model.Load(o.LmaeModel, out _);
            lmaeNote = $"L-MAE loaded from {o.LmaeModel}";
        }
        else
        {
            var options = new LabelCompletionOptions
            {
                NumberOfClasses = classes,
                UnknownLabel = Unknown,
                ClassNames = classNames,
                ModelSize = o.LmaeSize,
                Epochs = o.LmaeEpochs,
                TrainingTimeLimit = TimeSpan.FromMinutes(o.LmaeMinutes),
                TrainingSize = o.DataFolder is null ? 96 : 224,
                LearningRate = o.DataFolder is null ? 2e-3 : 1e-3,
                NumberOfThreads = o.Threads,
                Progress = new EpochLines(),
            };
            Console.WriteLine(Invariant($"training a {o.LmaeSize} L-MAE on the degraded training labels ({o.LmaeEpochs} epochs at most, {o.LmaeMinutes} minutes at most) ..."));
            var trained = ml.Transforms.CompleteLabels(options).Fit(degradedData);
            string saved = Path.Combine(o.Output, "lmae.zip");
            ml.Model.Save(trained, degradedData.Schema, saved);
            lmae = trained;
            lmaeNote = Invariant($"L-MAE ({o.LmaeSize}) trained on the degraded training labels in {clock.Elapsed.TotalMinutes:F1} min ({EpochLines.Last} epochs), saved as lmae.zip");
        }
        clock.Restart();
        var (completed, confidence) = LabelSets.Complete(ml, lmae, degradedData, degraded, holes,
            n => { if (n % 50 == 0 || n == train.Count) Console.WriteLine($"  completed {n}/{train.Count}"); });
        lmaeNote += Invariant($"; completing the {train.Count} training labels took {clock.Elapsed.TotalMinutes:F1} min");
        (lmae as IDisposable)?.Dispose();
        labelSets[4] = completed;
        labelSets[5] = completed.Select((c, i) => LabelSets.DropLowConfidence(c, holes[i], confidence[i], o.Confidence, Unknown)).ToArray();
        Console.WriteLine(lmaeNote);
    }

    // 4. The segmentation network's frozen body runs once per image (and per mirror for training).
    var featureClock = Stopwatch.StartNew();
    using var backbone = ResNet18Backbone.Load(stages: 4);
    using var trainFeatures = FeatureCache.Compute(backbone, train.Select(s => s.Image).ToArray(), withFlips: true);
    using var testFeatures = FeatureCache.Compute(backbone, test.Select(s => s.Image).ToArray(), withFlips: false);
    double featureMinutes = featureClock.Elapsed.TotalMinutes;
    Console.WriteLine(Invariant($"ResNet18 features of {train.Count} training images (and their mirrors) and {test.Count} test images in {featureMinutes:F1} min"));

    var segmenterOptions = new SegmenterOptions
    {
        Epochs = o.Epochs,
        TimeLimit = o.MinutesPerArm is double m ? TimeSpan.FromMinutes(m) : null,
        BatchSize = o.BatchSize,
        LearningRate = o.LearningRate,
        Seed = o.Seed,
    };
    var results = new List<ArmResult>();
    foreach (int arm in o.Arms)
    {
        var labels = labelSets[arm];
        var statistics = LabelSets.Statistics(labels, trainTruth, Unknown);
        Console.WriteLine($"arm {arm} ({ArmResult.Names[arm]}): {statistics.Labelled:N0} labelled training pixels, {statistics.Wrong:N0} wrong");
        using var segmenter = new Segmenter(classes, Unknown, seed: o.Seed);
        var training = segmenter.Train(trainFeatures, labels, segmenterOptions, (epoch, loss) =>
        {
            if (epoch % 10 == 0 || epoch == o.Epochs) Console.WriteLine(Invariant($"  epoch {epoch}: loss {loss:F4}"));
        });
        var matrix = segmenter.Evaluate(testFeatures, testTruth);
        var result = new ArmResult(arm, matrix, training, statistics);
        results.Add(result);
        Console.WriteLine(Invariant($"  mIoU {matrix.MeanIntersectionOverUnion:F2} after {training.Epochs} epochs in {training.Elapsed.TotalMinutes:F1} min"));
    }

    // 5. The table.
    string setup = Invariant($"{description}; {train.Count} training, {test.Count} test images. Training labels degraded with the ")
        + Invariant($"protocol's random {EvaluationProtocol.PatchSize}-pixel patches at ratio {o.MaskRatio} (seed {EvaluationProtocol.Seed}). ")
        + (lmaeNote.Length > 0 ? lmaeNote + Invariant($"; arm 5 ignores completed pixels with confidence below {o.Confidence}. ") : "")
        + Invariant($"Segmenter: frozen ImageNet ResNet18 + decoder (1x1 projections of strides 8/16/32, 3x3 conv, bilinear upsampling), ")
        + Invariant($"Adam lr {o.LearningRate}, batch {o.BatchSize}, {o.Epochs} epochs")
        + (o.MinutesPerArm is double cap ? Invariant($" or {cap} minutes per arm, whichever comes first") : "")
        + Invariant($", seed {o.Seed}, random flips; features computed once ({featureMinutes:F1} min). Threads: {o.Threads}. ")
        + "mIoU: full test images, all classes, void/unknown pixels ignored.";
    var (markdown, csv) = ArmResult.Tables(results, classNames, setup);
    File.WriteAllText(Path.Combine(o.Output, "results.md"), markdown);
    File.WriteAllText(Path.Combine(o.Output, "results.csv"), csv);
    Console.WriteLine();
    Console.WriteLine(markdown);
    Console.WriteLine(Invariant($"done in {total.Elapsed.TotalMinutes:F1} min; results in {o.Output}"));
}

// The synthetic default: scenes written as PNG pairs (so the image files exist for LoadImages) and read back by the loader.
static (List<SegmentationSample> Train, List<SegmentationSample> Test, string[] ClassNames, string Description) SyntheticData(MLContext ml, DownstreamOptions o)
{
    const int Width = 128, Height = 96;
    string data = Path.Combine(o.Output, "data");
    var palette = new byte[256 * 3];
    for (int c = 0; c < SyntheticScenes.NumberOfClasses; c++) SyntheticScenes.ClassColors[c].CopyTo(palette, 3 * c);
    int seed = 5000;
    foreach (var (split, count) in new[] { ("train", o.SyntheticTrain), ("test", o.SyntheticTest) })
    {
        string folder = Path.Combine(data, split);
        if (Directory.Exists(folder)) Directory.Delete(folder, recursive: true);
        for (int i = 0; i < count; i++)
        {
            var (image, label) = SyntheticScenes.Generate(Width, Height, seed++);
            SegmentationFiles.WriteImage(Path.Combine(folder, "images", $"scene{i:D3}.png"), image);
            SegmentationFiles.WritePaletteLabel(Path.Combine(folder, "labels", $"scene{i:D3}.png"), label, palette);
        }
    }
    List<SegmentationSample> Load(string split) => ml.Data.LoadSegmentationPairs(new SegmentationDataOptions
    {
        Root = Path.Combine(data, split), Format = SegmentationDataFormat.Folders, NumberOfClasses = SyntheticScenes.NumberOfClasses,
    }).Dataset.ToList();
    return (Load("train"), Load("test"), SyntheticScenes.ClassNames.ToArray(), Invariant($"synthetic scenes of {Width}x{Height} ({data})"));
}

// CamVid in the SegNet layout: train/ trainannot/ test/ testannot/ (ids 0-10, void 11 read as unknown).
static (List<SegmentationSample> Train, List<SegmentationSample> Test, string[] ClassNames, string Description) CamVidData(MLContext ml, DownstreamOptions o)
{
    string[] names = ["Sky", "Building", "Pole", "Road", "Pavement", "Tree", "SignSymbol", "Fence", "Car", "Pedestrian", "Bicyclist"];
    List<SegmentationSample> Load(string split)
    {
        var view = ml.Data.LoadSegmentationPairs(o.DataFolder!, SegmentationDataFormat.CamVid, split);
        var samples = (o.Limit is int n ? view.Dataset.Take(n) : view.Dataset).ToList();
        if (view.BadRowCount > 0)
            throw new InvalidDataException($"CamVid {split}: {view.BadRowCount} pairs cannot be read, the first: {view.BadRows[0].ImagePath}: {view.BadRows[0].Reason}");
        return samples;
    }
    var train = Load(o.TrainSplit);
    var test = Load(o.TestSplit);
    string limit = o.Limit is int l ? $", first {l} images of each split (a smoke test, not a result)" : "";
    return (train, test, names, $"CamVid {Path.GetFullPath(o.DataFolder!)} ({o.TrainSplit} / {o.TestSplit}{limit})");
}

/// <summary>Prints one line per L-MAE epoch and remembers the last epoch number.</summary>
internal sealed class EpochLines : IProgress<TrainingProgress>
{
    public static int Last { get; private set; }

    public void Report(TrainingProgress p)
    {
        if (!p.EndOfEpoch) return;
        Last = p.Epoch;
        Console.WriteLine(Invariant($"  L-MAE epoch {p.Epoch}: loss {p.Loss:F4}, {p.ImagesPerSecond:F1} images/s"));
    }
}
