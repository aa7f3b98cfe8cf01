using Microsoft.ML.LabelCompletion.Model;

namespace Microsoft.ML.LabelCompletion.Benchmarks;

/// <summary>
/// Floating-point operations of the L-MAE, counted from the layer shapes (a multiply-add counts as 2; softmax,
/// LayerNorm and activations are left out, they are a few percent at these sizes).
/// </summary>
internal static class LmaeFlops
{
    /// <summary>Forward FLOPs for one <paramref name="height"/> x <paramref name="width"/> input (multiples of p) with <paramref name="visiblePatches"/> visible patches.</summary>
    public static double Forward(LmaeConfig config, int height, int width, int visiblePatches)
        => EncoderDecoder(config, height, width, visiblePatches) + Refinement(config, height, width)
            + ImageFeatures(config, height, width, patches: true, pixels: true);

    /// <summary>Forward FLOPs of everything but the pixel refinement (embedding, encoder, supplement, decoder, head) for one input.</summary>
    public static double EncoderDecoder(LmaeConfig config, int height, int width, int visiblePatches)
    {
        int p = config.PatchSize, c = config.NumberOfClasses;
        double l = (double)(height / p) * (width / p), nv = visiblePatches;
        double de = config.EncoderDimension, dd = config.DecoderDimension, r = config.MlpRatio;
        double flops = 2 * nv * config.FusedChannels * p * p * de;                  // patch embedding (visible only)
        flops += config.EncoderDepth * Block(nv, de, r);                            // encoder
        flops += 2 * nv * de * dd;                                                  // encoder → decoder width
        if (config.UseImagePatchSupplement)                                         // Image Patch Supplement (every position)
            flops += 2 * l * (config.LabelPrior == LabelPriorMode.None ? 3 : 3 + c) * p * p * dd;
        flops += config.DecoderDepth * Block(l, dd, r);                             // decoder
        flops += 2 * l * dd * p * p * c;                                            // head
        return flops;
    }

    /// <summary>
    /// Forward FLOPs of the image features (<see cref="ImageFeatureBranch"/>) for one input: <see cref="Backbone"/> and
    /// <see cref="FeatureProjections"/>; 0 without image features.
    /// </summary>
    public static double ImageFeatures(LmaeConfig config, int height, int width, bool patches, bool pixels)
        => Backbone(config, height, width, patches, pixels) + FeatureProjections(config, height, width, patches, pixels);

    /// <summary>
    /// FLOPs of the frozen ResNet18 for one input: its convolutions up to stride 16 (when the encoder or the supplement reads
    /// patch features) or 8 (the refinement's alone); 0 without image features.
    /// </summary>
    public static double Backbone(LmaeConfig config, int height, int width, bool patches, bool pixels)
    {
        patches &= config.PatchFeatures;
        pixels &= config.RefinementFeatures;
        if (!patches && !pixels) return 0;
        double hw = (double)((height + 15) / 16 * 16) * ((width + 15) / 16 * 16);
        double flops = 2 * hw / 4 * 64 * 3 * 49                                       // stem 7x7/2
            + 2 * hw / 16 * 4 * 64 * 64 * 9                                           // stage 1
            + 2 * hw / 64 * (128 * 64 * 9 + 128 * 64 + 3 * 128 * 128 * 9);             // stage 2
        if (patches) flops += 2 * hw / 256 * (256 * 128 * 9 + 256 * 128 + 3 * 256 * 256 * 9); // stage 3
        return flops;
    }

    /// <summary>FLOPs of the trained projections of the image features for one input (per-patch linears, the refinement's 1x1 convolution).</summary>
    public static double FeatureProjections(LmaeConfig config, int height, int width, bool patches, bool pixels)
    {
        double flops = 0;
        if (patches && config.PatchFeatures)
        {
            double l = (double)(height / config.PatchSize) * (width / config.PatchSize);
            int widths = ((config.ImageFeatures & ImageFeatureInputs.EncoderTokens) != 0 ? config.EncoderDimension : 0)
                + ((config.ImageFeatures & ImageFeatureInputs.PatchSupplement) != 0 ? config.DecoderDimension : 0);
            flops += 2 * l * config.PatchFeatureDimension * widths;
        }
        if (pixels && config.RefinementFeatures) flops += 2 * ((height + 15) / 16 * 16) * ((width + 15) / 16 * 16) / 64.0 * 128 * LmaeConfig.RefinementFeatureChannels;
        return flops;
    }

    /// <summary>
    /// FLOPs of one training step per image at a square crop of <paramref name="size"/>: forward and backward (about 3x the
    /// forward) of the trained layers, forward only of the frozen ResNet18.
    /// </summary>
    public static double TrainingStep(LmaeConfig config, int size, double maskRatio)
    {
        double backbone = Backbone(config, size, size, true, true);
        return 3 * (Forward(config, size, maskRatio) - backbone) + backbone;
    }

    /// <summary>Forward FLOPs of the pixel refinement (full resolution) over <paramref name="height"/> x <paramref name="width"/> pixels; 0 without one.</summary>
    public static double Refinement(LmaeConfig config, int height, int width)
    {
        if (config.RefinementChannels <= 0) return 0;
        double k = config.RefinementChannels, pixels = (double)height * width, c = config.NumberOfClasses;
        double inputs = 2 * c + 4 + (config.DirectionalPrior ? 4 * c + 4 : 0) + (config.RefinementFeatures ? LmaeConfig.RefinementFeatureChannels : 0);
        return 2 * pixels * 9 * (inputs * k + 3 * k * k) + 2 * pixels * k * c;
    }

    /// <summary>Forward FLOPs at a square crop of <paramref name="size"/> with mask ratio <paramref name="maskRatio"/>.</summary>
    public static double Forward(LmaeConfig config, int size, double maskRatio)
    {
        int l = (size / config.PatchSize) * (size / config.PatchSize);
        return Forward(config, size, size, l - MaskSelector.MaskedCount(l, maskRatio));
    }

    /// <summary>One pre-norm Transformer block over <paramref name="n"/> tokens of width <paramref name="d"/>: QKV, scores, weighted sum, projection, MLP.</summary>
    public static double Block(double n, double d, double mlpRatio)
        => 2 * n * d * 3 * d + 2 * n * n * d + 2 * n * n * d + 2 * n * d * d + 2 * 2 * n * d * mlpRatio * d;
}
