namespace Microsoft.ML.LabelCompletion.Model;

/// <summary>Resolved hyper-parameters of an L-MAE network: everything saved with the weights to rebuild it.</summary>
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
public sealed record LmaeConfig(
    int NumberOfClasses, byte UnknownLabel, int PatchSize, int TrainingSize,
    int EncoderDimension, int EncoderDepth, int EncoderHeads,
    int DecoderDimension, int DecoderDepth, int DecoderHeads,
    int MlpRatio, TransformerActivation Activation, bool UseImagePatchSupplement, LabelPriorMode LabelPrior,
    float WindowOverlap, int RefinementChannels = 0, bool DirectionalPrior = false)
{
    /// <summary>Channels of the Fuse Map: <c>C</c> one-hot label channels and 3 RGB channels (paper eq. 1).</summary>
    public int FusedChannels => NumberOfClasses + 3;

    /// <summary>Resolves the preset of <see cref="LabelCompletionOptions.ModelSize"/> and the explicit fields of <paramref name="options"/>; validates them.</summary>
    public static LmaeConfig FromOptions(LabelCompletionOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        var (p, de, eb, eh, dd, db, dh) = options.ModelSize switch
        {
            LabelCompletionModelSize.Tiny => (8, 64, 2, 4, 32, 1, 4),
            LabelCompletionModelSize.Small => (16, 256, 6, 8, 128, 4, 4),
            LabelCompletionModelSize.Paper => (16, 1440, 8, 16, 720, 6, 16),
            _ => throw new ArgumentOutOfRangeException(nameof(options), options.ModelSize, "Unknown model size."),
        };
        p = options.PatchSize ?? p;
        if (options.NumberOfClasses < 1 || options.NumberOfClasses > 254)
            throw new ArgumentOutOfRangeException(nameof(options), options.NumberOfClasses, "NumberOfClasses must be set, between 1 and 254.");
        if (options.UnknownLabel < options.NumberOfClasses)
            throw new ArgumentOutOfRangeException(nameof(options), options.UnknownLabel, $"UnknownLabel {options.UnknownLabel} collides with a class index (0..{options.NumberOfClasses - 1}).");
        if (p < 1) throw new ArgumentOutOfRangeException(nameof(options), p, "PatchSize must be positive.");
        if (options.TrainingSize < p) throw new ArgumentOutOfRangeException(nameof(options), options.TrainingSize, "TrainingSize must be at least the patch size.");
        if (options.WindowOverlap < 0 || options.WindowOverlap >= 1) throw new ArgumentOutOfRangeException(nameof(options), options.WindowOverlap, "WindowOverlap must be in [0, 1).");
        var config = new LmaeConfig(options.NumberOfClasses, options.UnknownLabel, p, (options.TrainingSize + p - 1) / p * p,
            options.EncoderEmbeddingDimension ?? de, options.EncoderDepth ?? eb, options.EncoderHeads ?? eh,
            options.DecoderEmbeddingDimension ?? dd, options.DecoderDepth ?? db, options.DecoderHeads ?? dh,
            options.MlpRatio, options.Activation, options.UseImagePatchSupplement, options.LabelPrior, options.WindowOverlap,
            options.PixelRefinementChannels, options.DirectionalPrior && options.PixelRefinementChannels > 0);
        config.Validate();
        return config;
    }

    /// <summary>Throws when the widths cannot be split into heads or the 2-D position embedding, or a value is out of range.</summary>
    public void Validate()
    {
        static void Check(bool ok, string message)
        {
            if (!ok) throw new ArgumentException(message);
        }
        Check(EncoderDepth >= 0 && DecoderDepth >= 0, "Block counts must not be negative.");
        Check(EncoderHeads > 0 && EncoderDimension % EncoderHeads == 0, $"Encoder width {EncoderDimension} is not a multiple of its {EncoderHeads} heads.");
        Check(DecoderHeads > 0 && DecoderDimension % DecoderHeads == 0, $"Decoder width {DecoderDimension} is not a multiple of its {DecoderHeads} heads.");
        Check(EncoderDimension % 4 == 0 && DecoderDimension % 4 == 0, "Encoder and decoder widths must be multiples of 4 (2-D sin-cos positions).");
        Check(MlpRatio > 0, "MlpRatio must be positive.");
        Check(RefinementChannels >= 0, "RefinementChannels must not be negative.");
        Check(!DirectionalPrior || RefinementChannels > 0, "The directional prior is an input of the pixel refinement: set RefinementChannels.");
        Check(TrainingSize % PatchSize == 0, "TrainingSize must be a multiple of PatchSize.");
    }
}
