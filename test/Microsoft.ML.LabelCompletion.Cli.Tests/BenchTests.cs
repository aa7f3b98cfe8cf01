using System.Text.Json;

namespace Microsoft.ML.LabelCompletion.Cli.Tests;

/// <summary><c>lmae bench</c> prints one JSON object per line.</summary>
[TestClass]
public sealed class BenchTests
{
    [TestMethod]
    public void MatmulAndModel_PrintJsonLines()
    {
        var (matmul, model) = TwoLines("--only", "matmul,model", "--repeats", "1", "--threads", "1", "--config", "Tiny");
        Assert.AreEqual("matmul", matmul.GetProperty("bench").GetString());
        Assert.AreEqual(1, matmul.GetProperty("threads").GetInt32());
        Assert.IsTrue(matmul.GetProperty("gflop_per_s").GetDouble() > 0);
        Assert.AreEqual("model", model.GetProperty("bench").GetString());
        Assert.AreEqual("Tiny", model.GetProperty("config").GetString());
        Assert.IsTrue(model.GetProperty("parameters_m").GetDouble() > 0);
    }

    [TestMethod]
    public void Matmul_InBFloat16_AlsoPrintsTheFloat32Ceiling()
    {
        var (fp32, bf16) = TwoLines("--only", "matmul", "--repeats", "1", "--threads", "1", "--precision", "bf16");
        Assert.AreEqual("fp32", fp32.GetProperty("precision").GetString());
        Assert.AreEqual("bf16", bf16.GetProperty("precision").GetString());
        Assert.IsTrue(bf16.GetProperty("gflop_per_s").GetDouble() > 0);
    }

    [TestMethod]
    public void Infer_ReportsItsAdjacentCeilingAndWhereTheTimeGoes()
    {
        var result = CliRunner.Run(["bench", "--only", "infer", "--config", "Tiny", "--batch", "1", "--threads", "1"]);
        Assert.AreEqual(LmaeCli.Success, result.ExitCode, result.ToString());
        var line = Parse(result.Output.Trim());
        Assert.AreEqual("infer", line.GetProperty("bench").GetString());
        double before = line.GetProperty("matmul_before").GetDouble(), after = line.GetProperty("matmul_after").GetDouble();
        Assert.IsTrue(before > 0 && after > 0, result.Output);
        Assert.AreEqual((before + after) / 2, line.GetProperty("matmul_gflop_per_s").GetDouble(), 1e-3 * (before + after));
        Assert.AreEqual(line.GetProperty("gflop_per_s").GetDouble() / line.GetProperty("matmul_gflop_per_s").GetDouble(),
            line.GetProperty("fraction_of_matmul").GetDouble(), 1e-3, "the fraction is against the adjacent ceiling");
        // The parts are timed inside the same calls: together they account for (nearly) all of the wall time. (They are
        // means over the repeats and ms_per_image is their median, so one slow repeat on a busy machine lifts the parts.)
        double parts = new[] { "prepare_ms", "image_features_ms", "windows_ms", "refine_decide_ms" }
            .Sum(name => line.GetProperty(name).GetDouble());
        double total = line.GetProperty("ms_per_image").GetDouble();
        Assert.IsTrue(parts > 0.8 * total && parts < 1.5 * total, $"parts {parts} ms vs {total} ms per image: {result.Output}");
        if (OperatingSystem.IsLinux())
        {
            Assert.IsTrue(line.GetProperty("page_faults_per_image").GetDouble() >= 0, result.Output);
            Assert.IsTrue(line.GetProperty("major_page_faults_per_image").GetDouble() >= 0, result.Output);
        }
    }

    [TestMethod]
    public void Infer_RunsBatchOneAndTheGivenBatch()
    {
        // The protocol: completion at batch 1 and at the training batch, one line each, same image size.
        var (one, two) = TwoLines("--only", "infer", "--config", "Tiny", "--batch", "2", "--threads", "1");
        Assert.AreEqual(1, one.GetProperty("batch").GetInt32());
        Assert.AreEqual(2, two.GetProperty("batch").GetInt32());
        foreach (var line in new[] { one, two })
        {
            Assert.AreEqual("infer", line.GetProperty("bench").GetString());
            Assert.AreEqual("480x360", line.GetProperty("image").GetString());
            Assert.IsTrue(line.GetProperty("ms_per_image").GetDouble() > 0);
        }
    }

    /// <summary>Runs <c>lmae bench</c> with <paramref name="args"/>; it must succeed and print exactly two JSON lines.</summary>
    private static (JsonElement First, JsonElement Second) TwoLines(params string[] args)
    {
        var result = CliRunner.Run(["bench", .. args]);
        Assert.AreEqual(LmaeCli.Success, result.ExitCode, result.ToString());
        var lines = result.Output.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
        Assert.HasCount(2, lines, result.ToString());
        return (Parse(lines[0]), Parse(lines[1]));
    }

    private static JsonElement Parse(string line)
    {
        using var document = JsonDocument.Parse(line);
        return document.RootElement.Clone();
    }
}
