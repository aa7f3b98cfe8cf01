using System.Diagnostics;
using System.Text.Json;

namespace Microsoft.ML.LabelCompletion.Cli.Tests;

/// <summary>
/// <c>lmae complete</c> and <c>lmae evaluate</c> over several machines, simulated by three <c>lmae</c> processes started side
/// by side on one shared folder, each told its shard the way a scheduler tells it (<c>--shard</c>, a Kubernetes Indexed Job's,
/// a Slurm array's, an AWS Batch array's or a Google Cloud Batch task's variables): their outputs and merged metrics equal one
/// process's exactly; the settings markers refuse to mix runs, naming what differs; restarted shards finish the rest.
/// </summary>
[TestClass]
public sealed class ScaleOutTests
{
    private static readonly string[] s_schedulerVariables =
    [
        "JOB_COMPLETION_INDEX", "LMAE_SHARD_COUNT", "SLURM_ARRAY_TASK_ID", "SLURM_ARRAY_TASK_MIN", "SLURM_ARRAY_TASK_STEP", "SLURM_ARRAY_TASK_COUNT",
        "AWS_BATCH_JOB_ARRAY_INDEX", "AWS_BATCH_JOB_ARRAY_SIZE", "BATCH_TASK_INDEX", "BATCH_TASK_COUNT",
    ];

    private static SyntheticPairs? s_data;
    private static string s_model = "";

    [ClassInitialize]
    public static void TrainOnce(TestContext context)
    {
        _ = context;
        s_data = new SyntheticPairs(23, ("train", 6, false), ("val", 10, false), ("holes", 10, true));
        s_model = Path.Combine(s_data.Root, "models", "tiny.zip");
        var train = CliRunner.Run("train", "--data", s_data.Root, "--format", "pairs", "--out", s_model, "--config", "Tiny", "--epochs", "1",
            "--batch", "4", "--crop", "32", "--threads", "1", "--seed", "3");
        Assert.AreEqual(LmaeCli.Success, train.ExitCode, train.ToString());
    }

    [ClassCleanup]
    public static void Cleanup() => s_data?.Dispose();

    private static SyntheticPairs Data => s_data ?? throw new InvalidOperationException("ClassInitialize did not run.");

    private static string[] EvaluateArgs(string outDir, params string[] more) =>
        ["evaluate", "--model", s_model, "--data", Data.Root, "--format", "pairs", "--split", "val", "--ratios", "0.5,0.6", "--baselines",
         "--batch", "4", "--threads", "1", "--out", outDir, .. more];

    private static string[] CompleteArgs(string outDir, params string[] more) =>
        ["complete", "--model", s_model, "--data", Data.Root, "--format", "pairs", "--split", "holes", "--selector", "random", "--ratio", "0.5",
         "--overlay", "--threads", "1", "--out", outDir, .. more];

    [TestMethod]
    [Timeout(300_000)]
    public void Evaluate_ThreeShardProcessesSideBySide_MergeIntoExactlyTheSingleProcessResults()
    {
        string single = Data.NewFolder("eval-single");
        var one = CliRunner.Run(EvaluateArgs(single));
        Assert.AreEqual(LmaeCli.Success, one.ExitCode, one.ToString());

        // One shared folder for the three shards, as on a shared volume; each process learns its shard from another source.
        string shared = Data.NewFolder("eval-shards");
        var runs = RunSideBySide(
            (EvaluateArgs(shared, "--shard", "0/3"), [("BATCH_TASK_INDEX", "2"), ("BATCH_TASK_COUNT", "3")]), // --shard wins
            (EvaluateArgs(shared), [("JOB_COMPLETION_INDEX", "1"), ("LMAE_SHARD_COUNT", "3")]),
            (EvaluateArgs(shared), [("SLURM_ARRAY_TASK_ID", "7"), ("SLURM_ARRAY_TASK_MIN", "3"), ("SLURM_ARRAY_TASK_STEP", "2"), ("SLURM_ARRAY_TASK_COUNT", "3")]));
        StringAssert.Contains(runs[0].Output, "shard 0/3 (from --shard)");
        StringAssert.Contains(runs[1].Output, "shard 1/3 (from the Kubernetes Indexed Job: JOB_COMPLETION_INDEX=1, LMAE_SHARD_COUNT=3)");
        StringAssert.Contains(runs[2].Output, "shard 2/3 (from the Slurm job array: SLURM_ARRAY_TASK_ID=7");
        Assert.IsFalse(File.Exists(Path.Combine(shared, "metrics.json")), "a shard reports no metrics of its own");

        // Balanced: 10 images in 3 shards are 4, 3 and 3 consecutive images. Each shard completes them in the batches of 4 of
        // the single process (images 0-3, 4-7, 8-9), so shard 1 also completes image 7 and shard 2 images 4-6, without counting them.
        var sizes = new List<(int First, int Images)>();
        var completed = new List<(int First, int Images)>();
        for (int i = 0; i < 3; i++)
        {
            using var json = JsonDocument.Parse(File.ReadAllText(Path.Combine(shared, $"confusion-matrices.shard-{i}-of-3.json")));
            var shard = json.RootElement.GetProperty("shard");
            sizes.Add((shard.GetProperty("first").GetInt32(), shard.GetProperty("images").GetInt32()));
            completed.Add((shard.GetProperty("completed_first").GetInt32(), shard.GetProperty("completed_images").GetInt32()));
        }
        CollectionAssert.AreEqual(new[] { (0, 4), (4, 3), (7, 3) }, sizes, string.Join(", ", sizes));
        CollectionAssert.AreEqual(new[] { (0, 4), (4, 4), (4, 6) }, completed, string.Join(", ", completed));

        string merged = Data.NewFolder("eval-merged");
        var merge = CliRunner.Run("evaluate", "--merge", shared, "--out", merged);
        Assert.AreEqual(LmaeCli.Success, merge.ExitCode, merge.ToString());
        StringAssert.Contains(merge.Output, "merged 3 shards of 10 images");
        // Identical counts give identical metrics, tables, JSON and charts, byte for byte.
        AssertSameFiles(Files(single), Files(merged));
        Assert.AreEqual(Tables(one.Output), Tables(merge.Output));
        using (var metrics = JsonDocument.Parse(File.ReadAllText(Path.Combine(merged, "metrics.json"))))
            Assert.IsTrue(metrics.RootElement.GetProperty("results")[0].GetProperty("pa_pixels").GetInt64() > 0);
    }

    [TestMethod]
    [Timeout(300_000)]
    public void Complete_ThreeShardProcessesSideBySide_WriteExactlyTheSingleProcessOutputs()
    {
        string single = Data.NewFolder("complete-single");
        var one = CliRunner.Run(CompleteArgs(single));
        Assert.AreEqual(LmaeCli.Success, one.ExitCode, one.ToString());

        string shared = Data.NewFolder("complete-shards");
        var runs = RunSideBySide(
            (CompleteArgs(shared), [("AWS_BATCH_JOB_ARRAY_INDEX", "0"), ("AWS_BATCH_JOB_ARRAY_SIZE", "3")]),
            (CompleteArgs(shared), [("BATCH_TASK_INDEX", "1"), ("BATCH_TASK_COUNT", "3")]),
            (CompleteArgs(shared, "--shard-count", "3"), [("JOB_COMPLETION_INDEX", "2")]));
        StringAssert.Contains(runs[0].Output, "shard 0/3 (from the AWS Batch array job: AWS_BATCH_JOB_ARRAY_INDEX=0, AWS_BATCH_JOB_ARRAY_SIZE=3)");
        StringAssert.Contains(runs[1].Output, "shard 1/3 (from the Google Cloud Batch: BATCH_TASK_INDEX=1, BATCH_TASK_COUNT=3)");
        StringAssert.Contains(runs[2].Output, "shard 2/3 (from the Kubernetes Indexed Job: JOB_COMPLETION_INDEX=2, --shard-count=3)");
        StringAssert.Contains(runs[0].Output, "completing 4 labels");
        StringAssert.Contains(runs[1].Output, "completing 3 labels");
        StringAssert.Contains(runs[2].Output, "completing 3 labels");

        var expected = Files(single);
        var actual = Files(shared);
        Assert.AreEqual(21, expected.Count, "10 labels, 10 overlays and the marker");
        foreach (var marker in new[] { ".lmae-complete.shard-0-of-3", ".lmae-complete.shard-1-of-3", ".lmae-complete.shard-2-of-3" })
        {
            Assert.IsTrue(actual.Remove(marker, out var bytes), $"each shard writes its own marker: {string.Join(", ", actual.Keys)}");
            StringAssert.Contains(System.Text.Encoding.UTF8.GetString(bytes), $"shard={marker[^6]}/3\n");
        }
        expected.Remove(".lmae-complete");
        AssertSameFiles(expected, actual);

        // A restarted shard skips what it finished and writes only what is missing.
        File.Delete(Path.Combine(shared, "labels", "scene05.png"));
        var again = CliRunner.Run(CompleteArgs(shared, "--shard", "1/3"));
        Assert.AreEqual(LmaeCli.Success, again.ExitCode, again.ToString());
        StringAssert.Contains(again.Output, "completing 1 labels");
        StringAssert.Contains(again.Output, "(2 already done)");
        CollectionAssert.AreEqual(Files(single)["labels/scene05.png"], File.ReadAllBytes(Path.Combine(shared, "labels", "scene05.png")));
    }

    [TestMethod]
    public void Complete_IntoAFolderOfOtherSettings_IsRefusedNamingTheDifference()
    {
        string folder = Data.NewFolder("marker");
        Assert.AreEqual(LmaeCli.Success, CliRunner.Run(CompleteArgs(folder, "--shard", "0/3")).ExitCode);
        string marker = Path.Combine(folder, ".lmae-complete.shard-0-of-3");
        string record = File.ReadAllText(marker);
        foreach (string key in new[] { "model-sha256=", "selector=Random", "precision=Float32", "device=cpu", "inputs=10", "inputs-sha256=", "shard=0/3" })
            StringAssert.Contains(record, key);

        // Another precision, with another shard: refused because of shard 0's marker.
        var bf16 = CliRunner.Run(CompleteArgs(folder, "--shard", "1/3", "--precision", "bf16"));
        Assert.AreEqual(LmaeCli.Failure, bf16.ExitCode, bf16.ToString());
        StringAssert.Contains(bf16.Error, "precision is Float32 there and BFloat16 here");
        StringAssert.Contains(bf16.Error, ".lmae-complete.shard-0-of-3");
        Assert.IsFalse(File.Exists(Path.Combine(folder, ".lmae-complete.shard-1-of-3")), "a refused run writes nothing");

        // Another input list: the holes split without one of its pairs.
        string fewer = Data.NewFolder("fewer-inputs");
        foreach (string sub in new[] { "images", "labels" })
        {
            Directory.CreateDirectory(Path.Combine(fewer, sub));
            foreach (string file in Directory.GetFiles(Path.Combine(Data.Root, "holes", sub)).Where(f => !f.EndsWith("scene09.png", StringComparison.Ordinal)))
                File.Copy(file, Path.Combine(fewer, sub, Path.GetFileName(file)));
        }
        File.Copy(Path.Combine(Data.Root, "classes.txt"), Path.Combine(fewer, "classes.txt"));
        var other = CliRunner.Run("complete", "--model", s_model, "--data", fewer, "--format", "pairs", "--selector", "random", "--ratio", "0.5",
            "--overlay", "--out", folder);
        Assert.AreEqual(LmaeCli.Failure, other.ExitCode, other.ToString());
        StringAssert.Contains(other.Error, "inputs is 10 there and 9 here");
        StringAssert.Contains(other.Error, "inputs-sha256 is ");

        // Another device or model (edited in the record: this machine has one model and no GPU here).
        foreach (var (from, to, named) in new[] { ("device=cpu", "device=cuda", "device is cuda there and cpu here"), ("model-sha256=", "model-sha256=00", "model-sha256 is 00") })
        {
            File.WriteAllText(marker, record.Replace(from, to, StringComparison.Ordinal));
            var refused = CliRunner.Run(CompleteArgs(folder, "--shard", "0/3"));
            Assert.AreEqual(LmaeCli.Failure, refused.ExitCode, refused.ToString());
            StringAssert.Contains(refused.Error, named);
            Assert.HasCount(1, refused.ErrorLines, refused.ToString());
        }

        // auto is recorded as the precision it runs in on this CPU, never as "Auto".
        string auto = Data.NewFolder("marker-auto");
        Assert.AreEqual(LmaeCli.Success, CliRunner.Run(CompleteArgs(auto, "--shard", "0/3", "--precision", "auto")).ExitCode);
        string autoRecord = File.ReadAllText(Path.Combine(auto, ".lmae-complete.shard-0-of-3"));
        Assert.IsTrue(autoRecord.Contains("precision=BFloat16\n", StringComparison.Ordinal) || autoRecord.Contains("precision=Float32\n", StringComparison.Ordinal), autoRecord);

        // --force over the whole split rewrites every label and leaves one marker, of this run.
        var forced = CliRunner.Run(CompleteArgs(folder, "--force"));
        Assert.AreEqual(LmaeCli.Success, forced.ExitCode, forced.ToString());
        CollectionAssert.AreEqual(new[] { ".lmae-complete" }, Directory.GetFiles(folder, ".lmae-complete*").Select(Path.GetFileName).ToArray());
        Assert.AreEqual(LmaeCli.Success, CliRunner.Run(CompleteArgs(folder, "--shard", "2/3")).ExitCode, "same settings, another shard");
    }

    [TestMethod]
    public void Evaluate_RestartedShard_GoesOnFromTheUnfinishedRatio_AndMergeRefusesIncompleteOrMixedShards()
    {
        string folder = Data.NewFolder("eval-restart");
        var first = CliRunner.Run(EvaluateArgs(folder, "--shard", "1/3"));
        Assert.AreEqual(LmaeCli.Success, first.ExitCode, first.ToString());
        string path = Path.Combine(folder, "confusion-matrices.shard-1-of-3.json");
        byte[] finished = File.ReadAllBytes(path);

        // As if stopped after ratio 0.5: drop the 0.6 results (3 methods).
        string partial = DropRatio(File.ReadAllText(path), 0.6);
        File.WriteAllText(path, partial);
        var merge = CliRunner.Run("evaluate", "--merge", folder, "--out", Data.NewFolder("eval-merge-partial"));
        Assert.AreEqual(LmaeCli.Failure, merge.ExitCode, merge.ToString());
        StringAssert.Contains(merge.Error, "shard 1/3 is unfinished");

        var again = CliRunner.Run(EvaluateArgs(folder, "--shard", "1/3"));
        Assert.AreEqual(LmaeCli.Success, again.ExitCode, again.ToString());
        StringAssert.Contains(again.Output, "ratio 0.5: counts read from");
        Assert.IsFalse(again.Output.Contains("ratio 0.6: counts read from", StringComparison.Ordinal), again.ToString());
        CollectionAssert.AreEqual(finished, File.ReadAllBytes(path), "the restarted shard finishes with the same file");

        // Missing shards, a shard twice, and shards of other settings are refused, each naming what is wrong.
        var missing = CliRunner.Run("evaluate", "--merge", folder, "--out", Data.NewFolder("eval-merge-missing"));
        Assert.AreEqual(LmaeCli.Failure, missing.ExitCode, missing.ToString());
        StringAssert.Contains(missing.Error, "2 of 3 shards are missing (0/3, 2/3)");
        string copy = Data.NewFolder("eval-copy");
        File.Copy(path, Path.Combine(copy, Path.GetFileName(path)));
        var twice = CliRunner.Run("evaluate", "--merge", folder, copy, "--out", Data.NewFolder("eval-merge-twice"));
        StringAssert.Contains(twice.Error, "shard 1/3 is given twice");
        string otherFolder = Data.NewFolder("eval-other");
        var other = CliRunner.Run(EvaluateArgs(otherFolder, "--shard", "0/3").Select(a => a == "4" ? "2" : a).ToArray()); // --batch 2
        Assert.AreEqual(LmaeCli.Success, other.ExitCode, other.ToString());
        var mixed = CliRunner.Run("evaluate", "--merge", folder, otherFolder, "--out", Data.NewFolder("eval-merge-mixed"));
        Assert.AreEqual(LmaeCli.Failure, mixed.ExitCode, mixed.ToString());
        StringAssert.Contains(mixed.Error, $"batch is 4 in {path} and 2 in {Path.Combine(otherFolder, "confusion-matrices.shard-0-of-3.json")}");

        // The same folder with other settings is refused rather than mixed.
        var refused = CliRunner.Run(EvaluateArgs(folder, "--shard", "1/3", "--precision", "bf16"));
        Assert.AreEqual(LmaeCli.Failure, refused.ExitCode, refused.ToString());
        StringAssert.Contains(refused.Error, "precision is Float32 there and BFloat16 here");
    }

    [TestMethod]
    public void ShardArguments_AreCheckedWithOneLineErrors()
    {
        string folder = Data.NewFolder("shard-args");
        var cases = new (string[] Args, string Expected)[]
        {
            (CompleteArgs(folder, "--shard", "3/3"), "--shard"),
            (CompleteArgs(folder, "--shard", "1/3", "--shard-count", "4"), "--shard 1/3 and --shard-count 4 disagree"),
            (CompleteArgs(folder, "--shard-count", "3"), "no shard index"),
            (["evaluate", "--merge", Path.Combine(folder, "none")], "does not exist"),
            (["evaluate", "--merge", folder], "holds no confusion-matrices.shard-*-of-*.json"),
        };
        foreach (var (args, expected) in cases)
        {
            var result = CliRunner.Run(args);
            Assert.AreEqual(LmaeCli.Failure, result.ExitCode, result.ToString());
            Assert.HasCount(1, result.ErrorLines, result.ToString());
            StringAssert.Contains(result.Error, expected);
        }
        var usage = new (string[] Args, string Expected)[]
        {
            (["evaluate", "--merge", folder, "--model", s_model], "--merge adds up finished shards; it takes no --model"),
            (["evaluate", "--data", Data.Root, "--format", "pairs"], "Option '--model' is required"),
            (["evaluate", "--merge"], "--merge"),
        };
        foreach (var (args, expected) in usage)
        {
            var result = CliRunner.Run(args);
            Assert.AreEqual(LmaeCli.UsageError, result.ExitCode, result.ToString());
            Assert.HasCount(1, result.ErrorLines, result.ToString());
            StringAssert.Contains(result.Error, expected);
        }
    }

    /// <summary>Starts one <c>lmae</c> process per run at once (scheduler variables cleared, then the run's set) and waits for all.</summary>
    private static CliResult[] RunSideBySide(params (string[] Args, (string Name, string Value)[] Environment)[] runs)
    {
        var processes = new List<(Process Process, Task<string> Output, Task<string> Error)>();
        try
        {
            foreach (var (args, environment) in runs)
            {
                var start = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
                start.ArgumentList.Add(Path.Combine(AppContext.BaseDirectory, "lmae.dll"));
                foreach (string arg in args) start.ArgumentList.Add(arg);
                foreach (string name in s_schedulerVariables) start.Environment.Remove(name);
                foreach (var (name, value) in environment) start.Environment[name] = value;
                var process = Process.Start(start)!;
                processes.Add((process, process.StandardOutput.ReadToEndAsync(), process.StandardError.ReadToEndAsync()));
            }
            var results = new CliResult[processes.Count];
            for (int i = 0; i < processes.Count; i++)
            {
                var (process, output, error) = processes[i];
                Assert.IsTrue(process.WaitForExit(240_000), $"shard process {i} did not finish");
                results[i] = new CliResult(process.ExitCode, output.Result, error.Result);
                Assert.AreEqual(LmaeCli.Success, results[i].ExitCode, $"shard process {i}:\n{results[i]}");
            }
            return results;
        }
        finally
        {
            foreach (var (process, _, _) in processes)
            {
                if (!process.HasExited) process.Kill();
                process.Dispose();
            }
        }
    }

    /// <summary>The metric tables of an evaluate output (from each "ratio ...: N images" header to its last row).</summary>
    private static string Tables(string output) => string.Join("\n", output.Split('\n')
        .SkipWhile(l => !l.Contains("images, PA region", StringComparison.Ordinal))
        .Where(l => !l.StartsWith("chart:", StringComparison.Ordinal) && !l.StartsWith("metrics:", StringComparison.Ordinal) && !l.StartsWith('(')));

    private static string DropRatio(string json, double ratio)
    {
        var node = System.Text.Json.Nodes.JsonNode.Parse(json)!;
        var results = node["results"]!.AsArray();
        foreach (var r in results.Where(r => r!["ratio"]!.GetValue<double>() == ratio).ToList()) results.Remove(r);
        return node.ToJsonString(new JsonSerializerOptions { WriteIndented = true });
    }

    private static Dictionary<string, byte[]> Files(string folder) =>
        Directory.EnumerateFiles(folder, "*", SearchOption.AllDirectories)
            .ToDictionary(f => Path.GetRelativePath(folder, f).Replace('\\', '/'), File.ReadAllBytes);

    private static void AssertSameFiles(Dictionary<string, byte[]> expected, Dictionary<string, byte[]> actual)
    {
        CollectionAssert.AreEquivalent(expected.Keys.ToList(), actual.Keys.ToList(), $"{string.Join(", ", expected.Keys)} vs {string.Join(", ", actual.Keys)}");
        foreach (var (name, bytes) in expected) CollectionAssert.AreEqual(bytes, actual[name], name);
    }
}
