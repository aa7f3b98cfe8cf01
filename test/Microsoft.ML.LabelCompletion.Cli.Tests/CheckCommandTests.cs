using System.Globalization;
using System.Text.Json;

namespace Microsoft.ML.LabelCompletion.Cli.Tests;

/// <summary><c>lmae check</c> and <c>lmae bench --only label-errors</c> on a tiny synthetic pairs set with a Tiny model trained for one epoch.</summary>
[TestClass]
public sealed class CheckCommandTests
{
    private static SyntheticPairs? s_data;
    private static string s_model = "";

    [ClassInitialize]
    public static void TrainOnce(TestContext context)
    {
        _ = context;
        s_data = new SyntheticPairs(21, ("train", 6, false), ("val", 3, true));
        s_model = Path.Combine(s_data.Root, "models", "tiny.zip");
        var train = CliRunner.Run("train", "--data", s_data.Root, "--format", "pairs", "--out", s_model, "--config", "Tiny", "--epochs", "1",
            "--batch", "3", "--crop", "32", "--threads", "2", "--seed", "3");
        Assert.AreEqual(LmaeCli.Success, train.ExitCode, train.ToString());
    }

    [ClassCleanup]
    public static void Cleanup() => s_data?.Dispose();

    private static SyntheticPairs Data => s_data ?? throw new InvalidOperationException("ClassInitialize did not run.");

    [TestMethod]
    public void CheckWritesRankingOverlaysAndSummary()
    {
        string outDir = Data.NewFolder("check");
        var result = CliRunner.Run("check", "--model", s_model, "--data", Data.Root, "--format", "pairs", "--split", "val", "--out", outDir,
            "--threshold", "0.2", "--threads", "2");
        Assert.AreEqual(LmaeCli.Success, result.ExitCode, result.ToString());

        var lines = File.ReadAllLines(Path.Combine(outDir, "ranking.csv"));
        Assert.AreEqual("rank,image,label,quality_score,suspected_pixels,known_pixels,suspected_share,most_common_issue", lines[0]);
        Assert.HasCount(4, lines, string.Join("\n", lines));
        var scores = lines.Skip(1).Select(l => double.Parse(l.Split(',')[3], CultureInfo.InvariantCulture)).ToArray();
        CollectionAssert.AreEqual(scores.Order().ToArray(), scores, "worst (lowest score) first");
        foreach (string line in lines.Skip(1))
        {
            var fields = line.Split(',');
            int known = int.Parse(fields[5], CultureInfo.InvariantCulture);
            Assert.IsTrue(known > 0 && known < SyntheticPairs.Size * SyntheticPairs.Size, $"the holes are not known pixels: {line}");
            Assert.IsTrue(int.Parse(fields[4], CultureInfo.InvariantCulture) <= known, line);
        }

        var overlays = Directory.GetFiles(Path.Combine(outDir, "overlays"), "*.png", SearchOption.AllDirectories);
        Assert.HasCount(3, overlays);
        foreach (string overlay in overlays)
            Assert.AreEqual((SyntheticPairs.Size, SyntheticPairs.Size), PngChunks.Size(overlay));

        string summary = File.ReadAllText(Path.Combine(outDir, "summary.md"));
        StringAssert.Contains(summary, "## Common issues");
        StringAssert.Contains(summary, "3 labels checked");
        StringAssert.Contains(summary, "folds 4, threshold 0.2");
    }

    [TestMethod]
    public void CheckRefusesAnOutputFolderInsideTheData()
    {
        string inside = Path.Combine(Data.Root, "val", "check-out");
        var result = CliRunner.Run("check", "--model", s_model, "--data", Data.Root, "--format", "pairs", "--split", "val", "--out", inside);
        Assert.AreEqual(LmaeCli.Failure, result.ExitCode, result.ToString());
        StringAssert.Contains(result.Error, "--out");
        StringAssert.Contains(result.Error, "inside");
        Assert.IsFalse(Directory.Exists(inside), "nothing is written");
    }

    [TestMethod]
    public void CheckRefusesOneFold()
    {
        var result = CliRunner.Run("check", "--model", s_model, "--data", Data.Root, "--format", "pairs", "--split", "val",
            "--out", Data.NewFolder("onefold"), "--folds", "1");
        Assert.AreEqual(LmaeCli.Failure, result.ExitCode, result.ToString());
        StringAssert.Contains(result.Error, "--folds");
    }

    [TestMethod]
    public void LabelErrorBenchmarkReportsEveryMethod()
    {
        var result = CliRunner.Run("bench", "--only", "label-errors", "--model", s_model, "--data", Data.Root, "--format", "pairs",
            "--split", "train", "--seed", "2", "--threads", "2", "--image-rate", "0.5", "--miss-small-rate", "1");
        Assert.AreEqual(LmaeCli.Success, result.ExitCode, result.ToString());
        var records = result.Output.Split('\n', StringSplitOptions.RemoveEmptyEntries).Select(l => JsonDocument.Parse(l).RootElement).ToArray();
        Assert.HasCount(4, records, result.Output);
        Assert.AreEqual("label_errors_data", records[0].GetProperty("bench").GetString());
        Assert.AreEqual(3, records[0].GetProperty("corrupted_images").GetInt32(), "half of 6 images");
        Assert.IsTrue(records[0].GetProperty("error_pixels").GetInt32() > 0);
        CollectionAssert.AreEqual(new[] { "LMAE", "NearestKnown", "Random" }, records.Skip(1).Select(r => r.GetProperty("method").GetString()).ToArray());
        foreach (var r in records.Skip(1))
        {
            double auprc = r.GetProperty("pixel_auprc").GetDouble(), auroc = r.GetProperty("image_auroc").GetDouble();
            Assert.IsTrue(auprc is >= 0 and <= 1 && auroc is >= 0 and <= 1, r.ToString());
        }
    }
}
