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
