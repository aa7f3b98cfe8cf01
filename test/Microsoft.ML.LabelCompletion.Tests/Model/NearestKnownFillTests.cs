using Microsoft.ML.LabelCompletion.Data;
using Microsoft.ML.LabelCompletion.Model;
using Microsoft.ML.LabelCompletion.Evaluation;

namespace Microsoft.ML.LabelCompletion.Tests.Model;

[TestClass]
public sealed class NearestKnownFillTests
{
    private const byte U = 255;

    private static byte[] Fill(int width, int height, byte[] values)
        => NearestKnownFill.Fill(new LabelMap(width, height, values), U).Values;

    [TestMethod]
    public void OneRowTieGoesLeft()
    {
        // Pixel 2 is at distance 2 from both sites: the left one wins.
        CollectionAssert.AreEqual(new byte[] { 0, 0, 0, 1, 1 }, Fill(5, 1, [0, U, U, U, 1]));
    }

    [TestMethod]
    public void OneColumnTieGoesUp()
    {
        CollectionAssert.AreEqual(new byte[] { 0, 0, 0, 1, 1 }, Fill(1, 5, [0, U, U, U, 1]));
    }

    [TestMethod]
    public void DiagonalSiteBeatsFartherAxisSites()
    {
        // 3 at (2,0), 1 at (1,1), 2 at (0,2). Corners (0,0) and (2,2) are at squared distance 2 from the diagonal 1
        // and 4 from the axis-aligned 3 and 2. Ties at squared distance 1 go to the leftmost site.
        byte[] label =
        [
            U, U, 3,
            U, 1, U,
            2, U, U,
        ];
        byte[] expected =
        [
            1, 1, 3,
            2, 1, 1,
            2, 2, 1,
        ];
        CollectionAssert.AreEqual(expected, Fill(3, 3, label));
    }

    [TestMethod]
    public void TwoCornersSplitAlongTheAntiDiagonal()
    {
        byte[] label =
        [
            1, U, U, U,
            U, U, U, U,
            U, U, U, U,
            U, U, U, 2,
        ];
        byte[] expected =
        [
            1, 1, 1, 1,
            1, 1, 1, 2,
            1, 1, 2, 2,
            1, 2, 2, 2,
        ];
        CollectionAssert.AreEqual(expected, Fill(4, 4, label));
    }

    [TestMethod]
    public void SingleSiteFillsEverything()
    {
        var label = Enumerable.Repeat(U, 7 * 5).ToArray();
        label[3 * 7 + 6] = 4;
        CollectionAssert.AreEqual(Enumerable.Repeat((byte)4, 35).ToArray(), Fill(7, 5, label));
    }

    [TestMethod]
    public void NoKnownPixelLeavesTheLabelUnchanged()
    {
        var label = Enumerable.Repeat(U, 12).ToArray();
        CollectionAssert.AreEqual(label, Fill(4, 3, label));
    }

    [TestMethod]
    public void FullyKnownLabelIsUnchangedAndInputIsNotModified()
    {
        byte[] label = [0, 1, 2, 3, 4, 5];
        var input = new LabelMap(3, 2, label);
        var filled = NearestKnownFill.Fill(input, U);
        CollectionAssert.AreEqual(label, filled.Values);
        Assert.AreNotSame(label, filled.Values);

        byte[] holes = [0, U, U, 3];
        var copy = (byte[])holes.Clone();
        NearestKnownFill.Fill(new LabelMap(2, 2, holes), U);
        CollectionAssert.AreEqual(copy, holes);
    }

    [TestMethod]
    [DataRow(1)]
    [DataRow(2)]
    [DataRow(3)]
    [DataRow(4)]
    [DataRow(5)]
    [DataRow(6)]
    public void MatchesBruteForceOnRandomLabels(int seed)
    {
        const int width = 30, height = 20;
        var random = new Random(seed);
        foreach (double knownShare in new[] { 0.01, 0.05, 0.3, 0.9 })
        {
            var label = new byte[width * height];
            for (int i = 0; i < label.Length; i++) label[i] = random.NextDouble() < knownShare ? (byte)random.Next(6) : U;
            CollectionAssert.AreEqual(BruteForce(width, height, label), Fill(width, height, label), $"seed {seed}, known share {knownShare}");
        }

        // Patch-shaped holes, as the mask selector makes them (patch 4), with a few isolated known pixels inside.
        var patched = new byte[width * height];
        for (int i = 0; i < patched.Length; i++) patched[i] = (byte)random.Next(4);
        for (int py = 0; py < height; py += 4)
            for (int px = 0; px < width; px += 4)
                if (random.NextDouble() < 0.6)
                    for (int y = py; y < Math.Min(py + 4, height); y++)
                        for (int x = px; x < Math.Min(px + 4, width); x++)
                            patched[y * width + x] = random.NextDouble() < 0.03 ? (byte)random.Next(4) : U;
        CollectionAssert.AreEqual(BruteForce(width, height, patched), Fill(width, height, patched), $"seed {seed}, patch holes");
    }

    [TestMethod]
    public void SpanOverloadWorksInPlaceAndChecksLengths()
    {
        const int width = 17, height = 11;
        var random = new Random(42);
        var label = new byte[width * height];
        for (int i = 0; i < label.Length; i++) label[i] = random.NextDouble() < 0.1 ? (byte)random.Next(3) : U;
        var expected = BruteForce(width, height, label);

        var buffer = (byte[])label.Clone();
        NearestKnownFill.Fill(buffer, width, height, U, buffer);
        CollectionAssert.AreEqual(expected, buffer);

        var result = new byte[label.Length];
        NearestKnownFill.Fill(label, width, height, U, result);
        CollectionAssert.AreEqual(expected, result);

        Assert.ThrowsExactly<ArgumentException>(() => NearestKnownFill.Fill(label, width, height, U, new byte[label.Length - 1]));
        Assert.ThrowsExactly<ArgumentException>(() => NearestKnownFill.Fill(label, width + 1, height, U, result));
    }

    [TestMethod]
    public void UnknownValueIsConfigurable()
    {
        // With unknown = 0, the zeros are filled and 255 is an ordinary label.
        var filled = NearestKnownFill.Fill(new LabelMap(4, 1, [255, 0, 0, 7]), 0);
        CollectionAssert.AreEqual(new byte[] { 255, 255, 7, 7 }, filled.Values);
    }

    /// <summary>O(N²) reference: the known pixel minimising (squared distance, x, y).</summary>
    private static byte[] BruteForce(int width, int height, byte[] label)
    {
        var result = (byte[])label.Clone();
        for (int y = 0; y < height; y++)
            for (int x = 0; x < width; x++)
            {
                if (label[y * width + x] != U) continue;
                long best = long.MaxValue;
                int bestX = int.MaxValue, bestY = int.MaxValue;
                for (int sy = 0; sy < height; sy++)
                    for (int sx = 0; sx < width; sx++)
                    {
                        if (label[sy * width + sx] == U) continue;
                        long d = (long)(sx - x) * (sx - x) + (long)(sy - y) * (sy - y);
                        if (d < best || (d == best && (sx < bestX || (sx == bestX && sy < bestY))))
                        {
                            best = d;
                            bestX = sx;
                            bestY = sy;
                        }
                    }
                if (best != long.MaxValue) result[y * width + x] = label[bestY * width + bestX];
            }
        return result;
    }
}
