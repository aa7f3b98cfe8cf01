using TorchSharp;
using static TorchSharp.torch;

namespace Microsoft.ML.LabelCompletion.Model;

/// <summary>
/// Stack Fusion (paper §3.1, eq. 1): the label map expanded to <c>C</c> one-hot channels (unknown pixels: all zeros),
/// concatenated with the 3 RGB channels normalised with the ImageNet mean and standard deviation: the Fuse Map.
/// </summary>
public static class StackFusion
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
        // Unknown (-1) goes to an extra class C whose channel is dropped. Scalars are explicit and disposed here: an
        // implicitly converted Scalar may be finalized while libtorch still reads it (TorchSharp 0.107).
        using var zero = 0L.ToScalar();
        using var extra = ((long)numberOfClasses).ToScalar();
        var shifted = labels.masked_fill(labels.lt(zero), extra);
        var oneHot = nn.functional.one_hot(shifted, numberOfClasses + 1)
            .narrow(-1, 0, numberOfClasses)
            .permute(0, 3, 1, 2)
            .to(ScalarType.Float32);
        return oneHot.contiguous().MoveToOuterDisposeScope();
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
