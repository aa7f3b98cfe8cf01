using Microsoft.ML.LabelCompletion.Data;
using Microsoft.ML.LabelCompletion.Model;

namespace Microsoft.ML.LabelCompletion.Evaluation;

/// <summary>
/// The fixed evaluation protocol of DESIGN.md §3, so that numbers compare across methods and runs: the ground truth of
/// image <c>i</c> of a split loses <c>floor(L*m)</c> of its 16-pixel patches, chosen by the <c>Random</c> mask selector
/// with seed 0 and image index <c>i</c> (<see cref="MaskSelector.RandomForEvaluation"/>) at the image's native size
/// (the grid covers the padded image). Any completer (L-MAE, NearestKnown, ImageOnly) then completes the masked label
/// with its own selector, and the metrics count the protocol's masked pixels (PA region) and every known pixel
/// (global region), one confusion matrix per region over the whole split.
/// </summary>
public sealed class EvaluationProtocol
{
    /// <summary>Seed of the evaluation masks.</summary>
    public const int Seed = 0;

    /// <summary>Patch size of the evaluation masks, in pixels.</summary>
    public const int PatchSize = 16;

    /// <summary>The mask ratios at which results are reported: 0.5 and 0.6.</summary>
    public static IReadOnlyList<double> StandardMaskRatios { get; } = Array.AsReadOnly(new[] { 0.5, 0.6 });

    /// <summary>Creates the protocol for one mask ratio.</summary>
    /// <param name="numberOfClasses">Number of real classes <c>C</c>.</param>
    /// <param name="maskRatio">Share of patches masked, in [0, 1]; reported ratios are <see cref="StandardMaskRatios"/>.</param>
    /// <param name="unknownLabel">The value that marks an unknown pixel.</param>
    /// <param name="classNames">Optional class names for the metrics, one per class.</param>
    public EvaluationProtocol(int numberOfClasses, double maskRatio, byte unknownLabel = 255, IReadOnlyList<string>? classNames = null)
    {
        LabelMap.CheckClassCount(numberOfClasses, nameof(numberOfClasses));
        if (unknownLabel < numberOfClasses)
            throw new ArgumentOutOfRangeException(nameof(unknownLabel), unknownLabel, $"The unknown value must not be a class (0..{numberOfClasses - 1}).");
        if (!(maskRatio >= 0 && maskRatio <= 1))
            throw new ArgumentOutOfRangeException(nameof(maskRatio), maskRatio, "The mask ratio must be in [0, 1].");
        if (classNames is not null && classNames.Count != numberOfClasses)
            throw new ArgumentException($"{classNames.Count} class names were given for {numberOfClasses} classes.", nameof(classNames));
        NumberOfClasses = numberOfClasses;
        MaskRatio = maskRatio;
        UnknownLabel = unknownLabel;
        ClassNames = classNames;
    }

    /// <summary>Number of real classes <c>C</c>.</summary>
    public int NumberOfClasses { get; }

    /// <summary>Share of patches masked.</summary>
    public double MaskRatio { get; }

    /// <summary>The value that marks an unknown pixel.</summary>
    public byte UnknownLabel { get; }

    /// <summary>Class names passed on to the metrics, or <c>null</c>.</summary>
    public IReadOnlyList<string>? ClassNames { get; }

    /// <summary>The protocol's patch mask (one flag per 16-pixel patch, row-major, <c>true</c> = masked) for image <paramref name="imageIndex"/>.</summary>
    /// <param name="width">Image width in pixels.</param>
    /// <param name="height">Image height in pixels.</param>
    /// <param name="imageIndex">0-based index of the image in its split.</param>
    public bool[] PatchMask(int width, int height, long imageIndex)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(width);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(height);
        var (rows, columns) = MaskSelector.Grid(width, height, PatchSize);
        return MaskSelector.RandomForEvaluation(rows * columns, MaskRatio, Seed, imageIndex);
    }

    /// <summary>
    /// Masks the ground truth of image <paramref name="imageIndex"/>: the returned label is unknown inside the
    /// protocol's masked patches, and the pixel mask flags those pixels (the PA region before the known-truth test).
    /// </summary>
    /// <param name="imageIndex">0-based index of the image in its split.</param>
    /// <param name="truth">The ground-truth label map; not changed.</param>
    public (LabelMap Masked, bool[] PixelMask) Mask(long imageIndex, LabelMap truth)
    {
        ArgumentNullException.ThrowIfNull(truth);
        var patchMask = PatchMask(truth.Width, truth.Height, imageIndex);
        return (MaskSelector.Apply(truth, patchMask, PatchSize, UnknownLabel),
            MaskSelector.ToPixelMask(patchMask, truth.Width, truth.Height, PatchSize));
    }

    /// <summary>
    /// Computes the metrics of a split: one confusion matrix over the pixels of <c>PixelMask</c> with known truth (PA)
    /// and one over every pixel with known truth (global).
    /// </summary>
    /// <param name="results">Per image: ground truth, completed label (same size) and the protocol's pixel mask.</param>
    public LabelCompletionMetrics Evaluate(IEnumerable<(LabelMap Truth, LabelMap Completed, bool[] PixelMask)> results)
    {
        ArgumentNullException.ThrowIfNull(results);
        var counts = new LabelCompletionMetrics.Accumulator(NumberOfClasses);
        long index = 0;
        foreach (var (truth, completed, pixelMask) in results)
        {
            Accumulate(index++, truth, completed, pixelMask, counts);
        }
        return counts.ToMetrics(ClassNames);
    }

    /// <summary>
    /// Masks every ground truth of a split with the protocol, completes the masked labels in batches with
    /// <paramref name="completer"/>, and evaluates the completions.
    /// </summary>
    /// <param name="data">The split in a fixed order (image index = position): images and ground-truth labels. Enumerated once.</param>
    /// <param name="completer">Completes a batch of (image, masked label) pairs, returning one completed label per pair,
    /// same size, in the same order.</param>
    /// <param name="batchSize">Number of images passed to the completer at once.</param>
    /// <param name="cancellationToken">Checked between batches.</param>
    public LabelCompletionMetrics CompleteAndEvaluate(IEnumerable<(RgbImage Image, LabelMap Truth)> data,
        Func<IReadOnlyList<(RgbImage Image, LabelMap Masked)>, IReadOnlyList<LabelMap>> completer,
        int batchSize = 8, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(completer);
        return CompleteAndEvaluate(data, [completer], batchSize, cancellationToken)[0];
    }

    /// <summary>
    /// Like <see cref="CompleteAndEvaluate(IEnumerable{ValueTuple{RgbImage, LabelMap}}, Func{IReadOnlyList{ValueTuple{RgbImage, LabelMap}}, IReadOnlyList{LabelMap}}, int, CancellationToken)"/>
    /// for several completers on identical masks in one pass over <paramref name="data"/> (each image is loaded once).
    /// </summary>
    /// <param name="data">The split in a fixed order (image index = position). Enumerated once.</param>
    /// <param name="completers">The completers to compare, e.g. L-MAE, <see cref="NearestKnownCompleter"/>, ImageOnly.</param>
    /// <param name="batchSize">Number of images passed to each completer at once.</param>
    /// <param name="cancellationToken">Checked between batches.</param>
    /// <returns>One metrics object per completer, in the order given.</returns>
    public IReadOnlyList<LabelCompletionMetrics> CompleteAndEvaluate(IEnumerable<(RgbImage Image, LabelMap Truth)> data,
        IReadOnlyList<Func<IReadOnlyList<(RgbImage Image, LabelMap Masked)>, IReadOnlyList<LabelMap>>> completers,
        int batchSize = 8, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(data);
        ArgumentNullException.ThrowIfNull(completers);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(batchSize);
        if (completers.Count == 0) throw new ArgumentException("At least one completer is needed.", nameof(completers));

        var counts = completers.Select(_ => new LabelCompletionMetrics.Accumulator(NumberOfClasses)).ToArray();

        var batch = new List<(RgbImage Image, LabelMap Masked)>(batchSize);
        var truths = new List<LabelMap>(batchSize);
        var pixelMasks = new List<bool[]>(batchSize);
        long firstIndex = 0;

        void Flush()
        {
            if (batch.Count == 0) return;
            cancellationToken.ThrowIfCancellationRequested();
            for (int m = 0; m < completers.Count; m++)
            {
                var completed = completers[m](batch)
                    ?? throw new InvalidOperationException($"Completer {m} returned null for the batch starting at image {firstIndex}.");
                if (completed.Count != batch.Count)
                    throw new InvalidOperationException(
                        $"Completer {m} returned {completed.Count} labels for a batch of {batch.Count} images starting at image {firstIndex}.");
                for (int j = 0; j < batch.Count; j++)
                    Accumulate(firstIndex + j, truths[j], completed[j], pixelMasks[j], counts[m]);
            }
            firstIndex += batch.Count;
            batch.Clear();
            truths.Clear();
            pixelMasks.Clear();
        }

        long index = 0;
        foreach (var (image, truth) in data)
        {
            if (image is null || truth is null) throw new ArgumentException($"Image {index}: the image or the label is null.", nameof(data));
            if (image.Width != truth.Width || image.Height != truth.Height)
                throw new ArgumentException($"Image {index}: the image is {image.Width}x{image.Height} but its label is {truth.Width}x{truth.Height}.", nameof(data));
            var (masked, pixelMask) = Mask(index, truth);
            batch.Add((image, masked));
            truths.Add(truth);
            pixelMasks.Add(pixelMask);
            index++;
            if (batch.Count == batchSize) Flush();
        }
        Flush();

        var metrics = new LabelCompletionMetrics[completers.Count];
        for (int m = 0; m < metrics.Length; m++) metrics[m] = counts[m].ToMetrics(ClassNames);
        return metrics;
    }

    /// <summary>
    /// The <c>NearestKnown</c> baseline as a completer: each masked label is filled with <see cref="NearestKnownFill"/>.
    /// </summary>
    /// <param name="unknownLabel">The value that marks an unknown pixel.</param>
    public static Func<IReadOnlyList<(RgbImage Image, LabelMap Masked)>, IReadOnlyList<LabelMap>> NearestKnownCompleter(byte unknownLabel = 255)
        => batch =>
        {
            ArgumentNullException.ThrowIfNull(batch);
            var completed = new LabelMap[batch.Count];
            for (int i = 0; i < completed.Length; i++) completed[i] = NearestKnownFill.Fill(batch[i].Masked, unknownLabel);
            return completed;
        };

    private void Accumulate(long index, LabelMap truth, LabelMap completed, bool[] pixelMask, LabelCompletionMetrics.Accumulator counts)
    {
        if (truth is null || completed is null || pixelMask is null)
            throw new ArgumentException($"Image {index}: the ground truth, the completed label or the pixel mask is null.");
        if (truth.Width != completed.Width || truth.Height != completed.Height)
            throw new ArgumentException(
                $"Image {index}: the completed label is {completed.Width}x{completed.Height} but the ground truth is {truth.Width}x{truth.Height}.");
        if (pixelMask.Length != truth.Values.Length)
            throw new ArgumentException($"Image {index}: the pixel mask has {pixelMask.Length} entries but the label has {truth.Values.Length} pixels.");
        try
        {
            counts.Add(truth.Values, completed.Values, pixelMask, UnknownLabel);
        }
        catch (ArgumentException e)
        {
            throw new ArgumentException($"Image {index}: {e.Message}", e);
        }
    }
}
