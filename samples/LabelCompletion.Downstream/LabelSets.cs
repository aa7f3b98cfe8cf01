// The label sets the downstream sample compares: the full training labels, the same labels with the evaluation
// protocol's random 16-pixel patches hidden, and the hidden patches filled by NearestKnown or by an L-MAE (with or
// without its low-confidence pixels), plus how many training pixels each set labels and how many of those are wrong.
using Microsoft.ML;
using Microsoft.ML.Data;
using Microsoft.ML.LabelCompletion;
using Microsoft.ML.LabelCompletion.Data;
using Microsoft.ML.LabelCompletion.Evaluation;
using Microsoft.ML.LabelCompletion.Model;

namespace LabelCompletion.Downstream;

/// <summary>How many training pixels a label set labels, and how they compare with the full labels.</summary>
/// <param name="Pixels">All pixels of the training images.</param>
/// <param name="Labelled">Pixels holding a class (not unknown): what the loss counts.</param>
/// <param name="Wrong">Labelled pixels whose full label is a different class.</param>
/// <param name="OnVoid">Labelled pixels whose full label is unknown (void): no full label to compare with.</param>
public sealed record LabelSetStatistics(long Pixels, long Labelled, long Wrong, long OnVoid)
{
    /// <summary>Share of the labelled pixels that are wrong, in percent (those on void not counted); NaN when none is labelled.</summary>
    public double WrongPercent => Labelled - OnVoid == 0 ? double.NaN : 100.0 * Wrong / (Labelled - OnVoid);
}

/// <summary>The label sets' construction and statistics.</summary>
public static class LabelSets
{
    /// <summary>
    /// Hides the fixed protocol's random 16-pixel patches (<see cref="EvaluationProtocol.Mask"/>: seed 0, image index =
    /// position in the split) in every label map. Returns the degraded maps and, per image, the pixel mask of the hidden
    /// patches (what an annotator knows they left open).
    /// </summary>
    public static (LabelMap[] Degraded, bool[][] Holes) Degrade(IReadOnlyList<LabelMap> truths, EvaluationProtocol protocol)
    {
        ArgumentNullException.ThrowIfNull(truths);
        ArgumentNullException.ThrowIfNull(protocol);
        var degraded = new LabelMap[truths.Count];
        var holes = new bool[truths.Count][];
        for (int i = 0; i < truths.Count; i++) (degraded[i], holes[i]) = protocol.Mask(i, truths[i]);
        return (degraded, holes);
    }

    /// <summary>
    /// Takes <paramref name="completion"/>'s values inside the holes and keeps <paramref name="degraded"/>'s values (classes
    /// and void alike) outside them: a completer only changes what the annotator left open.
    /// </summary>
    public static LabelMap FillHoles(LabelMap degraded, bool[] holes, LabelMap completion)
    {
        ArgumentNullException.ThrowIfNull(degraded);
        ArgumentNullException.ThrowIfNull(holes);
        ArgumentNullException.ThrowIfNull(completion);
        if (completion.Width != degraded.Width || completion.Height != degraded.Height || holes.Length != degraded.Values.Length)
            throw new ArgumentException($"The completion is {completion.Width}x{completion.Height} and the hole mask has {holes.Length} pixels, "
                + $"but the label map is {degraded.Width}x{degraded.Height}.");
        var values = (byte[])degraded.Values.Clone();
        for (int i = 0; i < values.Length; i++)
            if (holes[i]) values[i] = completion.Values[i];
        return degraded with { Values = values };
    }

    /// <summary>The holes filled by <see cref="NearestKnownFill"/> (each hidden pixel takes the nearest known label).</summary>
    public static LabelMap[] NearestKnown(IReadOnlyList<LabelMap> degraded, IReadOnlyList<bool[]> holes, byte unknownLabel)
    {
        var filled = new LabelMap[degraded.Count];
        for (int i = 0; i < filled.Length; i++) filled[i] = FillHoles(degraded[i], holes[i], NearestKnownFill.Fill(degraded[i], unknownLabel));
        return filled;
    }

    /// <summary>
    /// Marks the pixels inside the holes whose completion confidence is below <paramref name="threshold"/> as unknown.
    /// </summary>
    public static LabelMap DropLowConfidence(LabelMap completed, bool[] holes, float[] confidence, float threshold, byte unknownLabel)
    {
        ArgumentNullException.ThrowIfNull(completed);
        if (holes.Length != completed.Values.Length || confidence.Length != completed.Values.Length)
            throw new ArgumentException($"The hole mask ({holes.Length}) and the confidence ({confidence.Length}) must have one value per pixel ({completed.Values.Length}).");
        var values = (byte[])completed.Values.Clone();
        for (int i = 0; i < values.Length; i++)
            if (holes[i] && confidence[i] < threshold) values[i] = unknownLabel;
        return completed with { Values = values };
    }

    /// <summary>Counts labelled, wrong and on-void pixels of <paramref name="labels"/> against <paramref name="truths"/>.</summary>
    public static LabelSetStatistics Statistics(IReadOnlyList<LabelMap> labels, IReadOnlyList<LabelMap> truths, byte unknownLabel)
    {
        long pixels = 0, labelled = 0, wrong = 0, onVoid = 0;
        for (int i = 0; i < labels.Count; i++)
        {
            var (l, t) = (labels[i].Values, truths[i].Values);
            if (l.Length != t.Length) throw new ArgumentException($"Image {i}: the label set has {l.Length} pixels but the full label {t.Length}.");
            pixels += l.Length;
            for (int p = 0; p < l.Length; p++)
            {
                if (l[p] == unknownLabel) continue;
                labelled++;
                if (t[p] == unknownLabel) onVoid++;
                else if (t[p] != l[p]) wrong++;
            }
        }
        return new LabelSetStatistics(pixels, labelled, wrong, onVoid);
    }

    /// <summary>A row of the ML.NET data view the L-MAE reads: the image file and its (degraded) label map.</summary>
    public sealed class ImageLabelRow
    {
        /// <summary>The image file; <c>LoadImages</c> turns it into the <c>Image</c> column.</summary>
        public string ImagePath { get; set; } = "";

        /// <summary>The label map, row-major, unknown pixels holding the unknown value.</summary>
        public byte[] Label { get; set; } = [];
    }

    /// <summary>The completed label and per-pixel confidence columns read back from the transformer's output.</summary>
    public sealed class CompletionRow
    {
        /// <summary>The completed label map.</summary>
        public byte[] CompletedLabel { get; set; } = [];

        /// <summary>The network's confidence per pixel (1 where the label was known).</summary>
        public float[] Confidence { get; set; } = [];
    }

    /// <summary>
    /// The ML.NET input for <c>CompleteLabels</c>: the images loaded from <paramref name="imagePaths"/> by <c>LoadImages</c>
    /// (column <c>Image</c>) beside the label maps (column <c>Label</c>).
    /// </summary>
    public static IDataView ToDataView(MLContext ml, IReadOnlyList<string> imagePaths, IReadOnlyList<LabelMap> labels)
    {
        ArgumentNullException.ThrowIfNull(ml);
        if (imagePaths.Count != labels.Count) throw new ArgumentException($"{imagePaths.Count} images but {labels.Count} label maps.");
        var rows = ml.Data.LoadFromEnumerable(imagePaths.Select((p, i) => new ImageLabelRow { ImagePath = p, Label = labels[i].Values }).ToArray());
        return ml.Transforms.LoadImages("Image", imageFolder: null, inputColumnName: nameof(ImageLabelRow.ImagePath)).Fit(rows).Transform(rows);
    }

    /// <summary>
    /// Completes the degraded labels with a trained L-MAE through <see cref="ITransformer.Transform"/> and returns, per
    /// image, the holes filled with the completion (values outside the holes kept) and the confidence.
    /// </summary>
    public static (LabelMap[] Completed, float[][] Confidence) Complete(MLContext ml, ITransformer lmae, IDataView degradedData,
        IReadOnlyList<LabelMap> degraded, IReadOnlyList<bool[]> holes, Action<int>? progress = null)
    {
        ArgumentNullException.ThrowIfNull(lmae);
        var completed = new LabelMap[degraded.Count];
        var confidence = new float[degraded.Count][];
        int i = 0;
        foreach (var row in ml.Data.CreateEnumerable<CompletionRow>(lmae.Transform(degradedData), reuseRowObject: false))
        {
            if (i >= degraded.Count) throw new InvalidOperationException($"The completion returned more rows than the {degraded.Count} inputs.");
            var map = new LabelMap(degraded[i].Width, degraded[i].Height, row.CompletedLabel);
            if (row.CompletedLabel.Length != degraded[i].Values.Length || row.Confidence.Length != degraded[i].Values.Length)
                throw new InvalidOperationException($"Row {i}: the completion has {row.CompletedLabel.Length} pixels, the label {degraded[i].Values.Length}.");
            completed[i] = FillHoles(degraded[i], holes[i], map);
            confidence[i] = row.Confidence;
            progress?.Invoke(++i);
        }
        if (i != degraded.Count) throw new InvalidOperationException($"The completion returned {i} rows for {degraded.Count} inputs.");
        return (completed, confidence);
    }
}
