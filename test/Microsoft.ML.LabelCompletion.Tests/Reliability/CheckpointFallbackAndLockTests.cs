using Microsoft.ML.LabelCompletion.Model;

namespace Microsoft.ML.LabelCompletion.Tests.Reliability;

/// <summary>
/// Resume falls back to the previous checkpoint when the newest passes its hash but does not load, and says so; a lock
/// keeps a second trainer out of a checkpoint folder in use (the lock of a killed process is taken over: see
/// <see cref="CheckpointResumeTests.TrainingProcessKilledMidEpoch_ResumesToBitIdenticalWeights"/>).
/// </summary>
[TestClass]
public sealed class CheckpointFallbackAndLockTests
{
    /// <summary>A checkpoint of the same run (same fingerprint), later than <paramref name="of"/>, whose hash is right and whose state is not a network's.</summary>
    private static string WriteUnloadable(string folder, TrainingCheckpoint of, int steps) => new TrainingCheckpoint
    {
        LibraryVersion = of.LibraryVersion, Fingerprint = of.Fingerprint, Epoch = of.Epoch, StepsDone = steps, GlobalStep = of.GlobalStep + steps - of.StepsDone,
        LearningRate = of.LearningRate, SchedulerBest = of.SchedulerBest, EarlyStoppingBest = of.EarlyStoppingBest,
    }.Write(folder, writer => writer.Write(new byte[64]));

    [TestMethod]
    public void NewestCheckpoint_ThatPassesItsHashButDoesNotLoad_FallsBackToThePreviousOne_AndSaysSo()
    {
        string folder = ReliabilityTestData.NewFolder();
        string other = ReliabilityTestData.NewFolder();
        try
        {
            using (var cancel = new CancellationTokenSource())
            {
                int steps = 0;
                Assert.Throws<OperationCanceledException>(() => ReliabilityTestData.Train(ReliabilityTestData.Options(folder, resume: false),
                    p => { if (!p.EndOfEpoch && ++steps == 9) cancel.Cancel(); }, cancel.Token));
            }
            var newest = TrainingCheckpoint.FindLatest(folder, new List<string>())!.Value;
            Assert.AreEqual((2, 0, 3), newest.Checkpoint.Order);
            string unloadable = WriteUnloadable(folder, newest.Checkpoint, 5);
            TrainingCheckpoint.Read(unloadable); // its hash and header check out
            Assert.AreEqual(unloadable, TrainingCheckpoint.FindLatest(folder, new List<string>())!.Value.Path, "it is the newest valid one");

            var resumed = ReliabilityTestData.Train(ReliabilityTestData.Options(folder, resume: true));
            var rejected = resumed.RejectedCheckpoints.ToList();
            StringAssert.EndsWith(resumed.ResumedFrom, "checkpoint-e00002-s0000003.lmaeckpt");
            Assert.AreEqual(1, rejected.Count, string.Join("\n", rejected));
            StringAssert.StartsWith(rejected[0], unloadable + ": its SHA-256 checks out but it does not load into this network (");
            StringAssert.EndsWith(rejected[0], "; falling back to checkpoint-e00002-s0000003.lmaeckpt.");
            CollectionAssert.AreEqual(ReliabilityTestData.UninterruptedWeights, ReliabilityTestData.Weights(resumed),
                "training went on from the previous checkpoint as if nothing had happened");

            // With nothing to fall back on, the error names the folder and every file; nothing trains from a half-loaded network.
            string alone = WriteUnloadable(other, newest.Checkpoint, 5);
            var error = Assert.Throws<InvalidDataException>(() => ReliabilityTestData.Train(ReliabilityTestData.Options(other, resume: true)));
            StringAssert.StartsWith(error.Message, $"{other}: none of its 1 valid checkpoint(s) loads into this network ({alone}: ");
        }
        finally
        {
            Directory.Delete(folder, recursive: true);
            Directory.Delete(other, recursive: true);
        }
    }

    [TestMethod]
    public void SecondTrainer_OnAFolderInUse_IsRefusedNamingTheFolderAndTheHolder()
    {
        string folder = ReliabilityTestData.NewFolder();
        try
        {
            var options = ReliabilityTestData.Options(folder, resume: false);
            options.Epochs = 1;
            IOException? second = null, delete = null;
            using (var first = ReliabilityTestData.Train(options, p =>
            {
                if (second is not null || p.EndOfEpoch) return;
                second = Assert.Throws<IOException>(() => ReliabilityTestData.Train(ReliabilityTestData.Options(folder, resume: true)));
                delete = Assert.Throws<IOException>(() => TrainingCheckpoints.Delete(folder));
            }))
            {
                Assert.IsNotNull(second, "the second trainer ran while the first trained");
            }
            StringAssert.StartsWith(second!.Message, $"{folder} is in use by another training run (process {Environment.ProcessId} on {Environment.MachineName}, started ");
            StringAssert.Contains(second.Message, "two trainers cannot share a checkpoint folder");
            StringAssert.StartsWith(delete!.Message, $"{folder} is in use by another training run (process {Environment.ProcessId}");
            Assert.IsTrue(TrainingCheckpoint.List(folder).Count > 0, "the refused calls touched nothing");

            // Released when the run ends: the owner record is gone, the next run (or Delete) takes the lock.
            Assert.IsFalse(File.Exists(Path.Combine(folder, TrainingCheckpoint.FolderLock.OwnerFileName)));
            using (var next = TrainingCheckpoint.FolderLock.Acquire(folder)) Assert.IsNull(next.TakenOverFrom, "released, not abandoned");
            Assert.IsTrue(TrainingCheckpoints.Delete(folder) > 0);
            Assert.IsFalse(Directory.Exists(folder), "the checkpoints, the lock and the folder are gone");
        }
        finally
        {
            if (Directory.Exists(folder)) Directory.Delete(folder, recursive: true);
        }
    }
}
