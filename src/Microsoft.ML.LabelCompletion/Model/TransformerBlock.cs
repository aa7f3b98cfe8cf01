using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Microsoft.ML.LabelCompletion.Model;

/// <summary>
/// Multi-head self-attention (paper eq. 6-8) through <c>scaled_dot_product_attention</c>: one fused Q/K/V projection,
/// <c>h</c> heads of width <c>D/h</c>, output projection <c>W^O</c>. An optional key mask hides padding tokens.
/// </summary>
public sealed class MultiHeadAttention : nn.Module<Tensor, Tensor?, Tensor>
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
        var attended = nn.functional.scaled_dot_product_attention(qkv[0], qkv[1], qkv[2], keyMask);
        return Autocast.Linear(_proj, attended.transpose(1, 2).reshape(b, n, d)).MoveToOuterDisposeScope();
    }
}

/// <summary>
/// One LMMA block (paper eq. 4-5) in pre-norm form: <c>x + MulAttn(LN(x))</c>, then <c>x + FFN(LN(x))</c>;
/// LayerNorm eps 1e-6, FFN <c>Linear(D, rD) → GELU|ReLU → Linear(rD, D)</c>.
/// </summary>
public sealed class TransformerBlock : nn.Module<Tensor, Tensor?, Tensor>
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
        var y = h.add(Autocast.Linear(_fc2, _activation.forward(Autocast.Linear(_fc1, _norm2.forward(h)))), TorchScalars.One);
        return y.MoveToOuterDisposeScope();
    }
}
