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
    /// than FP32. On CamVid the validation curve per epoch is that of FP32 within 0.02 PA-mIoU and a trained model completes
    /// with the same PA-mIoU, while a training step takes two thirds of the time (docs/quality.md, docs/decisions.md).
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
/// Every field has a documented default; the network fields start from <see cref="ModelSize"/>'s preset when left null.
/// </summary>
public sealed class LabelCompletionOptions
{
    // ---------------------------------------------------------------- columns
    /// <summary>Input image column: an <c>MLImage</c> (as made by <c>LoadImages</c>) or the segmentation loader's image column. Default <c>"Image"</c>.</summary>
    public string ImageColumnName = "Image";

    /// <summary>Input label column: a vector of <see cref="byte"/> (row-major, image height x width) holding class indices or <see cref="UnknownLabel"/>. Default <c>"Label"</c>.</summary>
    public string LabelColumnName = "Label";

    /// <summary>Output column with the completed label map (vector of <see cref="byte"/>, same layout as the input). Default <c>"CompletedLabel"</c>.</summary>
    public string OutputColumnName = "CompletedLabel";

    /// <summary>Output column with the per-pixel confidence (max softmax probability; 1 for pixels that were known). Default <c>"Confidence"</c>.</summary>
    public string ConfidenceColumnName = "Confidence";

    /// <summary>Output column with the completion mask (vector of <see cref="bool"/>: <c>true</c> where the pixel lies in a masked patch). Default <c>"CompletionMask"</c>.</summary>
    public string CompletionMaskColumnName = "CompletionMask";

    // ---------------------------------------------------------------- classes
    /// <summary>Number of real classes <c>C</c>; label values <c>0..C-1</c> are classes. Required (CamVid 11, VOC 21, Cityscapes 19).</summary>
    public int NumberOfClasses;

    /// <summary>The label value meaning "unknown": never counted in loss or metrics, filled by completion. Default 255.</summary>
    public byte UnknownLabel = 255;

    // ---------------------------------------------------------------- network
    /// <summary>Size preset the network fields below start from. Default <see cref="LabelCompletionModelSize.Small"/>.</summary>
    public LabelCompletionModelSize ModelSize = LabelCompletionModelSize.Small;

    /// <summary>Patch size <c>p</c> in pixels. Default: the preset's (Tiny 8, Small 16, Paper 16).</summary>
    public int? PatchSize;

    /// <summary>Encoder embedding width <c>De</c>. Default: the preset's (64, 256, 1440).</summary>
    public int? EncoderEmbeddingDimension;

    /// <summary>Number of encoder blocks <c>EB</c>. Default: the preset's (2, 6, 8).</summary>
    public int? EncoderDepth;

    /// <summary>Attention heads in the encoder. Default: the preset's (4, 8, 16).</summary>
    public int? EncoderHeads;

    /// <summary>Decoder embedding width <c>Dd</c>. Default: the preset's (32, 128, 720).</summary>
    public int? DecoderEmbeddingDimension;

    /// <summary>Number of decoder blocks <c>DB</c>. Default: the preset's (1, 4, 6).</summary>
    public int? DecoderDepth;

    /// <summary>Attention heads in the decoder. Default: the preset's (4, 4, 16).</summary>
    public int? DecoderHeads;

    /// <summary>Hidden width of the blocks' MLP as a multiple of the block width. Default 4.</summary>
    public int MlpRatio = 4;

    /// <summary>Activation of the blocks' MLP. Default <see cref="TransformerActivation.Gelu"/> (ReLU is the paper's eq. 9).</summary>
    public TransformerActivation Activation = TransformerActivation.Gelu;

    /// <summary>
    /// Image Patch Supplement (paper §3.3): RGB patches embedded and inserted at masked positions. <c>false</c> uses one
    /// learned mask token instead (the MAE baseline of the ablation). Default <c>true</c>.
    /// </summary>
    public bool UseImagePatchSupplement = true;

    /// <summary>Label prior from the NearestKnown fill (DESIGN.md §2). Default <see cref="LabelPriorMode.ImagePatchSupplementAndLogits"/>.</summary>
    public LabelPriorMode LabelPrior = LabelPriorMode.ImagePatchSupplementAndLogits;

    /// <summary>
    /// Hidden channels of the pixel-level refinement head (full-resolution convolutions over logits, prior, RGB and the known
    /// mask that correct the patch decoder's logits); 0 turns it off (the paper's model). Default 32 (measured on CamVid:
    /// docs/quality.md).
    /// </summary>
    public int PixelRefinementChannels = 32;

    /// <summary>
    /// The pixel refinement also sees, per pixel, the nearest known label to the left, right, above and below and their
    /// distances (thin structures crossing a hidden patch). Only used with <see cref="PixelRefinementChannels"/> &gt; 0. Default true.
    /// </summary>
    public bool DirectionalPrior = true;

    // ---------------------------------------------------------------- training
    /// <summary>Share <c>m</c> of patches masked per training sample, <c>l = floor(L*m)</c>. Default 0.5.</summary>
    public float MaskRatio = 0.5f;

    /// <summary>Number of passes over the training data. Default 40.</summary>
    public int Epochs = 40;

    /// <summary>Images per optimisation step. Default 8.</summary>
    public int BatchSize = 8;

    /// <summary>Adam learning rate. Default 1e-3 (the paper's 1e-4 learns far slower within a CPU budget: docs/quality.md).</summary>
    public double LearningRate = 1e-3;

    /// <summary>Adam weight decay (betas 0.9 / 0.999). Default 1e-4.</summary>
    public double WeightDecay = 1e-4;

    /// <summary>Side of the square training crop in pixels (rounded up to a multiple of the patch size); also the inference window. Default 224.</summary>
    public int TrainingSize = 224;

    /// <summary>
    /// Class weights of the loss. Default <see cref="ClassWeighting.None"/>: the paper's eq. 10 gives the largest classes a
    /// weight near zero and training collapses onto rare classes (docs/quality.md).
    /// </summary>
    public ClassWeighting ClassWeighting = ClassWeighting.None;

    /// <summary>Pixels counted by the loss. Default <see cref="LossRegion.MaskedPatches"/>.</summary>
    public LossRegion LossRegion = LossRegion.MaskedPatches;

    /// <summary>Random scale (0.5-2.0), random crop to <see cref="TrainingSize"/> and horizontal flip during training. Default <c>true</c>.</summary>
    public bool Augment = true;

    /// <summary>Optional validation data (same columns): per-epoch validation loss and PA-mIoU, and the loss the scheduler watches. Default null.</summary>
    public IDataView? ValidationSet;

    /// <summary>ReduceLROnPlateau: epochs without improvement before the rate is cut. Default 5.</summary>
    public int LearningRatePatience = 5;

    /// <summary>ReduceLROnPlateau: factor the learning rate is multiplied by. Default 0.8.</summary>
    public double LearningRateFactor = 0.8;

    /// <summary>ReduceLROnPlateau: relative improvement that counts (mode min, threshold mode rel). Default 1e-3.</summary>
    public double LearningRateThreshold = 1e-3;

    /// <summary>Stop when the watched loss has not improved for this many epochs; 0 turns early stopping off. Default 0.</summary>
    public int EarlyStoppingPatience;

    /// <summary>
    /// Wall-clock budget of training: no new epoch starts once it is spent (the running epoch finishes, so the model is
    /// always a whole number of epochs). Null: <see cref="Epochs"/> alone decides. Default null.
    /// </summary>
    public TimeSpan? TrainingTimeLimit;

    /// <summary>Seed for weights, masks and augmentation; null takes the <c>MLContext</c>'s seed (or 0 when it has none). Default null.</summary>
    public int? Seed;

    /// <summary>Intra-op threads TorchSharp may use; null keeps <c>Environment.ProcessorCount</c>. Default null.</summary>
    public int? NumberOfThreads;

    /// <summary>
    /// Precision of training and completion. Default <see cref="LabelCompletionPrecision.Float32"/>.
    /// <see cref="LabelCompletionPrecision.BFloat16"/> (or <see cref="LabelCompletionPrecision.Auto"/>) is bf16 autocast: on a
    /// CPU with AVX512-BF16 the same quality per epoch with 1.5x faster training steps (docs/quality.md). It stays opt-in
    /// until long bf16 runs have been shown stable (docs/decisions.md, Speed).
    /// </summary>
    public LabelCompletionPrecision Precision = LabelCompletionPrecision.Float32;

    /// <summary>Cancels training (checked before every step) and completion. Default none.</summary>
    public CancellationToken CancellationToken;

    /// <summary>
    /// Receives training progress: a record after every optimisation step and one with <see cref="TrainingProgress.EndOfEpoch"/>
    /// set after every epoch (mean loss, learning rate and, with a <see cref="ValidationSet"/>, validation loss and PA-mIoU).
    /// <see cref="IProgress{T}.Report"/> is called on the training thread, between two steps; a <see cref="Progress{T}"/>
    /// hands the records to the <see cref="SynchronizationContext"/> it was created on (the thread pool when there is none,
    /// where they may arrive out of order). The same numbers go to <c>MLContext.Log</c>. A property, not a field: never saved
    /// with the model. Default null.
    /// </summary>
    public IProgress<TrainingProgress>? Progress { get; set; }

    // ---------------------------------------------------------------- inference
    /// <summary>Mask Selector used by <c>Transform</c>. Default <see cref="MaskSelectorMode.Unknown"/>.</summary>
    public MaskSelectorMode MaskSelector = MaskSelectorMode.Unknown;

    /// <summary>Mask ratio for the <see cref="MaskSelectorMode.Background"/> and <see cref="MaskSelectorMode.Random"/> selectors. Default 0.5.</summary>
    public float InferenceMaskRatio = 0.5f;

    /// <summary>Class whose share ranks patches for the <see cref="MaskSelectorMode.Background"/> selector. Default 0.</summary>
    public byte BackgroundClass;

    /// <summary>Seed of the <see cref="MaskSelectorMode.Random"/> selector (masks are reproducible per row). Default 0.</summary>
    public int MaskSeed;

    /// <summary>Rows (images) that <c>Transform</c> completes in one call (their windows run through the network 8 at a time). Default 8.</summary>
    public int InferenceBatchSize = 8;

    /// <summary>Overlap of neighbouring inference windows as a share of the window (probabilities are averaged). Default 0.5.</summary>
    public float WindowOverlap = 0.5f;

    // ---------------------------------------------------------------- reliability: checkpoints, class metadata
    /// <summary>
    /// Folder for training checkpoints (weights, Adam state, scheduler and early-stopping state, epoch and step), written
    /// atomically every <see cref="CheckpointEverySteps"/> steps, at each epoch end and when training is cancelled; the
    /// newest two are kept. Null turns checkpoints off. Training refuses a folder that already holds checkpoints unless
    /// <see cref="ResumeFromCheckpoint"/> is set. Default null.
    /// </summary>
    public string? CheckpointDirectory;

    /// <summary>Optimisation steps between two checkpoints inside an epoch; 0 writes them only at epoch ends. Default 200.</summary>
    public int CheckpointEverySteps = 200;

    /// <summary>
    /// Continue from the latest valid checkpoint in <see cref="CheckpointDirectory"/> (invalid files are skipped; with no
    /// checkpoint, training starts afresh). The checkpoint must come from the same data, seed and training settings; the
    /// number of epochs may be raised. On the same device and thread count the result is bit-identical to an
    /// uninterrupted run. Default <c>false</c>.
    /// </summary>
    public bool ResumeFromCheckpoint;

    /// <summary>Optional class names, one per class (saved with the model). Default null.</summary>
    public string[]? ClassNames;

    /// <summary>Optional display palette: one (R, G, B) triple per class, <c>3 * NumberOfClasses</c> bytes (saved with the model). Default null.</summary>
    public byte[]? Palette;
}
