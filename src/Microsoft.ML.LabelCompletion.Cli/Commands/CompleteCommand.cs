using System.CommandLine;
using System.Diagnostics;
using Microsoft.ML.Data;
using Microsoft.ML.LabelCompletion.Data;
using Microsoft.ML.LabelCompletion.Model;

namespace Microsoft.ML.LabelCompletion.Cli.Commands;

/// <summary>
/// <c>lmae complete</c>: completes every label of a split with a saved model (<c>Transform</c> of the ML.NET transformer) and writes
/// each completed label in the input's own format (palette PNGs keep their palette, CamVid unknown goes back to void), mirroring
/// the data set's layout under <c>--out</c>; optionally colour overlays and confidence heat maps. Every file is written atomically.
/// </summary>
/// <remarks>
/// Restartable and idempotent: a label whose outputs all exist is skipped (a file exists only once it is whole), so a run
/// that was interrupted and started again finishes the rest and never rewrites a finished file; <c>--force</c> recomputes
/// everything. Each run records in <c>--out</c> what its labels depend on (model hash, selector and its settings, precision,
/// device, and a digest of the input list) in a marker, <c>.lmae-complete</c> (<c>.lmae-complete.shard-i-of-n</c> for a shard),
/// and a run whose settings differ from any marker there is refused, naming what differs, instead of mixing two kinds of
/// completions. <c>--shard i/n</c> (or a scheduler's task index, <see cref="CommonOptions.ResolveShard"/>) takes one of n
/// contiguous, balanced runs of the split (<see cref="DataShard"/>), so n machines can share one data set. Each label is
/// completed on its own (one image per network call, its windows batched) with its row position in the whole split, so its
/// output does not depend on the shard or on what was skipped.
/// </remarks>
internal static class CompleteCommand
{
    public static System.CommandLine.Command Create(CliConsole console)
    {
        var model = new Option<string>("--model") { Description = "Model zip written by 'lmae train'.", Required = true, HelpName = "FILE" };
        var data = CommonOptions.Data("Data folder whose labels are completed (unknown pixels hold the unknown value, CamVid void, VOC 255).");
        var format = CommonOptions.Format();
        var split = CommonOptions.Split("train");
        var output = new Option<string>("--out") { Description = "Output folder (the data set's label layout is mirrored inside).", Required = true, HelpName = "DIR" };
        var selector = new Option<string>("--selector")
        {
            Description = "Mask Selector: unknown (every patch with an unknown pixel, default), background (the --ratio share of patches "
                + "with most --background-class), random (a seeded --ratio share; known pixels in those patches are kept).",
            DefaultValueFactory = _ => "unknown",
        };
        selector.AcceptOnlyFromAmong("unknown", "background", "random");
        var ratio = new Option<float>("--ratio") { Description = "Mask ratio of the background and random selectors. Default 0.5.", DefaultValueFactory = _ => 0.5f };
        var background = new Option<int>("--background-class") { Description = "Class the background selector ranks patches by. Default 0.", DefaultValueFactory = _ => 0 };
        var overlay = new Option<bool>("--overlay") { Description = "Also write colour overlays of the completed labels (overlays/)." };
        var confidence = new Option<bool>("--confidence") { Description = "Also write confidence heat maps (confidence/)." };
        var device = CommonOptions.Device();
        var threads = CommonOptions.Threads();
        var precision = CommonOptions.Precision("Default: the precision the model was trained with.");
        var unknown = CommonOptions.Unknown();
        var shard = CommonOptions.Shard("this process completes only the labels of that shard.");
        var shardCount = CommonOptions.ShardCount();
        var force = new Option<bool>("--force") { Description = "Complete and rewrite labels whose outputs already exist (default: skip them, so an interrupted run can be restarted)." };

        var command = new System.CommandLine.Command("complete", "Complete every label of a data set with a trained model; write them in the input's format.")
        {
            model, data, format, split, output, selector, ratio, background, overlay, confidence, device, threads, unknown, shard, shardCount, force, precision,
        };
        command.SetAction(parse =>
        {
            var ml = new MLContext(seed: 0);
            CommonOptions.ApplyDevice(ml, parse.GetValue(device)!);
            CommonOptions.ApplyThreads(parse.GetValue(threads));
            string outDir = Path.GetFullPath(parse.GetValue(output)!);
            if (File.Exists(outDir)) throw new CliException($"--out '{outDir}' is a file; give a folder.");
            var part = CommonOptions.ResolveShard(parse.GetValue(shard), parse.GetValue(shardCount), console);
            using var trained = ModelFiles.Load(ml, parse.GetValue(model)!);
            var options = trained.Options;
            options.Precision = CommonOptions.Concrete(CommonOptions.ParsePrecision(parse.GetValue(precision), options.Precision), parse.GetValue(device)!);
            var opened = DataSets.Open(ml, parse.GetValue(data)!, parse.GetValue(format)!, parse.GetValue(split)!, trained.NumberOfClasses,
                CommonOptions.UnknownValue(parse.GetValue(unknown)), console);
            if (opened.NumberOfClasses != trained.NumberOfClasses || opened.UnknownLabel != options.UnknownLabel)
                throw new CliException($"the model completes {trained.NumberOfClasses} classes (unknown {options.UnknownLabel}) but the data has {opened.NumberOfClasses} (unknown {opened.UnknownLabel}).");
            new OutputPaths().Reads(opened).Reads(parse.GetValue(model)!).CheckFolder("--out", outDir,
                opened.Dataset.Pairs.SelectMany(p => Outputs(outDir, p, parse.GetValue(overlay), parse.GetValue(confidence))));

            float maskRatio = parse.GetValue(ratio);
            if (!(maskRatio > 0 && maskRatio < 1)) throw new CliException($"--ratio must be in (0, 1), not {maskRatio.ToString(System.Globalization.CultureInfo.InvariantCulture)}.");
            int backgroundClass = parse.GetValue(background);
            if (backgroundClass < 0 || backgroundClass >= trained.NumberOfClasses)
                throw new CliException($"--background-class must be a class, 0..{trained.NumberOfClasses - 1}.");
            options.MaskSelector = parse.GetValue(selector) switch
            {
                "background" => MaskSelectorMode.Background,
                "random" => MaskSelectorMode.Random,
                _ => MaskSelectorMode.Unknown,
            };
            options.InferenceMaskRatio = maskRatio;
            options.BackgroundClass = (byte)backgroundClass;
            options.InferenceBatchSize = 1; // each label on its own: its output does not depend on which others run with it
            options.CancellationToken = console.Cancellation;
            bool overlays = parse.GetValue(overlay), heatMaps = parse.GetValue(confidence);
            var settings = Settings(parse.GetValue(model)!, options, parse.GetValue(device)!, opened);
            CheckOutputFolder(outDir, settings, part, parse.GetValue(force));
            var todo = new HashSet<int>();
            int done = 0;
            var (first, length) = part.RangeOf(opened.Dataset.Count);
            for (int i = first; i < first + length; i++)
            {
                var pair = opened.Dataset.Pairs[i];
                if (!parse.GetValue(force) && Outputs(outDir, pair, overlays, heatMaps).All(File.Exists)) done++;
                else todo.Add(i);
            }
            using var completer = ml.Transforms.CompleteLabels(options, trained).Fit(opened.View);

            console.Out.WriteLine($"completing {todo.Count} labels of {opened.Description} with the {options.MaskSelector} selector"
                + (done > 0 ? $" ({done} already done)" : "") + (part.Count > 1 ? $" (shard {part}: labels {first + 1}-{first + length} of {opened.Dataset.Count})" : ""));
            int written = 0;
            try
            {
                written = Run(completer, opened, outDir, overlays, heatMaps, todo, parse.GetValue(force), console);
            }
            catch (OperationCanceledException)
            {
                console.Error.WriteLine($"lmae: interrupted; the labels written so far are whole. Run the same command again to complete the rest.");
                return LmaeCli.Cancelled;
            }
            console.Out.WriteLine($"{written} completed labels written under {outDir}");
            return LmaeCli.Success;
        });
        return command;
    }

    /// <summary>The files a completed label produces: the label, and its overlay and heat map when asked for.</summary>
    private static IEnumerable<string> Outputs(string outDir, SegmentationPair pair, bool overlays, bool heatMaps)
    {
        yield return Path.Combine(outDir, pair.RelativeLabelPath);
        string stem = Path.ChangeExtension(pair.RelativeLabelPath, ".png");
        if (overlays) yield return Path.Combine(outDir, "overlays", stem);
        if (heatMaps) yield return Path.Combine(outDir, "confidence", stem);
    }

    /// <summary>The marker's first line.</summary>
    internal const string MarkerHeader = "lmae complete";

    /// <summary>Name of the marker of <paramref name="shard"/>: <c>.lmae-complete</c>, or <c>.lmae-complete.shard-i-of-n</c>.</summary>
    internal static string MarkerName(DataShard shard) =>
        shard.Count == 1 ? ".lmae-complete" : $".lmae-complete.shard-{shard.Index}-of-{shard.Count}";

    /// <summary>
    /// What the completed labels depend on: the model file's SHA-256, the selector, its ratio, background class and seed, the
    /// precision, the device, and the input list (its length and <see cref="OpenedData.InputDigest"/>).
    /// </summary>
    internal static RunSettings Settings(string modelPath, LabelCompletionOptions options, string device, OpenedData opened) => new RunSettings()
        .Add("model-sha256", RunSettings.FileSha256(modelPath))
        .Add("selector", options.MaskSelector.ToString())
        .Add("ratio", options.InferenceMaskRatio.ToString("R", System.Globalization.CultureInfo.InvariantCulture))
        .Add("background-class", options.BackgroundClass.ToString(System.Globalization.CultureInfo.InvariantCulture))
        .Add("mask-seed", options.MaskSeed.ToString(System.Globalization.CultureInfo.InvariantCulture))
        .Add("precision", options.Precision.ToString())
        .Add("device", device)
        .Add("inputs", opened.Dataset.Count.ToString(System.Globalization.CultureInfo.InvariantCulture))
        .Add("inputs-sha256", opened.InputDigest(opened.Dataset.Count));

    /// <summary>
    /// Refuses <paramref name="outDir"/> when a marker there (of the whole split or of any shard) records other settings than
    /// <paramref name="settings"/>, naming what differs, unless <paramref name="force"/>; then writes this shard's marker. A forced
    /// run over the whole split rewrites every label, so it removes the shards' markers.
    /// </summary>
    private static void CheckOutputFolder(string outDir, RunSettings settings, DataShard shard, bool force)
    {
        string own = Path.Combine(outDir, MarkerName(shard));
        var markers = Directory.Exists(outDir)
            ? Directory.EnumerateFiles(outDir, ".lmae-complete*").Where(f => !f.EndsWith(".tmp", StringComparison.Ordinal)).Order(StringComparer.Ordinal).ToArray()
            : [];
        if (!force)
        {
            foreach (string marker in markers)
            {
                var recorded = RunSettings.Parse(File.ReadAllText(marker), MarkerHeader) ?? new RunSettings();
                var differences = settings.Differences(recorded);
                if (differences.Count > 0)
                    throw new CliException($"{outDir} holds labels completed by another model or with other settings ({Path.GetFileName(marker)}: "
                        + $"{string.Join("; ", differences)}); use another --out folder, or --force to complete every label again.");
            }
        }
        else if (shard.Count == 1)
        {
            foreach (string marker in markers.Where(m => m != own)) File.Delete(marker);
        }
        string record = settings.ToText(MarkerHeader) + $"{RunSettings.ShardKey}={shard}\n";
        if (!File.Exists(own) || File.ReadAllText(own) != record)
            SegmentationFiles.WriteAtomically(own, s => s.Write(System.Text.Encoding.UTF8.GetBytes(record)));
    }

    private static int Run(LabelCompletionTransformer completer, OpenedData opened, string outDir, bool overlays, bool heatMaps,
        IReadOnlySet<int> todo, bool force, CliConsole console)
    {
        var options = completer.Options;
        var completed = completer.Transform(opened.View);
        var schema = completed.Schema;
        var widthColumn = schema[SegmentationDataView.WidthColumnName];
        var heightColumn = schema[SegmentationDataView.HeightColumnName];
        var labelColumn = schema[options.OutputColumnName];
        var confidenceColumn = schema[options.ConfidenceColumnName];
        var imageColumn = schema[options.ImageColumnName];
        var pathColumn = schema[SegmentationDataView.LabelPathColumnName];
        var needed = new List<DataViewSchema.Column> { widthColumn, heightColumn, labelColumn, pathColumn };
        if (heatMaps) needed.Add(confidenceColumn);
        if (overlays) needed.Add(imageColumn);

        var dataset = opened.Dataset;
        var progress = new ProgressLine(console);
        int count = 0;
        using var cursor = completed.GetRowCursor(needed);
        var getWidth = cursor.GetGetter<int>(widthColumn);
        var getHeight = cursor.GetGetter<int>(heightColumn);
        var getLabel = cursor.GetGetter<VBuffer<byte>>(labelColumn);
        var getPath = cursor.GetGetter<ReadOnlyMemory<char>>(pathColumn);
        var indexOfLabel = new Dictionary<string, int>(StringComparer.Ordinal);
        for (int i = 0; i < dataset.Count; i++) indexOfLabel[dataset.Pairs[i].LabelPath] = i;
        ReadOnlyMemory<char> labelPath = default;
        var getConfidence = heatMaps ? cursor.GetGetter<VBuffer<float>>(confidenceColumn) : null;
        var getImage = overlays ? cursor.GetGetter<MLImage>(imageColumn) : null;
        VBuffer<byte> label = default;
        VBuffer<float> confidence = default;
        MLImage? image = null;
        while (cursor.MoveNext())
        {
            console.Cancellation.ThrowIfCancellationRequested();
            getPath(ref labelPath);
            if (!indexOfLabel.TryGetValue(labelPath.ToString(), out int index))
                throw new InvalidOperationException($"Row {cursor.Position}: label '{labelPath}' is not a pair of the data set.");
            if (!todo.Contains(index)) continue; // done already or another shard's: its outputs are never computed
            int width = 0, height = 0;
            getWidth(ref width);
            getHeight(ref height);
            getLabel(ref label);
            var map = new LabelMap(width, height, label.DenseValues().ToArray());
            var pair = dataset.Pairs[index];
            string destination = Path.Combine(outDir, pair.RelativeLabelPath);
            // Only missing outputs are written (all with --force): a finished file is never rewritten.
            bool Missing(string path) => force || !File.Exists(path);
            if (Missing(destination)) dataset.WriteCompletedLabel(index, map, destination);
            string stem = Path.ChangeExtension(pair.RelativeLabelPath, ".png");
            if (getImage is not null && Missing(Path.Combine(outDir, "overlays", stem)))
            {
                getImage(ref image!);
                SegmentationFiles.WriteOverlay(Path.Combine(outDir, "overlays", stem), image.ToRgbImage(), map, opened.ClassColours, options.UnknownLabel);
            }
            if (getConfidence is not null && Missing(Path.Combine(outDir, "confidence", stem)))
            {
                getConfidence(ref confidence);
                SegmentationFiles.WriteConfidenceHeatMap(Path.Combine(outDir, "confidence", stem), confidence.DenseValues().ToArray(), width, height);
            }
            count++;
            progress.Report(count == todo.Count,
                seconds => string.Create(System.Globalization.CultureInfo.InvariantCulture, $"{count}/{todo.Count} labels  {count / seconds:F2} images/s"));
        }
        progress.End();
        return count;
    }
}
