using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using Microsoft.ML.LabelCompletion.Benchmarks;
using Microsoft.ML.LabelCompletion.Internal;

namespace Microsoft.ML.LabelCompletion.Tests.Reliability;

[TestClass]
public sealed class MemoryTests
{
    [TestMethod]
    public void PageFaultsCountTheFirstTouchOfFreshPages()
    {
        // The infer benchmark reports page faults per image; the counter must see a fresh anonymous mapping being touched.
        if (!OperatingSystem.IsLinux())
        {
            Assert.IsNull(LabelCompletionBenchmarks.PageFaults(), "no /proc/self/stat: no count, not a made-up one");
            return;
        }
        const int pages = 4096;
        nint length = pages * 4096;
        nint map = mmap(0, length, 3 /* PROT_READ | PROT_WRITE */, 0x22 /* MAP_PRIVATE | MAP_ANONYMOUS */, -1, 0);
        Assert.AreNotEqual((nint)(-1), map, "mmap failed");
        try
        {
            madvise(map, length, 15 /* MADV_NOHUGEPAGE: one fault per 4 KiB page */);
            long before = LabelCompletionBenchmarks.PageFaults()!.Value.Minor;
            for (int i = 0; i < pages; i++) Marshal.WriteByte(map, i * 4096, 1);
            long after = LabelCompletionBenchmarks.PageFaults()!.Value.Minor;
            Assert.IsTrue(after - before >= pages, $"{after - before} faults counted for {pages} fresh pages");
            for (int i = 0; i < pages; i++) Marshal.WriteByte(map, i * 4096, 2);
            Assert.IsTrue(LabelCompletionBenchmarks.PageFaults()!.Value.Minor - after < pages / 4, "touching them again does not fault");
        }
        finally
        {
            munmap(map, length);
        }
    }

    [TestMethod]
    public void PeakRssIsThePeakSinceTheLastReset()
    {
        // The train, paper and ratios benchmarks report the peak RSS of their own run: a Paper step at 6 GiB earlier in the
        // same process must not show up as the peak of a later Small step.
        if (!OperatingSystem.IsLinux())
        {
            Assert.IsFalse(LabelCompletionBenchmarks.ResetPeakRss(), "no /proc/self/clear_refs: the peak stays the process's");
            return;
        }
        const int pages = 64 * 1024;                               // 256 MiB
        nint length = (nint)pages * 4096;
        nint map = mmap(0, length, 3 /* PROT_READ | PROT_WRITE */, 0x22 /* MAP_PRIVATE | MAP_ANONYMOUS */, -1, 0);
        Assert.AreNotEqual((nint)(-1), map, "mmap failed");
        try
        {
            for (int i = 0; i < pages; i++) Marshal.WriteByte(map + (nint)i * 4096, 1);
        }
        finally
        {
            munmap(map, length);
        }
        // Compared with the resident set after the unmapping (other memory of the test process may come and go meanwhile).
        double kept = LabelCompletionBenchmarks.PeakRssMiB() - ResidentMiB();
        Assert.IsTrue(kept > 200, $"without a reset the peak keeps the freed 256 MiB mapping: {kept:F0} MiB above the resident set");
        Assert.IsTrue(LabelCompletionBenchmarks.ResetPeakRss(), "VmHWM can be reset on Linux");
        double after = LabelCompletionBenchmarks.PeakRssMiB() - ResidentMiB();
        Assert.IsTrue(after < 50, $"after the reset the peak is {after:F0} MiB above the resident set");
    }

    private static double ResidentMiB() => Environment.WorkingSet / 1048576.0;   // VmRSS on Linux

    [DllImport("libc", SetLastError = true)]
    private static extern nint mmap(nint address, nint length, int protection, int flags, int fd, nint offset);

    [DllImport("libc")]
    private static extern int madvise(nint address, nint length, int advice);

    [DllImport("libc")]
    private static extern int munmap(nint address, nint length);

    [TestMethod]
    public void StepGarbageIsCollectedOnceTheBudgetIsAllocated()
    {
        // Training calls CollectStepGarbage after every step: large-object arrays of earlier steps must be freed once the
        // budget has been allocated, and nothing is collected before that.
        LabelCompletionProcessTuning.Apply(); // the step collections belong to the opt-in process tuning
        var dead = AllocateLargeGarbage(NativeHeapTuning.StepGarbageBudget + (1 << 20));
        int fullCollections = GC.CollectionCount(GC.MaxGeneration);
        Assert.IsTrue(NativeHeapTuning.CollectStepGarbage(), "a budget's worth of allocations triggers a collection");
        Assert.IsTrue(GC.CollectionCount(GC.MaxGeneration) > fullCollections, "the collection is a full one (it frees large objects)");
        Assert.IsFalse(dead.TryGetTarget(out _), "the large-object garbage of earlier steps is gone");

        // (The GC may still collect on its own; the point is that training does not force one after every step.)
        AllocateLargeGarbage(NativeHeapTuning.StepGarbageBudget / 4);
        Assert.IsFalse(NativeHeapTuning.CollectStepGarbage(), "a quarter of the budget does not trigger a collection");
    }

    /// <summary>Allocates <paramref name="bytes"/> in 1 MiB arrays (large-object heap) and drops them; returns a weak reference to one.</summary>
    [MethodImpl(MethodImplOptions.NoInlining)]
    private static WeakReference<byte[]> AllocateLargeGarbage(long bytes)
    {
        WeakReference<byte[]>? first = null;
        for (long done = 0; done < bytes; done += 1 << 20)
        {
            var array = new byte[1 << 20];
            array[^1] = 1;
            first ??= new WeakReference<byte[]>(array);
        }
        return first!;
    }
}
