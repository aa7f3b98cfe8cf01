using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Microsoft.ML.LabelCompletion.Model;

/// <summary>
/// The L-MAE Encoder (paper §3.3): runs only on the visible Fuse Map tokens (already embedded, positions added),
/// <c>EB</c> blocks, a final LayerNorm and <c>Linear(De → Dd)</c> into the decoder's width.
/// </summary>
internal sealed class LmaeEncoder : nn.Module<Tensor, Tensor?, Tensor>
{
    private readonly ModuleList<TransformerBlock> _blocks;
    private readonly LayerNorm _norm;
    private readonly Linear _toDecoder;

    /// <summary>Creates the encoder of <paramref name="config"/>.</summary>
    public LmaeEncoder(LmaeConfig config) : base(nameof(LmaeEncoder))
    {
        _blocks = nn.ModuleList(Enumerable.Range(0, config.EncoderDepth)
            .Select(_ => new TransformerBlock(config.EncoderDimension, config.EncoderHeads, config.MlpRatio, config.Activation)).ToArray());
        _norm = nn.LayerNorm([config.EncoderDimension], eps: 1e-6);
        _toDecoder = nn.Linear(config.EncoderDimension, config.DecoderDimension);
        RegisterComponents();
    }

    /// <summary>Visible tokens <c>[B, Nv, De]</c> (and their padding mask) → <c>[B, Nv, Dd]</c>.</summary>
    public override Tensor forward(Tensor visibleTokens, Tensor? keyMask)
    {
        using var scope = NewDisposeScope();
        var x = visibleTokens;
        foreach (var block in _blocks) x = block.forward(x, keyMask);
        return Autocast.ToFloat32(Autocast.Linear(_toDecoder, _norm.forward(x))).MoveToOuterDisposeScope();
    }
}
