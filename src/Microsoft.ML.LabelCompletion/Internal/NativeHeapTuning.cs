using System.Runtime.InteropServices;

namespace Microsoft.ML.LabelCompletion.Internal;

/// <summary>
/// Keeps glibc from returning libtorch's large activation buffers to the kernel after every step. By default glibc serves
/// allocations above its mmap threshold (at most 32 MiB) with fresh <c>mmap</c>s and trims the heap on free, so each
/// training step page-faults and zeroes hundreds of megabytes again. Measured with <c>lmae bench --only train</c> (Small,
/// batch 8, 2 threads): 185 ms/image with 15 s of system time per run by default, 105 ms/image with 1.2 s when no buffer
/// is mmapped and the heap is not trimmed; peak RSS rises from about 1.7 to 2.4 GiB (the pages are kept for the next
/// step). Applied only when the host asks (<see cref="LabelCompletionProcessTuning.Apply"/>), once per process, on Linux
/// with glibc only; elsewhere a no-op.
/// One malloc arena for the whole process: with an arena per thread, the freed buffers of one thread's arena are not
/// reused by another and the heap's high-water mark kept creeping up (measured over 30 Small training steps at batch 8 on
/// the 2-core AMD EPYC VM, steps 3 → 30: 1722 → 1860 MiB with glibc's default arenas, 1743 → 1835 MiB with one).
/// <see cref="ReleaseGarbage"/> hands the GC's garbage and the free native heap back to the kernel after the data set is
/// decoded and between epochs, so neither heap's fragmentation carries from one epoch into the next;
/// <see cref="CollectStepGarbage"/> frees the steps' large-object arrays within an epoch. Both force garbage collections,
/// so both do nothing unless the tuning is active.
/// </summary>
internal static class NativeHeapTuning
{
    private const int MallocTrimThreshold = -1;  // M_TRIM_THRESHOLD
    private const int MallocMmapMax = -4;        // M_MMAP_MAX
    private const int MallocArenaMax = -8;       // M_ARENA_MAX
    private static int _applied;

    /// <summary>Whether the tuning took effect in this process.</summary>
    public static bool Active { get; private set; }

    /// <summary>Applies the settings (idempotent, thread-safe).</summary>
    public static void Apply()
    {
        if (Interlocked.Exchange(ref _applied, 1) == 1) return;
        if (!OperatingSystem.IsLinux()) return;
        try
        {
            // No mmapped chunks at all (glibc caps the mmap threshold at 32 MiB; refinement activations are larger), and
            // free heap is never trimmed.
            Active = mallopt(MallocMmapMax, 0) == 1 & mallopt(MallocTrimThreshold, int.MaxValue) == 1 & mallopt(MallocArenaMax, 1) == 1;
        }
        catch (Exception e) when (e is DllNotFoundException or EntryPointNotFoundException)
        {
            Active = false; // not glibc (for example musl): nothing to tune
        }
    }

    /// <summary>
    /// A blocking, compacting full garbage collection, then (where the tuning is active) the native heap's free pages back to
    /// the kernel (glibc <c>malloc_trim</c>). The next training step faults its pages in again (measured without the tuning:
    /// 572 against 374 ms per image, Small, batch 8), so this runs between epochs, not between steps. A training batch's samples are
    /// large-object-heap arrays (about 1 MB per image) that the GC collects only in full collections: on a CamVid run it had
    /// let the process's anonymous memory (mostly GC heap) reach 1257 MiB for about 320 MB of decoded images.
    /// </summary>
    public static void ReleaseGarbage()
    {
        if (Volatile.Read(ref _applied) == 0) return;
        GC.Collect(GC.MaxGeneration, GCCollectionMode.Aggressive, blocking: true, compacting: true);
        if (Active) malloc_trim(0);
    }

    /// <summary>Managed bytes a training run may allocate between two <see cref="CollectStepGarbage"/> collections.</summary>
    internal const long StepGarbageBudget = 64L << 20;

    private static long _allocatedAtCollection;

    /// <summary>
    /// A blocking, non-compacting full collection once <see cref="StepGarbageBudget"/> managed bytes have been allocated since
    /// the previous one (called after each training step; cheap otherwise). A step's samples are large-object-heap arrays that
    /// only a full collection frees, and with the decoded data set alive the GC's own full collections came rarely: on CamVid
    /// the GC heap climbed from about 400 to 600 MiB within every epoch. Returns whether it collected.
    /// </summary>
    public static bool CollectStepGarbage()
    {
        if (Volatile.Read(ref _applied) == 0) return false;
        long allocated = GC.GetTotalAllocatedBytes();
        if (allocated - Interlocked.Read(ref _allocatedAtCollection) < StepGarbageBudget) return false;
        GC.Collect(GC.MaxGeneration, GCCollectionMode.Forced, blocking: true, compacting: false);
        Interlocked.Exchange(ref _allocatedAtCollection, GC.GetTotalAllocatedBytes());
        return true;
    }

    [DllImport("libc", EntryPoint = "malloc_trim")]
    private static extern int malloc_trim(nuint pad);

    [DllImport("libc", EntryPoint = "mallopt")]
    private static extern int mallopt(int parameter, int value);
}
