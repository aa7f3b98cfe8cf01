namespace Microsoft.ML.LabelCompletion.Cli;

/// <summary>
/// Holds the finalizer thread while it is alive. Works around a crash in TorchSharp 0.107: temporary <c>Scalar</c>s made by
/// implicit conversions inside TorchSharp (e.g. <c>Tensor.add_(Scalar)</c> in <c>Adam.step</c>) can be finalized by the GC while
/// libtorch still reads them, which aborts training at random ("Unknown scalar type", "toFloat ... Expected false to be true").
/// While the gate is closed no finalizer runs, so no such Scalar is freed under libtorch; they are freed after training.
/// </summary>
internal sealed class FinalizerGate : IDisposable
{
    private readonly ManualResetEventSlim _open = new(false);
    private readonly ManualResetEventSlim _entered = new(false);

    public FinalizerGate()
    {
        Park(_open, _entered);
        for (int i = 0; i < 100 && !_entered.IsSet; i++)
        {
            GC.Collect();
            _entered.Wait(10);
        }
    }

    public void Dispose() => _open.Set();

    [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.NoInlining)]
    private static void Park(ManualResetEventSlim open, ManualResetEventSlim entered) => _ = new Blocker(open, entered);

    private sealed class Blocker(ManualResetEventSlim open, ManualResetEventSlim entered)
    {
        ~Blocker()
        {
            entered.Set();
            open.Wait();
        }
    }
}
