using System.CommandLine;
using System.Diagnostics;
using System.Globalization;
using System.Text;
using Microsoft.ML.Data;
using Microsoft.ML.LabelCompletion.Data;

namespace Microsoft.ML.LabelCompletion.Cli.Commands;

/// <summary>
/// <c>lmae check</c>: finds likely label errors in a split with a saved model (<c>mlContext.Transforms.FindLabelErrors</c>,
/// <see cref="LabelErrorTransformer"/>) and writes into <c>--out</c>: <c>ranking.csv</c> (images worst first by their
/// quality score, with suspected-pixel counts), <c>overlays/</c> (one PNG per image: the given label's colours over the
/// image, suspected pixels filled with the model's class colour and outlined in white) and <c>summary.md</c> (settings,
/// totals, the common (given, predicted, count) table and the worst images).
/// </summary>
internal static class CheckCommand
{
    /// <summary>Name of the ranked image list in <c>--out</c>.</summary>
    public const string RankingFile = "ranking.csv";

    /// <summary>Name of the summary in <c>--out</c>.</summary>
    public const string SummaryFile = "summary.md";

    /// <summary>Folder of the overlays in <c>--out</c>.</summary>
    public const string OverlayFolder = "overlays";

    public static System.CommandLine.Command Create(CliConsole console)
    {
        var model = new Option<string>("--model") { Description = "Model zip written by 'lmae train'.", Required = true, HelpName = "FILE" };
        var data = CommonOptions.Data("Data folder whose labels are checked.");
        var format = CommonOptions.Format();
        var split = CommonOptions.Split("train");
        var output = new Option<string>("--out") { Description = "Output folder for ranking.csv, summary.md and overlays/ (outside the data).", Required = true, HelpName = "DIR" };
        var folds = new Option<int>("--folds") { Description = "Folds of the patch grid: each is hidden once and re-predicted (cost: about that many completions per image). Default 4.", DefaultValueFactory = _ => 4, HelpName = "K" };
        var threshold = new Option<float>("--threshold") { Description = "A pixel is suspected when the model's class differs from the given one with at least this probability. Default 0.5.", DefaultValueFactory = _ => 0.5f, HelpName = "P" };
        var temperature = new Option<float>("--temperature") { Description = "Softmin temperature of the image score (cleanlab's). Default 0.1.", DefaultValueFactory = _ => 0.1f, HelpName = "T" };
        var limit = new Option<int?>("--limit") { Description = "Check only the first N images of the split.", HelpName = "N" };
        var noOverlays = new Option<bool>("--no-overlays") { Description = "Do not write the overlay PNGs." };
        var device = CommonOptions.Device();
        var threads = CommonOptions.Threads();
        var precision = CommonOptions.Precision("Default: the precision the model was trained with.");
        var unknown = CommonOptions.Unknown();

        var command = new System.CommandLine.Command("check", "Find likely label errors with a trained model: ranked images, overlays of suspected regions, a summary.")
        {
            model, data, format, split, output, folds, threshold, temperature, limit, noOverlays, device, threads, precision, unknown,
        };
        command.SetAction(parse =>
        {
            var ml = new MLContext(seed: 0);
            CommonOptions.ApplyDevice(ml, parse.GetValue(device)!);
            CommonOptions.ApplyThreads(parse.GetValue(threads));
            string outDir = Path.GetFullPath(parse.GetValue(output)!);
            if (File.Exists(outDir)) throw new CliException($"--out '{outDir}' is a file; give a folder.");
            int k = parse.GetValue(folds);
            float p = parse.GetValue(threshold), t = parse.GetValue(temperature);
            if (k < 2) throw new CliException($"--folds must be at least 2, not {k}.");
            if (!(p > 0 && p <= 1)) throw new CliException($"--threshold must be in (0, 1], not {p.ToString(CultureInfo.InvariantCulture)}.");
            if (!(t > 0 && float.IsFinite(t))) throw new CliException($"--temperature must be positive, not {t.ToString(CultureInfo.InvariantCulture)}.");
            int? first = parse.GetValue(limit);
            if (first is < 1) throw new CliException($"--limit must be at least 1, not {first}.");
            bool overlays = !parse.GetValue(noOverlays);

            using var trained = ModelFiles.Load(ml, parse.GetValue(model)!);
            var completionOptions = trained.Options;
            completionOptions.Precision = CommonOptions.Concrete(CommonOptions.ParsePrecision(parse.GetValue(precision), completionOptions.Precision), parse.GetValue(device)!);
            var opened = DataSets.Open(ml, parse.GetValue(data)!, parse.GetValue(format)!, parse.GetValue(split)!, trained.NumberOfClasses,
                CommonOptions.UnknownValue(parse.GetValue(unknown)), console);
            if (opened.NumberOfClasses != trained.NumberOfClasses || opened.UnknownLabel != completionOptions.UnknownLabel)
                throw new CliException($"the model knows {trained.NumberOfClasses} classes (unknown {completionOptions.UnknownLabel}) but the data has {opened.NumberOfClasses} (unknown {opened.UnknownLabel}).");
            int count = Math.Min(first ?? int.MaxValue, opened.Dataset.Count);
            var pairs = opened.Dataset.Pairs.Take(count).ToArray();
            var files = new List<string> { Path.Combine(outDir, RankingFile), Path.Combine(outDir, SummaryFile) };
            if (overlays) files.AddRange(pairs.Select(pair => OverlayPath(outDir, pair)));
            new OutputPaths().Reads(opened).Reads(parse.GetValue(model)!).CheckFolder("--out", outDir, files);

            using var withPrecision = ml.Transforms.CompleteLabels(completionOptions, trained).Fit(opened.View);
            var checker = ml.Transforms.FindLabelErrors(withPrecision, new LabelErrorOptions
            {
                ImageColumnName = completionOptions.ImageColumnName, LabelColumnName = completionOptions.LabelColumnName,
                NumberOfFolds = k, ConfidenceThreshold = p, Temperature = t, CancellationToken = console.Cancellation,
            }).Fit(opened.View);
            console.Out.WriteLine($"checking {count} labels of {opened.Description} with {k} folds (threshold {p.ToString(CultureInfo.InvariantCulture)})");
            var clock = Stopwatch.StartNew();
            var rows = Run(checker, opened, pairs, outDir, overlays, console);
            double seconds = clock.Elapsed.TotalSeconds;
            WriteRanking(Path.Combine(outDir, RankingFile), rows, opened);
            WriteSummary(Path.Combine(outDir, SummaryFile), rows, opened, parse.GetValue(model)!, k, p, t, completionOptions.Precision, seconds);
            int flagged = rows.Count(r => r.Suspected > 0);
            console.Out.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"{rows.Count} labels checked in {seconds:F1} s ({seconds / Math.Max(1, rows.Count):F2} s per image); {flagged} with suspected pixels; results in {outDir}"));
            return LmaeCli.Success;
        });
        return command;
    }

    /// <summary>One checked image: where it came from and its scores.</summary>
    internal sealed record CheckedImage(int Index, string ImagePath, string LabelPath, float Score, int Suspected, int Known, long[] Confusion);

    private static string OverlayPath(string outDir, SegmentationPair pair) => Path.Combine(outDir, OverlayFolder, Path.ChangeExtension(pair.RelativeLabelPath, ".png"));

    private static List<CheckedImage> Run(LabelErrorTransformer checker, OpenedData opened, SegmentationPair[] pairs, string outDir, bool overlays, CliConsole console)
    {
        var options = checker.Options;
        var view = checker.Transform(opened.View);
        var schema = view.Schema;
        var widthColumn = schema[SegmentationDataView.WidthColumnName];
        var heightColumn = schema[SegmentationDataView.HeightColumnName];
        var pathColumn = schema[SegmentationDataView.LabelPathColumnName];
        var labelColumn = schema[options.LabelColumnName];
        var imageColumn = schema[options.ImageColumnName];
        var suspectedColumn = schema[options.SuspectedErrorColumnName];
        var scoreColumn = schema[options.ImageQualityScoreColumnName];
        var predictedColumn = schema[options.PredictedLabelColumnName];
        var needed = new List<DataViewSchema.Column> { widthColumn, heightColumn, pathColumn, labelColumn, suspectedColumn, scoreColumn, predictedColumn };
        if (overlays) needed.Add(imageColumn);
        int classes = opened.NumberOfClasses;
        byte unknown = opened.UnknownLabel;
        var indexOfLabel = new Dictionary<string, int>(StringComparer.Ordinal);
        for (int i = 0; i < pairs.Length; i++) indexOfLabel[pairs[i].LabelPath] = i;

        using var cursor = view.GetRowCursor(needed);
        var getWidth = cursor.GetGetter<int>(widthColumn);
        var getHeight = cursor.GetGetter<int>(heightColumn);
        var getPath = cursor.GetGetter<ReadOnlyMemory<char>>(pathColumn);
        var getLabel = cursor.GetGetter<VBuffer<byte>>(labelColumn);
        var getSuspected = cursor.GetGetter<VBuffer<bool>>(suspectedColumn);
        var getScore = cursor.GetGetter<float>(scoreColumn);
        var getPredicted = cursor.GetGetter<VBuffer<byte>>(predictedColumn);
        var getImage = overlays ? cursor.GetGetter<MLImage>(imageColumn) : null;
        ReadOnlyMemory<char> path = default;
        VBuffer<byte> label = default, predicted = default;
        VBuffer<bool> suspected = default;
        MLImage? image = null;
        var rows = new List<CheckedImage>();
        var progress = new ProgressLine(console);
        while (rows.Count < pairs.Length && cursor.MoveNext())
        {
            console.Cancellation.ThrowIfCancellationRequested();
            getPath(ref path);
            if (!indexOfLabel.TryGetValue(path.ToString(), out int index)) continue;
            int width = 0, height = 0;
            float score = 0;
            getWidth(ref width);
            getHeight(ref height);
            getScore(ref score);
            getLabel(ref label);
            getSuspected(ref suspected);
            getPredicted(ref predicted);
            var given = label.DenseValues().ToArray();
            var flags = suspected.DenseValues().ToArray();
            var model = predicted.DenseValues().ToArray();
            var confusion = new long[classes * classes];
            int flagged = 0, known = 0;
            for (int i = 0; i < given.Length; i++)
            {
                if (given[i] != unknown) known++;
                if (!flags[i]) continue;
                flagged++;
                confusion[given[i] * classes + model[i]]++;
            }
            if (getImage is not null)
            {
                getImage(ref image!);
                WriteOverlay(OverlayPath(Path.GetFullPath(outDir), pairs[index]), image.ToRgbImage(), new LabelMap(width, height, given), flags, model,
                    opened.ClassColours, unknown);
            }
            rows.Add(new CheckedImage(index, pairs[index].ImagePath, pairs[index].LabelPath, score, flagged, known, confusion));
            progress.Report(rows.Count == pairs.Length,
                seconds => string.Create(CultureInfo.InvariantCulture, $"{rows.Count}/{pairs.Length} labels  {seconds / rows.Count:F2} s per image"));
        }
        progress.End();
        return rows;
    }

    /// <summary>
    /// The overlay of one checked image: the given label's class colours blended half and half over the image (as
    /// <see cref="SegmentationFiles.WriteOverlay"/>; unknown pixels show the image), suspected pixels in the model's class
    /// colour at full strength, and the border of the suspected regions in white.
    /// </summary>
    internal static void WriteOverlay(string path, RgbImage image, LabelMap given, bool[] suspected, byte[] predicted, byte[] colours, byte unknown)
    {
        int w = image.Width, h = image.Height, count = colours.Length / 3;
        var rgb = new byte[image.Pixels.Length];
        for (int i = 0; i < w * h; i++)
        {
            byte v = suspected[i] ? predicted[i] : given.Values[i];
            float opacity = suspected[i] ? 1f : 0.5f;
            for (int c = 0; c < 3; c++)
            {
                byte px = image.Pixels[3 * i + c];
                rgb[3 * i + c] = v == unknown || v >= count ? px : (byte)Math.Clamp(MathF.Round((1 - opacity) * px + opacity * colours[3 * v + c]), 0, 255);
            }
        }
        for (int y = 0; y < h; y++)
        {
            for (int x = 0; x < w; x++)
            {
                int i = y * w + x;
                if (!suspected[i]) continue;
                bool border = x == 0 || y == 0 || x == w - 1 || y == h - 1 || !suspected[i - 1] || !suspected[i + 1] || !suspected[i - w] || !suspected[i + w];
                if (border) rgb[3 * i] = rgb[3 * i + 1] = rgb[3 * i + 2] = 255;
            }
        }
        SegmentationFiles.WriteImage(path, new RgbImage(w, h, rgb));
    }

    private static string Csv(string text) => text.Contains(',') || text.Contains('"') ? "\"" + text.Replace("\"", "\"\"") + "\"" : text;

    private static IEnumerable<CheckedImage> Ranked(IEnumerable<CheckedImage> rows) =>
        rows.OrderBy(r => r.Score).ThenByDescending(r => r.Suspected).ThenBy(r => r.Index);

    private static void WriteRanking(string path, IReadOnlyList<CheckedImage> rows, OpenedData opened)
    {
        var text = new StringBuilder("rank,image,label,quality_score,suspected_pixels,known_pixels,suspected_share,most_common_issue\n");
        int rank = 0;
        foreach (var row in Ranked(rows))
        {
            rank++;
            int top = Array.IndexOf(row.Confusion, row.Confusion.Max());
            string issue = row.Suspected == 0 ? "" : $"{opened.ClassNames[top / opened.NumberOfClasses]} -> {opened.ClassNames[top % opened.NumberOfClasses]}";
            text.Append(string.Create(CultureInfo.InvariantCulture,
                $"{rank},{Csv(Path.GetRelativePath(opened.Dataset.Root, row.ImagePath))},{Csv(Path.GetRelativePath(opened.Dataset.Root, row.LabelPath))},{row.Score:F6},{row.Suspected},{row.Known},{(double)row.Suspected / Math.Max(1, row.Known):F6},{Csv(issue)}\n"));
        }
        SegmentationFiles.WriteAtomically(path, s => s.Write(Encoding.UTF8.GetBytes(text.ToString())));
    }

    private static void WriteSummary(string path, IReadOnlyList<CheckedImage> rows, OpenedData opened, string model, int folds, float threshold,
        float temperature, LabelCompletionPrecision precision, double seconds)
    {
        var inv = CultureInfo.InvariantCulture;
        int classes = opened.NumberOfClasses;
        var text = new StringBuilder();
        text.Append("# Label check\n\n");
        text.Append(string.Create(inv, $"- data: {opened.Description}, {rows.Count} labels checked\n"));
        text.Append(string.Create(inv, $"- model: {Path.GetFullPath(model)} ({precision})\n"));
        text.Append(string.Create(inv, $"- folds {folds}, threshold {threshold}, softmin temperature {temperature}\n"));
        long suspected = rows.Sum(r => (long)r.Suspected), known = rows.Sum(r => (long)r.Known);
        text.Append(string.Create(inv, $"- suspected pixels: {suspected} of {known} known ({100.0 * suspected / Math.Max(1, known):F2}%), in {rows.Count(r => r.Suspected > 0)} images\n"));
        text.Append(string.Create(inv, $"- time: {seconds:F1} s ({seconds / Math.Max(1, rows.Count):F2} s per image)\n\n"));
        text.Append("## Common issues (suspected pixels by given and predicted class)\n\n| given | predicted | pixels | share of suspected |\n| --- | --- | ---: | ---: |\n");
        var sum = new long[classes * classes];
        foreach (var row in rows)
            for (int i = 0; i < sum.Length; i++) sum[i] += row.Confusion[i];
        foreach (int i in Enumerable.Range(0, sum.Length).Where(i => sum[i] > 0).OrderByDescending(i => sum[i]).ThenBy(i => i).Take(20))
            text.Append(string.Create(inv, $"| {opened.ClassNames[i / classes]} | {opened.ClassNames[i % classes]} | {sum[i]} | {100.0 * sum[i] / Math.Max(1, suspected):F1}% |\n"));
        text.Append("\n## Worst images (lowest quality score)\n\n| rank | label | quality score | suspected pixels |\n| ---: | --- | ---: | ---: |\n");
        int rank = 0;
        foreach (var row in Ranked(rows).Take(10))
            text.Append(string.Create(inv, $"| {++rank} | {Path.GetRelativePath(opened.Dataset.Root, row.LabelPath)} | {row.Score:F4} | {row.Suspected} |\n"));
        SegmentationFiles.WriteAtomically(path, s => s.Write(Encoding.UTF8.GetBytes(text.ToString())));
    }
}
