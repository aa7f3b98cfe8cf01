using Microsoft.ML.LabelCompletion.Data;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Microsoft.ML.LabelCompletion.Model;

/// <summary>
/// One batch as the network reads it. All tensors share the device; <c>H</c>, <c>W</c> are multiples of the patch size.
/// </summary>
/// <param name="Labels">int64 <c>[B, H, W]</c>: the input label with masked patches hidden; -1 = unknown.</param>
/// <param name="Rgb">float <c>[B, 3, H, W]</c>: the image, ImageNet-normalised.</param>
/// <param name="Prior">int64 <c>[B, H, W]</c>: the NearestKnown fill of the input label (-1 where nothing is known), or null without a label prior.</param>
/// <param name="VisibleIndex">int64 <c>[B, Nv]</c>: patch indices of the visible tokens (padding entries point at patch 0).</param>
/// <param name="VisibleKeyMask">bool <c>[B, 1, 1, Nv]</c>: true for real visible tokens; null when no row is padded.</param>
/// <param name="InsertIndex">int64 <c>[B, Nv]</c>: where each encoder output goes among the <c>L</c> decoder tokens (padding: <c>L</c>, dropped).</param>
/// <param name="Rows">Patch rows <c>H/p</c>.</param>
/// <param name="Columns">Patch columns <c>W/p</c>.</param>
/// <param name="Directional">int64 <c>[B·4, H, W]</c>: <see cref="DirectionalFill"/> labels (-1 none), or null.</param>
/// <param name="DirectionalDistance">float <c>[B, 4, H, W]</c>: their distances / 255, or null.</param>
internal sealed record LmaeInputs(Tensor Labels, Tensor Rgb, Tensor? Prior, Tensor VisibleIndex, Tensor? VisibleKeyMask,
    Tensor InsertIndex, int Rows, int Columns, Tensor? Directional = null, Tensor? DirectionalDistance = null) : IDisposable
{
    /// <summary>Moves every tensor of the batch out of the current dispose scope into the one around it.</summary>
    public void MoveToOuterDisposeScope()
    {
        foreach (var t in Tensors) t?.MoveToOuterDisposeScope();
    }

    /// <summary>Rows <paramref name="start"/> to <paramref name="start"/> + <paramref name="count"/> - 1 of the batch (views).</summary>
    public LmaeInputs Narrow(long start, long count) => new(
        Labels.narrow(0, start, count), Rgb.narrow(0, start, count), Prior?.narrow(0, start, count),
        VisibleIndex.narrow(0, start, count), VisibleKeyMask?.narrow(0, start, count), InsertIndex.narrow(0, start, count), Rows, Columns,
        Directional?.narrow(0, 4 * start, 4 * count), DirectionalDistance?.narrow(0, start, count));

    /// <summary>Disposes every tensor of the batch.</summary>
    public void Dispose()
    {
        foreach (var t in Tensors) t?.Dispose();
    }

    private Tensor?[] Tensors => [Labels, Rgb, Prior, VisibleIndex, VisibleKeyMask, InsertIndex, Directional, DirectionalDistance];
}

/// <summary>
/// The Label Mask AutoEncoder (paper Fig. 3), read top to bottom like MAE's <c>models_mae.py</c>:
/// <list type="number">
/// <item><description>inputs: the label with the masked patches hidden, the image, the label prior (<see cref="WindowBatch"/>
/// builds them for training crops, validation crops and completion windows alike) and the visible/insertion indices of the
/// Mask Selector's choice (<see cref="VisibleTokens"/>);</description></item>
/// <item><description><see cref="ImageFeaturesOf"/>: with <see cref="LmaeConfig.ImageFeatures"/>, the ImageNet ResNet18's
/// features of the image (<see cref="ImageFeatureBranch"/>; completion computes them once per whole image,
/// <see cref="ImageFeatureMapsOf"/>);</description></item>
/// <item><description><see cref="ForwardEncoder"/>: Stack Fusion of the visible patches, patch embedding and positions
/// (plus their image features), the <see cref="LmaeEncoder"/>;</description></item>
/// <item><description><see cref="ForwardDecoder"/>: the <see cref="ImagePatchSupplement"/> (plus image features) at masked positions, the
/// <see cref="LmaeDecoder"/>, per-pixel class logits; with <see cref="LabelPriorMode.ImagePatchSupplementAndLogits"/> a
/// learned multiple of the NearestKnown fill's one-hot is added to them (the network learns a correction to the fill);</description></item>
/// <item><description><see cref="Refine"/>: the <see cref="PixelRefinement"/> at full resolution;</description></item>
/// <item><description><see cref="ForwardLoss"/> (training: the loss of a batch, gradients accumulated) and
/// <see cref="Complete"/> (whole images through sliding windows).</description></item>
/// </list>
/// How memory is spent is a setting of this object, not a choice of its callers: <see cref="RefinementPixelsPerPass"/>
/// (training) and <see cref="WindowsPerForward"/> (completion).
/// </summary>
internal sealed class LabelMaskAutoEncoder : nn.Module<LmaeInputs, Tensor>
{
    private readonly Linear _patchEmbed;
    private readonly LmaeEncoder _encoder;
    private readonly ImagePatchSupplement _supplement;
    private readonly LmaeDecoder _decoder;
    private readonly Parameter? _priorScale;
    private readonly PixelRefinement? _refinement;
    private readonly ImageFeatureBranch? _imageFeatures;
    private readonly LmaeConfig _config;
    private readonly Dictionary<(int Rows, int Columns, int Dim, string Device), Tensor> _positions = new();

    /// <summary>Builds the network of <paramref name="config"/> with MAE's initialisation (Xavier-uniform linears, zero biases).</summary>
    public LabelMaskAutoEncoder(LmaeConfig config) : base(nameof(LabelMaskAutoEncoder))
    {
        config.Validate();
        _config = config;
        _patchEmbed = nn.Linear(config.FusedChannels * config.PatchSize * config.PatchSize, config.EncoderDimension);
        _encoder = new LmaeEncoder(config);
        _supplement = new ImagePatchSupplement(config);
        _decoder = new LmaeDecoder(config);
        if (config.LabelPrior == LabelPriorMode.ImagePatchSupplementAndLogits)
            _priorScale = nn.Parameter(tensor(3.0f));
        if (config.RefinementChannels > 0)
            _refinement = new PixelRefinement(config.NumberOfClasses, config.RefinementChannels, config.DirectionalPrior,
                config.RefinementFeatures ? LmaeConfig.RefinementFeatureChannels : 0);
        if (config.BackboneStages > 0)
            _imageFeatures = new ImageFeatureBranch(config);
        RegisterComponents();
        InitializeWeights();
    }

    /// <summary>The configuration the network was built from.</summary>
    public LmaeConfig Config => _config;

    /// <summary>
    /// Pixels per pass of the pixel refinement in <see cref="ForwardLoss"/> (its full-resolution activations are most of a
    /// training step's memory). Default 4 crops of 224x224, measured with <c>lmae bench --only train --threads 2</c> (Small,
    /// batch 8): docs/decisions.md, Speed. Smaller crops run the whole batch in one pass.
    /// </summary>
    public int RefinementPixelsPerPass { get; set; } = 4 * 224 * 224;

    /// <summary>Completion windows per encoder/decoder forward in <see cref="Complete"/>. Default 8.</summary>
    public int WindowsPerForward { get; set; } = 8;

    // ------------------------------------------------------------------ 1. inputs: which patches the encoder sees

    /// <summary>
    /// The Mask Selector's choice as indices (MAE's <c>random_masking</c> with the mask given): per row, the visible patch
    /// indices in order, padded to the row with the most (padding points at patch 0); a key mask that hides the padding
    /// from attention (null when no row is padded; a row with no visible patch attends to one dummy token); and where each
    /// encoder output goes among the <paramref name="patchCount"/> decoder tokens (padding: <paramref name="patchCount"/>,
    /// dropped after the insertion).
    /// </summary>
    public static (Tensor VisibleIndex, Tensor? KeyMask, Tensor InsertIndex) VisibleTokens(IReadOnlyList<bool[]> patchMasks, int patchCount, Device device)
    {
        int b = patchMasks.Count, l = patchCount;
        int nv = Math.Max(1, patchMasks.Max(m => m.Count(masked => !masked)));
        var visibleIndex = new long[b * nv];
        var insertIndex = new long[b * nv];
        var keyMask = new bool[b * nv];
        bool padded = false;
        for (int s = 0; s < b; s++)
        {
            int k = 0;
            var mask = patchMasks[s];
            if (mask.Length != l) throw new ArgumentException($"A patch mask has {mask.Length} entries, the patch grid has {l}.");
            for (int i = 0; i < l; i++)
            {
                if (mask[i]) continue;
                visibleIndex[s * nv + k] = i;
                insertIndex[s * nv + k] = i;
                keyMask[s * nv + k] = true;
                k++;
            }
            if (k < nv) padded = true;
            for (int j = k; j < nv; j++)
            {
                visibleIndex[s * nv + j] = 0;
                insertIndex[s * nv + j] = l;          // dropped after the insertion
                keyMask[s * nv + j] = k == 0 && j == 0; // a row with no visible token attends to one dummy token
            }
        }
        return (tensor(visibleIndex, [b, nv], ScalarType.Int64, device),
            padded ? tensor(keyMask, [b, 1, 1, nv], ScalarType.Bool, device) : null,
            tensor(insertIndex, [b, nv], ScalarType.Int64, device));
    }

    // ------------------------------------------------------------------ 2.-4. encoder, decoder, refinement

    /// <summary>Logits <c>[B, C, H, W]</c> for a batch: encoder, decoder (with the prior residual), pixel refinement.</summary>
    public override Tensor forward(LmaeInputs inputs)
    {
        using var scope = NewDisposeScope();
        var features = ImageFeaturesOf(inputs, patches: true, pixels: true);
        var latent = ForwardEncoder(inputs, features);
        return Refine(ForwardDecoder(latent, inputs, features), inputs, features).MoveToOuterDisposeScope();
    }

    /// <summary>
    /// The image features of the batch's RGB (<see cref="ImageFeatureBranch.Compute"/>): per patch when
    /// <paramref name="patches"/>, per pixel when <paramref name="pixels"/>, each only where the configuration reads them;
    /// both null without image features.
    /// </summary>
    public ImageFeatures ImageFeaturesOf(LmaeInputs inputs, bool patches, bool pixels)
        => _imageFeatures?.Compute(inputs.Rgb, patches, pixels) ?? new ImageFeatures(null, null);

    /// <summary>Reads the ImageNet ResNet18's weights from its ONNX file (default <see cref="ResNet18Backbone.DefaultModelPath"/>) into a new network with image features; nothing without them.</summary>
    public void LoadImageEncoder(string? onnxPath = null) => _imageFeatures?.LoadBackbone(onnxPath);

    /// <summary>The parameters that training updates (the ResNet18 of the image features is frozen unless <see cref="FineTuneImageEncoder"/>).</summary>
    public IEnumerable<Parameter> TrainableParameters() => parameters().Where(p => p.requires_grad);

    /// <summary>The ResNet18's parameters (none without image features).</summary>
    public IEnumerable<Parameter> ImageEncoderParameters() => _imageFeatures?.Backbone.parameters() ?? [];

    /// <summary>
    /// Unfreezes the ResNet18's stride-16 stage for training (<see cref="ImageFeatureBranch.FineTuneLastStage"/>) when
    /// <paramref name="fineTune"/>, until the returned handle is disposed; without it, or without image features, nothing.
    /// </summary>
    public IDisposable FineTuneImageEncoder(bool fineTune)
    {
        if (!fineTune || _imageFeatures is null) return new FineTuning(null);
        _imageFeatures.FineTuneLastStage = true;
        return new FineTuning(_imageFeatures);
    }

    private sealed class FineTuning(ImageFeatureBranch? branch) : IDisposable
    {
        public void Dispose()
        {
            if (branch is not null) branch.FineTuneLastStage = false;
        }
    }

    /// <summary>Stack Fusion, patch embedding with positions, visible tokens only, the encoder: <c>[B, Nv, Dd]</c>.</summary>
    public Tensor ForwardEncoder(LmaeInputs inputs, ImageFeatures features)
    {
        using var scope = NewDisposeScope();
        int de = _config.EncoderDimension;
        // Mask Selector: only the visible patches of the Fuse Map are built, embedded and encoded.
        var visible = StackFusion.FusedPatches(inputs.Labels, inputs.Rgb, _config.NumberOfClasses, _config.PatchSize, inputs.VisibleIndex);
        var index = inputs.VisibleIndex.unsqueeze(-1);
        var positions = Positions(inputs.Rows, inputs.Columns, de, inputs.Rgb.device).expand(visible.shape[0], -1, -1);
        var tokens = Autocast.Linear(_patchEmbed, visible).add(positions.gather(1, index.expand(-1, -1, de)), TorchScalars.One);
        if (features.Patches is { } patchFeatures
            && _imageFeatures!.ToEncoder(patchFeatures.gather(1, index.expand(-1, -1, patchFeatures.shape[2]))) is { } imageTokens)
            tokens = tokens.add_(imageTokens, TorchScalars.One);
        return _encoder.forward(tokens, inputs.VisibleKeyMask).MoveToOuterDisposeScope();
    }

    /// <summary>
    /// Image Patch Supplement at every position, encoder outputs inserted at visible ones, the decoder, un-patchify, prior
    /// residual: the patch decoder's logits <c>[B, C, H, W]</c>, before <see cref="Refine"/>.
    /// </summary>
    public Tensor ForwardDecoder(Tensor latent, LmaeInputs inputs, ImageFeatures features)
    {
        using var scope = NewDisposeScope();
        int dd = _config.DecoderDimension, p = _config.PatchSize;
        long b = latent.shape[0], l = (long)inputs.Rows * inputs.Columns;
        // The prior's one-hot in token layout, [B, L, p*p, C], as floats (converted once: both readers below are faster
        // with float than with bool operands): read by the supplement and by the logit residual.
        Tensor? priorPatches = inputs.Prior is null ? null
            : StackFusion.OneHotPatches(inputs.Prior, _config.NumberOfClasses, p).to(ScalarType.Float32);
        var supplementInput = _config.LabelPrior != LabelPriorMode.None && _supplement.IsSupplement && priorPatches is not null
            ? cat([Patches.PatchifyPixels(inputs.Rgb, p), priorPatches], 3).reshape(b, l, -1)
            : Patches.Patchify(inputs.Rgb, p);
        var supplementTokens = _supplement.forward(supplementInput);
        if (features.Patches is { } patchFeatures && _imageFeatures!.ToSupplement(patchFeatures) is { } imageTokens)
            supplementTokens = supplementTokens.add(imageTokens, TorchScalars.One);
        var decoderTokens = cat([supplementTokens, zeros(b, 1, dd, device: latent.device)], 1);
        decoderTokens = decoderTokens.scatter(1, inputs.InsertIndex.unsqueeze(-1).expand(-1, -1, dd), latent).narrow(1, 0, l);
        decoderTokens = decoderTokens.add(Positions(inputs.Rows, inputs.Columns, dd, device: latent.device), TorchScalars.One);
        var patchLogits = _decoder.forward(decoderTokens); // [B, L, p*p*C], ordered like the prior's patches
        // Prior residual s·onehot(prior), added per token before un-patchifying (the same sum for every pixel), in place:
        // the head's output is not kept for its backward.
        if (_priorScale is not null && priorPatches is not null)
            patchLogits = patchLogits.addcmul_(priorPatches.reshape(b, l, -1), _priorScale.expand(1), TorchScalars.One);
        return Patches.Unpatchify(patchLogits, p, inputs.Rows, inputs.Columns).MoveToOuterDisposeScope();
    }

    /// <summary>
    /// The <see cref="PixelRefinement"/> (when configured) over decoder logits <paramref name="logits"/> <c>[B, C, H, W]</c> of
    /// the same pixels as <paramref name="inputs"/>: adds its full-resolution correction; without a refinement, the logits.
    /// Completion runs it once per image over the window-averaged decoder logits; training, on each crop.
    /// </summary>
    public Tensor Refine(Tensor logits, LmaeInputs inputs, ImageFeatures features)
    {
        if (_refinement is null) return logits;
        using var scope = NewDisposeScope();
        long b = logits.shape[0];
        using var zero = 0L.ToScalar();
        // The 0/1 channels stay bool until the concatenation turns the context into floats (less memory at the step's peak).
        var known = inputs.Labels.ge(zero).unsqueeze(1);
        var prior = inputs.Prior is null ? zeros_like(logits) : StackFusion.OneHotMask(inputs.Prior, _config.NumberOfClasses);
        var context = new List<Tensor> { prior, inputs.Rgb, known };
        if (_config.DirectionalPrior && inputs.Directional is not null && inputs.DirectionalDistance is not null)
        {
            context.Add(StackFusion.OneHotMask(inputs.Directional, _config.NumberOfClasses)
                .reshape(b, 4 * _config.NumberOfClasses, logits.shape[2], logits.shape[3]));
            context.Add(inputs.DirectionalDistance);
        }
        if (features.Pixels is not null) context.Add(features.Pixels);
        return logits.add(_refinement.Forward(logits, context), TorchScalars.One).MoveToOuterDisposeScope();
    }

    /// <summary>Whether the network has a <see cref="PixelRefinement"/>.</summary>
    public bool HasRefinement => _refinement is not null;

    // ------------------------------------------------------------------ 5. training loss

    /// <summary>
    /// The training loss of a batch (eq. 12 over the whole batch, <see cref="LmaeLoss"/>) with its gradients added to the
    /// parameters' <c>grad</c>: encoder, decoder, then <see cref="RefinedLossBackward"/>. Runs in the current autograd and
    /// autocast mode; the caller owns the optimizer.
    /// </summary>
    /// <param name="inputs">The batch.</param>
    /// <param name="targets">int64 <c>[B, H, W]</c>: the class, or -1 where the pixel does not count.</param>
    /// <param name="classWeights">Per-class loss weights, or null.</param>
    /// <param name="lossScale">Test hook: multiplies the loss (NaN injects a non-finite loss); null in training.</param>
    public float ForwardLoss(LmaeInputs inputs, Tensor targets, Tensor? classWeights, float? lossScale = null)
    {
        using var scope = NewDisposeScope();
        var features = ImageFeaturesOf(inputs, patches: true, pixels: true);
        var latent = ForwardEncoder(inputs, features);
        var logits = ForwardDecoder(latent, inputs, features);
        return RefinedLossBackward(logits, inputs, features, targets, classWeights, lossScale);
    }

    /// <summary>
    /// The refinement, the loss and the whole backward from the decoder's <paramref name="logits"/>. The refinement runs over
    /// <see cref="RefinementPixelsPerPass"/> pixels at a time: the decoder's logits are cut from the graph, each chunk's share
    /// of the loss (its weighted sum over the whole batch's normaliser) is back-propagated into the refinement and the cut
    /// logits, whose gradient then flows through the decoder and encoder once. Same loss and gradients as one pass up to the
    /// order of the sums; each chunk's activations are freed before the next one runs.
    /// </summary>
    internal float RefinedLossBackward(Tensor logits, LmaeInputs inputs, ImageFeatures features, Tensor targets, Tensor? classWeights, float? lossScale = null)
    {
        using var scope = NewDisposeScope();
        using Scalar? scale = lossScale?.ToScalar();
        long batch = logits.shape[0];
        long chunk = RefinementChunk(logits.shape[2], logits.shape[3]);
        if (!HasRefinement || chunk >= batch)
        {
            var loss = LmaeLoss.Compute(Refine(logits, inputs, features), targets, classWeights);
            if (scale is not null) loss = loss.mul(scale);
            loss.backward();
            return loss.item<float>();
        }
        var normalizer = LmaeLoss.Normalizer(targets, classWeights);
        var cut = logits.detach().requires_grad_(true);
        // The refinement's image features are cut the same way: their projection gets one backward at the end.
        var cutPixels = features.Pixels?.detach().requires_grad_(features.Pixels.requires_grad);
        double total = 0;
        for (long start = 0; start < batch; start += chunk)
        {
            using var chunkScope = NewDisposeScope();
            long count = Math.Min(chunk, batch - start);
            var refined = Refine(cut.narrow(0, start, count), inputs.Narrow(start, count), new ImageFeatures(null, cutPixels?.narrow(0, start, count)));
            var part = LmaeLoss.WeightedSum(refined, targets.narrow(0, start, count), classWeights).div(normalizer);
            if (scale is not null) part = part.mul(scale);
            part.backward();
            total += part.item<float>();
        }
        // d(loss)/d(logits) is the cut logits' gradient: one backward through decoder and encoder (and the features' projection).
        var surrogate = logits.mul(cut.grad!).sum();
        if (cutPixels?.grad is { } pixelGradient) surrogate = surrogate.add(features.Pixels!.mul(pixelGradient).sum(), TorchScalars.One);
        surrogate.backward();
        return (float)total;
    }

    /// <summary>Images per refinement pass for crops of <paramref name="height"/> x <paramref name="width"/>.</summary>
    internal long RefinementChunk(long height, long width) => Math.Max(1, RefinementPixelsPerPass / Math.Max(1, height * width));

    // ------------------------------------------------------------------ 6. completion of whole images

    /// <summary>
    /// Completes a batch of images. <paramref name="patchMasks"/>[i] is the Mask Selector's choice for image i on the grid of
    /// <see cref="LmaeConfig.PatchSize"/> (see <see cref="MaskSelector"/>). Hidden means hidden: the label pixels of a
    /// masked patch are removed before any input is derived from the label (the input label, the label prior, the
    /// directional planes), and every pixel of a masked patch, like every unknown pixel, takes the network's prediction; the
    /// other pixels keep the input. With <paramref name="keepKnownLabels"/> (the Unknown selector: a patch is masked because
    /// it holds an unknown pixel, and its known pixels are the user's labels, not a question) masked patches stay out of the
    /// encoder, but their known pixels feed the label prior and the directional planes and keep their value; only unknown
    /// pixels take the network's prediction. In four steps:
    /// <see cref="PrepareImages"/> (pad, hide, priors, windows), <see cref="ImageFeatureMapsOf"/> (with image features: one
    /// ResNet18 pass per whole image, read by its windows and its refinement), <see cref="DecoderLogits"/> (windows of the training size
    /// through encoder and decoder, logits averaged where windows overlap), then per image <see cref="RefineAndDecide"/>
    /// (the refinement once over the whole image: a convolution needs no windows, which saves the refinement's repeated
    /// work in overlaps, about half the FLOPs of a 480x360 completion; softmax; the per-pixel decision).
    /// Runs under no_grad/eval, in <paramref name="precision"/> (<see cref="Autocast"/>); safe to call from several threads.
    /// </summary>
    public IReadOnlyList<CompletionResult> Complete(IReadOnlyList<SegmentationExample> batch, IReadOnlyList<bool[]> patchMasks,
        LabelCompletionPrecision precision = LabelCompletionPrecision.Float32, CancellationToken cancellationToken = default,
        bool keepKnownLabels = false)
    {
        var images = PrepareImages(batch, patchMasks, cancellationToken, keepKnownLabels);
        var results = new CompletionResult[batch.Count];
        using (NewDisposeScope())
        using (no_grad())
        using (Autocast.Enter(precision, Device))
        {
            eval();
            var tensors = images.Select(im => new ImageTensors(im.Whole)).ToArray(); // (their tensors belong to this dispose scope)
            var features = ImageFeatureMapsOf(tensors, cancellationToken);
            var logits = DecoderLogits(images, tensors, features, cancellationToken);
            for (int i = 0; i < images.Length; i++)
            {
                cancellationToken.ThrowIfCancellationRequested();
                results[i] = RefineAndDecide(batch[i], images[i], tensors[i], logits[i], features[i], keepKnownLabels);
            }
        }
        return results;
    }

    /// <summary>The device the parameters live on.</summary>
    public Device Device => _patchEmbed.weight!.device;

    /// <summary>
    /// Completion step 1: every image padded to the patch grid, its masked patches hidden, its label prior and directional
    /// planes computed from what is left (<see cref="WindowBatch.Prepare"/>), and its windows cut. Checked first, in order
    /// (the first bad row is the one named); then the images in parallel, with as many threads as libtorch's, and within an
    /// image its two priors side by side (measured with <c>lmae bench --only infer</c>: docs/decisions.md, Speed).
    /// </summary>
    internal PaddedImage[] PrepareImages(IReadOnlyList<SegmentationExample> batch, IReadOnlyList<bool[]> patchMasks, CancellationToken cancellationToken,
        bool keepKnownLabels = false)
    {
        ArgumentNullException.ThrowIfNull(batch);
        ArgumentNullException.ThrowIfNull(patchMasks);
        if (batch.Count != patchMasks.Count) throw new ArgumentException("One patch mask per image is needed.", nameof(patchMasks));
        int p = _config.PatchSize, t = _config.TrainingSize;
        for (int i = 0; i < batch.Count; i++)
        {
            batch[i].Validate(_config);
            var (rows, columns) = MaskSelector.Grid(batch[i].Image.Width, batch[i].Image.Height, p);
            if (patchMasks[i].Length != rows * columns)
                throw new ArgumentException($"{batch[i].Source}: the patch mask has {patchMasks[i].Length} entries, the {columns}x{rows} patch grid needs {rows * columns}.");
        }
        var images = new PaddedImage[batch.Count];
        var parallel = new ParallelOptions { CancellationToken = cancellationToken, MaxDegreeOfParallelism = Math.Max(1, get_num_threads()) };
        try
        {
            Parallel.For(0, batch.Count, parallel, i =>
            {
                var example = batch[i];
                var (rows, columns) = MaskSelector.Grid(example.Image.Width, example.Image.Height, p);
                int pw = columns * p, ph = rows * p;
                var (image, label) = WindowBatch.Crop(example.Image, example.Label, 0, 0, pw, ph, _config.UnknownLabel);
                var whole = WindowBatch.Prepare(image, label, patchMasks[i], _config, target: null, example.Source, parallel, keepKnownLabels);
                int ww = Math.Min(t, pw), wh = Math.Min(t, ph);
                var windows = new List<(int X, int Y, int Width, int Height, bool[] PatchMask)>();
                foreach (int y in WindowBatch.WindowStarts(ph, wh, _config.WindowOverlap, p))
                    foreach (int x in WindowBatch.WindowStarts(pw, ww, _config.WindowOverlap, p))
                        windows.Add((x, y, ww, wh, WindowMask(patchMasks[i], columns, x / p, y / p, ww / p, wh / p)));
                images[i] = new PaddedImage(whole, windows);
            });
        }
        catch (AggregateException e)
        {
            // The caller sees what went wrong, as from a sequential loop, not a wrapper.
            System.Runtime.ExceptionServices.ExceptionDispatchInfo.Capture(e.Flatten().InnerExceptions[0]).Throw();
        }
        return images;
    }

    /// <summary>
    /// Completion step 2a: the image features of every whole padded image (<see cref="ImageFeatureBranch.WholeImage"/>), one
    /// ResNet18 pass per image; windows and refinement cut theirs from them. Without image features, empty maps.
    /// </summary>
    internal ImageFeatureMaps[] ImageFeatureMapsOf(ImageTensors[] tensors, CancellationToken cancellationToken)
    {
        var maps = new ImageFeatureMaps[tensors.Length];
        for (int i = 0; i < tensors.Length; i++)
        {
            cancellationToken.ThrowIfCancellationRequested();
            int rows = tensors[i].Height / _config.PatchSize, columns = tensors[i].Width / _config.PatchSize;
            if (_imageFeatures is null) { maps[i] = new ImageFeatureMaps(null, null, rows, columns); continue; }
            using var scope = NewDisposeScope();
            using var rgb = WindowBatch.NormalizedRgb(tensors[i].Rgb.unsqueeze(0)).to(Device);
            var image = _imageFeatures.WholeImage(rgb, pixels: HasRefinement);
            image.Patches?.MoveToOuterDisposeScope();
            image.Stride8?.MoveToOuterDisposeScope();
            maps[i] = image;
        }
        return maps;
    }

    /// <summary>
    /// Completion step 2b: the decoder's logits <c>[1, C, H, W]</c> of every image, averaged over the windows that cover each
    /// pixel. Windows are views of the images' uint8 tensors; windows of equal size run together,
    /// <see cref="WindowsPerForward"/> at a time, through encoder and decoder, and the logits are summed per image in libtorch
    /// (they never become managed arrays). Within a size, windows run in order of their visible-patch count: a forward pads
    /// every window's encoder tokens to the most visible ones of its chunk, so similar counts together waste fewer (random 50%
    /// masks on 480x360 images: 1300 → 1204 encoder tokens at batch 1, 10184 → 9376 at batch 8, for 1166 and 9310 visible;
    /// partly annotated labels, whose windows range from all known to all unknown, far more). The order is stable.
    /// </summary>
    internal Tensor[] DecoderLogits(PaddedImage[] images, ImageTensors[] tensors, ImageFeatureMaps[] features, CancellationToken cancellationToken)
    {
        int c = _config.NumberOfClasses;
        var device = Device;
        var sums = images.Select(im => zeros(c, im.Whole.Height, im.Whole.Width, device: device)).ToArray();
        var counts = images.Select(im => zeros(1, 1, im.Whole.Height, im.Whole.Width, device: device)).ToArray();
        var windows = images.SelectMany((im, i) => im.Windows.Select(w => (Image: i, Cut: new WindowCut(tensors[i], w.X, w.Y, w.Width, w.Height, w.PatchMask))));
        foreach (var group in windows.GroupBy(w => (w.Cut.Width, w.Cut.Height)))
            foreach (var chunk in group.OrderBy(w => w.Cut.PatchMask.Count(masked => !masked)).Chunk(Math.Max(1, WindowsPerForward)))
            {
                cancellationToken.ThrowIfCancellationRequested();
                using var scope = NewDisposeScope();
                using var inputs = WindowBatch.ToInputs(chunk.Select(w => w.Cut).ToList(), _config, device, forRefinement: false);
                var windowFeatures = WindowFeatures(chunk.Select(w => (features[w.Image], w.Cut)));
                var logits = ForwardDecoder(ForwardEncoder(inputs, windowFeatures), inputs, windowFeatures);
                for (int k = 0; k < chunk.Length; k++)
                {
                    var (image, cut) = chunk[k];
                    sums[image].narrow(1, cut.Y, cut.Height).narrow(2, cut.X, cut.Width).add_(logits[k]);
                    counts[image].narrow(2, cut.Y, cut.Height).narrow(3, cut.X, cut.Width).add_(TorchScalars.One);
                }
            }
        return sums.Select((sum, i) => sum.unsqueeze(0).div(counts[i])).ToArray();
    }

    /// <summary>The patch features of <paramref name="windows"/>, cut from their images' maps and stacked: <c>[B, L', Df]</c>, or none.</summary>
    private ImageFeatures WindowFeatures(IEnumerable<(ImageFeatureMaps Maps, WindowCut Cut)> windows)
    {
        if (_imageFeatures is null) return new ImageFeatures(null, null);
        var patches = windows.Select(w => _imageFeatures.WindowPatches(w.Maps, w.Cut.X, w.Cut.Y, w.Cut.Width, w.Cut.Height)).ToArray();
        return new ImageFeatures(patches.Any(t => t is null) ? null : cat(patches!, 0), null);
    }

    /// <summary>
    /// Completion step 3, for one image: the <see cref="PixelRefinement"/> (if any) over its mean decoder
    /// <paramref name="logits"/>, softmax, its max and argmax, and the per-pixel decision read straight from those two
    /// tensors: the network's class where the input is unknown or in a masked patch, the input label elsewhere; the
    /// completion mask marks exactly the pixels whose value came from the network.
    /// </summary>
    internal CompletionResult RefineAndDecide(SegmentationExample example, PaddedImage image, ImageTensors tensors, Tensor logits,
        ImageFeatureMaps features, bool keepKnownLabels = false)
    {
        using var scope = NewDisposeScope();
        var whole = image.Whole;
        var (probability, best) = RefinedProbabilities(image, tensors, logits, features).max(1);
        using var probabilities = probability.to(CPU).contiguous();
        using var classes = best.to(ScalarType.Byte).to(CPU).contiguous();
        return Decide(example, whole.Width, System.Runtime.InteropServices.MemoryMarshal.Cast<byte, float>(probabilities.bytes),
            classes.bytes, whole.PatchMask, keepKnownLabels);
    }

    /// <summary>
    /// Completion step 3a, for one image: the <see cref="PixelRefinement"/> (if any) over its mean decoder
    /// <paramref name="logits"/> <c>[1, C, H, W]</c>, then the softmax over the classes: <c>[1, C, H, W]</c> probabilities of
    /// the padded image. <see cref="RefineAndDecide"/> decides from them; <see cref="PredictHidden"/> reads them whole.
    /// </summary>
    internal Tensor RefinedProbabilities(PaddedImage image, ImageTensors tensors, Tensor logits, ImageFeatureMaps features)
    {
        using var scope = NewDisposeScope();
        var whole = image.Whole;
        if (HasRefinement)
        {
            using var inputs = WindowBatch.ToInputs([new WindowCut(tensors, 0, 0, whole.Width, whole.Height, whole.PatchMask)], _config, Device, forRefinement: true);
            logits = Refine(logits, inputs, new ImageFeatures(null, _imageFeatures?.Pixels(features, whole.Height, whole.Width)));
        }
        return nn.functional.softmax(logits, 1).MoveToOuterDisposeScope();
    }

    /// <summary>
    /// Re-prediction for label checking: the steps of <see cref="Complete"/> (<see cref="PrepareImages"/>,
    /// <see cref="ImageFeatureMapsOf"/>, <see cref="DecoderLogits"/>, <see cref="RefinedProbabilities"/>; masked patches hidden from every input), but instead of
    /// a decision, per pixel of each image: the probability of the class its given label holds (NaN where the given label is
    /// unknown), the network's class and that class's probability. Read them where <paramref name="patchMasks"/> hides the
    /// pixel: only there is the prediction made without the pixel's own label (<see cref="PatchFolds"/>).
    /// Runs under no_grad/eval, in <paramref name="precision"/>; safe to call from several threads.
    /// </summary>
    public IReadOnlyList<PixelPredictions> PredictHidden(IReadOnlyList<SegmentationExample> batch, IReadOnlyList<bool[]> patchMasks,
        LabelCompletionPrecision precision = LabelCompletionPrecision.Float32, CancellationToken cancellationToken = default)
    {
        var images = PrepareImages(batch, patchMasks, cancellationToken);
        var results = new PixelPredictions[batch.Count];
        using (NewDisposeScope())
        using (no_grad())
        using (Autocast.Enter(precision, Device))
        {
            eval();
            var tensors = images.Select(im => new ImageTensors(im.Whole)).ToArray();
            var features = ImageFeatureMapsOf(tensors, cancellationToken);
            var logits = DecoderLogits(images, tensors, features, cancellationToken);
            for (int i = 0; i < images.Length; i++)
            {
                cancellationToken.ThrowIfCancellationRequested();
                using var probabilities = RefinedProbabilities(images[i], tensors[i], logits[i], features[i]).to(ScalarType.Float32).to(CPU).contiguous();
                results[i] = PixelPredictions.Read(batch[i].Label, images[i].Whole.Width, images[i].Whole.Height,
                    System.Runtime.InteropServices.MemoryMarshal.Cast<byte, float>(probabilities.bytes), _config.NumberOfClasses, _config.UnknownLabel);
            }
        }
        return results;
    }

    private CompletionResult Decide(SegmentationExample example, int paddedWidth, ReadOnlySpan<float> probability, ReadOnlySpan<byte> best,
        bool[] patchMask, bool keepKnownLabels)
    {
        int w = example.Image.Width, h = example.Image.Height, p = _config.PatchSize, columns = paddedWidth / p;
        byte unknown = _config.UnknownLabel;
        var values = new byte[w * h];
        var confidence = new float[w * h];
        var completionMask = new bool[w * h];
        for (int y = 0; y < h; y++)
        {
            int row = y / p * columns;
            for (int x = 0; x < w; x++)
            {
                int i = y * w + x, j = y * paddedWidth + x;
                byte input = example.Label.Values[i];
                bool predict = input == unknown || (!keepKnownLabels && patchMask[row + x / p]);
                completionMask[i] = predict;
                values[i] = predict ? best[j] : input;
                confidence[i] = predict ? probability[j] : 1f;
            }
        }
        return new CompletionResult(new LabelMap(w, h, values), confidence, completionMask);
    }

    /// <summary>The part of an image's <paramref name="patchMask"/> (<paramref name="columns"/> patches wide) that a window of
    /// <paramref name="windowColumns"/> x <paramref name="windowRows"/> patches at patch (<paramref name="column"/>, <paramref name="row"/>) covers.</summary>
    private static bool[] WindowMask(bool[] patchMask, int columns, int column, int row, int windowColumns, int windowRows)
    {
        var mask = new bool[windowRows * windowColumns];
        for (int r = 0; r < windowRows; r++)
            Array.Copy(patchMask, (row + r) * columns + column, mask, r * windowColumns, windowColumns);
        return mask;
    }

    /// <summary>Number of trainable parameters.</summary>
    public long ParameterCount() => TrainableParameters().Sum(t => t.numel());

    private Tensor Positions(int rows, int columns, int dim, Device device)
    {
        lock (_positions)
        {
            var key = (rows, columns, dim, device.ToString());
            if (!_positions.TryGetValue(key, out var table))
            {
                table = PositionEmbedding.Create(dim, rows, columns, device);
                table.DetachFromDisposeScope();
                _positions[key] = table;
            }
            return table;
        }
    }

    private void InitializeWeights()
    {
        using var guard = no_grad();
        foreach (var (name, parameter) in named_parameters())
        {
            if (!parameter.requires_grad) continue; // the ResNet18 of the image features: its weights are read, not drawn
            if (parameter.dim() == 2) nn.init.xavier_uniform_(parameter);
            else if (name.EndsWith("bias", StringComparison.Ordinal)) parameter.zero_();
        }
        _supplement.InitializeMaskToken();
    }

    /// <inheritdoc />
    protected override void Dispose(bool disposing)
    {
        if (disposing)
        {
            lock (_positions)
            {
                foreach (var t in _positions.Values) t.Dispose();
                _positions.Clear();
            }
        }
        base.Dispose(disposing);
    }
}
