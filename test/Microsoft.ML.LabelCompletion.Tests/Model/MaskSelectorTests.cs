using Microsoft.ML.LabelCompletion.Data;
using Microsoft.ML.LabelCompletion.Model;

namespace Microsoft.ML.LabelCompletion.Tests;

[TestClass]
public sealed class MaskSelectorTests
{
    [TestMethod]
    [DataRow(196, 0.5, 98)]
    [DataRow(690, 0.6, 414)]
    [DataRow(7, 0.5, 3)]
    [DataRow(10, 0.0, 0)]
    [DataRow(10, 1.0, 10)]
    public void RandomMasksExactlyFloorLm(int patches, double ratio, int expected)
    {
        Assert.AreEqual(expected, MaskSelector.RandomForTraining(patches, ratio, new Random(3)).Count(m => m));
        Assert.AreEqual(expected, MaskSelector.RandomForEvaluation(patches, ratio, 0, 5).Count(m => m));
    }

    [TestMethod]
    public void EvaluationMaskIsReproducibleAndDependsOnSeedAndImage()
    {
        var a = MaskSelector.RandomForEvaluation(690, 0.5, 0, 1);
        CollectionAssert.AreEqual(a, MaskSelector.RandomForEvaluation(690, 0.5, 0, 1));
        CollectionAssert.AreNotEqual(a, MaskSelector.RandomForEvaluation(690, 0.5, 1, 1));
        CollectionAssert.AreNotEqual(a, MaskSelector.RandomForEvaluation(690, 0.5, 0, 2));
        CollectionAssert.AreEqual(
            MaskSelector.RandomForTraining(196, 0.5, new Random(7)), MaskSelector.RandomForTraining(196, 0.5, new Random(7)));
        CollectionAssert.AreNotEqual(
            MaskSelector.RandomForTraining(196, 0.5, new Random(7)), MaskSelector.RandomForTraining(196, 0.5, new Random(8)));
    }

    [TestMethod]
    public void UnknownMasksExactlyThePatchesHoldingUnknownPixels()
    {
        // 10x6 image, patch 4 -> grid 2 rows x 3 columns; padding in the last column and row does not count.
        var values = new byte[60];
        values[0 * 10 + 5] = 255;  // patch (0,1)
        values[5 * 10 + 9] = 255;  // patch (1,2), a padded patch
        var mask = MaskSelector.Unknown(new LabelMap(10, 6, values), 4, 255);
        CollectionAssert.AreEqual(new[] { false, true, false, false, false, true }, mask);
    }

    [TestMethod]
    public void BackgroundPicksTopSharesWithIndexTieBreak()
    {
        // 8x8 image, patch 4 -> 4 patches. Background class 0 shares: p0 = 4/16, p1 = 16/16, p2 = 4/16, p3 = 0.
        var values = Enumerable.Repeat((byte)1, 64).ToArray();
        void Fill(int x0, int y0, int n)
        {
            for (int k = 0; k < n; k++) values[(y0 + k / 4) * 8 + x0 + k % 4] = 0;
        }
        Fill(0, 0, 4); Fill(4, 0, 16); Fill(0, 4, 4);
        var label = new LabelMap(8, 8, values);
        // l = floor(4 * 0.5) = 2: p1 first, then the tie p0/p2 goes to the lower index p0.
        CollectionAssert.AreEqual(new[] { true, true, false, false }, MaskSelector.Background(label, 4, 0, 0.5));
        CollectionAssert.AreEqual(new[] { true, true, true, false }, MaskSelector.Background(label, 4, 0, 0.75));
    }

    [TestMethod]
    public void ApplyHidesExactlyThePixelsOfMaskedPatches()
    {
        var label = new LabelMap(5, 3, Enumerable.Range(0, 15).Select(i => (byte)(i % 3)).ToArray());
        var masked = MaskSelector.Apply(label, new[] { false, true, false, false, false, false }, 2, 255);
        for (int y = 0; y < 3; y++)
            for (int x = 0; x < 5; x++)
            {
                bool inPatch1 = y < 2 && (x == 2 || x == 3);
                Assert.AreEqual(inPatch1 ? (byte)255 : label.Values[y * 5 + x], masked.Values[y * 5 + x], $"pixel {x},{y}");
            }
    }
}
