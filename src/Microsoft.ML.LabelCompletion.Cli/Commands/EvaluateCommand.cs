using System.CommandLine;
using System.Diagnostics;
using System.Globalization;
using System.Text;
using System.Text.Json;
using Microsoft.ML.LabelCompletion.Data;
using Microsoft.ML.LabelCompletion.Evaluation;
using Microsoft.ML.LabelCompletion.Model;

namespace Microsoft.ML.LabelCompletion.Cli.Commands;

/// <summary>
/// <c>lmae evaluate</c>: the fixed protocol of DESIGN.md §3 (<see cref="EvaluationProtocol"/>: random masks, seed 0, patch 16,
/// native size) on a split, for L-MAE and, with <c>--baselines</c>, NearestKnown and ImageOnly on identical masks. Prints a table per
/// ratio (classes and means, methods side by side), writes <c>metrics.json</c> and a per-class bar chart per ratio.
/// </summary>
internal static class EvaluateCommand
{
    /// <summary>Name of the L-MAE method in tables and JSON.</summary>
    public const string LmaeMethod = "LMAE";

    /// <summary>Name of the nearest-known-pixel baseline.</summary>
    public const string NearestKnownMethod = "NearestKnown";

    /// <summary>Name of the image-only baseline (the same network given an all-unknown label).</summary>
    public const string ImageOnlyMethod = "ImageOnly";

    public static System.CommandLine.Command Create(CliConsole console)
    {
        var model = new Option<string>("--model") { Description = "Model zip written by 'lmae train'.", Required = true, HelpName = "FILE" };
        var data = CommonOptions.Data("Data folder with complete ground truth.");
        var format = CommonOptions.Format();
        var split = CommonOptions.Split("val");
        var ratios = new Option<string>("--ratios") { Description = "Mask ratios, comma-separated. Default 0.5,0.6.", DefaultValueFactory = _ => "0.5,0.6" };
        var baselines = new Option<bool>("--baselines") { Description = "Also evaluate NearestKnown and ImageOnly (same network, no label input) on the same masks." };
        var output = new Option<string>("--out") { Description = "Folder for metrics.json and the bar charts. Default: the current folder.", DefaultValueFactory = _ => ".", HelpName = "DIR" };
        var batch = new Option<int>("--batch") { Description = "Images handed to each method at once. Default 4.", DefaultValueFactory = _ => 4 };
        var limit = new Option<int?>("--limit") { Description = "Evaluate only the first N images of the split (quick looks; not the protocol's numbers).", HelpName = "N" };
        var device = CommonOptions.Device();
        var threads = CommonOptions.Threads();
        var unknown = CommonOptions.Unknown();
        var precision = CommonOptions.Precision("Default: the precision the model was trained with.");

        var command = new System.CommandLine.Command("evaluate", "Evaluate a model with the fixed PA-mIoU protocol, optionally against the baselines.")
        {
            model, data, format, split, ratios, baselines, output, batch, limit, device, threads, unknown, precision,
        };
        command.SetAction(parse =>
        {
            var ml = new MLContext(seed: 0);
            CommonOptions.ApplyDevice(ml, parse.GetValue(device)!);
            CommonOptions.ApplyThreads(parse.GetValue(threads));
            var ratioList = CommonOptions.Ratios(parse.GetValue(ratios)!);
            int batchSize = parse.GetValue(batch);
            if (batchSize < 1) throw new CliException($"--batch must be at least 1, not {batchSize}.");
            int? maxImages = parse.GetValue(limit);
            if (maxImages is < 1) throw new CliException($"--limit must be at least 1, not {maxImages}.");
            string outDir = Path.GetFullPath(parse.GetValue(output)!);
            if (File.Exists(outDir)) throw new CliException($"--out '{outDir}' is a file; give a folder.");
            string modelPath = parse.GetValue(model)!;

            using var trained = ModelFiles.Load(ml, modelPath);
            var opened = DataSets.Open(ml, parse.GetValue(data)!, parse.GetValue(format)!, parse.GetValue(split)!, trained.NumberOfClasses,
                CommonOptions.UnknownValue(parse.GetValue(unknown)), console);
            byte unknownLabel = trained.Options.UnknownLabel;
            if (opened.NumberOfClasses != trained.NumberOfClasses || opened.UnknownLabel != unknownLabel)
                throw new CliException($"the model completes {trained.NumberOfClasses} classes (unknown {unknownLabel}) but the data has {opened.NumberOfClasses} (unknown {opened.UnknownLabel}).");
            new OutputPaths().Reads(opened).Reads(modelPath).CheckFolder("--out", outDir, [Path.Combine(outDir, "metrics.json"),
                .. ratioList.Select(r => Path.Combine(outDir, $"per_class_pa_iou_r{r.ToString(CultureInfo.InvariantCulture)}.png"))], mayHoldInputs: true);

            var inference = trained.Options;
            inference.MaskSelector = MaskSelectorMode.Unknown;
            inference.Precision = CommonOptions.ParsePrecision(parse.GetValue(precision), inference.Precision);
            using var lmae = ml.Transforms.CompleteLabels(inference, trained).Fit(opened.View);
            var methods = new List<(string Name, Func<IReadOnlyList<(RgbImage Image, LabelMap Masked)>, IReadOnlyList<LabelMap>> Completer)>
            {
                // The protocol's batches (8 images) complete in one call: their windows share the network's forwards.
                (LmaeMethod, b => lmae.Complete(b.Select(x => (x.Image, x.Masked)).ToList()).Select(r => r.Completed).ToArray()),
            };
            if (parse.GetValue(baselines))
            {
                methods.Add((NearestKnownMethod, EvaluationProtocol.NearestKnownCompleter(unknownLabel)));
                methods.Add((ImageOnlyMethod, b => lmae.Complete(b.Select(x => (x.Image, AllUnknown(x.Masked, unknownLabel))).ToList()).Select(r => r.Completed).ToArray()));
            }

            int images = Math.Min(opened.Dataset.Count, maxImages ?? int.MaxValue);
            console.Out.WriteLine($"evaluating {Path.GetFileName(modelPath)} on {opened.Description}{(images < opened.Dataset.Count ? $", first {images} images" : "")}: "
                + $"{string.Join(", ", methods.Select(m => m.Name))} at ratio {string.Join(", ", ratioList.Select(r => r.ToString(CultureInfo.InvariantCulture)))}");
            var results = new List<(double Ratio, string Method, LabelCompletionMetrics Metrics)>();
            var clock = Stopwatch.StartNew();
            foreach (double ratio in ratioList)
            {
                var protocol = new EvaluationProtocol(opened.NumberOfClasses, ratio, unknownLabel, opened.ClassNames);
                var metrics = protocol.CompleteAndEvaluate(Samples(opened.Dataset, images, ratio, console), methods.Select(m => m.Completer).ToArray(), batchSize);
                for (int m = 0; m < methods.Count; m++) results.Add((ratio, methods[m].Name, metrics[m]));
                console.Out.WriteLine();
                console.Out.Write(Table(ratio, opened, images, methods.Select(m => m.Name).ToArray(), metrics));
                string chart = Path.Combine(outDir, $"per_class_pa_iou_r{ratio.ToString(CultureInfo.InvariantCulture)}.png");
                Charts.WriteBarChart(chart, $"Per-class PA IoU at ratio {ratio.ToString(CultureInfo.InvariantCulture)}: {parse.GetValue(format)} {parse.GetValue(split)}, {images} images", "PA IoU (%)",
                    opened.ClassNames, methods.Select((m, i) => new ChartSeries(m.Name, metrics[i].PredictAreaPerClassIntersectionOverUnion)).ToArray());
                console.Out.WriteLine($"chart: {chart}");
            }
            string json = Path.Combine(outDir, "metrics.json");
            SegmentationFiles.WriteAtomically(json, s => WriteJson(s, Path.GetFullPath(modelPath), opened, parse.GetValue(format)!, parse.GetValue(split)!, images, results));
            console.Out.WriteLine($"metrics: {json} ({clock.Elapsed.TotalSeconds:F0} s)");
            return LmaeCli.Success;
        });
        return command;
    }

    /// <summary>The same size of label with every pixel unknown: the ImageOnly baseline's input.</summary>
    private static LabelMap AllUnknown(LabelMap label, byte unknownLabel)
    {
        var values = new byte[label.Values.Length];
        Array.Fill(values, unknownLabel);
        return new LabelMap(label.Width, label.Height, values);
    }

    private static IEnumerable<(RgbImage Image, LabelMap Truth)> Samples(SegmentationDataset dataset, int count, double ratio, CliConsole console)
    {
        var clock = Stopwatch.StartNew();
        var last = TimeSpan.Zero;
        for (int i = 0; i < count; i++)
        {
            var sample = dataset.Read(i);
            yield return (sample.Image, sample.Label);
            if (clock.Elapsed - last > TimeSpan.FromSeconds(console.Interactive ? 0.5 : 10))
            {
                last = clock.Elapsed;
                string line = string.Create(CultureInfo.InvariantCulture, $"ratio {ratio}: {i + 1}/{count} images  {(i + 1) / clock.Elapsed.TotalSeconds:F2} images/s");
                if (console.Interactive) console.Out.Write('\r' + line);
                else console.Out.WriteLine(line);
            }
        }
        if (console.Interactive) console.Out.Write('\r' + new string(' ', 60) + '\r');
    }

    /// <summary>The per-ratio table: one row per class (PA IoU), then the means and accuracies; one column per method.</summary>
    internal static string Table(double ratio, OpenedData opened, int images, IReadOnlyList<string> methods, IReadOnlyList<LabelCompletionMetrics> metrics)
    {
        var text = new StringBuilder();
        int nameWidth = Math.Max(18, opened.ClassNames.Max(n => n.Length) + 2);
        int column = Math.Max(13, methods.Max(m => m.Length) + 2);
        text.Append(CultureInfo.InvariantCulture, $"ratio {ratio}: {images} images, PA region = masked pixels with known truth ({metrics[0].PredictAreaPixelCount:N0} pixels)\n");
        text.Append("PA IoU (%)".PadRight(nameWidth));
        foreach (string m in methods) text.Append(m.PadLeft(column));
        text.Append('\n');
        for (int c = 0; c < opened.NumberOfClasses; c++)
            Row(text, opened.ClassNames[c], nameWidth, column, metrics.Select(m => m.PredictAreaPerClassIntersectionOverUnion[c]));
        text.Append(new string('-', nameWidth + column * methods.Count)).Append('\n');
        Row(text, "PA-mIoU", nameWidth, column, metrics.Select(m => m.PredictAreaMeanIntersectionOverUnion));
        Row(text, "PA pixel accuracy", nameWidth, column, metrics.Select(m => m.PredictAreaPixelAccuracy));
        Row(text, "mIoU (all known)", nameWidth, column, metrics.Select(m => m.MeanIntersectionOverUnion));
        Row(text, "pixel accuracy", nameWidth, column, metrics.Select(m => m.PixelAccuracy));
        return text.ToString();
    }

    private static void Row(StringBuilder text, string name, int nameWidth, int column, IEnumerable<double> values)
    {
        text.Append(name.PadRight(nameWidth));
        foreach (double v in values) text.Append((double.IsNaN(v) ? "-" : v.ToString("F2", CultureInfo.InvariantCulture)).PadLeft(column));
        text.Append('\n');
    }

    private static void WriteJson(Stream stream, string modelPath, OpenedData opened, string format, string split, int images,
        IReadOnlyList<(double Ratio, string Method, LabelCompletionMetrics Metrics)> results)
    {
        using var json = new Utf8JsonWriter(stream, new JsonWriterOptions { Indented = true });
        json.WriteStartObject();
        json.WriteString("model", modelPath);
        json.WriteStartObject("data");
        json.WriteString("root", opened.Dataset.Root);
        json.WriteString("format", format);
        json.WriteString("split", split);
        json.WriteNumber("images", images);
        json.WriteEndObject();
        json.WriteStartObject("protocol");
        json.WriteString("selector", "Random");
        json.WriteNumber("seed", EvaluationProtocol.Seed);
        json.WriteNumber("patch", EvaluationProtocol.PatchSize);
        json.WriteEndObject();
        json.WriteStartArray("classes");
        foreach (string name in opened.ClassNames) json.WriteStringValue(name);
        json.WriteEndArray();
        json.WriteStartArray("results");
        foreach (var (ratio, method, m) in results)
        {
            json.WriteStartObject();
            json.WriteNumber("ratio", ratio);
            json.WriteString("method", method);
            Number(json, "pa_miou", m.PredictAreaMeanIntersectionOverUnion);
            Number(json, "miou", m.MeanIntersectionOverUnion);
            Number(json, "pa_pixel_accuracy", m.PredictAreaPixelAccuracy);
            Number(json, "pixel_accuracy", m.PixelAccuracy);
            json.WriteNumber("pa_pixels", m.PredictAreaPixelCount);
            json.WriteNumber("pixels", m.PixelCount);
            PerClass(json, "pa_per_class_iou", opened.ClassNames, m.PredictAreaPerClassIntersectionOverUnion);
            PerClass(json, "per_class_iou", opened.ClassNames, m.PerClassIntersectionOverUnion);
            json.WriteEndObject();
        }
        json.WriteEndArray();
        json.WriteEndObject();
    }

    private static void PerClass(Utf8JsonWriter json, string name, IReadOnlyList<string> classes, IReadOnlyList<double> values)
    {
        json.WriteStartObject(name);
        for (int c = 0; c < classes.Count; c++) Number(json, classes[c], values[c]);
        json.WriteEndObject();
    }

    /// <summary>A metric rounded to 4 decimals; NaN (no pixel in the region) is <c>null</c>.</summary>
    private static void Number(Utf8JsonWriter json, string name, double value)
    {
        if (double.IsFinite(value)) json.WriteNumber(name, Math.Round(value, 4));
        else json.WriteNull(name);
    }
}
