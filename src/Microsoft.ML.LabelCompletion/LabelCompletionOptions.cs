using Microsoft.ML.LabelCompletion.Model;

namespace Microsoft.ML.LabelCompletion;

/// <summary>Size presets of the L-MAE network (DESIGN.md §2, "Configs").</summary>
public enum LabelCompletionModelSize
{
    /// <summary>For tests: patch 8, encoder 64 wide x 2 blocks (4 heads), decoder 32 wide x 1 block (4 heads).</summary>
    Tiny = 0,

    /// <summary>CPU default: patch 16, encoder 256 wide x 6 blocks (8 heads), decoder 128 wide x 4 blocks (4 heads).</summary>
    Small = 1,

    /// <summary>The paper's choice (Table 2): patch 16, encoder 1440 wide x 8 blocks, decoder 720 wide x 6 blocks, 16 heads.</summary>
    Paper = 2,
}

/// <summary>Activation inside the Transformer blocks' MLP.</summary>
public enum TransformerActivation
{
    /// <summary>GELU, as in ViT and MAE (default).</summary>
    Gelu = 0,

    /// <summary>ReLU, as written in the paper's eq. 9.</summary>
    Relu = 1,
}

/// <summary>Class weights of the cross-entropy loss (paper §3.4).</summary>
public enum ClassWeighting
{
    /// <summary>Every class weighs 1.</summary>
    None = 0,

    /// <summary>Paper eq. 10 on class pixel frequencies, <c>beta = gamma = 1</c>, <c>xi = 1e-6</c>.</summary>
    Equation10 = 1,

    /// <summary>Median frequency balancing (Eigen and Fergus; SegNet): <c>median(f) / f_c</c>.</summary>
    MedianFrequency = 2,
}

/// <summary>Which pixels the training loss counts (pixels with unknown ground truth never count).</summary>
public enum LossRegion
{
    /// <summary>Only pixels inside masked patches (the reconstruction task, default).</summary>
    MaskedPatches = 0,

    /// <summary>Every pixel of the image.</summary>
    AllPixels = 1,
}

/// <summary>
/// How the label context reaches masked patches besides attention (DESIGN.md §2, "label prior"): the prior is the
/// one-hot NearestKnown fill (each pixel takes the class of the nearest known pixel of the input).
/// </summary>
public enum LabelPriorMode
{
    /// <summary>No prior: the paper's model.</summary>
    None = 0,

    /// <summary>The Image Patch Supplement sees the RGB patch and the prior's one-hot patch: <c>Linear((3+C)p^2 -> Dd)</c>.</summary>
    ImagePatchSupplement = 1,

    /// <summary>As <see cref="ImagePatchSupplement"/>, and a learned multiple of the prior's one-hot is added to the output logits.</summary>
    ImagePatchSupplementAndLogits = 2,
}

/// <summary>
/// Where the features of the ImageNet-trained ResNet18 (<see cref="Model.ResNet18Backbone"/>, frozen; its stride-8 and
/// stride-16 outputs) enter the L-MAE. A combination of flags; the features are computed once per training crop and per
/// completion window, and the ResNet18's weights are saved inside the model.
/// </summary>
[Flags]
public enum ImageFeatureInputs
{
    /// <summary>No pretrained image features: the network sees the image only through its own patch embeddings.</summary>
    None = 0,

    /// <summary>Each visible patch's features (projected to the encoder width) are added to its encoder token.</summary>
    EncoderTokens = 1,

    /// <summary>Each patch's features (projected to the decoder width) are added to its Image Patch Supplement token, the
    /// token a hidden patch enters the decoder with.</summary>
    PatchSupplement = 2,

    /// <summary>The stride-8 features, projected to 16 channels and upsampled, are extra inputs of the pixel refinement.</summary>
    PixelRefinement = 4,

    /// <summary>All three.</summary>
    All = EncoderTokens | PatchSupplement | PixelRefinement,
}

/// <summary>
/// Numeric precision of the network's matrix products and convolutions (the weights, optimizer state, normalisations,
/// softmax and loss stay FP32 in every mode).
/// </summary>
public enum LabelCompletionPrecision
{
    /// <summary>Everything in FP32: bit-reproducible on a given machine and thread count.</summary>
    Float32 = 0,

    /// <summary>
    /// bf16 autocast: linear layers, attention and convolutions compute in bfloat16 from FP32 master weights, like
    /// <c>torch.autocast(dtype=torch.bfloat16)</c>. Fast on CPUs with AVX512-BF16 or AMX; elsewhere emulated and slower
    /// than FP32. Measured quality and speed against FP32: docs/quality.md and docs/decisions.md.
    /// </summary>
    BFloat16 = 1,

    /// <summary>
    /// <see cref="BFloat16"/> on a CPU that computes bf16 natively (Linux reports <c>avx512_bf16</c> or <c>amx_bf16</c>),
    /// <see cref="Float32"/> elsewhere (other CPUs, other systems, GPUs). Decided on the machine that trains or completes.
    /// </summary>
    Auto = 2,
}

/// <summary>
/// Options of the label-completion estimator (<c>LabelCompletionEstimator</c>): columns, the L-MAE network, training and inference.
/// Every field has a documented default and bounds (listed on <see cref="LabelCompletionSettings"/>, checked by
/// <see cref="LabelCompletionSettings.Validate"/>); the network fields start from <see cref="LabelCompletionSettings.ModelSize"/>'s
/// preset when left null. The fields inherited from <see cref="LabelCompletionSettings"/> are saved with a model; the ones
/// declared here live only in this process.
/// </summary>
public sealed class LabelCompletionOptions : LabelCompletionSettings
{
    /// <summary>Optional validation data (same columns): per-epoch validation loss and PA-mIoU, and the loss the scheduler watches. Default null.</summary>
    public IDataView? ValidationSet;

    /// <summary>Cancels training (checked before every step) and completion. Default none.</summary>
    public CancellationToken CancellationToken;

    /// <summary>
    /// Receives training progress: a record after every optimisation step and one with <see cref="TrainingProgress.EndOfEpoch"/>
    /// set after every epoch (mean loss, learning rate and, with a <see cref="ValidationSet"/>, validation loss and PA-mIoU).
    /// <see cref="IProgress{T}.Report"/> is called on the training thread, between two steps; a <see cref="Progress{T}"/>
    /// hands the records to the <see cref="SynchronizationContext"/> it was created on (the thread pool when there is none,
    /// where they may arrive out of order). The same numbers go to <c>MLContext.Log</c>. Never saved with the model. Default null.
    /// </summary>
    public IProgress<TrainingProgress>? Progress { get; set; }

    /// <summary>A copy of every field (arrays cloned), so later changes by the caller do not reach a trained model.</summary>
    internal LabelCompletionOptions Clone() => (LabelCompletionOptions)CloneSettings();
}
