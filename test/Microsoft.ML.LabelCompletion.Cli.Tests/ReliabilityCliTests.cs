using System.Diagnostics;
using System.IO.Compression;
using System.Runtime.InteropServices;

namespace Microsoft.ML.LabelCompletion.Cli.Tests;

/// <summary>
/// <c>lmae train</c> interrupted (as by Ctrl+C) and resumed with <c>--resume</c>; <c>lmae complete</c> restarted, sharded and
/// protected against mixing models.
/// </summary>
[TestClass]
public sealed class ReliabilityCliTests
{
    private static SyntheticPairs? s_data;
    private static string s_model = "";

    [ClassInitialize]
    public static void TrainOnce(TestContext context)
    {
        _ = context;
        s_data = new SyntheticPairs(5, ("train", 8, false), ("holes", 10, true));
        s_model = Path.Combine(s_data.Root, "models", "tiny.zip");
        var train = CliRunner.Run("train", "--data", s_data.Root, "--format", "pairs", "--out", s_model, "--config", "Tiny", "--epochs", "1",
            "--batch", "4", "--crop", "32", "--threads", "1", "--seed", "3");
        Assert.AreEqual(LmaeCli.Success, train.ExitCode, train.ToString());
    }

    [ClassCleanup]
    public static void Cleanup() => s_data?.Dispose();

    private static SyntheticPairs Data => s_data ?? throw new InvalidOperationException("ClassInitialize did not run.");

    private static string[] TrainArgs(string output, params string[] more) =>
        ["train", "--data", Data.Root, "--format", "pairs", "--out", output, "--config", "Tiny", "--epochs", "30", "--batch", "2",
         "--crop", "32", "--threads", "1", "--seed", "3", "--checkpoint-every", "1",
         // A checkpoint every step: without the ResNet18's 11 MB of frozen weights in each one.
         "--image-features", "none", .. more];

    [TestMethod]
    [Timeout(300_000)]
    public void Train_InterruptedLikeCtrlC_ResumesToTheUninterruptedWeights()
    {
        string folder = Data.NewFolder("resume");
        string reference = Path.Combine(folder, "reference.zip");
        var uninterrupted = CliRunner.Run(TrainArgs(reference));
        Assert.AreEqual(LmaeCli.Success, uninterrupted.ExitCode, uninterrupted.ToString());
        Assert.IsFalse(Directory.Exists(reference + ".checkpoints"), "checkpoints are deleted once the model is saved");

        // Cancel (what Ctrl+C does) as soon as the first checkpoint is on disk: 120 steps remain, so it lands mid-run.
        string model = Path.Combine(folder, "model.zip");
        string checkpoints = model + ".checkpoints";
        using var cancel = new CancellationTokenSource();
        using var output = new StringWriter();
        using var error = new StringWriter();
        var run = Task.Run(() => LmaeCli.Run(TrainArgs(model), output, error, cancel.Token));
        while (!run.IsCompleted && TrainingCheckpoints.FindLatest(checkpoints) is null) Thread.Sleep(5);
        cancel.Cancel();
        int code = run.Result;
        Assert.AreEqual(LmaeCli.Cancelled, code, $"the run was not interrupted:\n{output}\n{error}");
        StringAssert.Contains(error.ToString(), "--resume");
        Assert.IsFalse(File.Exists(model), "no model from an interrupted run");
        var latest = TrainingCheckpoints.FindLatest(checkpoints);
        Assert.IsNotNull(latest);
        Assert.IsTrue(latest.GlobalStep < 120, $"interrupted at step {latest.GlobalStep} of 120");

        var without = CliRunner.Run(TrainArgs(model));
        Assert.AreEqual(LmaeCli.Failure, without.ExitCode, without.ToString());
        StringAssert.Contains(without.Error, "add --resume");

        var resumed = CliRunner.Run(TrainArgs(model, "--resume"));
        Assert.AreEqual(LmaeCli.Success, resumed.ExitCode, resumed.ToString());
        StringAssert.Contains(resumed.Output, "resuming from epoch");
        Assert.IsFalse(Directory.Exists(checkpoints), "checkpoints are deleted once the model is saved");
        CollectionAssert.AreEqual(WeightsEntry(reference), WeightsEntry(model), "the resumed model's weights differ from the uninterrupted run's");
    }

    [TestMethod]
    [DataRow(2, DisplayName = "SIGINT (Ctrl+C)")]
    [DataRow(15, DisplayName = "SIGTERM")]
    [Timeout(300_000)]
    public void LmaeProcess_StoppedBySignal_WritesItsCheckpointAndExits130(int signal)
    {
        if (!OperatingSystem.IsLinux() && !OperatingSystem.IsMacOS()) Assert.Inconclusive("POSIX signals only.");
        if (IgnoredByThisProcess(signal))
            Assert.Inconclusive($"signal {signal} is ignored by the test process (a shell without job control starts background jobs "
                + "so), and the lmae child inherits that: the test needs a foreground run.");
        string folder = Data.NewFolder($"signal{signal}");
        string model = Path.Combine(folder, "model.zip");
        string checkpoints = model + ".checkpoints";
        var start = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        start.ArgumentList.Add(Path.Combine(AppContext.BaseDirectory, "lmae.dll"));
        foreach (var arg in TrainArgs(model)) start.ArgumentList.Add(arg == "30" ? "500" : arg); // 2000 steps: it is still training when signalled
        using var process = Process.Start(start)!;
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        try
        {
            var clock = Stopwatch.StartNew();
            while (!process.HasExited && TrainingCheckpoints.FindLatest(checkpoints) is null && clock.Elapsed < TimeSpan.FromSeconds(120)) Thread.Sleep(10);
            Assert.IsFalse(process.HasExited, $"lmae ended before it was signalled:\n{stdout.Result}\n{stderr.Result}");
            Assert.AreEqual(0, Kill(process.Id, signal), "signal sent");
            Assert.IsTrue(process.WaitForExit(60_000), "lmae stops within a step of the signal");
        }
        finally
        {
            if (!process.HasExited) process.Kill();
        }
        Assert.AreEqual(LmaeCli.Cancelled, process.ExitCode, $"{stdout.Result}\n{stderr.Result}");
        StringAssert.Contains(stderr.Result, "Run the same command with --resume to continue");
        Assert.IsFalse(File.Exists(model));
        Assert.IsFalse(Directory.EnumerateFiles(checkpoints, "*.tmp").Any(), "no half-written checkpoint");
        var latest = TrainingCheckpoints.FindLatest(checkpoints)!;

        // Resuming with as many epochs as the checkpoint reached finishes that epoch and saves the model.
        var resumed = CliRunner.Run(TrainArgs(model, "--resume").Select(a => a == "30" ? latest.Epoch.ToString(System.Globalization.CultureInfo.InvariantCulture) : a).ToArray());
        Assert.AreEqual(LmaeCli.Success, resumed.ExitCode, resumed.ToString());
        Assert.IsTrue(File.Exists(model));
    }

    [DllImport("libc", EntryPoint = "kill", SetLastError = true)]
    private static extern int Kill(int pid, int signal);

    [TestMethod]
    public void Complete_Restarted_FinishesTheRestAndNeverRewritesFinishedFiles()
    {
        string full = Data.NewFolder("complete-full");
        Assert.AreEqual(LmaeCli.Success, Complete(full).ExitCode);
        var expected = Files(full);
        Assert.AreEqual(31, expected.Count, "10 labels, 10 overlays, 10 heat maps and the settings record");

        string restarted = Data.NewFolder("complete-restarted");
        Assert.AreEqual(LmaeCli.Success, Complete(restarted).ExitCode);
        var removed = new[] { "labels/scene01.png", "labels/scene07.png", "overlays/labels/scene04.png" };
        foreach (var file in removed) File.Delete(Path.Combine(restarted, file));
        var before = Directory.EnumerateFiles(restarted, "*", SearchOption.AllDirectories).ToDictionary(f => f, File.GetLastWriteTimeUtc);
        Thread.Sleep(20);
        var again = Complete(restarted);
        Assert.AreEqual(LmaeCli.Success, again.ExitCode, again.ToString());
        StringAssert.Contains(again.Output, "completing 3 labels");
        StringAssert.Contains(again.Output, "(7 already done)");
        foreach (var (file, time) in before) Assert.AreEqual(time, File.GetLastWriteTimeUtc(file), $"{file} was rewritten");
        AssertSameFiles(expected, Files(restarted));
    }

    [TestMethod]
    public void Complete_InShards_GivesTheUnshardedOutputs()
    {
        string full = Data.NewFolder("complete-reference");
        Assert.AreEqual(LmaeCli.Success, Complete(full).ExitCode);
        string sharded = Data.NewFolder("complete-sharded");
        var counts = new List<int>();
        for (int i = 0; i < 3; i++)
        {
            int before = Directory.Exists(Path.Combine(sharded, "labels")) ? Directory.GetFiles(Path.Combine(sharded, "labels")).Length : 0;
            var result = Complete(sharded, "--shard", $"{i}/3");
            Assert.AreEqual(LmaeCli.Success, result.ExitCode, result.ToString());
            counts.Add(Directory.GetFiles(Path.Combine(sharded, "labels")).Length - before);
        }
        CollectionAssert.AreEqual(new[] { 4, 3, 3 }, counts, "balanced shards: " + string.Join(",", counts));
        // Each shard records its own marker; the labels, overlays and heat maps are those of the unsharded run.
        var expected = Files(full);
        Assert.IsTrue(expected.Remove(".lmae-complete"));
        var actual = Files(sharded);
        for (int i = 0; i < 3; i++) Assert.IsTrue(actual.Remove($".lmae-complete.shard-{i}-of-3"), string.Join(", ", actual.Keys));
        AssertSameFiles(expected, actual);

        var wrong = Complete(sharded, "--shard", "3/3");
        Assert.AreEqual(LmaeCli.Failure, wrong.ExitCode, wrong.ToString());
        StringAssert.Contains(wrong.Error, "--shard");
    }

    [TestMethod]
    public void Complete_IntoAFolderOfOtherSettings_IsRefused_AndCancelledRunLeavesNoFile()
    {
        string folder = Data.NewFolder("complete-settings");
        Assert.AreEqual(LmaeCli.Success, Complete(folder).ExitCode);
        var other = CliRunner.Run("complete", "--model", s_model, "--data", Data.Root, "--format", "pairs", "--split", "holes",
            "--out", folder, "--selector", "random", "--ratio", "0.6");
        Assert.AreEqual(LmaeCli.Failure, other.ExitCode, other.ToString());
        StringAssert.Contains(other.Error, "another model or with other settings");

        string cancelled = Data.NewFolder("complete-cancelled");
        using var cancel = new CancellationTokenSource();
        cancel.Cancel();
        using var output = new StringWriter();
        using var error = new StringWriter();
        int code = LmaeCli.Run(["complete", "--model", s_model, "--data", Data.Root, "--format", "pairs", "--split", "holes", "--out", cancelled],
            output, error, cancel.Token);
        Assert.AreEqual(LmaeCli.Cancelled, code, $"{output}\n{error}");
        StringAssert.Contains(error.ToString(), "Run the same command again");
        Assert.IsFalse(Directory.EnumerateFiles(cancelled, "*.png", SearchOption.AllDirectories).Any(), "stopped before the first label");
        Assert.IsFalse(Directory.EnumerateFiles(cancelled, "*.tmp", SearchOption.AllDirectories).Any());
    }

    /// <summary>Completes the holes split with the Random selector (masks depend on the row's position) into <paramref name="outDir"/>.</summary>
    private static CliResult Complete(string outDir, params string[] more) =>
        CliRunner.Run(["complete", "--model", s_model, "--data", Data.Root, "--format", "pairs", "--split", "holes", "--out", outDir,
            "--selector", "random", "--ratio", "0.5", "--overlay", "--confidence", .. more]);

    private static Dictionary<string, byte[]> Files(string folder) =>
        Directory.EnumerateFiles(folder, "*", SearchOption.AllDirectories)
            .ToDictionary(f => Path.GetRelativePath(folder, f).Replace('\\', '/'), File.ReadAllBytes);

    private static void AssertSameFiles(Dictionary<string, byte[]> expected, Dictionary<string, byte[]> actual)
    {
        CollectionAssert.AreEquivalent(expected.Keys.ToList(), actual.Keys.ToList());
        foreach (var (name, bytes) in expected) CollectionAssert.AreEqual(bytes, actual[name], name);
    }

    private static byte[] WeightsEntry(string zip)
    {
        using var archive = ZipFile.OpenRead(zip);
        using var stream = archive.Entries.Single(e => e.FullName.EndsWith("LmaeWeights", StringComparison.Ordinal)).Open();
        using var copy = new MemoryStream();
        stream.CopyTo(copy);
        return copy.ToArray();
    }

    /// <summary>Whether this process ignores <paramref name="signal"/> (Linux: the SigIgn mask of /proc/self/status).</summary>
    private static bool IgnoredByThisProcess(int signal)
    {
        if (!OperatingSystem.IsLinux()) return false;
        var line = File.ReadLines("/proc/self/status").FirstOrDefault(l => l.StartsWith("SigIgn:", StringComparison.Ordinal));
        return line is not null && (Convert.ToUInt64(line["SigIgn:".Length..].Trim(), 16) & (1UL << (signal - 1))) != 0;
    }
}
