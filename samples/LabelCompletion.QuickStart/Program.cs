// The main job on the embedded default: no arguments, no data. It generates a small synthetic scene data set (192 train,
// 12 validation and 16 test scenes of 128x96 pixels, 6 classes) and writes it as PNG pairs (so the real loaders read it),
// trains a Tiny L-MAE (patch 8) for 40 epochs on 96x96 crops through the ML.NET pipeline, saves and reloads the model with
// plain mlContext.Model.Save/Load, completes the test scenes' labels with holes (the evaluation protocol's masks: random
// 16-pixel patches, ratio 0.5, seed 0), evaluates L-MAE against the NearestKnown fill on the same masks, and writes the
// completed labels, overlays, confidence maps and report.md into an output folder whose path it prints. It prints the
// training time and the total time; both depend on the CPU (README.md, Set up and run).
//
//   dotnet run --project samples/LabelCompletion.QuickStart -c Release [-- OUTPUT_FOLDER [EPOCHS]]
using System.Diagnostics;
using System.Globalization;
using System.Text;
using Microsoft.ML;
using Microsoft.ML.LabelCompletion;
using Microsoft.ML.LabelCompletion.Data;
using Microsoft.ML.LabelCompletion.Model;
using Microsoft.ML.LabelCompletion.Evaluation;
using Microsoft.ML.LabelCompletion.Synthetic;
using static System.FormattableString;

string output = Path.GetFullPath(args.Length > 0 ? args[0] : Path.Combine("artifacts", "quickstart"));
int epochs = args.Length > 1 ? int.Parse(args[1], CultureInfo.InvariantCulture) : 40;
const int Width = 128, Height = 96, TrainCount = 192, ValidationCount = 12, TestCount = 16;
const double Ratio = 0.5;
int classes = SyntheticScenes.NumberOfClasses;
if (Directory.Exists(output)) Directory.Delete(output, recursive: true);
var total = Stopwatch.StartNew();
// This program's main job is training and completing, so it opts into the library's process-wide tuning (allocator,
// NNPACK); a library never does that on its own.
LabelCompletionProcessTuning.Apply();

// 1. The data set: synthetic scenes written as RGB images and palette label PNGs in the class colours.
string data = Path.Combine(output, "data");
var palette = new byte[256 * 3];
for (int c = 0; c < classes; c++) SyntheticScenes.ClassColors[c].CopyTo(palette, 3 * c);
int seed = 1000;
foreach (var (split, count) in new[] { ("train", TrainCount), ("val", ValidationCount), ("test", TestCount) })
{
    for (int i = 0; i < count; i++)
    {
        var (image, label) = SyntheticScenes.Generate(Width, Height, seed++);
        SegmentationFiles.WriteImage(Path.Combine(data, split, "images", $"scene{i:D3}.png"), image);
        SegmentationFiles.WritePaletteLabel(Path.Combine(data, split, "labels", $"scene{i:D3}.png"), label, palette);
    }
}
File.WriteAllLines(Path.Combine(data, "classes.txt"), SyntheticScenes.ClassNames);
Console.WriteLine($"data: {TrainCount} train, {ValidationCount} val, {TestCount} test scenes of {Width}x{Height} in {data}");

// 2. Load the splits through ML.NET: columns Image (MLImage), Label (vector of byte), Width, Height, ImagePath, LabelPath.
var ml = new MLContext(seed: 1);
SegmentationDataView Load(string split) => ml.Data.LoadSegmentationPairs(new SegmentationDataOptions
{
    Root = Path.Combine(data, split), Format = SegmentationDataFormat.Folders, NumberOfClasses = classes,
});
var train = Load("train");
var validation = Load("val");
var test = Load("test");

// 3. Train a Tiny L-MAE (patch 8, 64-wide encoder) on 96-pixel crops; progress arrives as TrainingProgress records.
var options = new LabelCompletionOptions
{
    NumberOfClasses = classes,
    ModelSize = LabelCompletionModelSize.Tiny,
    Epochs = epochs,
    BatchSize = 8,
    LearningRate = 2e-3,
    TrainingSize = 96,
    MaskRatio = 0.5f,
    ClassWeighting = ClassWeighting.MedianFrequency,
    ValidationSet = validation,
    NumberOfThreads = Math.Max(1, Environment.ProcessorCount - 1), // leave a core to the OS: spinning libtorch threads on a busy core are slow
};
options.Progress = new EpochLines();
Console.WriteLine($"training Tiny L-MAE for {epochs} epochs ...");
var clock = Stopwatch.StartNew();
double trainSeconds;
string modelPath = Path.Combine(output, "model.zip");
using (var trained = ml.Transforms.CompleteLabels(options).Fit(train))
{
    trainSeconds = clock.Elapsed.TotalSeconds;
    ml.Model.Save(trained, train.Schema, modelPath);
}
Console.WriteLine(Invariant($"trained in {trainSeconds:F0} s; saved {modelPath} ({new FileInfo(modelPath).Length / 1024} KiB)"));

// 4. Reload it as any ML.NET model (a fresh context, as another process would).
var loadContext = new MLContext(seed: 1);
using var model = (LabelCompletionTransformer)loadContext.Model.Load(modelPath, out _);

// 5. Evaluate on the held-out split with the fixed protocol (random 16-pixel patches, seed 0): L-MAE vs NearestKnown.
var protocol = new EvaluationProtocol(classes, Ratio, classNames: SyntheticScenes.ClassNames);
var testSamples = test.Dataset.Select(s => (s.Image, s.Label)).ToList();
var metrics = protocol.CompleteAndEvaluate(testSamples,
    new Func<IReadOnlyList<(RgbImage Image, LabelMap Masked)>, IReadOnlyList<LabelMap>>[]
    {
        batch => batch.Select(b => model.Complete(b.Image, b.Masked).Completed).ToArray(),
        EvaluationProtocol.NearestKnownCompleter(),
    });
var (lmae, nearest) = (metrics[0], metrics[1]);

// 6. Complete each held-out label with holes; write the label with holes, both completions, overlays and confidence.
string results = Path.Combine(output, "completed");
var classColours = palette.AsSpan(0, 3 * classes).ToArray();
for (int i = 0; i < testSamples.Count; i++)
{
    var (image, truth) = testSamples[i];
    var (masked, _) = protocol.Mask(i, truth);
    var completion = model.Complete(image, masked);
    var fill = NearestKnownFill.Fill(masked, 255);
    string stem = Path.Combine(results, $"scene{i:D3}");
    SegmentationFiles.WritePaletteLabel(stem + ".label.png", completion.Completed, palette);
    SegmentationFiles.WriteOverlay(stem + ".1-holes.png", image, masked, classColours);
    SegmentationFiles.WriteOverlay(stem + ".2-lmae.png", image, completion.Completed, classColours);
    SegmentationFiles.WriteOverlay(stem + ".3-nearest-known.png", image, fill, classColours);
    SegmentationFiles.WriteOverlay(stem + ".4-truth.png", image, truth, classColours);
    SegmentationFiles.WriteConfidenceHeatMap(stem + ".5-confidence.png", completion.Confidence, image.Width, image.Height);
}
// One picture of the test scene with the most classes, side by side: the image, its label with holes (unknown pixels dark
// grey), the L-MAE completion, and the completion's confidence (blue low, red high).
int shown = Enumerable.Range(0, testSamples.Count).MaxBy(i => testSamples[i].Label.Values.Where(v => v < classes).Distinct().Count());
string overviewPath = Path.Combine(output, "overview.png");
var shownMasked = protocol.Mask(shown, testSamples[shown].Label).Masked;
SegmentationFiles.WriteImage(overviewPath, SideBySide(
[
    testSamples[shown].Image, Colours(shownMasked, classColours), Colours(model.Complete(testSamples[shown].Image, shownMasked).Completed, classColours),
    SegmentationFiles.ReadImage(Path.Combine(results, $"scene{shown:D3}.5-confidence.png")),
]));

// 7. The report.
string Pct(double v) => double.IsNaN(v) ? "-" : v.ToString("F1", CultureInfo.InvariantCulture);
var report = new StringBuilder();
report.AppendLine("# L-MAE quick start: synthetic scenes").AppendLine();
report.AppendLine(Invariant($"Tiny L-MAE trained for {epochs} epochs ({trainSeconds:F0} s) on {TrainCount} synthetic {Width}x{Height} scenes ")
    + $"({classes} classes: {string.Join(", ", SyntheticScenes.ClassNames)}), through `mlContext.Transforms.CompleteLabels`; "
    + "saved with `mlContext.Model.Save` and reloaded with `mlContext.Model.Load`.").AppendLine();
report.AppendLine(Invariant($"Evaluation: {TestCount} held-out scenes, the fixed protocol (random 16-pixel patches, ratio {Ratio}, seed 0). ")
    + "PA = the masked pixels; both methods see identical masks.").AppendLine();
report.AppendLine("| metric | L-MAE | NearestKnown |").AppendLine("|---|---|---|");
report.AppendLine($"| PA-mIoU | {Pct(lmae.PredictAreaMeanIntersectionOverUnion)} | {Pct(nearest.PredictAreaMeanIntersectionOverUnion)} |");
report.AppendLine($"| PA pixel accuracy | {Pct(lmae.PredictAreaPixelAccuracy)} | {Pct(nearest.PredictAreaPixelAccuracy)} |");
report.AppendLine($"| mIoU (all pixels) | {Pct(lmae.MeanIntersectionOverUnion)} | {Pct(nearest.MeanIntersectionOverUnion)} |");
for (int c = 0; c < classes; c++)
    report.AppendLine($"| PA IoU {SyntheticScenes.ClassNames[c]} | {Pct(lmae.PredictAreaPerClassIntersectionOverUnion[c])} | {Pct(nearest.PredictAreaPerClassIntersectionOverUnion[c])} |");
report.AppendLine().AppendLine($"Files in `completed/`, per scene: `.label.png` (completed label, palette PNG), overlays of the label with holes "
    + "(`.1-holes`), the L-MAE completion (`.2-lmae`), the NearestKnown fill (`.3-nearest-known`), the truth (`.4-truth`), and the "
    + "L-MAE confidence (`.5-confidence`, blue low, red high). `overview.png` shows one scene's image, label with holes (unknown "
    + "dark grey), completion and confidence side by side. The data set is in `data/`, the model in `model.zip`.");
string reportPath = Path.Combine(output, "report.md");
SegmentationFiles.WriteAtomically(reportPath, s => s.Write(Encoding.UTF8.GetBytes(report.ToString())));

Console.WriteLine();
Console.WriteLine(Invariant($"PA-mIoU at ratio {Ratio}: L-MAE {Pct(lmae.PredictAreaMeanIntersectionOverUnion)}, NearestKnown {Pct(nearest.PredictAreaMeanIntersectionOverUnion)}"));
Console.WriteLine(Invariant($"done in {total.Elapsed.TotalSeconds:F0} s; results: {output}"));

// A label map in its class colours; unknown pixels dark grey.
static RgbImage Colours(LabelMap label, byte[] classColours)
{
    var pixels = new byte[label.Values.Length * 3];
    for (int i = 0; i < label.Values.Length; i++)
    {
        int v = label.Values[i];
        for (int c = 0; c < 3; c++) pixels[3 * i + c] = 3 * v + c < classColours.Length ? classColours[3 * v + c] : (byte)48;
    }
    return new RgbImage(label.Width, label.Height, pixels);
}

// Images of equal height side by side, 4 white pixels apart.
static RgbImage SideBySide(IReadOnlyList<RgbImage> images)
{
    const int Gap = 4;
    int height = images[0].Height, width = images.Sum(im => im.Width) + Gap * (images.Count - 1);
    var pixels = new byte[width * height * 3];
    Array.Fill(pixels, (byte)255);
    int x0 = 0;
    foreach (var image in images)
    {
        for (int y = 0; y < height; y++)
            Array.Copy(image.Pixels, y * image.Width * 3, pixels, (y * width + x0) * 3, image.Width * 3);
        x0 += image.Width + Gap;
    }
    return new RgbImage(width, height, pixels);
}

/// <summary>Prints one line per epoch from the trainer's <see cref="TrainingProgress"/> records (called on the training thread).</summary>
internal sealed class EpochLines : IProgress<TrainingProgress>
{
    public void Report(TrainingProgress p)
    {
        if (!p.EndOfEpoch) return;
        string validation = p.ValidationLoss is double vl ? Invariant($", validation loss {vl:F4}") : "";
        if (p.ValidationPaMiou is double pa) validation += Invariant($", validation PA-mIoU {pa:F2}");
        Console.WriteLine(Invariant($"  epoch {p.Epoch}/{p.Epochs}: loss {p.Loss:F4}, {p.ImagesPerSecond:F1} images/s, learning rate {p.LearningRate:G3}{validation}"));
    }
}

