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
/// The training form pads every convolution's input channels and output filters with zeros to multiples of
/// <see cref="ChannelBlock"/> (with the default 32 hidden channels and 11 classes: the first layer's 11 logit and 63 context
/// channels and the output layer's 11 filters): on the 2-core development VM libtorch 2.10's oneDNN convolutions over NCHW
/// tensors came out wrong when the input channels were not a multiple of the block (off by up to 1.2 against float64 with
/// 74 or 26 inputs, in a fresh process) and read the uninitialised tail of the last block, in the forward pass and, when the
/// output channels were not a multiple, in the input gradient (with freed NaN-filled buffers: 59 of 100 forward passes with
/// 63 input channels, and input gradients with 8 or 11 filters, came out different or NaN; with multiples of 16, none), so
/// NaN left in reused memory made training stop with "loss is NaN" at random steps. Zero channels with zero weights change
/// no value. The inference form (channels-last) matched float64 for every shape tried. Both forms are tested against a
/// float64 reference.
/// </remarks>
internal sealed class PixelRefinement : nn.Module<Tensor, Tensor, Tensor>
{
    /// <summary>Channel multiple of the training form's convolutions: 16, where the fault was measured gone (see the remarks).</summary>
    internal const int ChannelBlock = 16;

    private static readonly int[] Dilations = [1, 2, 4, 8];
    private readonly Sequential _body;
    private readonly Conv2d _output;
    private readonly int _classes;

    /// <summary>
    /// Creates the refinement for <paramref name="classes"/> classes with <paramref name="channels"/> hidden channels; with
    /// <paramref name="directional"/> it also reads the <see cref="DirectionalFill"/> one-hots (4C) and distances (4), and
    /// <paramref name="featureChannels"/> image-feature channels last (<see cref="ImageFeatureBranch"/>).
    /// </summary>
    public PixelRefinement(int classes, int channels, bool directional = false, int featureChannels = 0) : base(nameof(PixelRefinement))
    {
        _classes = classes;
        int inputs = 2 * classes + 4 + (directional ? 4 * classes + 4 : 0) + featureChannels;
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
    public override Tensor forward(Tensor logits, Tensor context) => Forward(logits, [context]);

    /// <summary>
    /// As <see cref="forward"/>, with the context given as parts (<c>[B, k, H, W]</c> each, float or bool) in channel order:
    /// they are concatenated once, together with the zero channels of the training form or the logits of the inference form.
    /// </summary>
    internal Tensor Forward(Tensor logits, IReadOnlyList<Tensor> context)
    {
        using var scope = NewDisposeScope();
        // Without autograd nothing keeps an activation for backward: GELU runs in place and each convolution's input is freed
        // as soon as its output exists, so completion and validation hold at most two full-resolution activations.
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
                next = x is null ? FirstLayer(conv, logits, context)
                    : recording ? Convolve([x], conv.weight!, conv.bias, dilation, dilation)
                    : Autocast.Conv2d(conv, x, dilation, dilation);
            }
            else if (!recording)
            {
                // GELU in place: no second full-resolution buffer per layer (nothing needs the convolution's output again).
                x!.gelu_();
                continue;
            }
            else
            {
                next = ((nn.Module<Tensor, Tensor>)module).forward(x!);
            }
            if (!recording) x?.Dispose();
            x = next;
        }
        var correction = recording ? Convolve([x!], _output.weight!, _output.bias, 0, 1) : Autocast.Conv2d(_output, x!, 0, 1);
        if (!recording) x!.Dispose();
        return Autocast.ToFloat32(correction).contiguous().MoveToOuterDisposeScope();
    }

    /// <summary>The first convolution over the logits and the context (dilation 1): see the remarks for its two forms.</summary>
    private Tensor FirstLayer(Conv2d conv, Tensor logits, IReadOnlyList<Tensor> context)
    {
        if (is_grad_enabled() && logits.requires_grad)
        {
            var weight = conv.weight!;
            var fromLogits = Convolve([logits], weight.narrow(1, 0, _classes), conv.bias, 1, 1);
            using var fromContext = Convolve(context, weight.narrow(1, _classes, weight.shape[1] - _classes), null, 1, 1);
            // In place (a convolution does not keep its output for backward): one activation-sized buffer less at the peak.
            return fromLogits.add_(fromContext, TorchScalars.One);
        }
        // Concatenated straight into channels-last order (one copy of the input, not a concatenation and then its NHWC copy);
        // freed right after the convolution has read it.
        using var packed = cat(context.Prepend(logits).Select(part => part.permute(0, 2, 3, 1)).ToArray(), 3);
        using var channelsLast = packed.permute(0, 3, 1, 2); // the same [B, C, H, W] tensor with NHWC strides, as oneDNN keeps it
        return Autocast.Conv2d(conv, channelsLast, 1, 1);
    }

    /// <summary>
    /// A convolution of the training form: the concatenated <paramref name="inputs"/> are padded with zero channels, and
    /// <paramref name="weight"/> with zero input channels and zero output filters (and <paramref name="bias"/> with zeros), to
    /// multiples of <see cref="ChannelBlock"/>; the padded outputs are cut off again. See the remarks for why.
    /// </summary>
    private static Tensor Convolve(IReadOnlyList<Tensor> inputs, Tensor weight, Tensor? bias, long padding, long dilation)
    {
        using var scope = NewDisposeScope();
        var first = inputs[0];
        long inputChannels = inputs.Sum(x => x.shape[1]), outputChannels = weight.shape[0];
        long padIn = BlockPadding(inputChannels), padOut = BlockPadding(outputChannels);
        var parts = inputs.ToList();
        if (padIn > 0)
        {
            parts.Add(zeros([first.shape[0], padIn, first.shape[2], first.shape[3]], ScalarType.Float32, first.device));
            weight = cat([weight, zeros([outputChannels, padIn, weight.shape[2], weight.shape[3]], weight.dtype, weight.device)], 1);
        }
        if (padOut > 0)
        {
            weight = cat([weight, zeros([padOut, weight.shape[1], weight.shape[2], weight.shape[3]], weight.dtype, weight.device)], 0);
            bias = bias is null ? null : cat([bias, zeros([padOut], bias.dtype, bias.device)], 0);
        }
        var output = Autocast.Conv2d(parts.Count == 1 ? parts[0] : cat(parts, 1), weight, bias, padding, dilation);
        return (padOut > 0 ? output.narrow(1, 0, outputChannels) : output).MoveToOuterDisposeScope();
    }

    /// <summary>Zero channels that round <paramref name="channels"/> up to a multiple of <see cref="ChannelBlock"/>.</summary>
    private static long BlockPadding(long channels) => (ChannelBlock - channels % ChannelBlock) % ChannelBlock;
}
