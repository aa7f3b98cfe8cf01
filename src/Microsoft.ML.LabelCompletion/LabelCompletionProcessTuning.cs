using Microsoft.ML.LabelCompletion.Internal;

namespace Microsoft.ML.LabelCompletion;

/// <summary>
/// Opt-in, process-wide settings for hosts whose main job is training or completing with this library (the <c>lmae</c>
/// tool calls <see cref="Apply"/> at start-up). The library never changes its host process on its own: without this call
/// the allocator, libtorch's NNPACK switch and the garbage collector keep the host's settings.
/// </summary>
/// <remarks>
/// <para><see cref="Apply"/> does, once per process:</para>
/// <list type="bullet">
/// <item><description>glibc's allocator (Linux with glibc only): one malloc arena, no mmapped chunks, no trimming of the heap
/// on free (<c>mallopt</c>), so libtorch's large activation buffers are reused from step to step instead of being
/// page-faulted and zeroed again; the training loop then also collects the .NET garbage of its batches (full collections
/// every 64 MiB of allocations and between epochs) and returns the free native heap to the kernel between epochs
/// (<c>malloc_trim</c>). This trades a higher resident set for speed.</description></item>
/// <item><description>libtorch's NNPACK off (Linux): on processors that NNPACK does not know, libtorch logs a warning for
/// every small convolution; libtorch then uses the kernel it falls back to anyway, so results do not change.</description></item>
/// </list>
/// <para>
/// Threads and seeds are per-call settings, not part of this tuning: <see cref="LabelCompletionSettings.NumberOfThreads"/>
/// (libtorch's intra-op thread pool, which is process-wide) is set only when the option is given, and the network's
/// initialisation is seeded without changing the global random generator's state.
/// </para>
/// </remarks>
public static class LabelCompletionProcessTuning
{
    /// <summary>Applies the settings listed in the remarks (idempotent, thread-safe). Call it before the first training or completion.</summary>
    public static void Apply()
    {
        Applied = true;
        TorchSharp.torch.InitializeDeviceType(TorchSharp.DeviceType.CPU); // libtorch loaded: its entry points resolve
        NativeHeapTuning.Apply();
        LibTorchSettings.Apply();
    }

    /// <summary>Whether <see cref="Apply"/> was called in this process.</summary>
    public static bool Applied { get; private set; }

    /// <summary>Whether <see cref="Apply"/> changed glibc's allocator in this process (false off Linux/glibc or before the call).</summary>
    public static bool NativeHeapTuned => NativeHeapTuning.Active;
}
