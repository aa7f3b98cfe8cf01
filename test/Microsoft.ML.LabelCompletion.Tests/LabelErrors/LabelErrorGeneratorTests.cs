using Microsoft.ML.LabelCompletion.Benchmarks;
using Microsoft.ML.LabelCompletion.Data;
using Microsoft.ML.LabelCompletion.Model;

namespace Microsoft.ML.LabelCompletion.Tests.LabelErrors;

/// <summary>The seeded label-error generator and the ranking metrics of the label-error benchmark.</summary>
[TestClass]
public sealed class LabelErrorGeneratorTests
{
    private const byte Unknown = 255;

    /// <summary>Labels of 96x64 pixels: class 0 background, 12 rectangles of classes 1..3 that do not touch, a void stripe.</summary>
    private static LabelMap[] Labels(int count, int seed)
    {
        var random = new Random(seed);
        var labels = new LabelMap[count];
        for (int n = 0; n < count; n++)
        {
            int w = 96, h = 64;
            var v = new byte[w * h];
            for (int k = 0; k < 12; k++)
            {
                int x0 = k % 4 * 24 + 2, y0 = k / 4 * 20 + 2;
                int rw = random.Next(4, 20), rh = random.Next(4, 16);
                byte cls = (byte)random.Next(1, 4);
                for (int y = y0; y < y0 + rh; y++)
                    for (int x = x0; x < x0 + rw; x++) v[y * w + x] = cls;
            }
            for (int x = 0; x < w; x++) v[(h - 1) * w + x] = Unknown;
            labels[n] = new LabelMap(w, h, v);
        }
        return labels;
    }

    [TestMethod]
    public void TheSameSeedGivesTheSameErrorsAndAnotherSeedOthers()
    {
        var labels = Labels(10, 1);
        var a = LabelErrorGenerator.Corrupt(labels, 4, Unknown, new LabelErrorGeneratorOptions { Seed = 5 });
        var b = LabelErrorGenerator.Corrupt(labels, 4, Unknown, new LabelErrorGeneratorOptions { Seed = 5 });
        var c = LabelErrorGenerator.Corrupt(labels, 4, Unknown, new LabelErrorGeneratorOptions { Seed = 6 });
        for (int i = 0; i < labels.Length; i++)
        {
            CollectionAssert.AreEqual(a[i].Label.Values, b[i].Label.Values, $"image {i}");
            CollectionAssert.AreEqual(a[i].Errors.ToArray(), b[i].Errors.ToArray(), $"image {i}");
        }
        Assert.IsTrue(Enumerable.Range(0, labels.Length).Any(i => !a[i].Label.Values.SequenceEqual(c[i].Label.Values)), "another seed, other errors");
        var clean = Labels(10, 1);
        for (int i = 0; i < labels.Length; i++) CollectionAssert.AreEqual(clean[i].Values, labels[i].Values, "the originals are not changed");
    }

    [TestMethod]
    [DataRow(0.5, 10, 5)]
    [DataRow(0.3, 20, 6)]
    [DataRow(1.0, 7, 7)]
    [DataRow(0.0, 7, 0)]
    public void ExactlyTheStatedShareOfImagesGetsErrors(double rate, int count, int expected)
    {
        var labels = Labels(count, 2);
        var corrupted = LabelErrorGenerator.Corrupt(labels, 4, Unknown, new LabelErrorGeneratorOptions { ImageRate = rate, Seed = 3 });
        Assert.AreEqual(expected, corrupted.Count(c => c.HasErrors));
        for (int i = 0; i < count; i++)
        {
            var changed = labels[i].Values.Select((v, p) => v != corrupted[i].Label.Values[p]).ToArray();
            CollectionAssert.AreEqual(changed, corrupted[i].Changed, $"image {i}: the changed mask is where the labels differ");
            for (int p = 0; p < changed.Length; p++)
                if (labels[i].Values[p] == Unknown) Assert.AreEqual(Unknown, corrupted[i].Label.Values[p], $"image {i}: unknown pixel {p} changed");
        }
    }

    [TestMethod]
    [DataRow(LabelErrorKind.Relabel, 0.3)]
    [DataRow(LabelErrorKind.Erase, 0.2)]
    [DataRow(LabelErrorKind.BoundaryShift, 0.4)]
    [DataRow(LabelErrorKind.MissedSmall, 0.5)]
    public void EachKindHitsTheStatedShareOfObjects(LabelErrorKind kind, double rate)
    {
        var options = new LabelErrorGeneratorOptions
        {
            ImageRate = 1, Seed = 11, RelabelRate = 0, EraseRate = 0, ShiftRate = 0, MissSmallRate = 0, SmallObjectPixels = 100_000,
        };
        switch (kind)
        {
            case LabelErrorKind.Relabel: options.RelabelRate = rate; break;
            case LabelErrorKind.Erase: options.EraseRate = rate; break;
            case LabelErrorKind.BoundaryShift: options.ShiftRate = rate; break;
            case LabelErrorKind.MissedSmall: options.MissSmallRate = rate; break;
        }
        var corrupted = LabelErrorGenerator.Corrupt(Labels(60, 4), 4, Unknown, options);
        int objects = corrupted.Sum(c => c.EligibleObjects);
        int hits = corrupted.Sum(c => c.Errors.Count(e => e.Kind == kind));
        Assert.IsTrue(objects > 500, $"{objects} objects");
        Assert.AreEqual(rate, hits / (double)objects, 0.06, $"{hits} of {objects} objects got {kind}");
        Assert.IsTrue(corrupted.SelectMany(c => c.Errors).All(e => e.Kind == kind || e.Kind == LabelErrorKind.Relabel),
            "only the kind asked for (and a relabel where an image would stay clean)");
    }

    [TestMethod]
    public void RelabelUsesTheConfusableClass()
    {
        var options = new LabelErrorGeneratorOptions { ImageRate = 1, RelabelRate = 1, EraseRate = 0, ShiftRate = 0, MissSmallRate = 0, Confusions = [1, 2, 3, 1] };
        var labels = Labels(3, 7);
        var corrupted = LabelErrorGenerator.Corrupt(labels, 4, Unknown, options);
        for (int i = 0; i < labels.Length; i++)
            for (int p = 0; p < labels[i].Values.Length; p++)
                if (corrupted[i].Changed[p]) Assert.AreEqual(options.Confusions[labels[i].Values[p]], corrupted[i].Label.Values[p]);
    }

    [TestMethod]
    public void AveragePrecisionAndAurocMatchHandComputations()
    {
        Assert.AreEqual((1.0 * 0.5) + (2.0 / 3 * 0.5), LabelErrorBenchmark.AveragePrecision([0.9f, 0.8f, 0.7f, 0.6f], [true, false, true, false]), 1e-12);
        Assert.AreEqual(1.0, LabelErrorBenchmark.AveragePrecision([0.9f, 0.8f, 0.1f], [true, true, false]), 1e-12);
        Assert.AreEqual(0.5, LabelErrorBenchmark.AveragePrecision([1f, 1f, 1f, 1f], [true, false, true, false]), 1e-12, "all tied: the positives' share");
        Assert.AreEqual(0.75, LabelErrorBenchmark.Auroc([0.9, 0.8, 0.7, 0.6], [true, false, true, false]), 1e-12);
        Assert.AreEqual(0.5, LabelErrorBenchmark.Auroc([1, 1, 1, 1], [true, false, true, false]), 1e-12, "ties count half");
        Assert.AreEqual(0.0, LabelErrorBenchmark.Auroc([0.1, 0.9], [true, false]), 1e-12);
    }

    [TestMethod]
    public void NearestKnownBaselineFlagsAnIsolatedWrongPatch()
    {
        // A uniform label with one wrong 8x8 patch: the fill of that patch from its neighbours disagrees with all of it; a
        // neighbouring patch may be filled from the wrong one, nothing farther away is flagged.
        var v = new byte[32 * 32];
        for (int y = 8; y < 16; y++)
            for (int x = 8; x < 16; x++) v[y * 32 + x] = 2;
        var (flagged, _) = LabelErrorFinder.NearestKnownDisagreement(new LabelMap(32, 32, v), Unknown, 8, 4);
        for (int i = 0; i < v.Length; i++)
        {
            int x = i % 32, y = i / 32;
            if (v[i] == 2) Assert.IsTrue(flagged[i], $"wrong pixel {i} is not flagged");
            else if (x >= 24 || y >= 24) Assert.IsFalse(flagged[i], $"pixel {i}, far from the wrong patch, is flagged");
        }
    }
}
