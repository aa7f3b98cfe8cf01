using System.Globalization;
using System.Reflection;
using System.Text.Json;
using System.Text.Json.Serialization;
using System.Text.Json.Serialization.Metadata;
using Microsoft.ML.LabelCompletion.Model;

namespace Microsoft.ML.LabelCompletion;

/// <summary>
/// Every option of label completion that is saved with a model: columns, classes, the L-MAE network, training, inference
/// and checkpoint settings. <see cref="LabelCompletionOptions"/> adds the members that only live in one process (validation
/// data, cancellation). A model zip holds these fields once, as the JSON entry <c>LmaeSettings</c>, written and read by one
/// serializer over this class's fields; the same fields make the estimator's copy of the options and the identity of a
/// training run for checkpoints, and <see cref="Validate"/> holds the bounds that training, model loading and the
/// command-line tool share.
/// </summary>
/// <remarks>
/// Bounds (checked by <see cref="Validate"/> before training and when a model is loaded, before any tensor exists):
/// <list type="bullet">
/// <item><description>classes: <see cref="NumberOfClasses"/> 1-255; <see cref="UnknownLabel"/> not a class index.</description></item>
/// <item><description>network: patch 1-64 pixels; encoder and decoder widths 4-4096, multiples of 4 and of their heads;
/// heads 1-64; depths 0-64 blocks; MLP ratio 1-16; refinement channels 0-512; training size (the window) up to 2048 pixels
/// and up to 64 patches per side.</description></item>
/// <item><description>training: mask ratios in [0, 1]; epochs 1-1,000,000; batch 1-4096; learning rate in (0, 10]; the
/// image encoder's learning-rate scale in [0, 10]; weight
/// decay in [0, 10]; plateau factor in (0, 1], threshold in [0, 1); patiences 0-1,000,000; time limit positive, at most
/// 3650 days; threads 1-1024.</description></item>
/// <item><description>inference: batch 1-4096 rows; window overlap in [0, 0.9]; background class a class index.</description></item>
/// <item><description>text: column names 1-1024 characters, class names 0-1024, the checkpoint folder at most 4096; the
/// palette 3 bytes per class.</description></item>
/// </list>
/// A field added here is saved, copied, validated (add its bound to <see cref="Validate"/>) and part of the training run's
/// identity (unless marked <c>NotInRunFingerprint</c>) without any other change; its default must reproduce the behaviour
/// of models saved before it existed, which load with that default, or the model format is raised and the older format
/// loads with the old behaviour (<see cref="ImageFeatures"/>: format 4 loads with <see cref="ImageFeatureInputs.None"/>).
/// </remarks>
public abstract class LabelCompletionSettings
{
    // ---------------------------------------------------------------- bounds (see the remarks; Validate is their one reader)
    internal const int MaxClasses = Data.LabelMap.MaxClasses;
    internal const int MaxPatchSize = 64;
    internal const int MinWidth = 4;
    internal const int MaxWidth = 4096;
    internal const int MaxHeads = 64;
    internal const int MaxDepth = 64;
    internal const int MaxMlpRatio = 16;
    internal const int MaxRefinementChannels = 512;
    internal const int MaxTrainingSize = 2048;
    internal const int MaxPatchesPerSide = 64;
    internal const int MaxEpochs = 1_000_000;
    internal const int MaxBatchSize = 4096;
    internal const double MaxLearningRate = 10;
    internal const double MaxImageEncoderLearningRateScale = 10;
    internal const double MaxWeightDecay = 10;
    internal const int MaxPatience = 1_000_000;
    internal const int MaxThreads = 1024;
    internal const float MaxWindowOverlap = 0.9f;
    internal const int MaxNameLength = 1024;
    internal const int MaxPathLength = 4096;
    internal static readonly TimeSpan MaxTrainingTimeLimit = TimeSpan.FromDays(3650);

    /// <summary>Only the library derives from this class (<see cref="LabelCompletionOptions"/>).</summary>
    private protected LabelCompletionSettings()
    {
    }

    // ---------------------------------------------------------------- columns
    /// <summary>Input image column: an <c>MLImage</c> (as made by <c>LoadImages</c>) or the segmentation loader's image column. Default <c>"Image"</c>.</summary>
    [NotInRunFingerprint]
    public string ImageColumnName = "Image";

    /// <summary>Input label column: a vector of <see cref="byte"/> (row-major, image height x width) holding class indices or <see cref="UnknownLabel"/>. Default <c>"Label"</c>.</summary>
    [NotInRunFingerprint]
    public string LabelColumnName = "Label";

    /// <summary>Output column with the completed label map (vector of <see cref="byte"/>, same layout as the input). Default <c>"CompletedLabel"</c>.</summary>
    [NotInRunFingerprint]
    public string OutputColumnName = "CompletedLabel";

    /// <summary>Output column with the per-pixel confidence (max softmax probability; 1 for pixels that were known). Default <c>"Confidence"</c>.</summary>
    [NotInRunFingerprint]
    public string ConfidenceColumnName = "Confidence";

    /// <summary>Output column with the completion mask (vector of <see cref="bool"/>: <c>true</c> where the pixel lies in a masked patch). Default <c>"CompletionMask"</c>.</summary>
    [NotInRunFingerprint]
    public string CompletionMaskColumnName = "CompletionMask";

    // ---------------------------------------------------------------- classes
    /// <summary>
    /// Number of real classes <c>C</c>, 1 to 255; label values <c>0..C-1</c> are classes. Required (CamVid 11, VOC 21, Cityscapes 19).
    /// </summary>
    public int NumberOfClasses;

    /// <summary>The label value meaning "unknown" (at least <see cref="NumberOfClasses"/>): never counted in loss or metrics, filled by completion. Default 255.</summary>
    public byte UnknownLabel = 255;

    // ---------------------------------------------------------------- network
    /// <summary>Size preset the network fields below start from. Default <see cref="LabelCompletionModelSize.Small"/>.</summary>
    public LabelCompletionModelSize ModelSize = LabelCompletionModelSize.Small;

    /// <summary>Patch size <c>p</c> in pixels, 1 to 64. Default: the preset's (Tiny 8, Small 16, Paper 16).</summary>
    public int? PatchSize;

    /// <summary>Encoder embedding width <c>De</c>, 4 to 4096, a multiple of 4 and of <see cref="EncoderHeads"/>. Default: the preset's (64, 256, 1440).</summary>
    public int? EncoderEmbeddingDimension;

    /// <summary>Number of encoder blocks <c>EB</c>, 0 to 64. Default: the preset's (2, 6, 8).</summary>
    public int? EncoderDepth;

    /// <summary>Attention heads in the encoder, 1 to 64. Default: the preset's (4, 8, 16).</summary>
    public int? EncoderHeads;

    /// <summary>Decoder embedding width <c>Dd</c>, 4 to 4096, a multiple of 4 and of <see cref="DecoderHeads"/>. Default: the preset's (32, 128, 720).</summary>
    public int? DecoderEmbeddingDimension;

    /// <summary>Number of decoder blocks <c>DB</c>, 0 to 64. Default: the preset's (1, 4, 6).</summary>
    public int? DecoderDepth;

    /// <summary>Attention heads in the decoder, 1 to 64. Default: the preset's (4, 4, 16).</summary>
    public int? DecoderHeads;

    /// <summary>Hidden width of the blocks' MLP as a multiple of the block width, 1 to 16. Default 4.</summary>
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
    /// mask that correct the patch decoder's logits), 0 to 512; 0 turns it off (the paper's model). Default 32 (measured on
    /// CamVid: docs/quality.md).
    /// </summary>
    public int PixelRefinementChannels = 32;

    /// <summary>
    /// The pixel refinement also sees, per pixel, the nearest known label to the left, right, above and below and their
    /// distances (thin structures crossing a hidden patch). Only used with <see cref="PixelRefinementChannels"/> &gt; 0. Default true.
    /// </summary>
    public bool DirectionalPrior = true;

    /// <summary>
    /// Where the ImageNet ResNet18's features enter the network (<see cref="ImageFeatureInputs"/>); the patch size must be a
    /// power of two. Training reads the ResNet18's weights from the ONNX file of the NuGet package
    /// <c>Microsoft.ML.DnnImageFeaturizer.ResNet18</c> (<see cref="Model.ResNet18Backbone.DefaultModelPath"/>); the saved
    /// model holds them, so completion needs no file. Default <see cref="ImageFeatureInputs.All"/>; models of format 4,
    /// saved before this field existed, load with <see cref="ImageFeatureInputs.None"/>.
    /// </summary>
    public ImageFeatureInputs ImageFeatures = ImageFeatureInputs.All;

    // ---------------------------------------------------------------- training
    /// <summary>Share <c>m</c> of patches masked per training sample, <c>l = floor(L*m)</c>, in [0, 1]. Default 0.5.</summary>
    public float MaskRatio = 0.5f;

    /// <summary>Number of passes over the training data, 1 to 1,000,000. Default 40.</summary>
    [NotInRunFingerprint] // a resume may raise it
    public int Epochs = 40;

    /// <summary>Images per optimisation step, 1 to 4096. Default 8.</summary>
    public int BatchSize = 8;

    /// <summary>Adam learning rate, in (0, 10]. Default 1e-3 (the paper's 1e-4 learns far slower within a CPU budget: docs/quality.md).</summary>
    public double LearningRate = 1e-3;

    /// <summary>Adam weight decay (betas 0.9 / 0.999), in [0, 10]. Default 1e-4.</summary>
    public double WeightDecay = 1e-4;

    /// <summary>
    /// Learning rate of the ImageNet ResNet18's stride-16 stage (the last one <see cref="ImageFeatures"/> read) as a multiple
    /// of <see cref="LearningRate"/>, in [0, 10]: above 0, training fine-tunes that stage (its weights are saved with the
    /// model) and the learning-rate schedule scales it with the rest; the stages below stay frozen. Needs
    /// <see cref="ImageFeatureInputs.EncoderTokens"/> or <see cref="ImageFeatureInputs.PatchSupplement"/>. Default 0: the
    /// ResNet18 stays frozen.
    /// </summary>
    public double ImageEncoderLearningRateScale;

    /// <summary>
    /// Side of the square training crop in pixels (rounded up to a multiple of the patch size); also the inference window.
    /// At most 2048 pixels and 64 patches. Default 224.
    /// </summary>
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

    /// <summary>ReduceLROnPlateau: epochs without improvement before the rate is cut, 0 to 1,000,000. Default 5.</summary>
    public int LearningRatePatience = 5;

    /// <summary>ReduceLROnPlateau: factor the learning rate is multiplied by, in (0, 1]. Default 0.8.</summary>
    public double LearningRateFactor = 0.8;

    /// <summary>ReduceLROnPlateau: relative improvement that counts (mode min, threshold mode rel), in [0, 1). Default 1e-3.</summary>
    public double LearningRateThreshold = 1e-3;

    /// <summary>Stop when the watched loss has not improved for this many epochs (0 to 1,000,000); 0 turns early stopping off. Default 0.</summary>
    public int EarlyStoppingPatience;

    /// <summary>
    /// Wall-clock budget of training, positive and at most 3650 days: no new epoch starts once it is spent (the running epoch
    /// finishes, so the model is always a whole number of epochs). Null: <see cref="Epochs"/> alone decides. Default null.
    /// </summary>
    [NotInRunFingerprint] // a resume may continue with another budget
    public TimeSpan? TrainingTimeLimit;

    /// <summary>Seed for weights, masks and augmentation; null takes the <c>MLContext</c>'s seed (or 0 when it has none). Default null.</summary>
    [NotInRunFingerprint] // the run's identity holds the seed actually used
    public int? Seed;

    /// <summary>Intra-op threads TorchSharp may use, 1 to 1024; null keeps <c>Environment.ProcessorCount</c>. Default null.</summary>
    [NotInRunFingerprint]
    public int? NumberOfThreads;

    /// <summary>
    /// Precision of training and completion. Default <see cref="LabelCompletionPrecision.Float32"/>.
    /// <see cref="LabelCompletionPrecision.BFloat16"/> (or <see cref="LabelCompletionPrecision.Auto"/>) is bf16 autocast: on a
    /// CPU with AVX512-BF16 the same quality per epoch in less time per training step. It is opt-in because long bf16
    /// training runs have not been verified (measurements: docs/quality.md, docs/decisions.md).
    /// </summary>
    [NotInRunFingerprint] // the run's identity holds the precision Auto resolved to
    public LabelCompletionPrecision Precision = LabelCompletionPrecision.Float32;

    // ---------------------------------------------------------------- inference
    /// <summary>Mask Selector used by <c>Transform</c>. Default <see cref="MaskSelectorMode.Unknown"/>.</summary>
    [NotInRunFingerprint]
    public MaskSelectorMode MaskSelector = MaskSelectorMode.Unknown;

    /// <summary>Mask ratio for the <see cref="MaskSelectorMode.Background"/> and <see cref="MaskSelectorMode.Random"/> selectors, in [0, 1]. Default 0.5.</summary>
    [NotInRunFingerprint]
    public float InferenceMaskRatio = 0.5f;

    /// <summary>Class (an index below <see cref="NumberOfClasses"/>) whose share ranks patches for the <see cref="MaskSelectorMode.Background"/> selector. Default 0.</summary>
    [NotInRunFingerprint]
    public byte BackgroundClass;

    /// <summary>Seed of the <see cref="MaskSelectorMode.Random"/> selector (masks are reproducible per row). Default 0.</summary>
    [NotInRunFingerprint]
    public int MaskSeed;

    /// <summary>Rows (images) that <c>Transform</c> completes in one call, 1 to 4096 (their windows run through the network 8 at a time). Default 8.</summary>
    [NotInRunFingerprint]
    public int InferenceBatchSize = 8;

    /// <summary>Overlap of neighbouring inference windows as a share of the window (probabilities are averaged), in [0, 0.9]. Default 0.5.</summary>
    public float WindowOverlap = 0.5f;

    // ---------------------------------------------------------------- reliability: checkpoints, class metadata
    /// <summary>
    /// Folder for training checkpoints (weights, Adam state, scheduler and early-stopping state, epoch and step), written
    /// atomically every <see cref="CheckpointEverySteps"/> steps, at each epoch end and when training is cancelled; the
    /// newest two are kept. Null turns checkpoints off. Training refuses a folder that already holds checkpoints unless
    /// <see cref="ResumeFromCheckpoint"/> is set. At most 4096 characters. Default null.
    /// </summary>
    [NotInRunFingerprint]
    public string? CheckpointDirectory;

    /// <summary>Optimisation steps between two checkpoints inside an epoch (0 or more); 0 writes them only at epoch ends. Default 200.</summary>
    [NotInRunFingerprint]
    public int CheckpointEverySteps = 200;

    /// <summary>
    /// Continue from the latest valid checkpoint in <see cref="CheckpointDirectory"/> (invalid files are skipped; with no
    /// checkpoint, training starts afresh). The checkpoint must come from the same data, seed and training settings; the
    /// number of epochs may be raised. On the same device and thread count the result is bit-identical to an
    /// uninterrupted run. Default <c>false</c>.
    /// </summary>
    [NotInRunFingerprint]
    public bool ResumeFromCheckpoint;

    /// <summary>Optional class names, one per class, each at most 1024 characters (saved with the model). Default null.</summary>
    [NotInRunFingerprint]
    public string[]? ClassNames;

    /// <summary>Optional display palette: one (R, G, B) triple per class, <c>3 * NumberOfClasses</c> bytes (saved with the model). Default null.</summary>
    [NotInRunFingerprint]
    public byte[]? Palette;

    /// <summary>
    /// Checks every field against the bounds listed in the remarks and the network they describe (widths that split into
    /// their heads, a window that holds whole patches). Training, model loading and the command-line tool call this one method.
    /// </summary>
    /// <exception cref="ArgumentOutOfRangeException">A field is out of its bounds; <see cref="ArgumentException.ParamName"/>
    /// is the field's name and the message says what is allowed.</exception>
    public void Validate()
    {
        Check(Enum.IsDefined(ModelSize), nameof(ModelSize), $"{(int)ModelSize} is not a model size.");
        // The network as it will be built: classes, unknown value, patch, window, widths, depths, heads and the rest.
        LmaeConfig.Resolve(this).Validate();

        foreach (var (name, value) in new[]
        {
            (nameof(ImageColumnName), ImageColumnName), (nameof(LabelColumnName), LabelColumnName),
            (nameof(OutputColumnName), OutputColumnName), (nameof(ConfidenceColumnName), ConfidenceColumnName),
            (nameof(CompletionMaskColumnName), CompletionMaskColumnName),
        })
            Check(!string.IsNullOrWhiteSpace(value) && value.Length <= MaxNameLength, name, $"a column name of 1 to {MaxNameLength} characters is required.");
        var outputs = new[] { OutputColumnName, ConfidenceColumnName, CompletionMaskColumnName };
        Check(outputs.Distinct(StringComparer.Ordinal).Count() == outputs.Length, nameof(OutputColumnName),
            $"the three output columns need distinct names ('{OutputColumnName}', '{ConfidenceColumnName}', '{CompletionMaskColumnName}').");

        CheckRange(MaskRatio, 0, 1, nameof(MaskRatio));
        CheckRange(Epochs, 1, MaxEpochs, nameof(Epochs));
        CheckRange(BatchSize, 1, MaxBatchSize, nameof(BatchSize));
        Check(LearningRate > 0 && LearningRate <= MaxLearningRate, nameof(LearningRate), $"must be in (0, {MaxLearningRate}]; it is {Show(LearningRate)}.");
        Check(ImageEncoderLearningRateScale >= 0 && ImageEncoderLearningRateScale <= MaxImageEncoderLearningRateScale, nameof(ImageEncoderLearningRateScale),
            $"must be in [0, {MaxImageEncoderLearningRateScale}]; it is {Show(ImageEncoderLearningRateScale)}.");
        Check(ImageEncoderLearningRateScale == 0 || (ImageFeatures & (ImageFeatureInputs.EncoderTokens | ImageFeatureInputs.PatchSupplement)) != 0,
            nameof(ImageEncoderLearningRateScale), "fine-tunes the ResNet18's stride-16 stage, which only the EncoderTokens and PatchSupplement image features read; "
            + $"ImageFeatures is {ImageFeatures}.");
        CheckRange(WeightDecay, 0, MaxWeightDecay, nameof(WeightDecay));
        Check(Enum.IsDefined(ClassWeighting), nameof(ClassWeighting), $"{(int)ClassWeighting} is not a class weighting.");
        Check(Enum.IsDefined(LossRegion), nameof(LossRegion), $"{(int)LossRegion} is not a loss region.");
        CheckRange(LearningRatePatience, 0, MaxPatience, nameof(LearningRatePatience));
        Check(LearningRateFactor > 0 && LearningRateFactor <= 1, nameof(LearningRateFactor), $"must be in (0, 1]; it is {Show(LearningRateFactor)}.");
        Check(LearningRateThreshold >= 0 && LearningRateThreshold < 1, nameof(LearningRateThreshold), $"must be in [0, 1); it is {Show(LearningRateThreshold)}.");
        CheckRange(EarlyStoppingPatience, 0, MaxPatience, nameof(EarlyStoppingPatience));
        Check(TrainingTimeLimit is null || (TrainingTimeLimit > TimeSpan.Zero && TrainingTimeLimit <= MaxTrainingTimeLimit), nameof(TrainingTimeLimit),
            $"must be null or positive and at most {MaxTrainingTimeLimit.TotalDays} days; it is {TrainingTimeLimit}.");
        if (NumberOfThreads is int threads) CheckRange(threads, 1, MaxThreads, nameof(NumberOfThreads));
        Check(Enum.IsDefined(Precision), nameof(Precision), $"{(int)Precision} is not a precision.");

        Check(Enum.IsDefined(MaskSelector), nameof(MaskSelector), $"{(int)MaskSelector} is not a mask selector.");
        CheckRange(InferenceMaskRatio, 0, 1, nameof(InferenceMaskRatio));
        Check(BackgroundClass < NumberOfClasses, nameof(BackgroundClass), $"{BackgroundClass} is not a class index (0..{NumberOfClasses - 1}).");
        CheckRange(InferenceBatchSize, 1, MaxBatchSize, nameof(InferenceBatchSize));

        Check(CheckpointDirectory is null || (CheckpointDirectory.Length <= MaxPathLength && !CheckpointDirectory.Contains('\0')), nameof(CheckpointDirectory),
            $"must be at most {MaxPathLength} characters without NUL.");
        Check(CheckpointEverySteps >= 0, nameof(CheckpointEverySteps), $"must be 0 (epoch ends only) or positive; it is {CheckpointEverySteps}.");
        Check(!ResumeFromCheckpoint || !string.IsNullOrWhiteSpace(CheckpointDirectory), nameof(ResumeFromCheckpoint), "needs a CheckpointDirectory to resume from.");
        Check(ClassNames is null || (ClassNames.Length == NumberOfClasses && ClassNames.All(n => n is not null && n.Length <= MaxNameLength)), nameof(ClassNames),
            $"needs one non-null name of at most {MaxNameLength} characters per class ({NumberOfClasses}); it has {ClassNames?.Length} entries.");
        Check(Palette is null || Palette.Length == 3 * NumberOfClasses, nameof(Palette),
            $"needs 3 bytes (R, G, B) per class, {3 * NumberOfClasses} in all; it has {Palette?.Length}.");
    }

    /// <summary>Throws the validation error of <paramref name="field"/> unless <paramref name="ok"/>.</summary>
    internal static void Check(bool ok, string field, string message)
    {
        if (!ok) throw new ArgumentOutOfRangeException(field, $"LabelCompletionOptions.{field}: {message}");
    }

    /// <summary>Checks <paramref name="min"/> &lt;= <paramref name="value"/> &lt;= <paramref name="max"/>.</summary>
    internal static void CheckRange(long value, long min, long max, string field)
        => Check(value >= min && value <= max, field, $"must be between {min} and {max}; it is {value}.");

    /// <summary>Checks <paramref name="min"/> &lt;= <paramref name="value"/> &lt;= <paramref name="max"/> (NaN fails).</summary>
    internal static void CheckRange(double value, double min, double max, string field)
        => Check(value >= min && value <= max, field, $"must be in [{Show(min)}, {Show(max)}]; it is {Show(value)}.");

    private static string Show(double value) => value.ToString("R", CultureInfo.InvariantCulture);

    /// <summary>
    /// The one serializer of the settings (the model's <c>LmaeSettings</c> entry, the run identity of checkpoints): the fields
    /// declared by this class by name, enums by name, nothing of the process-only members of <see cref="LabelCompletionOptions"/>;
    /// unknown or mistyped members and nulls in non-nullable fields are errors.
    /// </summary>
    internal static readonly JsonSerializerOptions Json = new()
    {
        IncludeFields = true,
        WriteIndented = true,
        Converters = { new JsonStringEnumConverter(allowIntegerValues: false) },
        UnmappedMemberHandling = JsonUnmappedMemberHandling.Disallow,
        RespectNullableAnnotations = true,
        RespectRequiredConstructorParameters = true,
        MaxDepth = 8,
        TypeInfoResolver = new DefaultJsonTypeInfoResolver { Modifiers = { SettingsFieldsOnly } },
    };

    private static void SettingsFieldsOnly(JsonTypeInfo info)
    {
        if (!typeof(LabelCompletionSettings).IsAssignableFrom(info.Type)) return;
        for (int i = info.Properties.Count - 1; i >= 0; i--)
        {
            if ((info.Properties[i].AttributeProvider as MemberInfo)?.DeclaringType != typeof(LabelCompletionSettings))
                info.Properties.RemoveAt(i);
        }
    }

    /// <summary>
    /// The lines that identify a training run for a checkpoint: every setting that changes the weights training computes
    /// (network fields explicit), as <c>Name=JSON value</c>, leaving out the fields marked
    /// <see cref="NotInRunFingerprintAttribute"/>; then the seed and precision actually used.
    /// </summary>
    internal IEnumerable<string> RunFingerprint(int seed, LabelCompletionPrecision resolvedPrecision)
    {
        var copy = (LabelCompletionSettings)MemberwiseClone();
        LmaeConfig.Resolve(copy).ApplyTo(copy);
        using var document = JsonDocument.Parse(JsonSerializer.SerializeToUtf8Bytes(copy, copy.GetType(), Json));
        foreach (var property in document.RootElement.EnumerateObject())
        {
            var field = typeof(LabelCompletionSettings).GetField(property.Name, BindingFlags.Public | BindingFlags.Instance);
            if (field is null || field.IsDefined(typeof(NotInRunFingerprintAttribute))) continue;
            yield return $"{property.Name}={property.Value.GetRawText()}";
        }
        yield return $"Seed={seed}";
        yield return $"Precision={resolvedPrecision}";
    }

    /// <summary>
    /// A copy: every field (of this class and of <see cref="LabelCompletionOptions"/>), arrays cloned, so later changes by
    /// the caller do not reach a trained model.
    /// </summary>
    private protected LabelCompletionSettings CloneSettings()
    {
        var copy = (LabelCompletionSettings)MemberwiseClone();
        foreach (var field in GetType().GetFields(System.Reflection.BindingFlags.Public | System.Reflection.BindingFlags.Instance))
            if (field.GetValue(copy) is Array array) field.SetValue(copy, array.Clone());
        return copy;
    }
}

/// <summary>
/// Marks a setting that does not change the weights training computes (columns, inference, checkpoint and provenance
/// settings), or whose effect a run's identity records otherwise: a checkpoint may be resumed with another value of it.
/// </summary>
[AttributeUsage(AttributeTargets.Field)]
internal sealed class NotInRunFingerprintAttribute : Attribute
{
}
