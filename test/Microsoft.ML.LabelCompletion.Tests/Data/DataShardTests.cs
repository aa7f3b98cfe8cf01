using Microsoft.ML.LabelCompletion.Data;

namespace Microsoft.ML.LabelCompletion.Tests.Data;

/// <summary><see cref="DataShard"/>: balanced contiguous shards, and the shard read from the schedulers' variables.</summary>
[TestClass]
public sealed class DataShardTests
{
    [TestMethod]
    public void RangeOf_CoversTheListOnceInOrder_WithSizesThatDifferByAtMostOne()
    {
        foreach (int items in new[] { 0, 1, 2, 3, 7, 10, 101, 233, 1000 })
            foreach (int count in new[] { 1, 2, 3, 4, 7, 16, 300 })
            {
                int next = 0;
                var sizes = new List<int>();
                for (int i = 0; i < count; i++)
                {
                    var shard = new DataShard(i, count);
                    var (start, length) = shard.RangeOf(items);
                    Assert.AreEqual(next, start, $"{items} items, shard {shard}: shards follow each other");
                    for (int p = 0; p < items; p++) Assert.AreEqual(p >= start && p < start + length, shard.Contains(p, items));
                    next = start + length;
                    sizes.Add(length);
                }
                Assert.AreEqual(items, next, $"{items} items in {count} shards are all covered");
                Assert.IsTrue(sizes.Max() - sizes.Min() <= 1, $"{items} items in {count} shards: {string.Join(",", sizes)}");
            }
        Assert.AreEqual((4, 3), new DataShard(1, 3).RangeOf(10));
        Assert.AreEqual((0, 10), DataShard.All.RangeOf(10));
    }

    [TestMethod]
    public void Parse_ReadsIndexSlashCount_AndRefusesTheRest()
    {
        Assert.AreEqual(new DataShard(2, 8), DataShard.Parse("2/8"));
        foreach (string bad in new[] { "3/3", "-1/3", "1/0", "1", "a/b", "1/2/3", " 1/2" })
            Assert.ThrowsExactly<FormatException>(() => DataShard.Parse(bad), bad);
        Assert.ThrowsExactly<InvalidOperationException>(() => new DataShard(3, 3).RangeOf(10));
    }

    private static (bool Found, DataShard Shard, string Source) FromEnvironment(int? count, params (string Name, string Value)[] variables)
    {
        var map = variables.ToDictionary(v => v.Name, v => v.Value);
        bool found = DataShard.TryFromEnvironment(n => map.GetValueOrDefault(n), count, out var shard, out string source);
        return (found, shard, source);
    }

    [TestMethod]
    public void TryFromEnvironment_ReadsEachScheduler()
    {
        Assert.AreEqual((false, DataShard.All, ""), FromEnvironment(null));

        var kubernetes = FromEnvironment(null, ("JOB_COMPLETION_INDEX", "2"), ("LMAE_SHARD_COUNT", "5"));
        Assert.AreEqual(new DataShard(2, 5), kubernetes.Shard);
        Assert.AreEqual("Kubernetes Indexed Job: JOB_COMPLETION_INDEX=2, LMAE_SHARD_COUNT=5", kubernetes.Source);
        Assert.AreEqual(new DataShard(2, 4), FromEnvironment(4, ("JOB_COMPLETION_INDEX", "2")).Shard, "--shard-count gives Kubernetes' count");

        // --array=1-9:2 gives ids 1, 3, 5, 7, 9: id 5 is the third task.
        var slurm = FromEnvironment(null, ("SLURM_ARRAY_TASK_ID", "5"), ("SLURM_ARRAY_TASK_MIN", "1"), ("SLURM_ARRAY_TASK_STEP", "2"), ("SLURM_ARRAY_TASK_COUNT", "5"));
        Assert.AreEqual(new DataShard(2, 5), slurm.Shard);
        StringAssert.StartsWith(slurm.Source, "Slurm job array: SLURM_ARRAY_TASK_ID=5");
        Assert.AreEqual(new DataShard(3, 8), FromEnvironment(null, ("SLURM_ARRAY_TASK_ID", "4"), ("SLURM_ARRAY_TASK_MIN", "1"), ("SLURM_ARRAY_TASK_COUNT", "8")).Shard,
            "step 1 when Slurm does not set it");

        Assert.AreEqual(new DataShard(6, 7), FromEnvironment(null, ("AWS_BATCH_JOB_ARRAY_INDEX", "6"), ("AWS_BATCH_JOB_ARRAY_SIZE", "7")).Shard);
        Assert.AreEqual(new DataShard(0, 3), FromEnvironment(3, ("BATCH_TASK_INDEX", "0"), ("BATCH_TASK_COUNT", "3")).Shard, "an agreeing count is fine");
        Assert.IsTrue(FromEnvironment(null, ("BATCH_TASK_INDEX", "0"), ("BATCH_TASK_COUNT", "3")).Found);
    }

    [TestMethod]
    public void TryFromEnvironment_RefusesWhatDoesNotAddUp_NamingTheVariables()
    {
        void Refused(string expected, int? count, params (string, string)[] variables)
        {
            var e = Assert.ThrowsExactly<FormatException>(() => FromEnvironment(count, variables));
            StringAssert.Contains(e.Message, expected);
        }
        Refused("gives no shard count: set LMAE_SHARD_COUNT", null, ("JOB_COMPLETION_INDEX", "1"));
        Refused("LMAE_SHARD_COUNT=3 disagrees with the AWS Batch array job's 4 tasks", null,
            ("AWS_BATCH_JOB_ARRAY_INDEX", "1"), ("AWS_BATCH_JOB_ARRAY_SIZE", "4"), ("LMAE_SHARD_COUNT", "3"));
        Refused("--shard-count=2 disagrees", 2, ("BATCH_TASK_INDEX", "1"), ("BATCH_TASK_COUNT", "4"));
        Refused("shard index 4 is not below the shard count 4", null, ("BATCH_TASK_INDEX", "4"), ("BATCH_TASK_COUNT", "4"));
        Refused("JOB_COMPLETION_INDEX=x is not a whole number", 3, ("JOB_COMPLETION_INDEX", "x"));
        Refused("SLURM_ARRAY_TASK_COUNT is not set", null, ("SLURM_ARRAY_TASK_ID", "1"), ("SLURM_ARRAY_TASK_MIN", "0"));
        Refused("is not on the array's range", null, ("SLURM_ARRAY_TASK_ID", "4"), ("SLURM_ARRAY_TASK_MIN", "1"), ("SLURM_ARRAY_TASK_STEP", "2"), ("SLURM_ARRAY_TASK_COUNT", "5"));
        Refused("several schedulers", null, ("SLURM_ARRAY_TASK_ID", "1"), ("BATCH_TASK_INDEX", "1"));
        Refused("no shard index", null, ("LMAE_SHARD_COUNT", "3"));
        Refused("no shard index", 2);
    }
}
