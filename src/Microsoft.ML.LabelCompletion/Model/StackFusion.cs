using TorchSharp;
using static TorchSharp.torch;

namespace Microsoft.ML.LabelCompletion.Model;

/// <summary>
/// Stack Fusion (paper §3.1, eq. 1): the label map expanded to <c>C</c> one-hot channels (unknown pixels: all zeros),
/// concatenated with the 3 RGB channels normalised with the ImageNet mean and standard deviation: the Fuse Map.
/// </summary>
internal static class StackFusion
{
    /// <summary>ImageNet per-channel mean (R, G, B) on the 0..1 scale.</summary>
    public static readonly float[] ImageNetMean = [0.485f, 0.456f, 0.406f];

    /// <summary>ImageNet per-channel standard deviation (R, G, B) on the 0..1 scale.</summary>
    public static readonly float[] ImageNetStd = [0.229f, 0.224f, 0.225f];

    /// <summary>
    /// One-hot label channels: <paramref name="labels"/> is int64 <c>[B, H, W]</c> with class indices and -1 for unknown;
    /// returns float <c>[B, C, H, W]</c>, all zeros at unknown pixels.
    /// </summary>
    public static Tensor OneHot(Tensor labels, int numberOfClasses)
    {
        using var scope = NewDisposeScope();
        return OneHotMask(labels, numberOfClasses).to(ScalarType.Float32).MoveToOuterDisposeScope();
    }

    /// <summary>
    /// <see cref="OneHot"/> as bool <c>[B, C, H, W]</c> (a quarter of the memory): for inputs that are concatenated with float
    /// channels anyway (the concatenation promotes them to 0/1 floats).
    /// </summary>
    public static Tensor OneHotMask(Tensor labels, int numberOfClasses)
    {
        using var scope = NewDisposeScope();
        // labels[b, 1, h, w] == c for c in 0..C-1: one comparison per output element, written straight into the NCHW layout
        // (unknown, -1, equals no class). one_hot + permute + contiguous built an int64 [B, H, W, C+1] and two float copies
        // first: 16 bytes of temporaries per output element at the peak of a training step.
        using var classes = tensor(Enumerable.Range(0, numberOfClasses).Select(c => (long)c).ToArray(), [1, numberOfClasses, 1, 1],
            ScalarType.Int64, labels.device);
        return labels.unsqueeze(1).eq(classes).MoveToOuterDisposeScope();
    }

    /// <summary>
    /// <see cref="OneHotMask"/> in token layout: labels <c>[B, H, W]</c> (-1 unknown) → bool <c>[B, L, p*p, C]</c>, equal to
    /// <see cref="Patches.PatchifyPixels"/> of the one-hot map, built from the patchified labels (one comparison per output
    /// element, no full-size one-hot map and no copy of one).
    /// </summary>
    public static Tensor OneHotPatches(Tensor labels, int numberOfClasses, int patchSize)
    {
        using var scope = NewDisposeScope();
        return OneHotOfPixels(Patches.PatchifyPixels(labels.unsqueeze(1), patchSize), numberOfClasses).MoveToOuterDisposeScope();
    }

    /// <summary>
    /// The Fuse Map's patches (the encoder's input): <c>Patchify(Fuse(labels, rgb), p)</c> <c>[B, L, p*p*(C+3)]</c>, or only
    /// the tokens in <paramref name="tokens"/> (int64 <c>[B, L']</c>, the Mask Selector's visible patches) as
    /// <c>[B, L', p*p*(C+3)]</c>. Built in token layout: labels and RGB are patchified (8 and 12 bytes a pixel), the visible
    /// tokens picked, and only then one-hot expanded and concatenated, instead of expanding and copying the whole
    /// <c>C+3</c>-channel map three times (the values are the same, bit for bit).
    /// </summary>
    public static Tensor FusedPatches(Tensor labels, Tensor normalizedRgb, int numberOfClasses, int patchSize, Tensor? tokens = null)
    {
        using var scope = NewDisposeScope();
        var labelPixels = Patches.PatchifyPixels(labels.unsqueeze(1), patchSize);  // [B, L, p*p, 1]
        var rgbPixels = Patches.PatchifyPixels(normalizedRgb, patchSize);        // [B, L, p*p, 3]
        if (tokens is not null)
        {
            var index = tokens.reshape(tokens.shape[0], tokens.shape[1], 1, 1);
            labelPixels = labelPixels.gather(1, index.expand(-1, -1, labelPixels.shape[2], 1));
            rgbPixels = rgbPixels.gather(1, index.expand(-1, -1, rgbPixels.shape[2], rgbPixels.shape[3]));
        }
        // The concatenation turns the bool one-hot into 0/1 floats.
        return cat([OneHotOfPixels(labelPixels, numberOfClasses), rgbPixels], 3)
            .reshape(labelPixels.shape[0], labelPixels.shape[1], -1).MoveToOuterDisposeScope();
    }

    /// <summary>Class indices <c>[..., 1]</c> (-1 unknown) → bool one-hot <c>[..., C]</c>.</summary>
    private static Tensor OneHotOfPixels(Tensor labelPixels, int numberOfClasses)
    {
        using var scope = NewDisposeScope();
        using var classes = arange(numberOfClasses, ScalarType.Int64, labelPixels.device);
        return labelPixels.eq(classes).MoveToOuterDisposeScope();
    }

    /// <summary>The Fuse Map <c>[B, C+3, H, W]</c> from labels <c>[B, H, W]</c> (-1 unknown) and normalised RGB <c>[B, 3, H, W]</c>.</summary>
    public static Tensor Fuse(Tensor labels, Tensor normalizedRgb, int numberOfClasses)
    {
        using var scope = NewDisposeScope();
        return cat([OneHot(labels, numberOfClasses), normalizedRgb], 1).MoveToOuterDisposeScope();
    }

    /// <summary>Normalises one interleaved 8-bit RGB value to the network's input scale for channel <paramref name="channel"/>.</summary>
    public static float Normalize(byte value, int channel) => (value / 255f - ImageNetMean[channel]) / ImageNetStd[channel];
}
