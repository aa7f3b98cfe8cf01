using TorchSharp;
using static TorchSharp.torch;

namespace Microsoft.ML.LabelCompletion.Model;

/// <summary>
/// Loss Design (paper §3.4): class-weighted cross-entropy (eq. 11) normalised by the weights of the counted pixels
/// (eq. 12). Pixels whose ground truth is unknown (target -1) never count; which known pixels count is chosen by
/// <see cref="LossRegion"/> when the targets are built. Class weights: eq. 10, median frequency, or none.
/// </summary>
internal static class LmaeLoss
{
    /// <summary>
    /// Eq. 10: <c>w_i = 1 - 1 / (1 + β·exp(-(x_i - E(x)) / (V(x) + ξ)))^γ</c> with <c>x_i</c> the pixel frequency of class i
    /// (share of all known pixels), <c>E</c>, <c>V</c> the mean and (population) variance of the frequencies.
    /// </summary>
    public static float[] Equation10(long[] classPixelCounts, double beta = 1, double gamma = 1, double xi = 1e-6)
    {
        double total = Math.Max(1, classPixelCounts.Sum());
        var x = classPixelCounts.Select(c => c / total).ToArray();
        double mean = x.Average();
        double variance = x.Select(v => (v - mean) * (v - mean)).Average();
        return x.Select(v => (float)(1 - 1 / Math.Pow(1 + beta * Math.Exp(-(v - mean) / (variance + xi)), gamma))).ToArray();
    }

    /// <summary>
    /// Median frequency balancing (Eigen and Fergus 2015, as used by SegNet): <c>w_c = median(f) / f_c</c> with
    /// <c>f_c</c> the pixel frequency of class c; classes absent from the data get weight 0 and stay out of the median.
    /// </summary>
    public static float[] MedianFrequency(long[] classPixelCounts)
    {
        double total = Math.Max(1, classPixelCounts.Sum());
        var present = classPixelCounts.Where(c => c > 0).Select(c => c / total).OrderBy(v => v).ToArray();
        if (present.Length == 0) return classPixelCounts.Select(_ => 1f).ToArray();
        double median = present.Length % 2 == 1 ? present[present.Length / 2] : (present[present.Length / 2 - 1] + present[present.Length / 2]) / 2;
        return classPixelCounts.Select(c => c > 0 ? (float)(median / (c / total)) : 0f).ToArray();
    }

    /// <summary>The class weights of <paramref name="weighting"/> for the given class pixel counts.</summary>
    public static float[] ClassWeights(ClassWeighting weighting, long[] classPixelCounts) => weighting switch
    {
        ClassWeighting.None => classPixelCounts.Select(_ => 1f).ToArray(),
        ClassWeighting.Equation10 => Equation10(classPixelCounts),
        ClassWeighting.MedianFrequency => MedianFrequency(classPixelCounts),
        _ => throw new ArgumentOutOfRangeException(nameof(weighting), weighting, "Unknown class weighting."),
    };

    /// <summary>
    /// Eq. 11-12: <c>Σ w_{y_n}·(-log softmax(x_n)_{y_n}) / Σ w_{y_n}</c> over pixels with target ≥ 0.
    /// <paramref name="logits"/> <c>[B, C, H, W]</c>, <paramref name="targets"/> int64 <c>[B, H, W]</c> (-1 = not counted),
    /// <paramref name="classWeights"/> <c>[C]</c> or null for all ones. Zero (with a gradient) when no pixel counts.
    /// </summary>
    public static Tensor Compute(Tensor logits, Tensor targets, Tensor? classWeights)
    {
        using var scope = NewDisposeScope();
        return WeightedSum(logits, targets, classWeights).div(Normalizer(targets, classWeights)).MoveToOuterDisposeScope();
    }

    /// <summary>The numerator of eq. 12, <c>Σ w_{y_n}·(-log softmax(x_n)_{y_n})</c> over pixels with target ≥ 0.</summary>
    internal static Tensor WeightedSum(Tensor logits, Tensor targets, Tensor? classWeights)
    {
        using var scope = NewDisposeScope();
        var perPixel = nn.functional.cross_entropy(logits, targets, classWeights, ignore_index: -1, reduction: nn.Reduction.None);
        return perPixel.sum().MoveToOuterDisposeScope();
    }

    /// <summary>The denominator of eq. 12, <c>Σ w_{y_n}</c> over pixels with target ≥ 0 (at least 1e-12).</summary>
    internal static Tensor Normalizer(Tensor targets, Tensor? classWeights)
    {
        using var scope = NewDisposeScope();
        using var zero = 0L.ToScalar();
        using var tiny = 1e-12.ToScalar();
        var counted = targets.ge(zero);
        var pixelWeights = classWeights is null
            ? counted.to(ScalarType.Float32)
            : classWeights.index_select(0, targets.clamp_min(zero).flatten()).reshape(targets.shape) * counted;
        return pixelWeights.sum().clamp_min(tiny).MoveToOuterDisposeScope();
    }
}
