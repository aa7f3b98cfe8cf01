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
/// ratio (classes and means, methods side by side), writes <c>metrics.json</c>, a per-class bar chart per ratio, and the exact
/// confusion matrices (<c>confusion-matrices.json</c>, <see cref="EvaluationShardFile"/>).
/// </summary>
/// <remarks>
/// <para>
/// With <c>--shard i/n</c> (or a scheduler's task index, <see cref="CommonOptions.ResolveShard"/>) a process counts only the
/// images of one contiguous, balanced run of the split and writes its matrices to <c>confusion-matrices.shard-i-of-n.json</c>;
/// <c>lmae evaluate --merge DIR...</c> adds the shards' matrices up and reports exactly what one process over the whole split
/// reports. For that, an image is masked by its position in the whole split, and the images are completed in the batches of
/// a whole-split run (positions <c>k*batch .. (k+1)*batch - 1</c>; a batch's images share the network's forwards, which changes
/// float rounding): a shard whose first or last batch reaches into the next shard completes that whole batch and counts only
/// its own images (at most <c>2 * (batch - 1)</c> extra images per shard).
/// </para>
/// <para>
/// The matrices file is rewritten after every ratio, so a run that is started again with the same settings goes on from the
/// first ratio it has not finished (<c>--force</c> evaluates every ratio again); a file of other settings is refused, naming
/// what differs.
/// </para>
/// </remarks>
internal static class EvaluateCommand
{
    /// <summary>Name of the L-MAE method in tables and JSON.</summary>
    public const string LmaeMethod = "LMAE";

    /// <summary>Name of the nearest-known-pixel baseline.</summary>
    public const string NearestKnownMethod = "NearestKnown";

    /// <summary>Name of the image-only baseline (the same network given an all-unknown label).</summary>
    public const string ImageOnlyMethod = "ImageOnly";

    private delegate IReadOnlyList<LabelMap> Completer(IReadOnlyList<(RgbImage Image, LabelMap Masked)> batch);

    public static System.CommandLine.Command Create(CliConsole console)
    {
        var model = new Option<string?>("--model") { Description = "Model zip written by 'lmae train' (required unless --merge).", HelpName = "FILE" };
        var data = new Option<string?>("--data") { Description = "Data folder with complete ground truth (required unless --merge).", HelpName = "DIR" };
        var format = CommonOptions.Format();
        format.Required = false;
        format.Description += " Required unless --merge.";
        var split = CommonOptions.Split("val");
        var ratios = new Option<string>("--ratios") { Description = "Mask ratios, comma-separated. Default 0.5,0.6.", DefaultValueFactory = _ => "0.5,0.6" };
        var baselines = new Option<bool>("--baselines") { Description = "Also evaluate NearestKnown and ImageOnly (same network, no label input) on the same masks." };
        var output = new Option<string>("--out") { Description = "Folder for metrics.json, confusion-matrices*.json and the bar charts. Default: the current folder.", DefaultValueFactory = _ => ".", HelpName = "DIR" };
        var batch = new Option<int>("--batch") { Description = "Images handed to each method at once. Default 4.", DefaultValueFactory = _ => 4 };
        var limit = new Option<int?>("--limit") { Description = "Evaluate only the first N images of the split (quick looks; not the protocol's numbers).", HelpName = "N" };
        var device = CommonOptions.Device();
        var threads = CommonOptions.Threads();
        var unknown = CommonOptions.Unknown();
        var precision = CommonOptions.Precision("Default: the precision the model was trained with.");
        var shard = CommonOptions.Shard("this process counts only the images of that shard and writes confusion-matrices.shard-i-of-n.json; --merge adds the shards up.");
        var shardCount = CommonOptions.ShardCount();
        var merge = new Option<string[]>("--merge")
        {
            Description = "Instead of evaluating: add up the confusion-matrices.shard-i-of-n.json files of a sharded run (folders or files; "
                + "every shard exactly once, same settings) and report the metrics of the whole split, as one process would, under --out.",
            HelpName = "DIR",
            AllowMultipleArgumentsPerToken = true,
            Arity = ArgumentArity.OneOrMore,
        };
        var force = new Option<bool>("--force") { Description = "Evaluate every ratio again even when --out holds its matrices from a run with the same settings." };

        var command = new System.CommandLine.Command("evaluate", "Evaluate a model with the fixed PA-mIoU protocol, optionally against the baselines.")
        {
            model, data, format, split, ratios, baselines, output, batch, limit, device, threads, unknown, precision, shard, shardCount, merge, force,
        };
        // --model, --data and --format are required, except with --merge, which takes none of the evaluation's own options.
        command.Validators.Add(result =>
        {
            if (result.GetResult(merge) is null)
            {
                foreach (var option in new Option[] { model, data, format })
                    if (result.GetResult(option) is null) result.AddError($"Option '{option.Name}' is required (or --merge DIR... to add up shards).");
                return;
            }
            foreach (var option in new Option[] { model, data, format, shard, shardCount, limit, precision, force })
                if (result.GetResult(option) is { Implicit: false })
                    result.AddError($"--merge adds up finished shards; it takes no {option.Name}.");
        });
        command.SetAction(parse =>
        {
            string outDir = Path.GetFullPath(parse.GetValue(output)!);
            if (File.Exists(outDir)) throw new CliException($"--out '{outDir}' is a file; give a folder.");
            if (parse.GetValue(merge) is { Length: > 0 } shardFiles)
            {
                Merge(shardFiles, outDir, console);
                return LmaeCli.Success;
            }
            string modelPath = parse.GetValue(model)!, dataPath = parse.GetValue(data)!, formatName = parse.GetValue(format)!;
            string splitName = parse.GetValue(split)!;

            var ml = new MLContext(seed: 0);
            CommonOptions.ApplyDevice(ml, parse.GetValue(device)!);
            CommonOptions.ApplyThreads(parse.GetValue(threads));
            var ratioList = CommonOptions.Ratios(parse.GetValue(ratios)!);
            int batchSize = parse.GetValue(batch);
            if (batchSize < 1) throw new CliException($"--batch must be at least 1, not {batchSize}.");
            int? maxImages = parse.GetValue(limit);
            if (maxImages is < 1) throw new CliException($"--limit must be at least 1, not {maxImages}.");
            var part = CommonOptions.ResolveShard(parse.GetValue(shard), parse.GetValue(shardCount), console);

            using var trained = ModelFiles.Load(ml, modelPath);
            var opened = DataSets.Open(ml, dataPath, formatName, splitName, trained.NumberOfClasses,
                CommonOptions.UnknownValue(parse.GetValue(unknown)), console);
            byte unknownLabel = trained.Options.UnknownLabel;
            if (opened.NumberOfClasses != trained.NumberOfClasses || opened.UnknownLabel != unknownLabel)
                throw new CliException($"the model completes {trained.NumberOfClasses} classes (unknown {unknownLabel}) but the data has {opened.NumberOfClasses} (unknown {opened.UnknownLabel}).");
            new OutputPaths().Reads(opened).Reads(modelPath).CheckFolder("--out", outDir, [Path.Combine(outDir, "metrics.json"),
                Path.Combine(outDir, EvaluationShardFile.FileName(part)), Path.Combine(outDir, EvaluationShardFile.FileName(DataShard.All)),
                .. ratioList.Select(r => Path.Combine(outDir, $"per_class_pa_iou_r{r.ToString(CultureInfo.InvariantCulture)}.png"))], mayHoldInputs: true);

            var inference = trained.Options;
            inference.MaskSelector = MaskSelectorMode.Unknown;
            inference.Precision = CommonOptions.Concrete(CommonOptions.ParsePrecision(parse.GetValue(precision), inference.Precision), parse.GetValue(device)!);
            using var lmae = ml.Transforms.CompleteLabels(inference, trained).Fit(opened.View);
            var methods = new List<(string Name, Completer Complete)>
            {
                // A batch completes in one call: its windows share the network's forwards.
                (LmaeMethod, b => lmae.Complete(b.Select(x => (x.Image, x.Masked)).ToList()).Select(r => r.Completed).ToArray()),
            };
            if (parse.GetValue(baselines))
            {
                var nearestKnown = EvaluationProtocol.NearestKnownCompleter(unknownLabel);
                methods.Add((NearestKnownMethod, b => nearestKnown(b)));
                methods.Add((ImageOnlyMethod, b => lmae.Complete(b.Select(x => (x.Image, AllUnknown(x.Masked, unknownLabel))).ToList()).Select(r => r.Completed).ToArray()));
            }

            int images = Math.Min(opened.Dataset.Count, maxImages ?? int.MaxValue);
            var (first, length) = part.RangeOf(images);
            var (completedFirst, completedEnd) = Batches(first, length, images, batchSize);
            var settings = new RunSettings()
                .Add("model-sha256", RunSettings.FileSha256(modelPath))
                .Add("format", formatName)
                .Add("split", splitName)
                .Add("images", images.ToString(CultureInfo.InvariantCulture))
                .Add("inputs-sha256", opened.InputDigest(images))
                .Add("classes", string.Join("|", opened.ClassNames))
                .Add("unknown", unknownLabel.ToString(CultureInfo.InvariantCulture))
                .Add("protocol", $"random masks, seed {EvaluationProtocol.Seed}, patch {EvaluationProtocol.PatchSize}")
                .Add("ratios", EvaluationShardFile.List(ratioList.Select(r => r.ToString("R", CultureInfo.InvariantCulture))))
                .Add("methods", EvaluationShardFile.List(methods.Select(m => m.Name)))
                .Add("batch", batchSize.ToString(CultureInfo.InvariantCulture))
                .Add("precision", inference.Precision.ToString())
                .Add("device", parse.GetValue(device)!);
            string matricesPath = Path.Combine(outDir, EvaluationShardFile.FileName(part));
            var file = new EvaluationShardFile
            {
                Settings = settings, ModelPath = Path.GetFullPath(modelPath), DataRoot = opened.Dataset.Root, ClassNames = opened.ClassNames.ToArray(),
                Shard = part, First = first, Images = length, CompletedFirst = completedFirst, CompletedImages = completedEnd - completedFirst,
            };
            var earlier = parse.GetValue(force) ? null : ReadEarlier(matricesPath, settings);

            console.Out.WriteLine($"evaluating {Path.GetFileName(modelPath)} on {opened.Description}{(images < opened.Dataset.Count ? $", first {images} images" : "")}"
                + (part.Count > 1 ? $", shard {part}: images {first + 1}-{first + length} of {images}" : "")
                + $": {string.Join(", ", methods.Select(m => m.Name))} at ratio {string.Join(", ", ratioList.Select(r => r.ToString(CultureInfo.InvariantCulture)))}");
            var clock = Stopwatch.StartNew();
            foreach (double ratio in ratioList)
            {
                if (earlier is not null && methods.All(m => earlier.Find(ratio, m.Name) is not null))
                {
                    file.Results.AddRange(methods.Select(m => earlier.Find(ratio, m.Name)!));
                    console.Out.WriteLine($"ratio {ratio.ToString(CultureInfo.InvariantCulture)}: counts read from {matricesPath} (finished by an earlier run with the same settings; --force evaluates again)");
                    continue;
                }
                var protocol = new EvaluationProtocol(opened.NumberOfClasses, ratio, unknownLabel, opened.ClassNames);
                var matrices = EvaluateRange(protocol, opened.Dataset, images, first, length, batchSize, methods.Select(m => m.Complete).ToArray(), console);
                for (int m = 0; m < methods.Count; m++) file.Results.Add(new ShardMatrices(ratio, methods[m].Name, matrices[m].PredictArea, matrices[m].Global));
                file.Write(matricesPath);
                if (part.Count > 1)
                    console.Out.WriteLine($"ratio {ratio.ToString(CultureInfo.InvariantCulture)}: {length} images counted ({matrices[0].PredictArea.TotalCount:N0} PA pixels)");
            }
            if (part.Count > 1)
            {
                console.Out.WriteLine($"shard {part}: confusion matrices in {matricesPath} ({clock.Elapsed.TotalSeconds:F0} s). "
                    + "When every shard has finished: lmae evaluate --merge <their --out folders> --out DIR");
                return LmaeCli.Success;
            }
            Report(outDir, file, console);
            console.Out.WriteLine($"({clock.Elapsed.TotalSeconds:F0} s)");
            return LmaeCli.Success;
        });
        return command;
    }

    /// <summary>
    /// The matrices an earlier run with the same settings left in <paramref name="path"/>, to go on from; null when there is no
    /// such file. A file of other settings is refused, naming what differs.
    /// </summary>
    private static EvaluationShardFile? ReadEarlier(string path, RunSettings settings)
    {
        if (!File.Exists(path)) return null;
        EvaluationShardFile earlier;
        try
        {
            earlier = EvaluationShardFile.Read(path);
        }
        catch (InvalidDataException e)
        {
            throw new CliException($"{e.Message} Delete it, use another --out folder, or --force to evaluate again.", e);
        }
        var differences = settings.Differences(earlier.Settings);
        if (differences.Count > 0)
            throw new CliException($"{path} holds counts of another model or other settings ({string.Join("; ", differences)}); "
                + "use another --out folder, or --force to evaluate again.");
        return earlier;
    }

    /// <summary>
    /// Counts images <paramref name="first"/> .. <paramref name="first"/> + <paramref name="length"/> - 1 of the split's first
    /// <paramref name="images"/>, completing them in the batches of a whole-split run (see the class remarks).
    /// </summary>
    private static LabelCompletionMetrics.Accumulator[] EvaluateRange(EvaluationProtocol protocol,
        SegmentationDataset dataset, int images, int first, int length, int batchSize, IReadOnlyList<Completer> completers, CliConsole console)
    {
        var matrices = completers.Select(_ => new LabelCompletionMetrics.Accumulator(protocol.NumberOfClasses)).ToArray();
        int end = first + length;
        var (blockStart, blockEnd) = Batches(first, length, images, batchSize);
        var progress = new ProgressLine(console);
        string ratio = protocol.MaskRatio.ToString(CultureInfo.InvariantCulture);
        for (int start = blockStart; start < blockEnd; start += batchSize)
        {
            console.Cancellation.ThrowIfCancellationRequested();
            int count = Math.Min(batchSize, images - start);
            var batch = new (RgbImage Image, LabelMap Masked)[count];
            var truths = new LabelMap[count];
            var pixelMasks = new bool[count][];
            for (int j = 0; j < count; j++)
            {
                var sample = dataset.Read(start + j);
                var (masked, pixelMask) = protocol.Mask(start + j, sample.Label);
                batch[j] = (sample.Image, masked);
                truths[j] = sample.Label;
                pixelMasks[j] = pixelMask;
            }
            for (int m = 0; m < completers.Count; m++)
            {
                var completed = completers[m](batch);
                for (int j = 0; j < count; j++)
                {
                    int index = start + j;
                    if (index < first || index >= end) continue; // completed only to keep the batch of a whole-split run
                    var (truth, result) = (truths[j], completed[j]);
                    if (result.Width != truth.Width || result.Height != truth.Height)
                        throw new InvalidOperationException($"{dataset.Pairs[index].LabelPath}: the completed label is {result.Width}x{result.Height}, the truth {truth.Width}x{truth.Height}.");
                    matrices[m].Add(truth.Values, result.Values, pixelMasks[j], protocol.UnknownLabel);
                }
            }
            int done = Math.Min(end, start + count) - first;
            progress.Report(false, seconds => string.Create(CultureInfo.InvariantCulture, $"ratio {ratio}: {done}/{length} images  {done / seconds:F2} images/s"));
        }
        if (console.Interactive) console.Out.Write('\r' + new string(' ', 60) + '\r');
        return matrices;
    }

    /// <summary>
    /// The images to complete for images <paramref name="first"/> .. + <paramref name="length"/> - 1 of <paramref name="images"/>:
    /// from the start of the whole-split batch that holds the first to the end of the one that holds the last (none when empty).
    /// </summary>
    internal static (int Start, int End) Batches(int first, int length, int images, int batchSize)
    {
        if (length == 0) return (first, first);
        int end = first + length;
        return (first / batchSize * batchSize, Math.Min(images, (end + batchSize - 1) / batchSize * batchSize));
    }

    /// <summary>
    /// <c>--merge</c>: reads every shard's matrices (folders are searched for <see cref="EvaluationShardFile.ShardPattern"/>), checks
    /// that they are one run's shards, each once and finished, adds them up and reports them as a whole-split run does.
    /// </summary>
    private static void Merge(IReadOnlyList<string> inputs, string outDir, CliConsole console)
    {
        var paths = new List<string>();
        foreach (string input in inputs)
        {
            string full = Path.GetFullPath(input);
            if (File.Exists(full)) paths.Add(full);
            else if (Directory.Exists(full))
            {
                var found = Directory.GetFiles(full, EvaluationShardFile.ShardPattern).Order(StringComparer.Ordinal).ToArray();
                if (found.Length == 0) throw new CliException($"--merge: {full} holds no {EvaluationShardFile.ShardPattern} file.");
                paths.AddRange(found);
            }
            else throw new CliException($"--merge: '{input}' does not exist.");
        }
        var files = new List<(string Path, EvaluationShardFile File)>();
        foreach (string path in paths.Distinct(StringComparer.Ordinal))
        {
            try
            {
                files.Add((path, EvaluationShardFile.Read(path)));
            }
            catch (InvalidDataException e)
            {
                throw new CliException($"--merge: {e.Message}", e);
            }
        }
        var (firstPath, reference) = files[0];
        int shards = reference.Shard.Count;
        int images = int.Parse(reference.Settings["images"]!, CultureInfo.InvariantCulture);
        var byIndex = new Dictionary<int, string>();
        foreach (var (path, file) in files)
        {
            if (file.Shard.Count != shards)
                throw new CliException($"--merge: {path} is shard {file.Shard} but {firstPath} is of {shards} shards; merge the shards of one run.");
            var differences = file.Settings.Differences(reference.Settings, $"in {firstPath}", $"in {path}");
            if (differences.Count > 0)
                throw new CliException($"--merge: the shards come from runs of other settings ({string.Join("; ", differences)}); merge the shards of one run.");
            if (byIndex.TryGetValue(file.Shard.Index, out string? twice))
                throw new CliException($"--merge: shard {file.Shard} is given twice: {twice} and {path}.");
            byIndex[file.Shard.Index] = path;
            var (start, length) = file.Shard.RangeOf(images);
            if (file.First != start || file.Images != length)
                throw new CliException($"--merge: {path} counts images {file.First}..{file.First + file.Images - 1}, but shard {file.Shard} of {images} images is {start}..{start + length - 1}.");
            if (!file.IsComplete)
            {
                var missing = file.Ratios.Where(r => file.Methods.Any(m => file.Find(r, m) is null)).Select(r => r.ToString(CultureInfo.InvariantCulture));
                throw new CliException($"--merge: shard {file.Shard} is unfinished ({path} lacks ratio {string.Join(", ", missing)}); run that shard again, it goes on where it stopped.");
            }
        }
        var absent = Enumerable.Range(0, shards).Where(i => !byIndex.ContainsKey(i)).ToArray();
        if (absent.Length > 0)
            throw new CliException($"--merge: {absent.Length} of {shards} shards are missing ({string.Join(", ", absent.Select(i => $"{i}/{shards}"))}); give the folders of every shard.");

        var merged = new EvaluationShardFile
        {
            Settings = reference.Settings, ModelPath = reference.ModelPath, DataRoot = reference.DataRoot, ClassNames = reference.ClassNames,
            Shard = DataShard.All, First = 0, Images = images, CompletedFirst = 0, CompletedImages = images,
        };
        foreach (double ratio in reference.Ratios)
            foreach (string method in reference.Methods)
            {
                var predictArea = new SegmentationConfusionMatrix(reference.ClassNames.Count);
                var global = new SegmentationConfusionMatrix(reference.ClassNames.Count);
                foreach (var (_, file) in files.OrderBy(f => f.File.Shard.Index))
                {
                    var part = file.Find(ratio, method)!;
                    predictArea.Merge(part.PredictArea);
                    global.Merge(part.Global);
                }
                merged.Results.Add(new ShardMatrices(ratio, method, predictArea, global));
            }
        console.Out.WriteLine($"merged {shards} shards of {images} images ({reference.Settings["format"]} {reference.DataRoot}, {reference.Settings["split"]}) from {files.Count} files");
        merged.Write(Path.Combine(outDir, EvaluationShardFile.FileName(DataShard.All)));
        Report(outDir, merged, console);
    }

    /// <summary>The tables, charts and <c>metrics.json</c> of a whole split's matrices.</summary>
    private static void Report(string outDir, EvaluationShardFile file, CliConsole console)
    {
        var classNames = file.ClassNames;
        string format = file.Settings["format"]!, split = file.Settings["split"]!;
        var results = new List<(double Ratio, string Method, LabelCompletionMetrics Metrics)>();
        foreach (double ratio in file.Ratios)
        {
            var metrics = file.Methods.Select(m => file.Find(ratio, m)!).Select(r => new LabelCompletionMetrics(r.PredictArea, r.Global, classNames)).ToArray();
            for (int m = 0; m < metrics.Length; m++) results.Add((ratio, file.Methods[m], metrics[m]));
            console.Out.WriteLine();
            console.Out.Write(Table(ratio, classNames, file.Images, file.Methods, metrics));
            string r = ratio.ToString(CultureInfo.InvariantCulture);
            string chart = Path.Combine(outDir, $"per_class_pa_iou_r{r}.png");
            Charts.WriteBarChart(chart, $"Per-class PA IoU at ratio {r}: {format} {split}, {file.Images} images", "PA IoU (%)",
                classNames, file.Methods.Select((m, i) => new ChartSeries(m, metrics[i].PredictAreaPerClassIntersectionOverUnion)).ToArray());
            console.Out.WriteLine($"chart: {chart}");
        }
        string json = Path.Combine(outDir, "metrics.json");
        SegmentationFiles.WriteAtomically(json, s => WriteJson(s, file.ModelPath, file.DataRoot, classNames, format, split, file.Images, results));
        console.Out.WriteLine($"metrics: {json}; confusion matrices: {Path.Combine(outDir, EvaluationShardFile.FileName(DataShard.All))}");
    }

    /// <summary>The same size of label with every pixel unknown: the ImageOnly baseline's input.</summary>
    private static LabelMap AllUnknown(LabelMap label, byte unknownLabel)
    {
        var values = new byte[label.Values.Length];
        Array.Fill(values, unknownLabel);
        return new LabelMap(label.Width, label.Height, values);
    }

    /// <summary>The per-ratio table: one row per class (PA IoU), then the means and accuracies; one column per method.</summary>
    internal static string Table(double ratio, IReadOnlyList<string> classNames, int images, IReadOnlyList<string> methods, IReadOnlyList<LabelCompletionMetrics> metrics)
    {
        var text = new StringBuilder();
        int nameWidth = Math.Max(18, classNames.Max(n => n.Length) + 2);
        int column = Math.Max(13, methods.Max(m => m.Length) + 2);
        text.Append(CultureInfo.InvariantCulture, $"ratio {ratio}: {images} images, PA region = masked pixels with known truth ({metrics[0].PredictAreaPixelCount:N0} pixels)\n");
        text.Append("PA IoU (%)".PadRight(nameWidth));
        foreach (string m in methods) text.Append(m.PadLeft(column));
        text.Append('\n');
        for (int c = 0; c < classNames.Count; c++)
            Row(text, classNames[c], nameWidth, column, metrics.Select(m => m.PredictAreaPerClassIntersectionOverUnion[c]));
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

    private static void WriteJson(Stream stream, string modelPath, string root, IReadOnlyList<string> classNames, string format, string split, int images,
        IReadOnlyList<(double Ratio, string Method, LabelCompletionMetrics Metrics)> results)
    {
        using var json = new Utf8JsonWriter(stream, new JsonWriterOptions { Indented = true });
        json.WriteStartObject();
        json.WriteString("model", modelPath);
        json.WriteStartObject("data");
        json.WriteString("root", root);
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
        foreach (string name in classNames) json.WriteStringValue(name);
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
            PerClass(json, "pa_per_class_iou", classNames, m.PredictAreaPerClassIntersectionOverUnion);
            PerClass(json, "per_class_iou", classNames, m.PerClassIntersectionOverUnion);
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
