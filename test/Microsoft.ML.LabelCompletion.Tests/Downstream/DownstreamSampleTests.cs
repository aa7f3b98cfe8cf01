using LabelCompletion.Downstream;
using Microsoft.ML.LabelCompletion.Data;
using Microsoft.ML.LabelCompletion.Evaluation;
using Microsoft.ML.LabelCompletion.Model;
using Microsoft.ML.LabelCompletion.Synthetic;
using TorchSharp;
using static TorchSharp.torch;

namespace Microsoft.ML.LabelCompletion.Tests.Downstream;

/// <summary>
/// The downstream sample's reusable parts (samples/LabelCompletion.Downstream, LabelSets.cs and Segmenter.cs, compiled
/// into this project): the degraded labels hide exactly the evaluation protocol's patches, the completed sets change only
/// the holes, the segmenter's loss ignores unknown pixels, and the segmenter learns a trivially learnable task.
/// </summary>
[TestClass]
public sealed class DownstreamSampleTests
{
    private const byte Unknown = 255;

    [TestMethod]
    public void Degrade_HidesExactlyTheProtocolsPatches_PerImageIndex()
    {
        var truths = Enumerable.Range(0, 4).Select(i => SyntheticScenes.Generate(80, 48, 100 + i).Label).ToArray();
        truths[1].Values[5] = Unknown; // a void pixel outside or inside a hole stays unknown
        var protocol = new EvaluationProtocol(SyntheticScenes.NumberOfClasses, 0.5, Unknown);
        var (degraded, holes) = LabelSets.Degrade(truths, protocol);

        int patches = 5 * 3; // 80x48 in 16-pixel patches
        for (int i = 0; i < truths.Length; i++)
        {
            var patchMask = protocol.PatchMask(80, 48, i);
            Assert.AreEqual(patches / 2, patchMask.Count(m => m), "floor(L * 0.5) patches hidden");
            for (int p = 0; p < truths[i].Values.Length; p++)
            {
                bool hidden = patchMask[(p / 80 / 16) * 5 + (p % 80) / 16];
                Assert.AreEqual(hidden, holes[i][p], $"image {i} pixel {p}: hole mask");
                Assert.AreEqual(hidden ? Unknown : truths[i].Values[p], degraded[i].Values[p], $"image {i} pixel {p}");
            }
        }
        // Each image has its own mask (the image index seeds it).
        Assert.IsFalse(holes[0].SequenceEqual(holes[1]) && holes[1].SequenceEqual(holes[2]), "every image got the same holes");
        var stats = LabelSets.Statistics(degraded, truths, Unknown);
        Assert.AreEqual(0, stats.Wrong);
        Assert.AreEqual(truths.Sum(t => (long)t.Values.Length), stats.Pixels);
        Assert.AreEqual(degraded.Sum(d => d.Values.LongCount(v => v != Unknown)), stats.Labelled);
    }

    [TestMethod]
    public void CompletedSets_ChangeOnlyTheHoles_AndCountWrongPixels()
    {
        var truth = new LabelMap(4, 1, [0, 1, 2, Unknown]);
        var degraded = new LabelMap(4, 1, [0, Unknown, Unknown, Unknown]);
        bool[] holes = [false, true, true, true];
        var completion = new LabelMap(4, 1, [2, 1, 0, 1]); // the completer's value outside the holes is ignored
        var filled = LabelSets.FillHoles(degraded, holes, completion);
        CollectionAssert.AreEqual(new byte[] { 0, 1, 0, 1 }, filled.Values);

        var stats = LabelSets.Statistics([filled], [truth], Unknown);
        Assert.AreEqual(new LabelSetStatistics(4, 4, 1, 1), stats, "pixel 2 is wrong, pixel 3 lies on void");

        var confident = LabelSets.DropLowConfidence(filled, holes, [0.1f, 0.9f, 0.4f, 0.5f], 0.5f, Unknown);
        CollectionAssert.AreEqual(new byte[] { 0, 1, Unknown, 1 }, confident.Values, "only hole pixels below 0.5 are dropped");

        var nearest = LabelSets.NearestKnown([new LabelMap(3, 1, [0, Unknown, Unknown])], [[false, true, false]], Unknown);
        CollectionAssert.AreEqual(new byte[] { 0, 0, Unknown }, nearest[0].Values, "NearestKnown fills the hole only");
    }

    [TestMethod]
    public void Loss_CountsKnownPixelsOnly()
    {
        using var scope = NewDisposeScope();
        var generator = new Random(7);
        var logits = randn(2, 3, 4, 5, generator: new Generator(7));
        var values = Enumerable.Range(0, 40).Select(_ => (long)(generator.Next(2) == 0 ? Unknown : generator.Next(3))).ToArray();
        values[0] = 1;
        var labels = tensor(values, [2, 4, 5]);

        // By hand: the mean negative log-probability of the label over the known pixels.
        var logProbabilities = nn.functional.log_softmax(logits, 1);
        double sum = 0;
        int known = 0;
        for (int k = 0; k < values.Length; k++)
        {
            if (values[k] == Unknown) continue;
            int b = k / 20, y = k % 20 / 5, x = k % 5;
            sum -= logProbabilities[b, values[k], y, x].item<float>();
            known++;
        }
        var loss = Segmenter.Loss(logits, labels, Unknown)!;
        Assert.AreEqual(sum / known, loss.item<float>(), 1e-5);

        // Changing the logits of unknown pixels changes nothing.
        using var unknown = ((long)Unknown).ToScalar();
        var unknownMask = labels.eq(unknown).unsqueeze(1).expand(2, 3, 4, 5);
        var changed = logits.where(unknownMask.logical_not(), randn(2, 3, 4, 5, generator: new Generator(8)));
        Assert.AreEqual(loss.item<float>(), Segmenter.Loss(changed, labels, Unknown)!.item<float>(), 1e-6);
        Assert.IsNull(Segmenter.Loss(logits, full_like(labels, unknown), Unknown), "no known pixel: no loss");
    }

    [TestMethod]
    public void Segmenter_LearnsColouredShapes_FromPartialLabels()
    {
        int threads = torch.get_num_threads();
        torch.set_num_threads(1);
        try
        {
            var train = Enumerable.Range(0, 16).Select(i => Shapes(96, 96, 10 + i)).ToArray();
            var test = Enumerable.Range(0, 4).Select(i => Shapes(96, 96, 50 + i)).ToArray();
            // Train on degraded labels (half the 16-pixel patches hidden): the loss must learn from the rest.
            var protocol = new EvaluationProtocol(3, 0.5, Unknown);
            var (degraded, _) = LabelSets.Degrade(train.Select(s => s.Label).ToArray(), protocol);

            using var backbone = ResNet18Backbone.Load(stages: 4);
            using var trainFeatures = FeatureCache.Compute(backbone, train.Select(s => s.Image).ToArray(), withFlips: true);
            using var testFeatures = FeatureCache.Compute(backbone, test.Select(s => s.Image).ToArray(), withFlips: false);
            using var segmenter = new Segmenter(3, Unknown, decoderWidth: 32, seed: 3);
            var before = segmenter.Evaluate(testFeatures, test.Select(s => s.Label).ToArray()).MeanIntersectionOverUnion;
            var result = segmenter.Train(trainFeatures, degraded, new SegmenterOptions { Epochs = 60, BatchSize = 4, LearningRate = 3e-3, Seed = 3 });
            var after = segmenter.Evaluate(testFeatures, test.Select(s => s.Label).ToArray());

            // Predicting the background everywhere scores about 27 (background IoU about 80, the shapes 0).
            Assert.AreEqual(60, result.Epochs);
            Assert.IsTrue(after.MeanIntersectionOverUnion > 65, $"mIoU {after.MeanIntersectionOverUnion:F1} after training (before: {before:F1}; per class {string.Join(", ", Enumerable.Range(0, 3).Select(c => after.IntersectionOverUnion(c).ToString("F1")))})");
            for (int c = 0; c < 3; c++) Assert.IsTrue(after.IntersectionOverUnion(c) > 40, $"class {c}: IoU {after.IntersectionOverUnion(c):F1}");
        }
        finally
        {
            torch.set_num_threads(threads);
        }
    }

    /// <summary>A green-grey background (class 0) with a red rectangle (class 1) and a blue disc (class 2), with pixel noise.</summary>
    private static (RgbImage Image, LabelMap Label) Shapes(int width, int height, int seed)
    {
        var random = new Random(seed);
        var label = new byte[width * height];
        int rx = random.Next(0, width / 2), ry = random.Next(0, height / 2), rw = random.Next(24, width / 2), rh = random.Next(24, height / 2);
        int cx = random.Next(20, width - 20), cy = random.Next(20, height - 20), r = random.Next(12, 20);
        byte[][] colours = [[90, 130, 90], [210, 40, 40], [40, 60, 210]];
        var pixels = new byte[width * height * 3];
        for (int y = 0; y < height; y++)
            for (int x = 0; x < width; x++)
            {
                byte c = 0;
                if (x >= rx && x < rx + rw && y >= ry && y < ry + rh) c = 1;
                if ((x - cx) * (x - cx) + (y - cy) * (y - cy) <= r * r) c = 2;
                label[y * width + x] = c;
                for (int k = 0; k < 3; k++) pixels[3 * (y * width + x) + k] = (byte)Math.Clamp(colours[c][k] + random.Next(-25, 26), 0, 255);
            }
        return (new RgbImage(width, height, pixels), new LabelMap(width, height, label));
    }
}
