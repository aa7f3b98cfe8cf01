using TorchSharp;

namespace Microsoft.ML.LabelCompletion.Model;

/// <summary>
/// Scalars that live as long as the process. TorchSharp 0.107 turns numbers into <see cref="Scalar"/>s implicitly (and
/// <c>Tensor + Tensor</c> passes a hidden <c>alpha = 1</c>); such a temporary can be finalized by the GC while libtorch
/// still reads it, which fails at random ("Unknown scalar type", "Expected false to be true"). Code on the training and
/// inference path therefore adds with <c>a.add(b, TorchScalars.One)</c> and creates other Scalars explicitly with
/// <c>using</c>. <c>TrainingTests.TrainingAndCompletionSurviveConstantGarbageCollection</c> guards this.
/// </summary>
internal static class TorchScalars
{
    /// <summary>The number 1, rooted in a static field so it is never finalized.</summary>
    public static readonly Scalar One = 1.0f.ToScalar();
}
