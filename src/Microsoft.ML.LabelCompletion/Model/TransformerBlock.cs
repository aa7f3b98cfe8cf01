using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Microsoft.ML.LabelCompletion.Model;

/// <summary>
/// Multi-head self-attention (paper eq. 6-8): one fused Q/K/V projection, <c>h</c> heads of width <c>D/h</c>,
/// <c>softmax(QK^T/sqrt(D/h))V</c>, output projection <c>W^O</c>. An optional key mask hides padding tokens. Training
/// (autograd on) and bf16 run <c>scaled_dot_product_attention</c>; FP32 inference runs the two matrix products around a
/// softmax (<see cref="Attend"/>), the same arithmetic up to float rounding and twice as fast here (docs/decisions.md, Speed).
/// </summary>
internal sealed class MultiHeadAttention : nn.Module<Tensor, Tensor?, Tensor>
{
    private readonly Linear _qkv;
    private readonly Linear _proj;
    private readonly int _heads;

    /// <summary>Creates the attention of width <paramref name="dimension"/> with <paramref name="heads"/> heads.</summary>
    public MultiHeadAttention(int dimension, int heads) : base(nameof(MultiHeadAttention))
    {
        _heads = heads;
        _qkv = nn.Linear(dimension, 3 * dimension);
        _proj = nn.Linear(dimension, dimension);
        RegisterComponents();
    }

    /// <summary><paramref name="x"/> <c>[B, N, D]</c>; <paramref name="keyMask"/> bool <c>[B, 1, 1, N]</c> (true = attend) or null.</summary>
    public override Tensor forward(Tensor x, Tensor? keyMask)
    {
        using var scope = NewDisposeScope();
        long b = x.shape[0], n = x.shape[1], d = x.shape[2];
        var qkv = Autocast.Linear(_qkv, x).reshape(b, n, 3, _heads, d / _heads).permute(2, 0, 3, 1, 4);
        var attended = is_grad_enabled() || qkv.dtype != ScalarType.Float32
            ? nn.functional.scaled_dot_product_attention(qkv[0], qkv[1], qkv[2], keyMask)
            : Attend(qkv[0], qkv[1], qkv[2], keyMask);
        return Autocast.Linear(_proj, attended.transpose(1, 2).reshape(b, n, d)).MoveToOuterDisposeScope();
    }

    /// <summary>
    /// <c>softmax(QK^T/sqrt(d) + mask)V</c> for <paramref name="q"/>, <paramref name="k"/>, <paramref name="v"/>
    /// <c>[B, h, N, d]</c>; keys where <paramref name="keyMask"/> is false get no weight. libtorch's CPU flash-attention
    /// kernel behind <c>scaled_dot_product_attention</c> ran at 20-48 GFLOP/s for 98-196 tokens of head width 32
    /// (<c>lmae</c>'s windows), these two batched products and the softmax in less than half the time.
    /// </summary>
    internal static Tensor Attend(Tensor q, Tensor k, Tensor v, Tensor? keyMask)
    {
        using var scope = NewDisposeScope();
        using var scale = (1.0 / Math.Sqrt(q.shape[^1])).ToScalar();
        var scores = q.matmul(k.transpose(-2, -1)).mul_(scale);
        if (keyMask is not null)
        {
            using var hidden = double.NegativeInfinity.ToScalar();
            scores = scores.masked_fill_(keyMask.logical_not(), hidden);
        }
        return scores.softmax(-1).matmul(v).MoveToOuterDisposeScope();
    }
}

/// <summary>
/// One LMMA block (paper eq. 4-5) in pre-norm form: <c>x + MulAttn(LN(x))</c>, then <c>x + FFN(LN(x))</c>;
/// LayerNorm eps 1e-6, FFN <c>Linear(D, rD) → GELU|ReLU → Linear(rD, D)</c>.
/// </summary>
internal sealed class TransformerBlock : nn.Module<Tensor, Tensor?, Tensor>
{
    private readonly LayerNorm _norm1;
    private readonly MultiHeadAttention _attention;
    private readonly LayerNorm _norm2;
    private readonly Linear _fc1;
    private readonly nn.Module<Tensor, Tensor> _activation;
    private readonly Linear _fc2;

    /// <summary>Creates a block of width <paramref name="dimension"/>.</summary>
    public TransformerBlock(int dimension, int heads, int mlpRatio, TransformerActivation activation) : base(nameof(TransformerBlock))
    {
        _norm1 = nn.LayerNorm([dimension], eps: 1e-6);
        _attention = new MultiHeadAttention(dimension, heads);
        _norm2 = nn.LayerNorm([dimension], eps: 1e-6);
        _fc1 = nn.Linear(dimension, dimension * mlpRatio);
        _activation = activation == TransformerActivation.Relu ? nn.ReLU() : nn.GELU();
        _fc2 = nn.Linear(dimension * mlpRatio, dimension);
        RegisterComponents();
    }

    /// <summary><paramref name="x"/> <c>[B, N, D]</c>; <paramref name="keyMask"/> as in <see cref="MultiHeadAttention"/>.</summary>
    public override Tensor forward(Tensor x, Tensor? keyMask)
    {
        using var scope = NewDisposeScope();
        var h = x.add(_attention.forward(_norm1.forward(x), keyMask), TorchScalars.One);
        var hidden = Autocast.Linear(_fc1, _norm2.forward(h));
        // Without autograd the activation runs in place on the hidden layer (no second [B, N, rD] buffer).
        hidden = is_grad_enabled() ? _activation.forward(hidden) : _activation is GELU ? hidden.gelu_() : hidden.relu_();
        var y = h.add(Autocast.Linear(_fc2, hidden), TorchScalars.One);
        return y.MoveToOuterDisposeScope();
    }
}
