using Microsoft.ML.LabelCompletion.Data;
using TorchSharp;

namespace Microsoft.ML.LabelCompletion.Model;

/// <summary>One training or completion example: an RGB image, its (possibly incomplete) label map, and where it came from.</summary>
/// <param name="Image">The RGB image.</param>
/// <param name="Label">The label map, same size as the image; unknown pixels hold the unknown value.</param>
/// <param name="Source">Where the example came from (file names or row number), for error messages.</param>
public sealed record SegmentationExample(RgbImage Image, LabelMap Label, string Source);

/// <summary>What completion returns for one image.</summary>
/// <param name="Completed">Input label where known, the network's argmax where the pixel lay in a masked patch or was unknown.</param>
/// <param name="Confidence">Per pixel, the max softmax probability where the network decided; 1 where the input label was kept.</param>
/// <param name="CompletionMask">Per pixel, <c>true</c> where the pixel lay in a masked patch.</param>
public sealed record CompletionResult(LabelMap Completed, float[] Confidence, bool[] CompletionMask);

/// <summary>Progress of training, reported once per step and once per epoch.</summary>
/// <param name="Epoch">1-based epoch.</param>
/// <param name="Epochs">Total epochs.</param>
/// <param name="Step">1-based step within the epoch.</param>
/// <param name="StepsPerEpoch">Steps per epoch (may be null while the first epoch streams).</param>
/// <param name="Loss">Mean training loss of the step (or of the epoch at epoch end).</param>
/// <param name="ImagesPerSecond">Training throughput.</param>
/// <param name="LearningRate">Current learning rate.</param>
/// <param name="ValidationLoss">Validation loss at epoch end, when a validation set is given.</param>
/// <param name="ValidationPaMiou">Validation PA-mIoU (0..100) at epoch end, when a validation set is given.</param>
/// <param name="EndOfEpoch"><c>true</c> for the epoch summary.</param>
public sealed record TrainingProgress(int Epoch, int Epochs, int Step, int? StepsPerEpoch, double Loss, double ImagesPerSecond,
    double LearningRate, double? ValidationLoss, double? ValidationPaMiou, bool EndOfEpoch);

/// <summary>
/// The trained L-MAE and everything needed to use it: training, batched completion with sliding windows, and
/// (de)serialisation of the weights. This is the boundary between the TorchSharp model and the ML.NET layer.
/// </summary>
internal sealed partial class LabelCompletionEngine : IDisposable
{
    private LabelCompletionEngine(LmaeConfig config, torch.Device device)
    {
        Config = config;
        Device = device;
    }

    /// <summary>The resolved network configuration.</summary>
    public LmaeConfig Config { get; }

    /// <summary>The device the network runs on.</summary>
    public torch.Device Device { get; }

    /// <summary>
    /// Trains a new network. <paramref name="train"/> is enumerated once per epoch (lazily: it may stream from disk);
    /// <paramref name="validation"/> likewise at each epoch end.
    /// </summary>
    public static LabelCompletionEngine Train(IEnumerable<SegmentationExample> train, IEnumerable<SegmentationExample>? validation,
        LabelCompletionOptions options, int seed, torch.Device device, Action<TrainingProgress>? progress, CancellationToken cancellationToken)
        => throw new NotImplementedException("contract placeholder, replaced by the model implementation");

    /// <summary>
    /// Completes a batch of images. <paramref name="patchMasks"/>[i] is the Mask Selector's choice for image i on the grid of
    /// <see cref="LmaeConfig.PatchSize"/> (see <see cref="MaskSelector"/>). Runs under no_grad/eval; thread-safe.
    /// </summary>
    public IReadOnlyList<CompletionResult> Complete(IReadOnlyList<SegmentationExample> batch, IReadOnlyList<bool[]> patchMasks,
        CancellationToken cancellationToken = default)
        => throw new NotImplementedException("contract placeholder, replaced by the model implementation");

    /// <summary>Writes the weights (TorchSharp state dict format) to <paramref name="writer"/>; the config is saved by the caller.</summary>
    public void SaveWeights(BinaryWriter writer) => throw new NotImplementedException("contract placeholder");

    /// <summary>Rebuilds a network of <paramref name="config"/> on <paramref name="device"/> and reads its weights.</summary>
    public static LabelCompletionEngine Load(LmaeConfig config, BinaryReader reader, torch.Device device)
        => throw new NotImplementedException("contract placeholder");

    /// <summary>Releases the network's tensors.</summary>
    public void Dispose() { }
}

/// <summary>Resolved hyper-parameters of an L-MAE network (what must be saved with the weights to rebuild it).</summary>
public sealed record LmaeConfig(
    int NumberOfClasses, byte UnknownLabel, int PatchSize, int TrainingSize,
    int EncoderDimension, int EncoderDepth, int EncoderHeads,
    int DecoderDimension, int DecoderDepth, int DecoderHeads,
    int MlpRatio, TransformerActivation Activation, bool UseImagePatchSupplement, LabelPriorMode LabelPrior,
    float WindowOverlap)
{
    /// <summary>Resolves the preset and the explicit fields of <paramref name="options"/>.</summary>
    public static LmaeConfig FromOptions(LabelCompletionOptions options) => throw new NotImplementedException("contract placeholder");
}
