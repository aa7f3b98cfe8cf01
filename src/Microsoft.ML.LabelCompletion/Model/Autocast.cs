using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Microsoft.ML.LabelCompletion.Model;

/// <summary>
/// bf16 autocast for the L-MAE (<see cref="LabelCompletionPrecision.BFloat16"/>), the CPU counterpart of
/// <c>torch.autocast(dtype=torch.bfloat16)</c>, which TorchSharp 0.107 does not expose. Inside a scope opened by
/// <see cref="Enter"/> on the current thread, <see cref="Linear"/> and <see cref="Conv2d(TorchSharp.Modules.Conv2d, Tensor, long, long)"/> cast their input and the FP32
/// master weights to bf16 and return a bf16 result; attention on bf16 projections runs in bf16 as well. Everything else
/// stays FP32: residual sums (FP32 + bf16 promotes to FP32), LayerNorm, the logits, softmax and the loss; the autograd of
/// the casts brings the gradients back to the FP32 weights. Outside a scope both helpers are the plain FP32 layers.
/// </summary>
internal static class Autocast
{
    [ThreadStatic]
    private static ScalarType? _lowPrecision;

    /// <summary>The dtype of linear layers and convolutions on this thread now: bf16 inside a bf16 scope, else null (FP32).</summary>
    public static ScalarType? LowPrecision => _lowPrecision;

    private static readonly Lazy<bool> _cpuHasNativeBFloat16 = new(DetectNativeBFloat16);

    /// <summary>Whether this CPU computes bf16 natively (Linux: <c>/proc/cpuinfo</c> lists <c>avx512_bf16</c> or <c>amx_bf16</c>).</summary>
    public static bool CpuHasNativeBFloat16 => _cpuHasNativeBFloat16.Value;

    /// <summary>
    /// What <paramref name="precision"/> means on <paramref name="device"/>: <see cref="LabelCompletionPrecision.Auto"/> becomes
    /// bf16 on a CPU with native bf16 and FP32 elsewhere; the others stay as they are.
    /// </summary>
    public static LabelCompletionPrecision Resolve(LabelCompletionPrecision precision, Device device) => precision switch
    {
        LabelCompletionPrecision.Auto => device.type == TorchSharp.DeviceType.CPU && CpuHasNativeBFloat16
            ? LabelCompletionPrecision.BFloat16 : LabelCompletionPrecision.Float32,
        _ => precision,
    };

    /// <summary>
    /// Opens a scope of <paramref name="precision"/> (resolved for <paramref name="device"/>) on this thread; disposing it
    /// restores the previous state.
    /// </summary>
    public static Scope Enter(LabelCompletionPrecision precision, Device device)
    {
        var previous = _lowPrecision;
        _lowPrecision = Resolve(precision, device) == LabelCompletionPrecision.BFloat16 ? ScalarType.BFloat16 : null;
        return new Scope(previous);
    }

    private static bool DetectNativeBFloat16()
    {
        try
        {
            if (!OperatingSystem.IsLinux() || !File.Exists("/proc/cpuinfo")) return false;
            foreach (string line in File.ReadLines("/proc/cpuinfo"))
            {
                if (!line.StartsWith("flags", StringComparison.Ordinal)) continue;
                var flags = line.Split([' ', '\t', ':'], StringSplitOptions.RemoveEmptyEntries);
                return flags.Contains("avx512_bf16") || flags.Contains("amx_bf16");
            }
            return false;
        }
        catch (IOException)
        {
            return false;
        }
        catch (UnauthorizedAccessException)
        {
            return false;
        }
    }

    /// <summary><paramref name="layer"/> applied to <paramref name="x"/>, in bf16 inside a bf16 scope.</summary>
    public static Tensor Linear(Linear layer, Tensor x)
    {
        if (_lowPrecision is not ScalarType dtype) return layer.forward(x);
        return nn.functional.linear(x.to(dtype), layer.weight!.to(dtype), layer.bias?.to(dtype));
    }

    /// <summary>
    /// <paramref name="layer"/> (stride 1, square <paramref name="padding"/> and <paramref name="dilation"/>, as the layer was
    /// built) applied to <paramref name="x"/>, in bf16 inside a bf16 scope.
    /// </summary>
    public static Tensor Conv2d(Conv2d layer, Tensor x, long padding, long dilation)
    {
        if (_lowPrecision is not ScalarType dtype) return layer.forward(x);
        return nn.functional.conv2d(x.to(dtype), layer.weight!.to(dtype), layer.bias?.to(dtype),
            strides: [1, 1], padding: [padding, padding], dilation: [dilation, dilation]);
    }

    /// <summary>
    /// 2-D convolution of <paramref name="x"/> with <paramref name="weight"/> and <paramref name="bias"/> (stride 1, square
    /// <paramref name="padding"/> and <paramref name="dilation"/>), in bf16 inside a bf16 scope.
    /// </summary>
    public static Tensor Conv2d(Tensor x, Tensor weight, Tensor? bias, long padding, long dilation) => Conv2d(x, weight, bias, padding, dilation, 1);

    /// <summary>As <see cref="Conv2d(Tensor, Tensor, Tensor?, long, long)"/> with a square <paramref name="stride"/>.</summary>
    public static Tensor Conv2d(Tensor x, Tensor weight, Tensor? bias, long padding, long dilation, long stride)
    {
        if (_lowPrecision is ScalarType dtype)
        {
            x = x.to(dtype);
            weight = weight.to(dtype);
            bias = bias?.to(dtype);
        }
        return nn.functional.conv2d(x, weight, bias, strides: [stride, stride], padding: [padding, padding], dilation: [dilation, dilation]);
    }

    /// <summary><paramref name="x"/> as FP32 (no copy when it already is): module outputs leave a bf16 scope in FP32.</summary>
    public static Tensor ToFloat32(Tensor x) => x.dtype == ScalarType.Float32 ? x : x.to(ScalarType.Float32);

    /// <summary>Restores the precision that was in force before <see cref="Enter"/>.</summary>
    public readonly struct Scope : IDisposable
    {
        private readonly ScalarType? _previous;

        internal Scope(ScalarType? previous) => _previous = previous;

        /// <summary>Leaves the scope.</summary>
        public void Dispose() => _lowPrecision = _previous;
    }
}
