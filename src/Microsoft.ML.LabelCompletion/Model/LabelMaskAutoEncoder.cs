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
public sealed record LmaeInputs(Tensor Labels, Tensor Rgb, Tensor? Prior, Tensor VisibleIndex, Tensor? VisibleKeyMask,
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
/// The Label Mask AutoEncoder (paper Fig. 3): Stack Fusion → patch embedding and positions → Mask Selector's visible
/// tokens → <see cref="LmaeEncoder"/> → <see cref="ImagePatchSupplement"/> at masked positions → <see cref="LmaeDecoder"/>
/// → per-pixel class logits. With <see cref="LabelPriorMode.ImagePatchSupplementAndLogits"/> a learned multiple of the
/// NearestKnown fill's one-hot is added to the logits (the network learns a correction to the fill).
/// </summary>
public sealed class LabelMaskAutoEncoder : nn.Module<LmaeInputs, Tensor>
{
    private readonly Linear _patchEmbed;
    private readonly LmaeEncoder _encoder;
    private readonly ImagePatchSupplement _supplement;
    private readonly LmaeDecoder _decoder;
    private readonly Parameter? _priorScale;
    private readonly PixelRefinement? _refinement;
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
            _refinement = new PixelRefinement(config.NumberOfClasses, config.RefinementChannels, config.DirectionalPrior);
        RegisterComponents();
        InitializeWeights();
    }

    /// <summary>The configuration the network was built from.</summary>
    public LmaeConfig Config => _config;

    /// <summary>Logits <c>[B, C, H, W]</c> for a batch: encoder, decoder (with the prior residual), pixel refinement.</summary>
    public override Tensor forward(LmaeInputs inputs)
    {
        using var scope = NewDisposeScope();
        var latent = ForwardEncoder(inputs);
        return Refine(ForwardDecoder(latent, inputs), inputs).MoveToOuterDisposeScope();
    }

    /// <summary>Stack Fusion, patch embedding with positions, visible tokens only, the encoder: <c>[B, Nv, Dd]</c>.</summary>
    public Tensor ForwardEncoder(LmaeInputs inputs)
    {
        using var scope = NewDisposeScope();
        int de = _config.EncoderDimension;
        // Mask Selector: only the visible patches of the Fuse Map are built, embedded and encoded.
        var visible = StackFusion.FusedPatches(inputs.Labels, inputs.Rgb, _config.NumberOfClasses, _config.PatchSize, inputs.VisibleIndex);
        var index = inputs.VisibleIndex.unsqueeze(-1);
        var positions = Positions(inputs.Rows, inputs.Columns, de, inputs.Rgb.device).expand(visible.shape[0], -1, -1);
        var tokens = Autocast.Linear(_patchEmbed, visible).add(positions.gather(1, index.expand(-1, -1, de)), TorchScalars.One);
        return _encoder.forward(tokens, inputs.VisibleKeyMask).MoveToOuterDisposeScope();
    }

    /// <summary>
    /// Image Patch Supplement at every position, encoder outputs inserted at visible ones, the decoder, un-patchify, prior
    /// residual: the patch decoder's logits <c>[B, C, H, W]</c>, before <see cref="Refine"/>.
    /// </summary>
    public Tensor ForwardDecoder(Tensor latent, LmaeInputs inputs)
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
        var decoderTokens = cat([_supplement.forward(supplementInput), zeros(b, 1, dd, device: latent.device)], 1);
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
    public Tensor Refine(Tensor logits, LmaeInputs inputs)
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
        return logits.add(_refinement.Forward(logits, context), TorchScalars.One).MoveToOuterDisposeScope();
    }

    /// <summary>Whether the network has a <see cref="PixelRefinement"/>.</summary>
    public bool HasRefinement => _refinement is not null;

    /// <summary>Number of trainable parameters.</summary>
    public long ParameterCount() => parameters().Sum(t => t.numel());

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
