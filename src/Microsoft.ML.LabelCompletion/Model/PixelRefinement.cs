using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Microsoft.ML.LabelCompletion.Model;

/// <summary>
/// Pixel-level refinement (DESIGN.md §2, a step beyond the paper): the decoder works per 16x16 patch, so thin structures
/// and boundaries inside masked patches are coarse. This light convolutional head sees, at full resolution, the decoder's
/// logits, the label prior's one-hot, the normalised RGB and which pixels are known, and adds a correction to the logits.
/// Four 3x3 convolutions with dilations 1, 2, 4, 8 (receptive field 31 pixels, about two patches) and a 1x1 output that
/// starts at zero, so training begins from the decoder's answer.
/// </summary>
public sealed class PixelRefinement : nn.Module<Tensor, Tensor>
{
    private static readonly int[] Dilations = [1, 2, 4, 8];
    private readonly Sequential _body;
    private readonly Conv2d _output;

    /// <summary>
    /// Creates the refinement for <paramref name="classes"/> classes with <paramref name="channels"/> hidden channels; with
    /// <paramref name="directional"/> it also reads the <see cref="DirectionalFill"/> one-hots (4C) and distances (4).
    /// </summary>
    public PixelRefinement(int classes, int channels, bool directional = false) : base(nameof(PixelRefinement))
    {
        int inputs = 2 * classes + 4 + (directional ? 4 * classes + 4 : 0);
        _body = nn.Sequential(Dilations.SelectMany((d, i) => new nn.Module<Tensor, Tensor>[]
        {
            nn.Conv2d(i == 0 ? inputs : channels, channels, 3, padding: d, dilation: d), nn.GELU(),
        }).ToArray());
        _output = nn.Conv2d(channels, classes, 1);
        RegisterComponents();
        using var guard = no_grad();
        _output.weight!.zero_();
        _output.bias!.zero_();
    }

    /// <summary>
    /// <paramref name="features"/> <c>[B, 2C+4(+4C+4), H, W]</c>: logits (C), prior one-hot (C), RGB (3), known mask (1)
    /// (and the directional one-hots and distances) →
    /// logit correction <c>[B, C, H, W]</c>.
    /// </summary>
    public override Tensor forward(Tensor features)
    {
        using var scope = NewDisposeScope();
        var x = features;
        int layer = 0;
        foreach (var module in _body.children())
        {
            if (module is Conv2d conv)
            {
                // Through Autocast (bf16 under LabelCompletionPrecision.BFloat16); same-size padding = dilation.
                int dilation = Dilations[layer++];
                x = Autocast.Conv2d(conv, x, dilation, dilation);
            }
            else
            {
                x = ((nn.Module<Tensor, Tensor>)module).forward(x);
            }
        }
        return Autocast.ToFloat32(Autocast.Conv2d(_output, x, 0, 1)).MoveToOuterDisposeScope();
    }
}
