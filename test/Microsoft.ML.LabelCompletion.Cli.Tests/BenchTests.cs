using System.Text.Json;

namespace Microsoft.ML.LabelCompletion.Cli.Tests;

/// <summary><c>lmae bench</c> prints one JSON object per line.</summary>
[TestClass]
public sealed class BenchTests
{
    [TestMethod]
    public void MatmulAndModel_PrintJsonLines()
    {
        var result = CliRunner.Run("bench", "--only", "matmul,model", "--repeats", "1", "--threads", "1", "--config", "Tiny");
        Assert.AreEqual(LmaeCli.Success, result.ExitCode, result.ToString());
        var lines = result.Output.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
        Assert.HasCount(2, lines, result.ToString());
        using var matmul = JsonDocument.Parse(lines[0]);
        Assert.AreEqual("matmul", matmul.RootElement.GetProperty("bench").GetString());
        Assert.AreEqual(1, matmul.RootElement.GetProperty("threads").GetInt32());
        Assert.IsTrue(matmul.RootElement.GetProperty("gflop_per_s").GetDouble() > 0);
        using var model = JsonDocument.Parse(lines[1]);
        Assert.AreEqual("model", model.RootElement.GetProperty("bench").GetString());
        Assert.AreEqual("Tiny", model.RootElement.GetProperty("config").GetString());
        Assert.IsTrue(model.RootElement.GetProperty("parameters_m").GetDouble() > 0);
    }

    [TestMethod]
    public void Matmul_InBFloat16_AlsoPrintsTheFloat32Ceiling()
    {
        var result = CliRunner.Run("bench", "--only", "matmul", "--repeats", "1", "--threads", "1", "--precision", "bf16");
        Assert.AreEqual(LmaeCli.Success, result.ExitCode, result.ToString());
        var lines = result.Output.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
        Assert.HasCount(2, lines, result.ToString());
        using var fp32 = JsonDocument.Parse(lines[0]);
        using var bf16 = JsonDocument.Parse(lines[1]);
        Assert.AreEqual("fp32", fp32.RootElement.GetProperty("precision").GetString());
        Assert.AreEqual("bf16", bf16.RootElement.GetProperty("precision").GetString());
        Assert.IsTrue(bf16.RootElement.GetProperty("gflop_per_s").GetDouble() > 0);
    }
}
