using System.Diagnostics;
using CsCheck;
using Microsoft.ML.LabelCompletion.Model;
using TorchSharp;
using static TorchSharp.torch;

namespace Microsoft.ML.LabelCompletion.Tests.Reliability;

[TestClass]
public sealed class CheckpointResumeTests
{
    [TestMethod]
    [Timeout(180_000)]
    public void TrainingProcessKilledMidEpoch_ResumesToBitIdenticalWeights()
    {
        string folder = ReliabilityTestData.NewFolder();
        try
        {
            string checkpoints = Path.Combine(folder, "checkpoints");

            // 1. Uninterrupted run in its own process.
            string reference = Path.Combine(folder, "reference.bin");
            RunToEnd(ReliabilityTestData.RunnerStart("-", "0", reference, "-"));

            // 2. The same run with checkpoints, killed with SIGKILL in the middle of epoch 2: after step 3 (its last checkpoint
            //    is at step 2), where the runner is told to wait, so the kill lands there however loaded the machine is.
            string killedWeights = Path.Combine(folder, "killed.bin");
            int runner;
            using (var process = Process.Start(ReliabilityTestData.RunnerStart(checkpoints, "0", killedWeights, "2:3"))!)
            {
                runner = process.Id;
                try
                {
                    var stderr = process.StandardError.ReadToEndAsync();
                    string? line;
                    while ((line = process.StandardOutput.ReadLine()) is not null && line != "step 2 3") { }
                    if (line is null)
                    {
                        process.WaitForExit();
                        Assert.Fail("the runner ended before epoch 2, step 3: " + stderr.Result);
                    }
                    Assert.IsFalse(process.HasExited, "the runner waits at epoch 2, step 3");

                    // The folder is locked by the runner: a second trainer is refused with the runner's process id.
                    var locked = Assert.Throws<IOException>(() => ReliabilityTestData.Train(ReliabilityTestData.Options(checkpoints, resume: true)));
                    StringAssert.StartsWith(locked.Message, $"{checkpoints} is in use by another training run (process {process.Id} on ");
                }
                finally
                {
                    process.Kill(); // SIGKILL on Unix
                    Assert.IsTrue(process.WaitForExit(30_000), "the killed runner exits");
                }
            }
            Assert.IsFalse(File.Exists(killedWeights), "the killed run must not have finished");
            // The kernel released the killed process's lock; its owner record stayed behind and names it.
            using (var taken = TrainingCheckpoint.FolderLock.Acquire(checkpoints))
                StringAssert.StartsWith(taken.TakenOverFrom, $"process {runner} on ");
            var names = TrainingCheckpoint.List(checkpoints).Select(Path.GetFileName).ToList();
            var latest = TrainingCheckpoint.FindLatest(checkpoints, new List<string>())!.Value.Checkpoint;
            Assert.AreEqual(2, latest.Epoch, "latest checkpoint: " + string.Join(", ", names));
            Assert.IsFalse(latest.EpochComplete, "the latest checkpoint lies inside epoch 2");
            Assert.AreEqual(2, latest.StepsDone, "the latest checkpoint is the one of global step 8");
            Assert.IsTrue(names.Count <= 2, "only the newest two checkpoints are kept: " + string.Join(", ", names));

            // A crash during a checkpoint write leaves a temporary file; a damaged later checkpoint must be skipped.
            File.WriteAllBytes(Path.Combine(checkpoints, ".checkpoint-e00002-s0000006.lmaeckpt.0123456789abcdef.tmp"), [1, 2, 3]);
            byte[] whole = File.ReadAllBytes(TrainingCheckpoint.List(checkpoints)[^1]);
            File.WriteAllBytes(Path.Combine(checkpoints, "checkpoint-e00003-s0000002.lmaeckpt"), whole[..(whole.Length / 2)]);

            // 3. Resume in a fresh process: same final weights, bit for bit.
            string resumedWeights = Path.Combine(folder, "resumed.bin");
            string output = RunToEnd(ReliabilityTestData.RunnerStart(checkpoints, "1", resumedWeights, "-"));
            StringAssert.Contains(output, "resumed ");
            StringAssert.Contains(output, "checkpoint-e00002-s");
            Assert.IsFalse(output.Contains("step 1 ", StringComparison.Ordinal), "epoch 1 must not run again:\n" + output);
            Assert.IsFalse(Directory.EnumerateFiles(checkpoints, "*.tmp").Any(), "leftover temporary files are removed");
            CollectionAssert.AreEqual(File.ReadAllBytes(reference), File.ReadAllBytes(resumedWeights),
                "resumed weights differ from the uninterrupted run's");
            CollectionAssert.AreEqual(ReliabilityTestData.UninterruptedWeights, File.ReadAllBytes(reference),
                "the runner process and this process train differently with the same set-up");
        }
        finally
        {
            Directory.Delete(folder, recursive: true);
        }
    }

    private static string RunToEnd(ProcessStartInfo start)
    {
        using var process = Process.Start(start)!;
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        if (!process.WaitForExit(120_000))
        {
            process.Kill(entireProcessTree: true);
            Assert.Fail("The TrainingRunner helper did not finish within 120 s.");
        }
        Assert.AreEqual(0, process.ExitCode, stderr.Result);
        return stdout.Result;
    }

    [TestMethod]
    public void CancelledTraining_LeavesWholeCheckpoints_AndResumesToIdenticalWeights()
    {
        string folder = ReliabilityTestData.NewFolder();
        try
        {
            using var cancel = new CancellationTokenSource();
            int steps = 0;
            var options = ReliabilityTestData.Options(folder, resume: false);
            Assert.Throws<OperationCanceledException>(() => ReliabilityTestData.Train(options, p =>
            {
                if (!p.EndOfEpoch && ++steps == 9) cancel.Cancel(); // epoch 2, step 3: not a checkpoint step
            }, cancel.Token));
            Assert.AreEqual(9, steps, "training stops before the next step");

            Assert.IsFalse(Directory.EnumerateFiles(folder, "*.tmp").Any(), "no half-written file");
            var latest = TrainingCheckpoint.FindLatest(folder, new List<string>())!.Value.Checkpoint;
            Assert.AreEqual((2, 0, 3), latest.Order, "cancellation saves the position it stopped at");
            foreach (var file in TrainingCheckpoint.List(folder)) TrainingCheckpoint.Read(file); // every file is whole

            var resumed = ReliabilityTestData.Train(ReliabilityTestData.Options(folder, resume: true));
            StringAssert.EndsWith(resumed.ResumedFrom, "checkpoint-e00002-s0000003.lmaeckpt");
            CollectionAssert.AreEqual(ReliabilityTestData.UninterruptedWeights, ReliabilityTestData.Weights(resumed));
        }
        finally
        {
            Directory.Delete(folder, recursive: true);
        }
    }

    [TestMethod]
    public void NonFiniteLoss_NamesEpochStepAndSources_KeepsTheLastGoodCheckpoint()
    {
        string folder = ReliabilityTestData.NewFolder();
        try
        {
            var error = Assert.Throws<InvalidOperationException>(() => ReliabilityTestData.Train(
                ReliabilityTestData.Options(folder, resume: false), injectNaN: (epoch, step) => epoch == 2 && step == 4));
            StringAssert.Contains(error.Message, "Training loss is NaN at epoch 2, step 4");
            StringAssert.Contains(error.Message, "batch: scene 3");
            Assert.IsFalse(Directory.EnumerateFiles(folder, "*.tmp").Any(), "no half-written file");
            var latest = TrainingCheckpoint.FindLatest(folder, new List<string>())!.Value.Checkpoint;
            Assert.AreEqual((2, 0, 2), latest.Order, "the last checkpoint before the fault (global step 8) stays");

            // The fault was transient here: resuming from the last good checkpoint ends where a run without it ends.
            var resumed = ReliabilityTestData.Train(ReliabilityTestData.Options(folder, resume: true));
            CollectionAssert.AreEqual(ReliabilityTestData.UninterruptedWeights, ReliabilityTestData.Weights(resumed));
        }
        finally
        {
            Directory.Delete(folder, recursive: true);
        }
    }

    [TestMethod]
    public void CheckpointFolder_OfAnotherRun_IsRefusedWithTheDifference()
    {
        string folder = ReliabilityTestData.NewFolder();
        try
        {
            var options = ReliabilityTestData.Options(folder, resume: false);
            options.Epochs = 1;
            ReliabilityTestData.Train(options).Dispose();

            var again = Assert.Throws<InvalidOperationException>(() => ReliabilityTestData.Train(options));
            StringAssert.Contains(again.Message, "already holds training checkpoints");

            var other = ReliabilityTestData.Options(folder, resume: true);
            other.LearningRate = 5e-4;
            var error = Assert.Throws<InvalidOperationException>(() => ReliabilityTestData.Train(other));
            StringAssert.Contains(error.Message, "LearningRate: checkpoint 0.001, now 0.0005");

            // More epochs than before: the run continues from the end of epoch 1.
            var longer = ReliabilityTestData.Options(folder, resume: true);
            longer.Epochs = 2;
            using var resumed = ReliabilityTestData.Train(longer);
            StringAssert.EndsWith(resumed.ResumedFrom, "checkpoint-e00001-s0000006-end.lmaeckpt");
        }
        finally
        {
            Directory.Delete(folder, recursive: true);
        }
    }

    [TestMethod]
    public void CorruptedCheckpoints_AreRejectedWithTheFileAndTheProblem()
    {
        string folder = ReliabilityTestData.NewFolder();
        try
        {
            var options = ReliabilityTestData.Options(folder, resume: false);
            options.Epochs = 1;
            ReliabilityTestData.Train(options).Dispose();
            string path = TrainingCheckpoint.List(folder)[^1];
            byte[] bytes = File.ReadAllBytes(path);

            var rng = new Random(3);
            for (int trial = 0; trial < 20; trial++)
            {
                byte[] damaged = (byte[])bytes.Clone();
                if (trial % 2 == 0) damaged = damaged[..rng.Next(damaged.Length)];
                else damaged[rng.Next(damaged.Length)] ^= (byte)(1 << rng.Next(8));
                string file = Path.Combine(folder, $"damaged{trial}.lmaeckpt");
                File.WriteAllBytes(file, damaged);
                var error = Assert.Throws<InvalidDataException>(() => TrainingCheckpoint.Read(file));
                StringAssert.StartsWith(error.Message, file);
                File.Delete(file);
            }
        }
        finally
        {
            Directory.Delete(folder, recursive: true);
        }
    }

    [TestMethod]
    public void PlateauScheduler_FollowsTorchSharpsReduceLROnPlateau()
    {
        // The trainer's own scheduler (saved in checkpoints) must cut the learning rate exactly when TorchSharp's does
        // (mode min, threshold rel). Not reproduced: PyTorch's eps rule (no cut smaller than 1e-8), so the comparison stops
        // once the rate is below 1e-6, far below any rate training uses.
        var sequences = Gen.Int[0, 4].Select(Gen.Double[0.5, 1.5].Array[1, 30], Gen.Double[0.1, 0.9], Gen.Double[0, 0.05]);
        sequences.Sample((patience, losses, factor, threshold) =>
        {
            using var parameter = nn.Parameter(zeros(2));
            using var theirs = optim.Adam([parameter], 1e-3);
            var scheduler = new PlateauScheduler(factor, patience, threshold);
            var reference = optim.lr_scheduler.ReduceLROnPlateau(theirs, "min", factor, patience, threshold, "rel");
            double ours = 1e-3;
            for (int epoch = 0; epoch < losses.Length && ours > 1e-6; epoch++)
            {
                ours = scheduler.Step(losses[epoch], ours);
                reference.step(losses[epoch], epoch + 1);
                if (ours != theirs.ParamGroups.First().LearningRate) return false;
            }
            return true;
        }, iter: 200);
    }
}
