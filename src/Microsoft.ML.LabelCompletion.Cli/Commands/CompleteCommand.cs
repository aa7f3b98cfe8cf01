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
/// everything. <c>--out</c> records the model and the selector settings in <c>.lmae-complete</c>, and a run with another model
/// or other settings is refused instead of mixing two kinds of completions. <c>--shard i/n</c> takes the labels of one of n
/// shards (<see cref="DataShard"/>: by a hash of the label's relative path), so n machines can share one data set. Each label is
/// completed on its own (one image per network call, its windows batched) with its row position in the whole split, so its
/// output does not depend on the shard, on what was skipped, or on the machine.
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
        var shard = new Option<string?>("--shard") { Description = "Complete only shard i of n (0 <= i < n), e.g. 0/4; labels are assigned to shards by a hash of their path.", HelpName = "i/n" };
        var force = new Option<bool>("--force") { Description = "Complete and rewrite labels whose outputs already exist (default: skip them, so an interrupted run can be restarted)." };

        var command = new System.CommandLine.Command("complete", "Complete every label of a data set with a trained model; write them in the input's format.")
        {
            model, data, format, split, output, selector, ratio, background, overlay, confidence, device, threads, unknown, shard, force, precision,
        };
        command.SetAction(parse =>
        {
            var ml = new MLContext(seed: 0);
            CommonOptions.ApplyDevice(ml, parse.GetValue(device)!);
            CommonOptions.ApplyThreads(parse.GetValue(threads));
            string outDir = Path.GetFullPath(parse.GetValue(output)!);
            if (File.Exists(outDir)) throw new CliException($"--out '{outDir}' is a file; give a folder.");
            using var trained = ModelFiles.Load(ml, parse.GetValue(model)!);
            var options = trained.Options;
            options.Precision = CommonOptions.ParsePrecision(parse.GetValue(precision), options.Precision);
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
            DataShard part;
            try
            {
                part = parse.GetValue(shard) is string text ? DataShard.Parse(text) : DataShard.All;
            }
            catch (FormatException e)
            {
                throw new CliException($"--shard: {e.Message}");
            }
            bool overlays = parse.GetValue(overlay), heatMaps = parse.GetValue(confidence);
            CheckOutputFolder(outDir, parse.GetValue(model)!, options, parse.GetValue(force));
            var todo = new HashSet<int>();
            int done = 0, elsewhere = 0;
            for (int i = 0; i < opened.Dataset.Count; i++)
            {
                var pair = opened.Dataset.Pairs[i];
                if (!part.Contains(pair.RelativeLabelPath)) elsewhere++;
                else if (!parse.GetValue(force) && Outputs(outDir, pair, overlays, heatMaps).All(File.Exists)) done++;
                else todo.Add(i);
            }
            using var completer = ml.Transforms.CompleteLabels(options, trained).Fit(opened.View);

            console.Out.WriteLine($"completing {todo.Count} labels of {opened.Description} with the {options.MaskSelector} selector"
                + (done > 0 ? $" ({done} already done)" : "") + (part.Count > 1 ? $" (shard {part}; {elsewhere} labels in other shards)" : ""));
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

    /// <summary>
    /// Records in <c>--out</c> which model and settings produce its labels (the model file's SHA-256, the selector, its ratio,
    /// background class and seed), and refuses a folder filled by another model or other settings unless <c>--force</c>.
    /// </summary>
    private static void CheckOutputFolder(string outDir, string modelPath, LabelCompletionOptions options, bool force)
    {
        string hash;
        using (var stream = File.OpenRead(modelPath))
            hash = Convert.ToHexString(System.Security.Cryptography.SHA256.HashData(stream));
        string record = string.Join('\n',
            "lmae complete",
            $"model-sha256={hash}",
            $"selector={options.MaskSelector}",
            $"ratio={options.InferenceMaskRatio.ToString("R", System.Globalization.CultureInfo.InvariantCulture)}",
            $"background-class={options.BackgroundClass}",
            $"mask-seed={options.MaskSeed}") + "\n";
        string marker = Path.Combine(outDir, ".lmae-complete");
        if (File.Exists(marker) && !force && File.ReadAllText(marker) != record)
            throw new CliException($"{outDir} holds labels completed by another model or with other settings (see {marker}); "
                + "use another --out folder, or --force to complete every label again.");
        if (!File.Exists(marker) || File.ReadAllText(marker) != record)
            SegmentationFiles.WriteAtomically(marker, s => s.Write(System.Text.Encoding.UTF8.GetBytes(record)));
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
        var clock = Stopwatch.StartNew();
        var lastReport = TimeSpan.Zero;
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
            if (clock.Elapsed - lastReport > TimeSpan.FromSeconds(console.Interactive ? 0.5 : 10) || count == todo.Count)
            {
                lastReport = clock.Elapsed;
                double perSecond = count / Math.Max(1e-9, clock.Elapsed.TotalSeconds);
                string line = string.Create(System.Globalization.CultureInfo.InvariantCulture, $"{count}/{todo.Count} labels  {perSecond:F2} images/s");
                if (console.Interactive) console.Out.Write('\r' + line);
                else console.Out.WriteLine(line);
            }
        }
        if (console.Interactive) console.Out.WriteLine();
        return count;
    }
}
