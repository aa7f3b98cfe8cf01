using Microsoft.ML.LabelCompletion.Data;

namespace Microsoft.ML.LabelCompletion.Model;

/// <summary>How the Mask Selector (paper §3.2) chooses the patches whose label is hidden and reconstructed.</summary>
public enum MaskSelectorMode
{
    /// <summary>
    /// Mask every patch that holds at least one unknown pixel (real use: complete the holes). Only the unknown pixels are
    /// predicted: the known pixels of a masked patch keep their label and feed the label prior.
    /// </summary>
    Unknown = 0,

    /// <summary>Mask the top <c>floor(L*m)</c> patches by share of a background class, ties broken by patch index (paper §3.2); every pixel of a masked patch is hidden from the inputs and predicted.</summary>
    Background = 1,

    /// <summary>Mask <c>floor(L*m)</c> patches chosen at random, reproducibly per image from a seed (evaluation protocol); every pixel of a masked patch is hidden from the inputs and predicted.</summary>
    Random = 2,
}

/// <summary>
/// The Mask Selector of the paper (§3.2). Patches are indexed row-major over the grid of
/// <c>ceil(H/p) x ceil(W/p)</c> patches; a mask is one <see cref="bool"/> per patch, <c>true</c> = masked.
/// </summary>
public static class MaskSelector
{
    /// <summary>Number of masked patches, <c>l = floor(L * m)</c>.</summary>
    public static int MaskedCount(int patchCount, double maskRatio)
    {
        if (maskRatio < 0 || maskRatio > 1) throw new ArgumentOutOfRangeException(nameof(maskRatio), maskRatio, "Mask ratio must be in [0, 1].");
        return (int)Math.Floor(patchCount * maskRatio + 1e-9);
    }

    /// <summary>Grid size (rows, columns) for an image of the given size and patch size.</summary>
    public static (int Rows, int Columns) Grid(int width, int height, int patchSize)
        => ((height + patchSize - 1) / patchSize, (width + patchSize - 1) / patchSize);

    /// <summary>Training: <c>floor(L*m)</c> patches uniformly at random, drawn from <paramref name="random"/>.</summary>
    public static bool[] RandomForTraining(int patchCount, double maskRatio, Random random)
    {
        ArgumentNullException.ThrowIfNull(random);
        return ChooseRandom(patchCount, MaskedCount(patchCount, maskRatio), random.Next);
    }

    /// <summary>
    /// Evaluation: <c>floor(L*m)</c> patches at random, the same for the same (seed, image index) on every machine
    /// (a SplitMix64 stream, not <see cref="System.Random"/>, so the protocol does not depend on the runtime).
    /// </summary>
    public static bool[] RandomForEvaluation(int patchCount, double maskRatio, int seed, long imageIndex)
    {
        var rng = new SplitMix64(unchecked((ulong)seed * 0x9E3779B97F4A7C15UL ^ (ulong)imageIndex * 0xD1B54A32D192ED03UL));
        return ChooseRandom(patchCount, MaskedCount(patchCount, maskRatio), bound => (int)(rng.Next() % (ulong)bound));
    }

    /// <summary>Inference: every patch holding at least one unknown pixel of the image (padding does not count).</summary>
    public static bool[] Unknown(LabelMap label, int patchSize, byte unknownLabel)
    {
        var (rows, cols) = Grid(label.Width, label.Height, patchSize);
        var mask = new bool[rows * cols];
        for (int y = 0; y < label.Height; y++)
        {
            int row = y / patchSize * cols;
            int offset = y * label.Width;
            for (int x = 0; x < label.Width; x++)
                if (label.Values[offset + x] == unknownLabel) mask[row + x / patchSize] = true;
        }
        return mask;
    }

    /// <summary>
    /// Inference (paper §3.2): the top <c>floor(L*m)</c> patches by share of <paramref name="backgroundClass"/> among the
    /// patch's image pixels; equal shares are ordered by patch index.
    /// </summary>
    public static bool[] Background(LabelMap label, int patchSize, byte backgroundClass, double maskRatio)
    {
        var (rows, cols) = Grid(label.Width, label.Height, patchSize);
        int count = rows * cols;
        var background = new int[count];
        var pixels = new int[count];
        for (int y = 0; y < label.Height; y++)
        {
            int row = y / patchSize * cols;
            for (int x = 0; x < label.Width; x++)
            {
                int p = row + x / patchSize;
                pixels[p]++;
                if (label.Values[y * label.Width + x] == backgroundClass) background[p]++;
            }
        }
        var order = Enumerable.Range(0, count)
            .OrderByDescending(p => (double)background[p] / pixels[p])
            .ThenBy(p => p)
            .Take(MaskedCount(count, maskRatio));
        var mask = new bool[count];
        foreach (int p in order) mask[p] = true;
        return mask;
    }

    /// <summary>Expands a patch mask to one flag per image pixel.</summary>
    public static bool[] ToPixelMask(bool[] patchMask, int width, int height, int patchSize)
    {
        var (rows, cols) = Grid(width, height, patchSize);
        if (patchMask.Length != rows * cols)
            throw new ArgumentException($"Patch mask has {patchMask.Length} entries; a {width}x{height} image with patch {patchSize} has {rows * cols} patches.", nameof(patchMask));
        var pixels = new bool[width * height];
        for (int y = 0; y < height; y++)
        {
            int row = y / patchSize * cols;
            for (int x = 0; x < width; x++) pixels[y * width + x] = patchMask[row + x / patchSize];
        }
        return pixels;
    }

    /// <summary>Returns a copy of <paramref name="label"/> whose pixels inside masked patches are unknown.</summary>
    public static LabelMap Apply(LabelMap label, bool[] patchMask, int patchSize, byte unknownLabel)
    {
        var pixelMask = ToPixelMask(patchMask, label.Width, label.Height, patchSize);
        var values = (byte[])label.Values.Clone();
        for (int i = 0; i < values.Length; i++) if (pixelMask[i]) values[i] = unknownLabel;
        return label with { Values = values };
    }

    private static bool[] ChooseRandom(int patchCount, int masked, Func<int, int> nextBelow)
    {
        // Partial Fisher-Yates: the first `masked` entries of a random permutation.
        var index = Enumerable.Range(0, patchCount).ToArray();
        var mask = new bool[patchCount];
        for (int i = 0; i < masked; i++)
        {
            int j = i + nextBelow(patchCount - i);
            (index[i], index[j]) = (index[j], index[i]);
            mask[index[i]] = true;
        }
        return mask;
    }

    /// <summary>SplitMix64 (Steele, Lea, Flood 2014): a small, fully specified generator.</summary>
    private struct SplitMix64(ulong state)
    {
        private ulong _state = state;

        public ulong Next()
        {
            ulong z = _state += 0x9E3779B97F4A7C15UL;
            z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9UL;
            z = (z ^ (z >> 27)) * 0x94D049BB133111EBUL;
            return z ^ (z >> 31);
        }
    }
}
