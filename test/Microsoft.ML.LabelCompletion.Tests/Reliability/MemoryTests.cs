using System.Runtime.CompilerServices;
using Microsoft.ML.LabelCompletion.Internal;

namespace Microsoft.ML.LabelCompletion.Tests.Reliability;

[TestClass]
public sealed class MemoryTests
{
    [TestMethod]
    public void StepGarbageIsCollectedOnceTheBudgetIsAllocated()
    {
        // Training calls CollectStepGarbage after every step: large-object arrays of earlier steps must be freed once the
        // budget has been allocated, and nothing is collected before that.
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
