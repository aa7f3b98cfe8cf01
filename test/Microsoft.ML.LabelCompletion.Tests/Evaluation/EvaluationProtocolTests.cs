using Microsoft.ML.LabelCompletion.Data;
using Microsoft.ML.LabelCompletion.Evaluation;
using Microsoft.ML.LabelCompletion.Model;

namespace Microsoft.ML.LabelCompletion.Tests.Evaluation;

[TestClass]
public sealed class EvaluationProtocolTests
{
    private const byte U = 255;

    /// <summary>A blocky random scene with a void band, so regions are spatially coherent like real labels.</summary>
    internal static LabelMap Scene(int width, int height, int classes, int seed)
    {
        var random = new Random(seed);
        var values = new byte[width * height];
        int block = 7;
        var blocks = new byte[(width / block + 1) * (height / block + 1)];
        for (int i = 0; i < blocks.Length; i++) blocks[i] = (byte)random.Next(classes);
        for (int y = 0; y < height; y++)
            for (int x = 0; x < width; x++)
                values[y * width + x] = y == height / 2 ? U : blocks[y / block * (width / block + 1) + x / block];
        return new LabelMap(width, height, values);
    }

    private static RgbImage Image(LabelMap label) => new(label.Width, label.Height, new byte[label.Width * label.Height * 3]);

    [TestMethod]
    public void MasksAreReproduciblePerImageAndDifferAcrossImages()
    {
        var protocol = new EvaluationProtocol(11, 0.5);
        var truth = Scene(480, 360, 11, 1);
        var (maskedA, pixelsA) = protocol.Mask(3, truth);
        var (maskedB, pixelsB) = protocol.Mask(3, truth);
        CollectionAssert.AreEqual(maskedA.Values, maskedB.Values);
        CollectionAssert.AreEqual(pixelsA, pixelsB);
        CollectionAssert.AreNotEqual(pixelsA, protocol.Mask(4, truth).PixelMask);
        CollectionAssert.AreNotEqual(pixelsA, new EvaluationProtocol(11, 0.6).Mask(3, truth).PixelMask);

        // 480x360 with patch 16: 23 x 30 = 690 patches, floor(690 * 0.5) = 345 masked, drawn with seed 0 and the image index.
        var patches = protocol.PatchMask(480, 360, 3);
        Assert.AreEqual(690, patches.Length);
        Assert.AreEqual(345, patches.Count(m => m));
        CollectionAssert.AreEqual(MaskSelector.RandomForEvaluation(690, 0.5, 0, 3), patches);
        CollectionAssert.AreEqual(MaskSelector.ToPixelMask(patches, 480, 360, 16), pixelsA);
    }

    [TestMethod]
    public void MaskedLabelIsUnknownExactlyInsideMaskedPatches()
    {
        var protocol = new EvaluationProtocol(5, 0.6);
        var truth = Scene(100, 70, 5, 2); // not a multiple of 16: the last row and column of patches are padded
        var (masked, pixelMask) = protocol.Mask(0, truth);
        for (int i = 0; i < truth.Values.Length; i++)
            Assert.AreEqual(pixelMask[i] ? U : truth.Values[i], masked.Values[i], $"pixel {i}");
        Assert.AreEqual(MaskSelector.MaskedCount(5 * 7, 0.6), protocol.PatchMask(100, 70, 0).Count(m => m));
        Assert.IsTrue(pixelMask.Any(m => m) && pixelMask.Any(m => !m));
    }

    [TestMethod]
    public void GroundTruthAsCompletionScores100()
    {
        var protocol = new EvaluationProtocol(4, 0.5);
        var items = Enumerable.Range(0, 3).Select(i =>
        {
            var truth = Scene(64, 48, 4, 10 + i);
            return (truth, truth, protocol.Mask(i, truth).PixelMask);
        });
        var m = protocol.Evaluate(items);
        Assert.AreEqual(100.0, m.PredictAreaMeanIntersectionOverUnion, 1e-12);
        Assert.AreEqual(100.0, m.MeanIntersectionOverUnion, 1e-12);
        Assert.AreEqual(100.0, m.PredictAreaPixelAccuracy, 1e-12);
        Assert.IsTrue(m.PredictAreaPixelCount > 0 && m.PredictAreaPixelCount < m.PixelCount);

        // Through CompleteAndEvaluate, with an oracle that returns the truth of each image.
        var scenes = Enumerable.Range(0, 3).Select(i => Scene(64, 48, 4, 10 + i)).ToArray();
        var images = scenes.Select(Image).ToArray();
        var byImage = new Dictionary<RgbImage, LabelMap>(ReferenceEqualityComparer.Instance); // records compare by value
        for (int i = 0; i < scenes.Length; i++) byImage.Add(images[i], scenes[i]);
        var oracle = protocol.CompleteAndEvaluate(images.Zip(scenes), batch => batch.Select(b => byImage[b.Image]).ToArray(), batchSize: 2);
        Assert.AreEqual(100.0, oracle.PredictAreaMeanIntersectionOverUnion, 1e-12);
        Assert.AreEqual(m.PredictAreaPixelCount, oracle.PredictAreaPixelCount);
    }

    [TestMethod]
    public void MaskedLabelAsCompletionLeavesThePredictAreaUnpredicted()
    {
        var protocol = new EvaluationProtocol(4, 0.5);
        var truth = Scene(64, 48, 4, 3);
        var (masked, pixelMask) = protocol.Mask(0, truth);
        var m = protocol.Evaluate([(truth, masked, pixelMask)]);
        Assert.AreEqual(0.0, m.PredictAreaPixelAccuracy, 1e-12);
        Assert.AreEqual(0.0, m.PredictAreaMeanIntersectionOverUnion, 1e-12);
        Assert.AreEqual(m.PredictAreaPixelCount, Enumerable.Range(0, 4).Sum(c => m.PredictAreaConfusionMatrix.UnpredictedCount(c)));
    }

    [TestMethod]
    public void CompleteAndEvaluateMatchesTheDirectComputation()
    {
        var protocol = new EvaluationProtocol(6, 0.5, classNames: ["a", "b", "c", "d", "e", "f"]);
        var scenes = Enumerable.Range(0, 5).Select(i => Scene(90 + i * 7, 50 + i * 3, 6, 20 + i)).ToArray();
        var data = scenes.Select(s => (Image(s), s)).ToArray();

        var direct = protocol.Evaluate(scenes.Select((s, i) =>
        {
            var (masked, pixelMask) = protocol.Mask(i, s);
            return (s, NearestKnownFill.Fill(masked, U), pixelMask);
        }));
        var indices = new List<int>();
        var viaHelper = protocol.CompleteAndEvaluate(data, batch => { indices.Add(batch.Count); return EvaluationProtocol.NearestKnownCompleter(U)(batch); }, batchSize: 2);
        CollectionAssert.AreEqual(new[] { 2, 2, 1 }, indices);
        CollectionAssert.AreEqual(direct.PredictAreaConfusionMatrix.ToArray(), viaHelper.PredictAreaConfusionMatrix.ToArray());
        CollectionAssert.AreEqual(direct.ConfusionMatrix.ToArray(), viaHelper.ConfusionMatrix.ToArray());
        Assert.AreEqual(direct.PredictAreaMeanIntersectionOverUnion, viaHelper.PredictAreaMeanIntersectionOverUnion, 1e-12);
        Assert.AreEqual("f", viaHelper.ClassNames![5]);
        Assert.IsTrue(viaHelper.PredictAreaMeanIntersectionOverUnion is > 0 and < 100);

        // Several completers in one pass see identical masks: a copy of NearestKnown scores the same; the masked
        // label itself (identity completer) keeps the known pixels only.
        var both = protocol.CompleteAndEvaluate(data,
            [EvaluationProtocol.NearestKnownCompleter(U), batch => batch.Select(b => b.Masked).ToArray(), EvaluationProtocol.NearestKnownCompleter(U)]);
        Assert.AreEqual(3, both.Count);
        CollectionAssert.AreEqual(direct.PredictAreaConfusionMatrix.ToArray(), both[0].PredictAreaConfusionMatrix.ToArray());
        CollectionAssert.AreEqual(both[0].ConfusionMatrix.ToArray(), both[2].ConfusionMatrix.ToArray());
        Assert.AreEqual(0.0, both[1].PredictAreaPixelAccuracy, 1e-12);
        Assert.AreEqual(direct.PixelCount, both[1].PixelCount);
    }

    [TestMethod]
    public void BadCompleterOutputIsReportedWithTheImage()
    {
        var protocol = new EvaluationProtocol(3, 0.5);
        var scenes = Enumerable.Range(0, 3).Select(i => Scene(40, 30, 3, i)).ToArray();
        var data = scenes.Select(s => (Image(s), s)).ToArray();
        var e = Assert.ThrowsExactly<InvalidOperationException>(() => protocol.CompleteAndEvaluate(data, batch => batch.Take(1).Select(b => b.Masked).ToArray(), batchSize: 2));
        StringAssert.Contains(e.Message, "1 labels for a batch of 2");
        var wrongSize = Assert.ThrowsExactly<ArgumentException>(() => protocol.CompleteAndEvaluate(data,
            batch => batch.Select(b => new LabelMap(b.Masked.Width - 1, b.Masked.Height, new byte[(b.Masked.Width - 1) * b.Masked.Height])).ToArray(), batchSize: 5));
        StringAssert.Contains(wrongSize.Message, "Image 0");
        Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => new EvaluationProtocol(3, 1.5));
        Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => new EvaluationProtocol(3, 0.5, unknownLabel: 2));
    }
}
