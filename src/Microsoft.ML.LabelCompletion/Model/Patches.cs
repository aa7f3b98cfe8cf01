using static TorchSharp.torch;

namespace Microsoft.ML.LabelCompletion.Model;

/// <summary>Patchify / unpatchify (as MAE's <c>patchify</c>/<c>unpatchify</c>): non-overlapping <c>p x p</c> patches, row-major.</summary>
internal static class Patches
{
    /// <summary><c>[B, Ch, H, W]</c> → <c>[B, L, p*p*Ch]</c> with <c>L = (H/p)(W/p)</c>; each token is ordered (row, column, channel).</summary>
    public static Tensor Patchify(Tensor images, int patchSize)
    {
        long b = images.shape[0], ch = images.shape[1], h = images.shape[2] / patchSize, w = images.shape[3] / patchSize;
        if (h * patchSize != images.shape[2] || w * patchSize != images.shape[3])
            throw new ArgumentException($"Image size {images.shape[2]}x{images.shape[3]} is not a multiple of the patch size {patchSize}.");
        using var scope = NewDisposeScope();
        return images.reshape(b, ch, h, patchSize, w, patchSize)
            .permute(0, 2, 4, 3, 5, 1)
            .reshape(b, h * w, patchSize * patchSize * ch)
            .MoveToOuterDisposeScope();
    }

    /// <summary>
    /// <see cref="Patchify"/> with the channel axis kept apart: <c>[B, Ch, H, W]</c> → <c>[B, L, p*p, Ch]</c> (any dtype), so
    /// that per-pixel channels can be appended in token layout before the last two axes are flattened.
    /// </summary>
    public static Tensor PatchifyPixels(Tensor images, int patchSize)
    {
        using var scope = NewDisposeScope();
        return Patchify(images, patchSize).reshape(images.shape[0], -1, patchSize * patchSize, images.shape[1]).MoveToOuterDisposeScope();
    }

    /// <summary>Inverse of <see cref="Patchify"/>: <c>[B, L, p*p*Ch]</c> → <c>[B, Ch, rows*p, columns*p]</c>.</summary>
    public static Tensor Unpatchify(Tensor tokens, int patchSize, int rows, int columns)
    {
        long b = tokens.shape[0], ch = tokens.shape[2] / (patchSize * patchSize);
        using var scope = NewDisposeScope();
        return tokens.reshape(b, rows, columns, patchSize, patchSize, ch)
            .permute(0, 5, 1, 3, 2, 4)
            .reshape(b, ch, rows * patchSize, columns * patchSize)
            .MoveToOuterDisposeScope();
    }
}
