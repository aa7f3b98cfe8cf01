using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Microsoft.ML.LabelCompletion.Model;

/// <summary>
/// The L-MAE Decoder (paper §3.3): all <c>L</c> tokens (encoder outputs at visible positions, Image Patch Supplement at
/// masked ones) with positions added, <c>DB</c> blocks of width <c>Dd</c>, LayerNorm, and the head
/// <c>Linear(Dd → p²·C)</c>: per-pixel class logits of every patch.
/// </summary>
internal sealed class LmaeDecoder : nn.Module<Tensor, Tensor>
{
    private readonly ModuleList<TransformerBlock> _blocks;
    private readonly LayerNorm _norm;
    private readonly Linear _head;

    /// <summary>Creates the decoder of <paramref name="config"/>.</summary>
    public LmaeDecoder(LmaeConfig config) : base(nameof(LmaeDecoder))
    {
        _blocks = nn.ModuleList(Enumerable.Range(0, config.DecoderDepth)
            .Select(_ => new TransformerBlock(config.DecoderDimension, config.DecoderHeads, config.MlpRatio, config.Activation)).ToArray());
        _norm = nn.LayerNorm([config.DecoderDimension], eps: 1e-6);
        _head = nn.Linear(config.DecoderDimension, config.PatchSize * config.PatchSize * config.NumberOfClasses);
        RegisterComponents();
    }

    /// <summary>Tokens <c>[B, L, Dd]</c> with positions → patch logits <c>[B, L, p²·C]</c>.</summary>
    public override Tensor forward(Tensor tokens)
    {
        using var scope = NewDisposeScope();
        var x = tokens;
        foreach (var block in _blocks) x = block.forward(x, null);
        return Autocast.ToFloat32(Autocast.Linear(_head, _norm.forward(x))).MoveToOuterDisposeScope();
    }
}
