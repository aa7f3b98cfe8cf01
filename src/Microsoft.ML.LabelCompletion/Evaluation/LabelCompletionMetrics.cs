using Microsoft.ML.LabelCompletion.Evaluation;

namespace Microsoft.ML.LabelCompletion;

/// <summary>
/// Quality of completed segmentation labels (DESIGN.md §3), over two regions of one split:
/// the <i>predict area</i> (PA: pixels inside completed patches whose ground truth is known) and the
/// <i>global</i> area (every pixel whose ground truth is known). Each region has one confusion matrix accumulated
/// over the whole split. All percentages are in 0..100; a metric over an empty region is <see cref="double.NaN"/>.
/// </summary>
/// <remarks>
/// Mean IoU is taken over the classes that occur in the ground truth or in the prediction within the region;
/// classes that occur in neither have a per-class IoU of <see cref="double.NaN"/> and are left out of the mean.
/// </remarks>
public sealed class LabelCompletionMetrics
{
    /// <summary>Builds the metrics from the two accumulated confusion matrices.</summary>
    /// <param name="predictAreaConfusionMatrix">Counts over completed pixels with known ground truth.</param>
    /// <param name="globalConfusionMatrix">Counts over all pixels with known ground truth.</param>
    /// <param name="classNames">Optional class names, one per class.</param>
    public LabelCompletionMetrics(SegmentationConfusionMatrix predictAreaConfusionMatrix, SegmentationConfusionMatrix globalConfusionMatrix,
        IReadOnlyList<string>? classNames = null)
    {
        ArgumentNullException.ThrowIfNull(predictAreaConfusionMatrix);
        ArgumentNullException.ThrowIfNull(globalConfusionMatrix);
        if (predictAreaConfusionMatrix.NumberOfClasses != globalConfusionMatrix.NumberOfClasses)
            throw new ArgumentException(
                $"The predict-area matrix has {predictAreaConfusionMatrix.NumberOfClasses} classes but the global one has {globalConfusionMatrix.NumberOfClasses}.",
                nameof(globalConfusionMatrix));
        int classes = globalConfusionMatrix.NumberOfClasses;
        if (classNames is not null && classNames.Count != classes)
            throw new ArgumentException($"{classNames.Count} class names were given for {classes} classes.", nameof(classNames));

        NumberOfClasses = classes;
        ClassNames = classNames is null ? null : Array.AsReadOnly(classNames.ToArray());
        PredictAreaConfusionMatrix = predictAreaConfusionMatrix.AsReadOnly();
        ConfusionMatrix = globalConfusionMatrix.AsReadOnly();
        PredictAreaMeanIntersectionOverUnion = PredictAreaConfusionMatrix.MeanIntersectionOverUnion;
        MeanIntersectionOverUnion = ConfusionMatrix.MeanIntersectionOverUnion;
        PredictAreaPixelAccuracy = PredictAreaConfusionMatrix.PixelAccuracy;
        PixelAccuracy = ConfusionMatrix.PixelAccuracy;
        PredictAreaPerClassIntersectionOverUnion = PerClass(PredictAreaConfusionMatrix);
        PerClassIntersectionOverUnion = PerClass(ConfusionMatrix);
        PredictAreaPixelCount = PredictAreaConfusionMatrix.TotalCount;
        PixelCount = ConfusionMatrix.TotalCount;
    }

    /// <summary>Number of classes <c>C</c>.</summary>
    public int NumberOfClasses { get; }

    /// <summary>Class names, one per class, or <c>null</c> when none were given.</summary>
    public IReadOnlyList<string>? ClassNames { get; }

    /// <summary>
    /// PA-mIoU (the paper's "Predict Area mIoU"), in percent: mean IoU over the pixels inside completed patches whose
    /// ground truth is known.
    /// </summary>
    public double PredictAreaMeanIntersectionOverUnion { get; }

    /// <summary>Global mIoU, in percent: mean IoU over every pixel whose ground truth is known (kept and completed alike).</summary>
    public double MeanIntersectionOverUnion { get; }

    /// <summary>Pixel accuracy over the predict area, in percent.</summary>
    public double PredictAreaPixelAccuracy { get; }

    /// <summary>Pixel accuracy over every pixel whose ground truth is known, in percent.</summary>
    public double PixelAccuracy { get; }

    /// <summary>Per-class IoU over the predict area, in percent; <see cref="double.NaN"/> for classes left out of the mean.</summary>
    public IReadOnlyList<double> PredictAreaPerClassIntersectionOverUnion { get; }

    /// <summary>Per-class IoU over every known pixel, in percent; <see cref="double.NaN"/> for classes left out of the mean.</summary>
    public IReadOnlyList<double> PerClassIntersectionOverUnion { get; }

    /// <summary>The (read-only) confusion matrix of the predict area: truth rows, prediction columns.</summary>
    public SegmentationConfusionMatrix PredictAreaConfusionMatrix { get; }

    /// <summary>The (read-only) confusion matrix of every known pixel: truth rows, prediction columns.</summary>
    public SegmentationConfusionMatrix ConfusionMatrix { get; }

    /// <summary>Number of pixels counted in the predict area.</summary>
    public long PredictAreaPixelCount { get; }

    /// <summary>Number of pixels counted globally (every pixel with known ground truth).</summary>
    public long PixelCount { get; }

    private static IReadOnlyList<double> PerClass(SegmentationConfusionMatrix matrix)
    {
        var iou = new double[matrix.NumberOfClasses];
        for (int c = 0; c < iou.Length; c++) iou[c] = matrix.IntersectionOverUnion(c);
        return Array.AsReadOnly(iou);
    }

    /// <summary>
    /// The counting behind every <see cref="LabelCompletionMetrics"/> (the catalog's <c>Evaluate</c>, the protocol, the
    /// CLI): one confusion matrix over each image's predict area and one over all its pixels, unknown truth never counted.
    /// </summary>
    /// <param name="numberOfClasses">Number of real classes <c>C</c>.</param>
    public sealed class Accumulator(int numberOfClasses)
    {
        /// <summary>The predict-area matrix so far.</summary>
        public SegmentationConfusionMatrix PredictArea { get; } = new(numberOfClasses);

        /// <summary>The global matrix so far.</summary>
        public SegmentationConfusionMatrix Global { get; } = new(numberOfClasses);

        /// <summary>
        /// Counts one image: its pixels flagged in <paramref name="predictArea"/> (same length as <paramref name="truth"/>)
        /// in the predict-area matrix and all its pixels in the global one. An image without pixels counts nothing.
        /// </summary>
        /// <exception cref="ArgumentException">The lengths differ, or a value is neither a class nor unknown (see <see cref="SegmentationConfusionMatrix.Add(ReadOnlySpan{byte}, ReadOnlySpan{byte}, ReadOnlySpan{bool}, byte)"/>).</exception>
        public void Add(ReadOnlySpan<byte> truth, ReadOnlySpan<byte> completed, ReadOnlySpan<bool> predictArea, byte unknownLabel)
        {
            if (truth.Length == 0) return; // (an empty mask would mean "every pixel" to the matrix)
            if (predictArea.Length != truth.Length)
                throw new ArgumentException($"The predict-area mask has {predictArea.Length} entries but the label has {truth.Length} pixels.", nameof(predictArea));
            PredictArea.Add(truth, completed, predictArea, unknownLabel);
            Global.Add(truth, completed, ReadOnlySpan<bool>.Empty, unknownLabel);
        }

        /// <summary>The metrics of everything counted.</summary>
        /// <param name="classNames">Optional class names, one per class.</param>
        public LabelCompletionMetrics ToMetrics(IReadOnlyList<string>? classNames) => new(PredictArea, Global, classNames);
    }
}
