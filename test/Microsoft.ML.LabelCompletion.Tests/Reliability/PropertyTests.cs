using CsCheck;
using Microsoft.ML.LabelCompletion.Data;
using Microsoft.ML.LabelCompletion.Evaluation;
using Microsoft.ML.LabelCompletion.Model;
using static TorchSharp.torch;

namespace Microsoft.ML.LabelCompletion.Tests.Reliability;

/// <summary>Properties of fusion, masking, completion and the metrics on random inputs (CsCheck shrinks any counterexample).</summary>
[TestClass]
public sealed class PropertyTests
{
    private const int Classes = 4;
    private const byte Unknown = 255;

    /// <summary>A label map of 1..40 x 1..40 pixels; each pixel unknown with the given probability (0..1), else a class.</summary>
    private static Gen<LabelMap> Labels(double unknownShare) =>
        Gen.Select(Gen.Int[1, 40], Gen.Int[1, 40], Gen.UInt).Select((w, h, seed) =>
        {
            var random = new Random((int)seed);
            var values = new byte[w * h];
            // Blobs of one class, so NearestKnown and the metrics see regions, not only noise.
            byte current = (byte)random.Next(Classes);
            for (int i = 0; i < values.Length; i++)
            {
                if (random.NextDouble() < 0.1) current = (byte)random.Next(Classes);
                values[i] = random.NextDouble() < unknownShare ? Unknown : current;
            }
            return new LabelMap(w, h, values);
        });

    private static Gen<LabelMap> PartlyUnknownLabels => Gen.Double[0, 1].SelectMany(share => Labels(share));

    private static RgbImage ImageFor(LabelMap label, int seed)
    {
        var pixels = new byte[label.Width * label.Height * 3];
        new Random(seed).NextBytes(pixels);
        return new RgbImage(label.Width, label.Height, pixels);
    }

    [TestMethod]
    public void CompletingALabelWithNoUnknownPixel_ReturnsItUnchanged()
    {
        var options = new LabelCompletionOptions { NumberOfClasses = Classes, ModelSize = LabelCompletionModelSize.Tiny, TrainingSize = 16, NumberOfThreads = 1 };
        using var model = ModelFileTests.NewModel(new MLContext(seed: 1), options);
        Labels(0).Sample(label =>
        {
            var result = model.Complete(ImageFor(label, label.Width * 41 + label.Height), label);
            return result.Completed.Values.AsSpan().SequenceEqual(label.Values)
                && result.Confidence.All(c => c == 1f)
                && result.CompletionMask.All(m => !m);
        }, iter: 25);
    }

    [TestMethod]
    public void Completion_KeepsEveryKnownPixel_AndPredictsEveryUnknownOne()
    {
        var options = new LabelCompletionOptions { NumberOfClasses = Classes, ModelSize = LabelCompletionModelSize.Tiny, TrainingSize = 16, NumberOfThreads = 1 };
        using var model = ModelFileTests.NewModel(new MLContext(seed: 1), options);
        PartlyUnknownLabels.Sample(label =>
        {
            var result = model.Complete(ImageFor(label, label.Values.Length), label);
            // The Unknown selector masks every patch that holds an unknown pixel, but only the unknown pixels come from the
            // network: the known pixels of those patches are the user's labels.
            for (int i = 0; i < label.Values.Length; i++)
            {
                bool unknown = label.Values[i] == Unknown;
                if (result.CompletionMask[i] != unknown) return false;
                if (!unknown && result.Completed.Values[i] != label.Values[i]) return false;
                if (unknown && result.Completed.Values[i] >= Classes) return false;
                if (!(result.Confidence[i] > 0 && result.Confidence[i] <= 1)) return false;
            }
            return true;
        }, iter: 25);
    }

    [TestMethod]
    public void NearestKnown_OfAFullLabel_IsTheIdentity_AndOfAnyLabel_KeepsKnownPixels()
    {
        Labels(0).Sample(label => NearestKnownFill.Fill(label, Unknown).Values.AsSpan().SequenceEqual(label.Values), iter: 200);
        PartlyUnknownLabels.Sample(label =>
        {
            var filled = NearestKnownFill.Fill(label, Unknown).Values;
            bool anyKnown = label.Values.Any(v => v != Unknown);
            for (int i = 0; i < filled.Length; i++)
            {
                if (label.Values[i] != Unknown && filled[i] != label.Values[i]) return false;
                if (anyKnown && filled[i] == Unknown) return false;
            }
            return true;
        }, iter: 200);
    }

    [TestMethod]
    public void PaMiouOfTheGroundTruthItself_Is100()
    {
        PartlyUnknownLabels.Sample(truth =>
        {
            var protocol = new EvaluationProtocol(Classes, 0.5, Unknown);
            var (_, pixelMask) = protocol.Mask(0, truth);
            var metrics = protocol.Evaluate([(truth, truth, pixelMask)]);
            bool anyKnownMasked = truth.Values.Where((v, i) => pixelMask[i] && v != Unknown).Any();
            bool anyKnown = truth.Values.Any(v => v != Unknown);
            return (anyKnownMasked ? metrics.PredictAreaMeanIntersectionOverUnion == 100 && metrics.PredictAreaPixelAccuracy == 100
                                   : double.IsNaN(metrics.PredictAreaMeanIntersectionOverUnion))
                && (anyKnown ? metrics.MeanIntersectionOverUnion == 100 : double.IsNaN(metrics.MeanIntersectionOverUnion));
        }, iter: 200);
    }

    [TestMethod]
    public void MaskSelectors_MaskExactlyTheirCount()
    {
        Gen.Select(Gen.Int[1, 400], Gen.Double[0, 1], Gen.Int, Gen.Long[0, 1000]).Sample((patches, ratio, seed, index) =>
        {
            int expected = MaskSelector.MaskedCount(patches, ratio);
            // floor(L*m), robust to the representation error of m (374 * (6/11) is 204, not 203.99999999999997).
            return (expected == (int)Math.Floor(patches * ratio) || expected == (int)Math.Floor(patches * ratio) + 1
                    && Math.Abs(patches * ratio - expected) < 1e-9)
                && MaskSelector.RandomForEvaluation(patches, ratio, seed, index).Count(m => m) == expected
                && MaskSelector.RandomForEvaluation(patches, ratio, seed, index).SequenceEqual(MaskSelector.RandomForEvaluation(patches, ratio, seed, index))
                && MaskSelector.RandomForTraining(patches, ratio, new Random(seed)).Count(m => m) == expected;
        }, iter: 300);

        Gen.Select(PartlyUnknownLabels, Gen.Int[1, 9], Gen.Double[0, 1]).Sample((label, patch, ratio) =>
        {
            var (rows, columns) = MaskSelector.Grid(label.Width, label.Height, patch);
            if (MaskSelector.Background(label, patch, 0, ratio).Count(m => m) != MaskSelector.MaskedCount(rows * columns, ratio)) return false;
            // Unknown: a patch is masked exactly when one of its image pixels is unknown.
            var unknown = MaskSelector.Unknown(label, patch, Unknown);
            for (int r = 0; r < rows; r++)
                for (int c = 0; c < columns; c++)
                {
                    bool any = false;
                    for (int y = r * patch; y < Math.Min(label.Height, (r + 1) * patch); y++)
                        for (int x = c * patch; x < Math.Min(label.Width, (c + 1) * patch); x++)
                            any |= label.Values[y * label.Width + x] == Unknown;
                    if (unknown[r * columns + c] != any) return false;
                }
            // Apply hides exactly the masked patches' pixels.
            var applied = MaskSelector.Apply(label, unknown, patch, Unknown);
            var pixels = MaskSelector.ToPixelMask(unknown, label.Width, label.Height, patch);
            return applied.Values.Select((v, i) => pixels[i] ? v == Unknown : v == label.Values[i]).All(ok => ok);
        }, iter: 200);
    }

    [TestMethod]
    public void StackFusion_OneHotHasOneChannelPerKnownPixelAndNoneForUnknown()
    {
        PartlyUnknownLabels.Sample(label =>
        {
            using var scope = NewDisposeScope();
            var indices = label.Values.Select(v => v == Unknown ? -1L : v).ToArray();
            var labels = tensor(indices, [1, label.Height, label.Width]);
            var rgb = zeros(1, 3, label.Height, label.Width);
            var fused = StackFusion.Fuse(labels, rgb, Classes);
            if (!fused.shape.SequenceEqual(new long[] { 1, Classes + 3, label.Height, label.Width })) return false;
            var oneHot = fused.narrow(1, 0, Classes);
            var sums = oneHot.sum(1).flatten().data<float>().ToArray();
            var argmax = oneHot.argmax(1).flatten().data<long>().ToArray();
            for (int i = 0; i < indices.Length; i++)
            {
                if (sums[i] != (indices[i] < 0 ? 0f : 1f)) return false;
                if (indices[i] >= 0 && argmax[i] != indices[i]) return false;
            }
            return true;
        }, iter: 100);
    }
}
