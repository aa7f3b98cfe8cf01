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
        var unknown = CommonOptions.Unknown();

        var command = new System.CommandLine.Command("complete", "Complete every label of a data set with a trained model; write them in the input's format.")
        {
            model, data, format, split, output, selector, ratio, background, overlay, confidence, device, threads, unknown,
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
            var opened = DataSets.Open(ml, parse.GetValue(data)!, parse.GetValue(format)!, parse.GetValue(split)!, trained.NumberOfClasses,
                CommonOptions.UnknownValue(parse.GetValue(unknown)), console);
            if (opened.NumberOfClasses != trained.NumberOfClasses || opened.UnknownLabel != options.UnknownLabel)
                throw new CliException($"the model completes {trained.NumberOfClasses} classes (unknown {options.UnknownLabel}) but the data has {opened.NumberOfClasses} (unknown {opened.UnknownLabel}).");
            if (string.Equals(Path.TrimEndingDirectorySeparator(outDir), Path.TrimEndingDirectorySeparator(opened.Dataset.Root), StringComparison.Ordinal))
                throw new CliException("--out is the data folder; completed labels would overwrite the originals. Choose another folder.");

            float maskRatio = parse.GetValue(ratio);
            if (!(maskRatio > 0 && maskRatio < 1)) throw new CliException($"--ratio must be in (0, 1), not {maskRatio}.");
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
            using var completer = ml.Transforms.CompleteLabels(options, trained).Fit(opened.View);

            console.Out.WriteLine($"completing {opened.Description} with the {options.MaskSelector} selector");
            var written = Run(completer, opened, outDir, parse.GetValue(overlay), parse.GetValue(confidence), console);
            console.Out.WriteLine($"{written} completed labels written under {outDir}");
            return LmaeCli.Success;
        });
        return command;
    }

    private static int Run(LabelCompletionTransformer completer, OpenedData opened, string outDir, bool overlays, bool heatMaps, CliConsole console)
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
            getPath(ref labelPath);
            if (!indexOfLabel.TryGetValue(labelPath.ToString(), out int index))
                throw new InvalidOperationException($"Row {cursor.Position}: label '{labelPath}' is not a pair of the data set.");
            int width = 0, height = 0;
            getWidth(ref width);
            getHeight(ref height);
            getLabel(ref label);
            var map = new LabelMap(width, height, label.DenseValues().ToArray());
            var pair = dataset.Pairs[index];
            string destination = Path.Combine(outDir, pair.RelativeLabelPath);
            dataset.WriteCompletedLabel(index, map, destination);
            string stem = Path.ChangeExtension(pair.RelativeLabelPath, ".png");
            if (getImage is not null)
            {
                getImage(ref image!);
                SegmentationFiles.WriteOverlay(Path.Combine(outDir, "overlays", stem), image.ToRgbImage(), map, opened.ClassColours, options.UnknownLabel);
            }
            if (getConfidence is not null)
            {
                getConfidence(ref confidence);
                SegmentationFiles.WriteConfidenceHeatMap(Path.Combine(outDir, "confidence", stem), confidence.DenseValues().ToArray(), width, height);
            }
            count++;
            if (clock.Elapsed - lastReport > TimeSpan.FromSeconds(console.Interactive ? 0.5 : 10) || count == dataset.Count)
            {
                lastReport = clock.Elapsed;
                double perSecond = count / Math.Max(1e-9, clock.Elapsed.TotalSeconds);
                string line = $"{count}/{dataset.Count} labels  {perSecond:F2} images/s";
                if (console.Interactive) console.Out.Write('\r' + line);
                else console.Out.WriteLine(line);
            }
        }
        if (console.Interactive) console.Out.WriteLine();
        return count;
    }
}
