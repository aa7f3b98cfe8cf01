using Microsoft.ML.LabelCompletion.Data;

namespace Microsoft.ML.LabelCompletion.Evaluation;

/// <summary>
/// A <c>C x C</c> confusion matrix of pixel counts for semantic segmentation: rows are the ground-truth class,
/// columns the predicted class. Pixels whose ground truth is unknown are never counted.
/// </summary>
/// <remarks>
/// <para>
/// A pixel with known ground truth whose prediction is the unknown value (a completer that left it open) is counted
/// as wrong: it adds to <see cref="UnpredictedCount(int)"/> of its true class, which enters that class's union, the
/// pixel total and therefore lowers IoU and accuracy, but belongs to no predicted class.
/// </para>
/// <para>
/// The matrix is an accumulator: <see cref="Add(LabelMap, LabelMap, bool[], byte)"/> and <see cref="Merge"/> change it.
/// <see cref="AsReadOnly"/> returns a frozen copy, which is what <see cref="LabelCompletionMetrics"/> exposes.
/// </para>
/// </remarks>
public sealed class SegmentationConfusionMatrix
{
    private readonly long[] _counts;
    private readonly long[] _unpredicted;

    /// <summary>Creates an empty matrix for <paramref name="numberOfClasses"/> classes.</summary>
    /// <param name="numberOfClasses">Number of real classes <c>C</c>, 1 to 255.</param>
    public SegmentationConfusionMatrix(int numberOfClasses)
    {
        LabelMap.CheckClassCount(numberOfClasses, nameof(numberOfClasses));
        NumberOfClasses = numberOfClasses;
        _counts = new long[numberOfClasses * numberOfClasses];
        _unpredicted = new long[numberOfClasses];
    }

    private SegmentationConfusionMatrix(SegmentationConfusionMatrix source, bool isReadOnly)
    {
        NumberOfClasses = source.NumberOfClasses;
        _counts = (long[])source._counts.Clone();
        _unpredicted = (long[])source._unpredicted.Clone();
        TotalCount = source.TotalCount;
        IsReadOnly = isReadOnly;
    }

    /// <summary>Number of classes <c>C</c>; the matrix is <c>C x C</c>.</summary>
    public int NumberOfClasses { get; }

    /// <summary><c>true</c> when the matrix is a frozen copy that cannot be added to.</summary>
    public bool IsReadOnly { get; }

    /// <summary>Number of pixels counted (known ground truth), including those left unpredicted.</summary>
    public long TotalCount { get; private set; }

    /// <summary>Number of pixels counted whose prediction equals the ground truth.</summary>
    public long CorrectCount
    {
        get
        {
            long correct = 0;
            for (int c = 0; c < NumberOfClasses; c++) correct += this[c, c];
            return correct;
        }
    }

    /// <summary>Number of pixels of true class <paramref name="truth"/> predicted as class <paramref name="prediction"/>.</summary>
    /// <param name="truth">Ground-truth class (row).</param>
    /// <param name="prediction">Predicted class (column).</param>
    public long this[int truth, int prediction]
    {
        get
        {
            CheckClass(truth, nameof(truth));
            CheckClass(prediction, nameof(prediction));
            return _counts[truth * NumberOfClasses + prediction];
        }
    }

    /// <summary>Number of pixels of true class <paramref name="truth"/> whose prediction was the unknown value.</summary>
    /// <param name="truth">Ground-truth class.</param>
    public long UnpredictedCount(int truth)
    {
        CheckClass(truth, nameof(truth));
        return _unpredicted[truth];
    }

    /// <summary>Number of counted pixels whose ground truth is <paramref name="classIndex"/> (row sum, unpredicted included).</summary>
    /// <param name="classIndex">Class index.</param>
    public long TruthCount(int classIndex)
    {
        CheckClass(classIndex, nameof(classIndex));
        long sum = _unpredicted[classIndex];
        for (int p = 0; p < NumberOfClasses; p++) sum += _counts[classIndex * NumberOfClasses + p];
        return sum;
    }

    /// <summary>Number of counted pixels predicted as <paramref name="classIndex"/> (column sum).</summary>
    /// <param name="classIndex">Class index.</param>
    public long PredictionCount(int classIndex)
    {
        CheckClass(classIndex, nameof(classIndex));
        long sum = 0;
        for (int t = 0; t < NumberOfClasses; t++) sum += _counts[t * NumberOfClasses + classIndex];
        return sum;
    }

    /// <summary>
    /// Intersection over union of <paramref name="classIndex"/> in percent (0..100):
    /// <c>TP / (TruthCount + PredictionCount - TP)</c>; <see cref="double.NaN"/> when the class occurs neither in
    /// ground truth nor in prediction.
    /// </summary>
    /// <param name="classIndex">Class index.</param>
    public double IntersectionOverUnion(int classIndex)
    {
        long truePositives = this[classIndex, classIndex];
        long union = TruthCount(classIndex) + PredictionCount(classIndex) - truePositives;
        return union == 0 ? double.NaN : 100.0 * truePositives / union;
    }

    /// <summary>
    /// The mean IoU (0..100) of <paramref name="pairs"/> counted with one matrix over every pixel whose truth is known:
    /// what training reports as the validation PA-mIoU of an epoch (the targets there are unknown outside the masked patches).
    /// </summary>
    /// <param name="pairs">Per image, the truth and the predicted classes, same length.</param>
    /// <param name="numberOfClasses">Number of real classes <c>C</c>.</param>
    /// <param name="unknownLabel">The value that marks a pixel whose truth is unknown (not counted).</param>
    public static double MeanIntersectionOverUnionOf(IEnumerable<(byte[] Truth, byte[] Prediction)> pairs, int numberOfClasses, byte unknownLabel)
    {
        ArgumentNullException.ThrowIfNull(pairs);
        var matrix = new SegmentationConfusionMatrix(numberOfClasses);
        foreach (var (truth, prediction) in pairs) matrix.Add(truth, prediction, ReadOnlySpan<bool>.Empty, unknownLabel);
        return matrix.MeanIntersectionOverUnion;
    }

    /// <summary>
    /// Mean IoU in percent over the classes that occur in ground truth or prediction (the others are left out);
    /// <see cref="double.NaN"/> when nothing was counted.
    /// </summary>
    public double MeanIntersectionOverUnion
    {
        get
        {
            double sum = 0;
            int present = 0;
            for (int c = 0; c < NumberOfClasses; c++)
            {
                double iou = IntersectionOverUnion(c);
                if (double.IsNaN(iou)) continue;
                sum += iou;
                present++;
            }
            return present == 0 ? double.NaN : sum / present;
        }
    }

    /// <summary>Pixel accuracy in percent: correct pixels over counted pixels; <see cref="double.NaN"/> when nothing was counted.</summary>
    public double PixelAccuracy => TotalCount == 0 ? double.NaN : 100.0 * CorrectCount / TotalCount;

    /// <summary>Adds <paramref name="count"/> pixels of true class <paramref name="truth"/> predicted as <paramref name="prediction"/>.</summary>
    /// <param name="truth">Ground-truth class.</param>
    /// <param name="prediction">Predicted class.</param>
    /// <param name="count">Number of pixels, not negative.</param>
    public void Add(int truth, int prediction, long count = 1)
    {
        CheckWritable();
        CheckClass(truth, nameof(truth));
        CheckClass(prediction, nameof(prediction));
        ArgumentOutOfRangeException.ThrowIfNegative(count);
        _counts[truth * NumberOfClasses + prediction] += count;
        TotalCount += count;
    }

    /// <summary>Adds <paramref name="count"/> pixels of true class <paramref name="truth"/> whose prediction was the unknown value.</summary>
    /// <param name="truth">Ground-truth class.</param>
    /// <param name="count">Number of pixels, not negative.</param>
    public void AddUnpredicted(int truth, long count = 1)
    {
        CheckWritable();
        CheckClass(truth, nameof(truth));
        ArgumentOutOfRangeException.ThrowIfNegative(count);
        _unpredicted[truth] += count;
        TotalCount += count;
    }

    /// <summary>
    /// Adds every pixel of a label map whose ground truth is known and, when <paramref name="mask"/> is given, whose
    /// mask flag is set.
    /// </summary>
    /// <param name="truth">Ground-truth label map.</param>
    /// <param name="prediction">Predicted (completed) label map, same size.</param>
    /// <param name="mask">One flag per pixel selecting the region to count, or <c>null</c> for all pixels.</param>
    /// <param name="unknownLabel">The value that marks an unknown pixel.</param>
    /// <exception cref="ArgumentException">Sizes differ, or a value is neither a class nor unknown.</exception>
    public void Add(LabelMap truth, LabelMap prediction, bool[]? mask, byte unknownLabel)
    {
        ArgumentNullException.ThrowIfNull(truth);
        ArgumentNullException.ThrowIfNull(prediction);
        if (truth.Width != prediction.Width || truth.Height != prediction.Height)
            throw new ArgumentException(
                $"The prediction is {prediction.Width}x{prediction.Height} but the ground truth is {truth.Width}x{truth.Height}.", nameof(prediction));
        Add(truth.Values, prediction.Values, mask, unknownLabel);
    }

    /// <summary>
    /// Adds every pixel whose ground truth is known and, when <paramref name="mask"/> is not empty, whose mask flag
    /// is set. The three spans describe the same pixels in the same order.
    /// </summary>
    /// <param name="truth">Ground-truth labels.</param>
    /// <param name="prediction">Predicted labels, same length.</param>
    /// <param name="mask">One flag per pixel, or an empty span for all pixels.</param>
    /// <param name="unknownLabel">The value that marks an unknown pixel.</param>
    /// <exception cref="ArgumentException">Lengths differ, or a value is neither a class nor unknown.</exception>
    public void Add(ReadOnlySpan<byte> truth, ReadOnlySpan<byte> prediction, ReadOnlySpan<bool> mask, byte unknownLabel)
    {
        CheckWritable();
        if (prediction.Length != truth.Length)
            throw new ArgumentException($"The prediction has {prediction.Length} pixels but the ground truth has {truth.Length}.", nameof(prediction));
        bool masked = !mask.IsEmpty;
        if (masked && mask.Length != truth.Length)
            throw new ArgumentException($"The mask has {mask.Length} pixels but the ground truth has {truth.Length}.", nameof(mask));

        int classes = NumberOfClasses;
        long added = 0;
        for (int i = 0; i < truth.Length; i++)
        {
            if (masked && !mask[i]) continue;
            byte t = truth[i];
            if (t == unknownLabel) continue;
            if (t >= classes)
                throw new ArgumentException($"Ground truth pixel {i} has value {t}, which is neither a class (0..{classes - 1}) nor the unknown value {unknownLabel}.", nameof(truth));
            byte p = prediction[i];
            if (p < classes) _counts[t * classes + p]++;
            else if (p == unknownLabel) _unpredicted[t]++;
            else
                throw new ArgumentException($"Predicted pixel {i} has value {p}, which is neither a class (0..{classes - 1}) nor the unknown value {unknownLabel}.", nameof(prediction));
            added++;
        }
        TotalCount += added;
    }

    /// <summary>Adds every count of <paramref name="other"/> to this matrix (accumulating one matrix over a split).</summary>
    /// <param name="other">A matrix with the same number of classes; not changed.</param>
    public void Merge(SegmentationConfusionMatrix other)
    {
        ArgumentNullException.ThrowIfNull(other);
        CheckWritable();
        if (other.NumberOfClasses != NumberOfClasses)
            throw new ArgumentException($"Cannot merge a {other.NumberOfClasses}-class matrix into a {NumberOfClasses}-class matrix.", nameof(other));
        for (int i = 0; i < _counts.Length; i++) _counts[i] += other._counts[i];
        for (int i = 0; i < _unpredicted.Length; i++) _unpredicted[i] += other._unpredicted[i];
        TotalCount += other.TotalCount;
    }

    /// <summary>Returns a writable copy.</summary>
    public SegmentationConfusionMatrix Clone() => new(this, isReadOnly: false);

    /// <summary>Returns a frozen copy (this instance when it is already frozen).</summary>
    public SegmentationConfusionMatrix AsReadOnly() => IsReadOnly ? this : new(this, isReadOnly: true);

    /// <summary>The counts as a new <c>C x C</c> array, <c>[truth, prediction]</c>.</summary>
    public long[,] ToArray()
    {
        var array = new long[NumberOfClasses, NumberOfClasses];
        for (int t = 0; t < NumberOfClasses; t++)
            for (int p = 0; p < NumberOfClasses; p++)
                array[t, p] = _counts[t * NumberOfClasses + p];
        return array;
    }

    private void CheckClass(int classIndex, string parameterName)
    {
        if ((uint)classIndex >= (uint)NumberOfClasses)
            throw new ArgumentOutOfRangeException(parameterName, classIndex, $"Class index must be in 0..{NumberOfClasses - 1}.");
    }

    private void CheckWritable()
    {
        if (IsReadOnly) throw new InvalidOperationException("This confusion matrix is read-only (a copy held by metrics); use Clone() to get a writable one.");
    }
}
