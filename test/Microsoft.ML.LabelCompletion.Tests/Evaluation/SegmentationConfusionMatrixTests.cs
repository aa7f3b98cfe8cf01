using Microsoft.ML.LabelCompletion.Data;
using Microsoft.ML.LabelCompletion.Evaluation;

namespace Microsoft.ML.LabelCompletion.Tests.Evaluation;

[TestClass]
public sealed class SegmentationConfusionMatrixTests
{
    private const byte U = 255;

    private static LabelCompletionMetrics Metrics(int classes, byte[] truth, byte[] prediction, bool[]? mask = null)
    {
        var label = new LabelMap(truth.Length, 1, truth);
        var completed = new LabelMap(prediction.Length, 1, prediction);
        var protocol = new EvaluationProtocol(classes, 0.5);
        return protocol.Evaluate([(label, completed, mask ?? Enumerable.Repeat(true, truth.Length).ToArray())]);
    }

    [TestMethod]
    public void PerfectPredictionScores100()
    {
        byte[] truth = [0, 1, 2, 2, 1, 0, 0];
        var m = Metrics(3, truth, (byte[])truth.Clone());
        Assert.AreEqual(100.0, m.PredictAreaMeanIntersectionOverUnion, 1e-12);
        Assert.AreEqual(100.0, m.MeanIntersectionOverUnion, 1e-12);
        Assert.AreEqual(100.0, m.PredictAreaPixelAccuracy, 1e-12);
        Assert.AreEqual(100.0, m.PixelAccuracy, 1e-12);
        Assert.AreEqual(7L, m.PixelCount);
        CollectionAssert.AreEqual(new[] { 100.0, 100.0, 100.0 }, m.PerClassIntersectionOverUnion.ToArray());
    }

    [TestMethod]
    public void AllWrongScores0AndAbsentClassIsNaN()
    {
        var m = Metrics(3, [0, 0, 1, 1], [1, 1, 0, 0]);
        Assert.AreEqual(0.0, m.MeanIntersectionOverUnion, 1e-12);
        Assert.AreEqual(0.0, m.PixelAccuracy, 1e-12);
        Assert.AreEqual(0.0, m.PerClassIntersectionOverUnion[0], 1e-12);
        Assert.AreEqual(0.0, m.PerClassIntersectionOverUnion[1], 1e-12);
        Assert.IsTrue(double.IsNaN(m.PerClassIntersectionOverUnion[2]));
        Assert.AreEqual(2L, m.ConfusionMatrix[0, 1]);
        Assert.AreEqual(2L, m.ConfusionMatrix[1, 0]);
        Assert.AreEqual(0L, m.ConfusionMatrix[0, 0]);
    }

    [TestMethod]
    public void ClassMissingFromTruthAndPredictionIsLeftOutOfTheMean()
    {
        // Class 0: TP 1, truth 2, predicted 1 -> 1/2. Class 1: TP 1, truth 1, predicted 2 -> 1/2. Class 3: 1/1. Class 2 absent.
        var m = Metrics(4, [0, 0, 1, 3], [0, 1, 1, 3]);
        Assert.AreEqual(50.0, m.PerClassIntersectionOverUnion[0], 1e-9);
        Assert.AreEqual(50.0, m.PerClassIntersectionOverUnion[1], 1e-9);
        Assert.IsTrue(double.IsNaN(m.PerClassIntersectionOverUnion[2]));
        Assert.AreEqual(100.0, m.PerClassIntersectionOverUnion[3], 1e-9);
        Assert.AreEqual(200.0 / 3, m.MeanIntersectionOverUnion, 1e-9); // 50 if class 2 counted as 0, 75 if as 100
        Assert.AreEqual(75.0, m.PixelAccuracy, 1e-9);
    }

    [TestMethod]
    public void ClassOnlyPredictedStaysInTheMean()
    {
        // Class 2 never occurs in truth but is predicted once: IoU 0, and it counts in the mean.
        var m = Metrics(3, [0, 0, 1, 1], [0, 2, 1, 1]);
        Assert.AreEqual(0.0, m.PerClassIntersectionOverUnion[2], 1e-12);
        Assert.AreEqual((50.0 + 100.0 + 0.0) / 3, m.MeanIntersectionOverUnion, 1e-9);
    }

    [TestMethod]
    public void UnknownTruthIsIgnored()
    {
        // The unknown pixels are predicted as class 1 and 0; they must not enter class 1's or class 0's counts.
        var m = Metrics(2, [0, U, 1, U], [0, 1, 1, 0]);
        Assert.AreEqual(2L, m.PixelCount);
        Assert.AreEqual(100.0, m.MeanIntersectionOverUnion, 1e-12);
        Assert.AreEqual(100.0, m.PixelAccuracy, 1e-12);
        Assert.AreEqual(1L, m.ConfusionMatrix.PredictionCount(1));
    }

    [TestMethod]
    public void HandComputedThreeClassCase()
    {
        // truth 0 0 0 1 1 2 2 2 2 / prediction 0 0 1 1 2 2 2 0 2
        // class 0: TP 2, truth 3, predicted 3 -> 2/4; class 1: TP 1, truth 2, predicted 2 -> 1/3; class 2: TP 3, truth 4, predicted 4 -> 3/5.
        var m = Metrics(3, [0, 0, 0, 1, 1, 2, 2, 2, 2], [0, 0, 1, 1, 2, 2, 2, 0, 2]);
        Assert.AreEqual(50.0, m.PerClassIntersectionOverUnion[0], 1e-9);
        Assert.AreEqual(100.0 / 3, m.PerClassIntersectionOverUnion[1], 1e-9);
        Assert.AreEqual(60.0, m.PerClassIntersectionOverUnion[2], 1e-9);
        Assert.AreEqual((50.0 + 100.0 / 3 + 60.0) / 3, m.MeanIntersectionOverUnion, 1e-9);
        Assert.AreEqual(600.0 / 9, m.PixelAccuracy, 1e-9);
        var expected = new long[,] { { 2, 1, 0 }, { 0, 1, 1 }, { 1, 0, 3 } };
        CollectionAssert.AreEqual(expected, m.ConfusionMatrix.ToArray());
    }

    [TestMethod]
    public void PredictAreaCountsOnlyMaskedPixels()
    {
        // Masked: pixels 0, 1, 4 (truth 0, 0, 1 predicted 0, 1, 1); pixel 5 is masked but its truth is unknown.
        byte[] truth = [0, 0, 1, 1, 1, U];
        byte[] prediction = [0, 1, 1, 0, 1, 0];
        bool[] mask = [true, true, false, false, true, true];
        var m = Metrics(2, truth, prediction, mask);
        Assert.AreEqual(3L, m.PredictAreaPixelCount);
        Assert.AreEqual(5L, m.PixelCount);
        // PA: class 0: TP 1, truth 2, predicted 1 -> 1/2; class 1: TP 1, truth 1, predicted 2 -> 1/2.
        Assert.AreEqual(50.0, m.PredictAreaMeanIntersectionOverUnion, 1e-9);
        Assert.AreEqual(200.0 / 3, m.PredictAreaPixelAccuracy, 1e-9);
        // Global: class 0: TP 1, truth 2, predicted 2 -> 1/3; class 1: TP 2, truth 3, predicted 3 -> 2/4.
        Assert.AreEqual((100.0 / 3 + 50.0) / 2, m.MeanIntersectionOverUnion, 1e-9);
        Assert.AreEqual(60.0, m.PixelAccuracy, 1e-9);
    }

    [TestMethod]
    public void UnpredictedPixelCountsAsWrong()
    {
        var m = Metrics(2, [0, 1], [U, 1]);
        Assert.AreEqual(2L, m.PixelCount);
        Assert.AreEqual(1L, m.ConfusionMatrix.UnpredictedCount(0));
        Assert.AreEqual(0.0, m.PerClassIntersectionOverUnion[0], 1e-12);
        Assert.AreEqual(50.0, m.MeanIntersectionOverUnion, 1e-12);
        Assert.AreEqual(50.0, m.PixelAccuracy, 1e-12);
    }

    [TestMethod]
    public void InvalidValuesAreRejectedWithThePixel()
    {
        var matrix = new SegmentationConfusionMatrix(3);
        var e = Assert.ThrowsExactly<ArgumentException>(() => matrix.Add([0, 1], [0, 7], ReadOnlySpan<bool>.Empty, U));
        StringAssert.Contains(e.Message, "pixel 1");
        Assert.ThrowsExactly<ArgumentException>(() => matrix.Add([5], [0], ReadOnlySpan<bool>.Empty, U));
        Assert.ThrowsExactly<ArgumentException>(() => matrix.Add([0, 1], [0], ReadOnlySpan<bool>.Empty, U));
    }

    [TestMethod]
    public void MergeEqualsAccumulatingEverything()
    {
        byte[] truth = [0, 0, 0, 1, 1, 2, 2, 2, 2];
        byte[] prediction = [0, 0, 1, 1, 2, 2, 2, 0, 2];
        var whole = new SegmentationConfusionMatrix(3);
        whole.Add(truth, prediction, ReadOnlySpan<bool>.Empty, U);
        var first = new SegmentationConfusionMatrix(3);
        first.Add(truth.AsSpan(0, 4), prediction.AsSpan(0, 4), ReadOnlySpan<bool>.Empty, U);
        var second = new SegmentationConfusionMatrix(3);
        second.Add(truth.AsSpan(4), prediction.AsSpan(4), ReadOnlySpan<bool>.Empty, U);
        first.Merge(second);
        CollectionAssert.AreEqual(whole.ToArray(), first.ToArray());
        Assert.AreEqual(whole.TotalCount, first.TotalCount);
        Assert.AreEqual(whole.MeanIntersectionOverUnion, first.MeanIntersectionOverUnion, 1e-12);
        Assert.ThrowsExactly<ArgumentException>(() => first.Merge(new SegmentationConfusionMatrix(4)));
    }

    [TestMethod]
    public void MetricsAreImmutable()
    {
        var source = new SegmentationConfusionMatrix(2);
        source.Add(0, 0, 3);
        var m = new LabelCompletionMetrics(source, source, ["sky", "road"]);
        source.Add(1, 0, 5); // later changes to the accumulator do not reach the metrics
        Assert.AreEqual(3L, m.PixelCount);
        Assert.AreEqual(3L, m.ConfusionMatrix.TotalCount);
        Assert.IsTrue(m.ConfusionMatrix.IsReadOnly);
        Assert.ThrowsExactly<InvalidOperationException>(() => m.ConfusionMatrix.Add(0, 1));
        Assert.ThrowsExactly<NotSupportedException>(() => ((IList<double>)m.PerClassIntersectionOverUnion)[0] = 0);
        Assert.AreEqual("road", m.ClassNames![1]);
        Assert.IsTrue(double.IsNaN(new LabelCompletionMetrics(new(2), new(2)).MeanIntersectionOverUnion));
    }
}
