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
/// <remarks>
/// Two ways to compute the same function, chosen by whether gradients are recorded (measured with <c>lmae bench</c>, see
/// docs/decisions.md, Speed): in training the first convolution is split into its logits part and its context part, so that
/// backward computes an input gradient only for the C logit channels that need one, not for the whole 2C+4(+4C+4)-channel
/// input (the context carries no gradient); at inference the input is laid out channels-last (NHWC), for which oneDNN's
/// convolutions run about 1.6x faster than NCHW on this CPU (its backward is slower, so training stays NCHW).
/// </remarks>
public sealed class PixelRefinement : nn.Module<Tensor, Tensor, Tensor>
{
    private static readonly int[] Dilations = [1, 2, 4, 8];
    private readonly Sequential _body;
    private readonly Conv2d _output;
    private readonly int _classes;

    /// <summary>
    /// Creates the refinement for <paramref name="classes"/> classes with <paramref name="channels"/> hidden channels; with
    /// <paramref name="directional"/> it also reads the <see cref="DirectionalFill"/> one-hots (4C) and distances (4).
    /// </summary>
    public PixelRefinement(int classes, int channels, bool directional = false) : base(nameof(PixelRefinement))
    {
        _classes = classes;
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
    /// <paramref name="logits"/> <c>[B, C, H, W]</c> and <paramref name="context"/> <c>[B, C+4(+4C+4), H, W]</c>: prior
    /// one-hot (C), RGB (3), known mask (1) (and the directional one-hots and distances) → logit correction
    /// <c>[B, C, H, W]</c>. The first convolution reads both, in that channel order.
    /// </summary>
    public override Tensor forward(Tensor logits, Tensor context)
    {
        using var scope = NewDisposeScope();
        // Without autograd nothing keeps an activation for backward: each is freed as soon as the next exists, so completion
        // and validation hold two full-resolution activations, not all eight, until the scope ends.
        bool recording = is_grad_enabled();
        Tensor? x = null;
        int layer = 0;
        foreach (var module in _body.children())
        {
            Tensor next;
            if (module is Conv2d conv)
            {
                // Through Autocast (bf16 under LabelCompletionPrecision.BFloat16); same-size padding = dilation.
                int dilation = Dilations[layer++];
                next = x is null ? FirstLayer(conv, logits, context) : Autocast.Conv2d(conv, x, dilation, dilation);
            }
            else
            {
                next = ((nn.Module<Tensor, Tensor>)module).forward(x!);
            }
            if (!recording) x?.Dispose();
            x = next;
        }
        var correction = Autocast.Conv2d(_output, x!, 0, 1);
        if (!recording) x!.Dispose();
        return Autocast.ToFloat32(correction).contiguous().MoveToOuterDisposeScope();
    }

    /// <summary>The first convolution over the logits and the context (dilation 1): see the remarks for its two forms.</summary>
    private Tensor FirstLayer(Conv2d conv, Tensor logits, Tensor context)
    {
        if (is_grad_enabled() && logits.requires_grad)
        {
            var weight = conv.weight!;
            var fromLogits = Autocast.Conv2d(logits, weight.narrow(1, 0, _classes), conv.bias, 1, 1);
            using var fromContext = Autocast.Conv2d(context, weight.narrow(1, _classes, weight.shape[1] - _classes), null, 1, 1);
            // In place (a convolution does not keep its output for backward): one activation-sized buffer less at the peak.
            return fromLogits.add_(fromContext, TorchScalars.One);
        }
        // The concatenation and its channels-last copy are freed right after the convolution has read them.
        using var features = cat([logits, context], 1);
        using var nhwc = features.permute(0, 2, 3, 1);
        using var packed = nhwc.contiguous();
        using var channelsLast = packed.permute(0, 3, 1, 2); // the same [B, C, H, W] tensor with NHWC strides, as oneDNN keeps it
        return Autocast.Conv2d(conv, channelsLast, 1, 1);
    }
}
