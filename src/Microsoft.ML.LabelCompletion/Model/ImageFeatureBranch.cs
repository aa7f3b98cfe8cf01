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
/// The image features of one ResNet18 pass, before the refinement's projection: of one whole (padded) image, computed once
/// by completion and read by every window and by the whole-image refinement (<see cref="ImageFeatureBranch.WholeImage"/>),
/// or of a batch of training crops.
/// </summary>
/// <param name="Patches">float <c>[B, L, Df]</c>: one normalised vector per patch of the image's grid, or null.</param>
/// <param name="Stride8">float <c>[B, 128, ⌈H/16⌉·2, ⌈W/16⌉·2]</c>: the ResNet18's stride-8 output for the refinement's channels, or null.</param>
/// <param name="Rows">Patch rows of the image.</param>
/// <param name="Columns">Patch columns of the image.</param>
internal sealed record ImageFeatureMaps(Tensor? Patches, Tensor? Stride8, int Rows, int Columns);

/// <summary>
/// The pretrained image branch (<see cref="ImageFeatureInputs"/>; a step beyond the paper, which learns the image from the
/// labelled data alone): the ImageNet ResNet18 (<see cref="ResNet18Backbone"/>) over the normalised RGB of a training crop
/// (<see cref="Compute"/>) or of a whole image at completion (<see cref="WholeImage"/>, its windows cut from it), its
/// stride-8 and stride-16 outputs rearranged to one vector per patch and layer-normalised (read by the encoder tokens and
/// the Image Patch Supplement through their own projections), and its stride-8 output projected to
/// <see cref="LmaeConfig.RefinementFeatureChannels"/> channels and upsampled bilinearly to full resolution (read by the
/// pixel refinement). The ResNet18 runs without gradients (frozen), except its stride-16 stage while
/// <see cref="FineTuneLastStage"/>; the normalisation and the projections train.
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
    /// refinement reads them. Training computes them per crop.
    /// </summary>
    public ImageFeatures Compute(Tensor rgb, bool patches, bool pixels)
    {
        using var scope = NewDisposeScope();
        var maps = Maps(rgb, patches, pixels);
        var features = new ImageFeatures(maps.Patches, Pixels(maps, rgb.shape[2], rgb.shape[3]));
        features.Patches?.MoveToOuterDisposeScope();
        features.Pixels?.MoveToOuterDisposeScope();
        return features;
    }

    /// <summary>
    /// The features of one whole image <paramref name="rgb"/> <c>[1, 3, H, W]</c> (normalised, padded to the patch grid),
    /// from one ResNet18 pass: per patch when the encoder or the supplement reads them, the stride-8 output when
    /// <paramref name="pixels"/> and the refinement reads it. Completion cuts each window's patch features from them
    /// (<see cref="WindowPatches"/>) instead of running the ResNet18 again on every overlapping window; near a window's
    /// border the features then see the image beyond it, where a training crop's see zero padding.
    /// </summary>
    public ImageFeatureMaps WholeImage(Tensor rgb, bool pixels) => Maps(rgb, patches: true, pixels);

    /// <summary>
    /// One ResNet18 pass over <paramref name="rgb"/> <c>[B, 3, H, W]</c>: the patch features when <paramref name="patches"/>
    /// and the encoder or the supplement reads them, the stride-8 output when <paramref name="pixels"/> and the refinement
    /// reads it (stages up to stride 16 only when the patch features need them).
    /// </summary>
    private ImageFeatureMaps Maps(Tensor rgb, bool patches, bool pixels)
    {
        using var scope = NewDisposeScope();
        long h = rgb.shape[2], w = rgb.shape[3];
        int rows = (int)(h / _config.PatchSize), columns = (int)(w / _config.PatchSize);
        patches &= _config.PatchFeatures;
        pixels &= _config.RefinementFeatures;
        if (!patches && !pixels) return new ImageFeatureMaps(null, null, rows, columns);
        var stages = Stages(rgb, patches);
        var patchFeatures = patches ? PatchesOf(stages, h, w) : null;
        var stride8 = pixels ? stages[1] : null;
        patchFeatures?.MoveToOuterDisposeScope();
        stride8?.MoveToOuterDisposeScope();
        return new ImageFeatureMaps(patchFeatures, stride8, rows, columns);
    }

    /// <summary>
    /// The patch features <c>[1, L', Df]</c> of the window of <paramref name="width"/> x <paramref name="height"/> pixels at
    /// (<paramref name="x"/>, <paramref name="y"/>) (multiples of the patch size), cut from <paramref name="maps"/>; null
    /// when the maps hold none.
    /// </summary>
    public Tensor? WindowPatches(ImageFeatureMaps maps, int x, int y, int width, int height)
    {
        if (maps.Patches is not { } patches) return null;
        int p = _config.PatchSize;
        return patches.view(1, maps.Rows, maps.Columns, -1).narrow(1, y / p, height / p).narrow(2, x / p, width / p)
            .reshape(1, (long)(height / p) * (width / p), -1);
    }

    /// <summary>The refinement's feature channels <c>[B, 16, H, W]</c> from the maps' stride-8 output, or null when they hold none.</summary>
    public Tensor? Pixels(ImageFeatureMaps maps, long height, long width)
        => maps.Stride8 is { } stride8 ? PixelsOf(stride8, height, width) : null;

    /// <summary>
    /// Whether the ResNet18's last stage used here (stride 16) trains (<see cref="LabelCompletionSettings.ImageEncoderLearningRateScale"/>):
    /// while on, training computes it with gradients; the stages below stay frozen.
    /// </summary>
    public bool FineTuneLastStage
    {
        get => _fineTuneLastStage;
        set
        {
            if (value && _config.BackboneStages < 3)
                throw new InvalidOperationException("Only the stride-16 stage is fine-tuned, and this configuration's image features do not use it.");
            if (_config.BackboneStages >= 3) _backbone.SetTrainable(value, firstStage: 2);
            _fineTuneLastStage = value;
        }
    }

    private bool _fineTuneLastStage;

    /// <summary>
    /// The ResNet18's outputs of stages 0-2 (0-3 with <paramref name="toStage3"/>) over <paramref name="rgb"/>, without
    /// gradients, except the stride-16 stage's while <see cref="FineTuneLastStage"/> and gradients are on.
    /// </summary>
    private Tensor[] Stages(Tensor rgb, bool toStage3)
    {
        long h = rgb.shape[2], w = rgb.shape[3];
        // The ResNet18's strides need sizes that are multiples of 16: pad with zeros (the mean colour) below and right.
        long ph = (h + 15) / 16 * 16, pw = (w + 15) / 16 * 16;
        using var padded = ph == h && pw == w ? rgb.alias() : nn.functional.pad(rgb, [0, pw - w, 0, ph - h]);
        bool trainLast = toStage3 && _fineTuneLastStage && is_grad_enabled();
        Tensor[] frozen;
        using (no_grad()) frozen = _backbone.Forward(padded, toStage3 && !trainLast ? 3 : 2);
        return trainLast ? [frozen[0], frozen[1], _backbone.ForwardStage(frozen[1], 2)] : frozen;
    }

    /// <summary>Stride-8 and stride-16 outputs → <c>[B, L, Df]</c>, one layer-normalised vector per patch of the <paramref name="h"/> x <paramref name="w"/> grid.</summary>
    private Tensor PatchesOf(Tensor[] stages, long h, long w)
    {
        int p = _config.PatchSize, rows = (int)(h / p), columns = (int)(w / p);
        var grid = cat([PerPatch(stages[1], 8, p, rows, columns), PerPatch(stages[2], 16, p, rows, columns)], 1);
        return _patchNorm!.forward(grid.flatten(2).transpose(1, 2));
    }

    /// <summary>Stride-8 output → the refinement's channels <c>[B, 16, h, w]</c>: 1x1 projection, bilinear upsampling.</summary>
    private Tensor PixelsOf(Tensor stride8, long h, long w)
    {
        var projected = Autocast.ToFloat32(Autocast.Conv2d(_toRefinement!, stride8, 0, 1));
        return nn.functional.interpolate(projected, scale_factor: [8, 8], mode: InterpolationMode.Bilinear, align_corners: false)
            .narrow(2, 0, h).narrow(3, 0, w);
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
