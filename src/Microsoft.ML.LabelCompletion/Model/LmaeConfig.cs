namespace Microsoft.ML.LabelCompletion.Model;

/// <summary>
/// The network an L-MAE is built from: the network fields of <see cref="LabelCompletionSettings"/> with the
/// <see cref="LabelCompletionSettings.ModelSize"/> preset applied and the training size rounded to whole patches. Made by
/// <see cref="FromOptions"/>; the settings saved with a model hold these values explicitly (see
/// <see cref="ApplyTo"/>), so a model never depends on the presets of the library that loads it.
/// </summary>
/// <param name="NumberOfClasses">Real classes <c>C</c>.</param>
/// <param name="UnknownLabel">Label value meaning unknown.</param>
/// <param name="PatchSize">Patch size <c>p</c>.</param>
/// <param name="TrainingSize">Side of the training crop and of the inference window, a multiple of <paramref name="PatchSize"/>.</param>
/// <param name="EncoderDimension">Encoder width <c>De</c>.</param>
/// <param name="EncoderDepth">Encoder blocks <c>EB</c>.</param>
/// <param name="EncoderHeads">Encoder attention heads.</param>
/// <param name="DecoderDimension">Decoder width <c>Dd</c>.</param>
/// <param name="DecoderDepth">Decoder blocks <c>DB</c>.</param>
/// <param name="DecoderHeads">Decoder attention heads.</param>
/// <param name="MlpRatio">MLP hidden width as a multiple of the block width.</param>
/// <param name="Activation">MLP activation.</param>
/// <param name="UseImagePatchSupplement">Image Patch Supplement on (true) or the learned mask token (false).</param>
/// <param name="LabelPrior">How the NearestKnown label prior enters the network.</param>
/// <param name="WindowOverlap">Overlap of neighbouring inference windows, as a share of the window.</param>
/// <param name="RefinementChannels">Hidden channels of the <see cref="PixelRefinement"/> head; 0 turns it off.</param>
/// <param name="DirectionalPrior">The refinement also sees the <see cref="DirectionalFill"/> labels and distances.</param>
/// <param name="ImageFeatures">Where the ImageNet ResNet18's features enter the network.</param>
internal sealed record LmaeConfig(
    int NumberOfClasses, byte UnknownLabel, int PatchSize, int TrainingSize,
    int EncoderDimension, int EncoderDepth, int EncoderHeads,
    int DecoderDimension, int DecoderDepth, int DecoderHeads,
    int MlpRatio, TransformerActivation Activation, bool UseImagePatchSupplement, LabelPriorMode LabelPrior,
    float WindowOverlap, int RefinementChannels = 0, bool DirectionalPrior = false, ImageFeatureInputs ImageFeatures = ImageFeatureInputs.None)
{
    /// <summary>Channels of the pixel refinement's image-feature input (the stride-8 features projected).</summary>
    public const int RefinementFeatureChannels = 16;

    /// <summary>Whether the encoder or the supplement reads per-patch image features.</summary>
    public bool PatchFeatures => (ImageFeatures & (ImageFeatureInputs.EncoderTokens | ImageFeatureInputs.PatchSupplement)) != 0;

    /// <summary>Whether the pixel refinement reads image features (only when there is a refinement).</summary>
    public bool RefinementFeatures => (ImageFeatures & ImageFeatureInputs.PixelRefinement) != 0 && RefinementChannels > 0;

    /// <summary>
    /// Width of one patch's image features: the stride-8 (128 channels) and stride-16 (256) maps, each rearranged to one
    /// vector per patch (a patch of <c>p</c> ≥ stride holds <c>(p/stride)²</c> positions; a smaller patch repeats its position).
    /// </summary>
    public int PatchFeatureDimension => 128 * Math.Max(1, PatchSize / 8) * Math.Max(1, PatchSize / 8) + 256 * Math.Max(1, PatchSize / 16) * Math.Max(1, PatchSize / 16);

    /// <summary>The ResNet18 stages the features need: 3 (stride 16) for patch features, 2 (stride 8) for the refinement alone.</summary>
    public int BackboneStages => PatchFeatures ? 3 : RefinementFeatures ? 2 : 0;

    /// <summary>Channels of the Fuse Map: <c>C</c> one-hot label channels and 3 RGB channels (paper eq. 1).</summary>
    public int FusedChannels => NumberOfClasses + 3;

    /// <summary>
    /// A lower bound of the bytes the saved weights of this network take: the FP32 weight matrices of the patch embedding,
    /// of every Transformer block (attention 4·D², MLP 2·r·D²) and of the decoder's prediction head, without biases,
    /// normalisations or the other heads. A model file whose weights entry is smaller describes a network its weights
    /// cannot fill, and is refused before the network is built.
    /// </summary>
    internal long MinimumWeightBytes
    {
        get
        {
            long p2 = (long)PatchSize * PatchSize;
            long blocks = (long)EncoderDepth * (4 + 2L * MlpRatio) * EncoderDimension * EncoderDimension
                + (long)DecoderDepth * (4 + 2L * MlpRatio) * DecoderDimension * DecoderDimension;
            long backbone = BackboneStages switch { 3 => 2_778_304, 2 => 681_152, _ => 0 }; // ResNet18 convolution weights up to that stage
            return 4 * (blocks + FusedChannels * p2 * EncoderDimension + DecoderDimension * p2 * NumberOfClasses + backbone);
        }
    }

    /// <summary>The network of <paramref name="options"/> (preset and explicit fields), after <see cref="LabelCompletionSettings.Validate"/>.</summary>
    /// <exception cref="ArgumentOutOfRangeException">A field of <paramref name="options"/> is out of its bounds (the error names it).</exception>
    public static LmaeConfig FromOptions(LabelCompletionSettings options)
    {
        ArgumentNullException.ThrowIfNull(options);
        options.Validate();
        return Resolve(options);
    }

    /// <summary>The network of <paramref name="options"/> without checking it (<see cref="Validate"/> does).</summary>
    internal static LmaeConfig Resolve(LabelCompletionSettings options)
    {
        var (p, de, eb, eh, dd, db, dh) = options.ModelSize switch
        {
            LabelCompletionModelSize.Tiny => (8, 64, 2, 4, 32, 1, 4),
            LabelCompletionModelSize.Small => (16, 256, 6, 8, 128, 4, 4),
            LabelCompletionModelSize.Paper => (16, 1440, 8, 16, 720, 6, 16),
            _ => throw new ArgumentOutOfRangeException(nameof(options.ModelSize), options.ModelSize, "LabelCompletionOptions.ModelSize: not a model size."),
        };
        p = options.PatchSize ?? p;
        // Rounded up to whole patches (left as given when the patch size is not valid: Validate names the patch size).
        long window = p > 0 ? ((long)options.TrainingSize + p - 1) / p * p : options.TrainingSize;
        return new LmaeConfig(options.NumberOfClasses, options.UnknownLabel, p, (int)Math.Clamp(window, int.MinValue, int.MaxValue),
            options.EncoderEmbeddingDimension ?? de, options.EncoderDepth ?? eb, options.EncoderHeads ?? eh,
            options.DecoderEmbeddingDimension ?? dd, options.DecoderDepth ?? db, options.DecoderHeads ?? dh,
            options.MlpRatio, options.Activation, options.UseImagePatchSupplement, options.LabelPrior, options.WindowOverlap,
            options.PixelRefinementChannels, options.DirectionalPrior && options.PixelRefinementChannels > 0, options.ImageFeatures);
    }

    /// <summary>Writes this network into the network fields of <paramref name="options"/> (explicit values, preset kept for reference).</summary>
    internal void ApplyTo(LabelCompletionSettings options)
    {
        options.NumberOfClasses = NumberOfClasses;
        options.UnknownLabel = UnknownLabel;
        options.PatchSize = PatchSize;
        options.TrainingSize = TrainingSize;
        options.EncoderEmbeddingDimension = EncoderDimension;
        options.EncoderDepth = EncoderDepth;
        options.EncoderHeads = EncoderHeads;
        options.DecoderEmbeddingDimension = DecoderDimension;
        options.DecoderDepth = DecoderDepth;
        options.DecoderHeads = DecoderHeads;
        options.MlpRatio = MlpRatio;
        options.Activation = Activation;
        options.UseImagePatchSupplement = UseImagePatchSupplement;
        options.LabelPrior = LabelPrior;
        options.WindowOverlap = WindowOverlap;
        options.PixelRefinementChannels = RefinementChannels;
        options.DirectionalPrior = DirectionalPrior;
        options.ImageFeatures = ImageFeatures;
    }

    /// <summary>
    /// Checks the bounds of the network (listed on <see cref="LabelCompletionSettings"/>) and that it can be built: widths that
    /// split into their heads and into the 2-D sin-cos positions, a window of whole patches. Errors name the field of
    /// <see cref="LabelCompletionOptions"/> that sets the value.
    /// </summary>
    /// <exception cref="ArgumentOutOfRangeException">A value is out of its bounds.</exception>
    public void Validate()
    {
        const int maxClasses = LabelCompletionSettings.MaxClasses;
        LabelCompletionSettings.CheckRange(NumberOfClasses, 1, maxClasses, nameof(LabelCompletionSettings.NumberOfClasses));
        LabelCompletionSettings.Check(UnknownLabel >= NumberOfClasses, nameof(LabelCompletionSettings.UnknownLabel),
            $"{UnknownLabel} is a class index (0..{NumberOfClasses - 1}); the unknown value must lie outside the classes.");
        LabelCompletionSettings.CheckRange(PatchSize, 1, LabelCompletionSettings.MaxPatchSize, nameof(LabelCompletionSettings.PatchSize));
        Block(EncoderDimension, EncoderDepth, EncoderHeads, nameof(LabelCompletionSettings.EncoderEmbeddingDimension),
            nameof(LabelCompletionSettings.EncoderDepth), nameof(LabelCompletionSettings.EncoderHeads));
        Block(DecoderDimension, DecoderDepth, DecoderHeads, nameof(LabelCompletionSettings.DecoderEmbeddingDimension),
            nameof(LabelCompletionSettings.DecoderDepth), nameof(LabelCompletionSettings.DecoderHeads));
        LabelCompletionSettings.CheckRange(MlpRatio, 1, LabelCompletionSettings.MaxMlpRatio, nameof(LabelCompletionSettings.MlpRatio));
        LabelCompletionSettings.Check(Enum.IsDefined(Activation), nameof(LabelCompletionSettings.Activation), $"{(int)Activation} is not an activation.");
        LabelCompletionSettings.Check(Enum.IsDefined(LabelPrior), nameof(LabelCompletionSettings.LabelPrior), $"{(int)LabelPrior} is not a label prior mode.");
        LabelCompletionSettings.CheckRange(RefinementChannels, 0, LabelCompletionSettings.MaxRefinementChannels, nameof(LabelCompletionSettings.PixelRefinementChannels));
        LabelCompletionSettings.Check(!DirectionalPrior || RefinementChannels > 0, nameof(LabelCompletionSettings.DirectionalPrior),
            "the directional prior is an input of the pixel refinement: set PixelRefinementChannels.");
        LabelCompletionSettings.Check(TrainingSize >= PatchSize && TrainingSize <= LabelCompletionSettings.MaxTrainingSize
            && TrainingSize % PatchSize == 0 && TrainingSize / PatchSize <= LabelCompletionSettings.MaxPatchesPerSide,
            nameof(LabelCompletionSettings.TrainingSize),
            $"must be a multiple of the patch size {PatchSize} from {PatchSize} to {LabelCompletionSettings.MaxTrainingSize} pixels and "
            + $"{LabelCompletionSettings.MaxPatchesPerSide} patches (it is rounded up to whole patches); it is {TrainingSize}.");
        LabelCompletionSettings.CheckRange(WindowOverlap, 0, LabelCompletionSettings.MaxWindowOverlap, nameof(LabelCompletionSettings.WindowOverlap));
        LabelCompletionSettings.Check((ImageFeatures & ~ImageFeatureInputs.All) == 0, nameof(LabelCompletionSettings.ImageFeatures),
            $"{(int)ImageFeatures} is not a combination of image feature inputs.");
        LabelCompletionSettings.Check(ImageFeatures == ImageFeatureInputs.None || (PatchSize >= 2 && (PatchSize & (PatchSize - 1)) == 0),
            nameof(LabelCompletionSettings.ImageFeatures), $"image features need a patch size that is a power of two (the ResNet18's strides are 8 and 16); it is {PatchSize}.");
    }

    private static void Block(int width, int depth, int heads, string widthField, string depthField, string headsField)
    {
        LabelCompletionSettings.CheckRange(width, LabelCompletionSettings.MinWidth, LabelCompletionSettings.MaxWidth, widthField);
        LabelCompletionSettings.CheckRange(depth, 0, LabelCompletionSettings.MaxDepth, depthField);
        LabelCompletionSettings.CheckRange(heads, 1, LabelCompletionSettings.MaxHeads, headsField);
        LabelCompletionSettings.Check(width % 4 == 0, widthField, $"must be a multiple of 4 (2-D sin-cos positions); it is {width}.");
        LabelCompletionSettings.Check(width % heads == 0, headsField, $"{heads} heads do not divide the width {width} ({widthField}).");
    }
}
