using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Microsoft.ML.LabelCompletion.Model;

/// <summary>
/// The image features of a batch, in the layouts their readers need.
/// </summary>
/// <param name="Patches">float <c>[B, L, Df]</c>: one normalised feature vector per patch (<see cref="LmaeConfig.PatchFeatureDimension"/>), or null.</param>
/// <param name="Pixels">float <c>[B, 16, H, W]</c>: the refinement's feature channels at full resolution, or null.</param>
internal sealed record ImageFeatures(Tensor? Patches, Tensor? Pixels);

/// <summary>
/// The pretrained image branch (<see cref="ImageFeatureInputs"/>; a step beyond the paper, which learns the image from the
/// labelled data alone): the frozen ImageNet ResNet18 (<see cref="ResNet18Backbone"/>) over the normalised RGB of a crop or
/// window, its stride-8 and stride-16 outputs rearranged to one vector per patch and layer-normalised (read by the encoder
/// tokens and the Image Patch Supplement through their own projections), and its stride-8 output projected to
/// <see cref="LmaeConfig.RefinementFeatureChannels"/> channels and upsampled bilinearly to full resolution (read by the
/// pixel refinement). The ResNet18 runs without gradients; the normalisation and the projections train.
/// </summary>
internal sealed class ImageFeatureBranch : nn.Module
{
    private readonly ResNet18Backbone _backbone;
    private readonly LayerNorm? _patchNorm;
    private readonly Linear? _toEncoder;
    private readonly Linear? _toSupplement;
    private readonly Conv2d? _toRefinement;
    private readonly LmaeConfig _config;

    /// <summary>The branch of <paramref name="config"/> (which must use image features), with zero ResNet18 weights until <see cref="LoadBackbone"/> or a saved state dictionary fills them.</summary>
    public ImageFeatureBranch(LmaeConfig config) : base(nameof(ImageFeatureBranch))
    {
        _config = config;
        _backbone = new ResNet18Backbone(config.BackboneStages);
        if (config.PatchFeatures) _patchNorm = nn.LayerNorm(config.PatchFeatureDimension);
        if ((config.ImageFeatures & ImageFeatureInputs.EncoderTokens) != 0) _toEncoder = nn.Linear(config.PatchFeatureDimension, config.EncoderDimension);
        if ((config.ImageFeatures & ImageFeatureInputs.PatchSupplement) != 0) _toSupplement = nn.Linear(config.PatchFeatureDimension, config.DecoderDimension);
        if (config.RefinementFeatures) _toRefinement = nn.Conv2d(ResNet18Backbone.StageChannels[1], LmaeConfig.RefinementFeatureChannels, 1);
        RegisterComponents();
    }

    /// <summary>The frozen ResNet18.</summary>
    public ResNet18Backbone Backbone => _backbone;

    /// <summary>Reads the ResNet18's weights from its ONNX file (<see cref="ResNet18Backbone.Load"/>); a new network's step.</summary>
    public void LoadBackbone(string? modelPath = null) => _backbone.LoadWeights(modelPath);

    /// <summary>
    /// The features of <paramref name="rgb"/> <c>[B, 3, H, W]</c> (normalised; <c>H</c>, <c>W</c> multiples of the patch
    /// size): per patch when the encoder or the supplement reads them, per pixel when <paramref name="pixels"/> and the
    /// refinement reads them.
    /// </summary>
    public ImageFeatures Compute(Tensor rgb, bool patches, bool pixels)
    {
        using var scope = NewDisposeScope();
        patches &= _config.PatchFeatures;
        pixels &= _config.RefinementFeatures;
        if (!patches && !pixels) return new ImageFeatures(null, null);
        long h = rgb.shape[2], w = rgb.shape[3];
        int p = _config.PatchSize, rows = (int)(h / p), columns = (int)(w / p);
        // The ResNet18's strides need sizes that are multiples of 16: pad with zeros (the mean colour) below and right.
        long ph = (h + 15) / 16 * 16, pw = (w + 15) / 16 * 16;
        Tensor[] stages;
        using (no_grad())
        {
            using var padded = ph == h && pw == w ? rgb.alias() : nn.functional.pad(rgb, [0, pw - w, 0, ph - h]);
            stages = _backbone.Forward(padded, patches ? 3 : 2);
        }
        Tensor? patchFeatures = null, pixelFeatures = null;
        if (patches)
        {
            // [B, Df, rows, columns] → [B, L, Df], normalised per patch.
            var grid = cat([PerPatch(stages[1], 8, p, rows, columns), PerPatch(stages[2], 16, p, rows, columns)], 1);
            patchFeatures = _patchNorm!.forward(grid.flatten(2).transpose(1, 2));
        }
        if (pixels)
        {
            var projected = Autocast.ToFloat32(Autocast.Conv2d(_toRefinement!, stages[1], 0, 1));
            pixelFeatures = nn.functional.interpolate(projected, scale_factor: [8, 8], mode: InterpolationMode.Bilinear, align_corners: false)
                .narrow(2, 0, h).narrow(3, 0, w);
        }
        patchFeatures?.MoveToOuterDisposeScope();
        pixelFeatures?.MoveToOuterDisposeScope();
        return new ImageFeatures(patchFeatures, pixelFeatures);
    }

    /// <summary>Projection of per-patch features <c>[B, L', Df]</c> to encoder tokens <c>[B, L', De]</c>, or null when the encoder does not read them.</summary>
    public Tensor? ToEncoder(Tensor patchFeatures) => _toEncoder is null ? null : Autocast.ToFloat32(Autocast.Linear(_toEncoder, patchFeatures));

    /// <summary>Projection of per-patch features <c>[B, L, Df]</c> to supplement tokens <c>[B, L, Dd]</c>, or null when the supplement does not read them.</summary>
    public Tensor? ToSupplement(Tensor patchFeatures) => _toSupplement is null ? null : Autocast.ToFloat32(Autocast.Linear(_toSupplement, patchFeatures));

    /// <summary>
    /// A stride-<paramref name="stride"/> feature map <c>[B, K, H/s, W/s]</c> as one vector per patch of <paramref name="patch"/>
    /// pixels, <c>[B, K·max(1, p/s)², rows, columns]</c>: a patch larger than the stride gathers its positions (pixel
    /// unshuffle), a smaller one repeats the position that covers it.
    /// </summary>
    private static Tensor PerPatch(Tensor map, int stride, int patch, int rows, int columns)
    {
        var grid = patch >= stride ? nn.functional.pixel_unshuffle(map, patch / stride)
            : map.repeat_interleave(stride / patch, 2).repeat_interleave(stride / patch, 3);
        return grid.narrow(2, 0, rows).narrow(3, 0, columns);
    }
}
