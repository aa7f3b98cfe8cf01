using System.Text.Json;
using Microsoft.ML.LabelCompletion.Data;
using Microsoft.ML.LabelCompletion.Model;
using Microsoft.ML.LabelCompletion.Synthetic;

namespace Microsoft.ML.LabelCompletion.Cli.Tests;

/// <summary>
/// train → evaluate → complete on a tiny synthetic pairs set, in-process. One Tiny model is trained for one epoch in
/// <see cref="TrainOnce"/> and shared by the tests.
/// </summary>
[TestClass]
public sealed class EndToEndTests
{
    private static SyntheticPairs? s_data;
    private static string s_model = "";
    private static CliResult? s_train;

    [ClassInitialize]
    public static void TrainOnce(TestContext context)
    {
        _ = context;
        s_data = new SyntheticPairs(11, ("train", 8, false), ("val", 3, false), ("holes", 3, true));
        s_model = Path.Combine(s_data.Root, "models", "tiny.zip");
        s_train = CliRunner.Run("train", "--data", s_data.Root, "--format", "pairs", "--out", s_model, "--config", "Tiny", "--epochs", "1",
            "--val", s_data.Root, "--batch", "4", "--crop", "32", "--threads", "2", "--seed", "3");
    }

    [ClassCleanup]
    public static void Cleanup() => s_data?.Dispose();

    private static SyntheticPairs Data => s_data ?? throw new InvalidOperationException("ClassInitialize did not run.");

    [TestMethod]
    public void Train_WritesModelCurvesAndPlot()
    {
        Assert.AreEqual(LmaeCli.Success, s_train!.ExitCode, s_train.ToString());
        Assert.IsTrue(File.Exists(s_model), s_train.ToString());
        Assert.IsTrue(new FileInfo(s_model).Length > 1000);
        Assert.IsTrue(s_train.Output.Contains("6 classes", StringComparison.Ordinal), "classes.txt gives the class count:\n" + s_train);

        var lines = File.ReadAllLines(s_model + ".curves.csv");
        Assert.HasCount(2, lines, string.Join("\n", lines));
        Assert.AreEqual("epoch,train_loss,val_loss,val_pa_miou,lr,seconds", lines[0]);
        var fields = lines[1].Split(',');
        Assert.AreEqual("1", fields[0]);
        Assert.IsTrue(double.Parse(fields[1], System.Globalization.CultureInfo.InvariantCulture) > 0, lines[1]);
        Assert.AreNotEqual("", fields[2], "validation loss is reported with --val: " + lines[1]);
        Assert.AreNotEqual("", fields[3], "validation PA-mIoU is reported with --val: " + lines[1]);

        var (plotWidth, plotHeight) = PngChunks.Size(s_model + ".curves.png");
        Assert.IsTrue(plotWidth > 100 && plotHeight > 100);
    }

    [TestMethod]
    public void Evaluate_WithBaselines_WritesMetricsJsonAndCharts()
    {
        string outDir = Data.NewFolder("eval");
        var result = CliRunner.Run("evaluate", "--model", s_model, "--data", Data.Root, "--format", "pairs", "--split", "val",
            "--ratios", "0.5,0.6", "--baselines", "--out", outDir);
        Assert.AreEqual(LmaeCli.Success, result.ExitCode, result.ToString());
        foreach (string name in new[] { "LMAE", "NearestKnown", "ImageOnly", "PA-mIoU", "pole" })
            Assert.IsTrue(result.Output.Contains(name, StringComparison.Ordinal), $"table lacks {name}:\n{result}");

        using var json = JsonDocument.Parse(File.ReadAllText(Path.Combine(outDir, "metrics.json")));
        var root = json.RootElement;
        Assert.AreEqual(3, root.GetProperty("data").GetProperty("images").GetInt32());
        Assert.AreEqual(16, root.GetProperty("protocol").GetProperty("patch").GetInt32());
        CollectionAssert.AreEqual(SyntheticScenes.ClassNames, root.GetProperty("classes").EnumerateArray().Select(e => e.GetString()).ToArray());
        var results = root.GetProperty("results").EnumerateArray().ToArray();
        Assert.HasCount(6, results);
        var keys = new[] { "ratio", "method", "pa_miou", "miou", "pa_pixel_accuracy", "pixel_accuracy", "pa_pixels", "pixels", "pa_per_class_iou", "per_class_iou" };
        foreach (var r in results)
        {
            CollectionAssert.AreEqual(keys, r.EnumerateObject().Select(p => p.Name).ToArray());
            Assert.IsTrue(r.GetProperty("pa_pixels").GetInt64() > 0);
            Assert.AreEqual(6, r.GetProperty("pa_per_class_iou").EnumerateObject().Count());
        }
        CollectionAssert.AreEqual(new[] { "LMAE", "NearestKnown", "ImageOnly", "LMAE", "NearestKnown", "ImageOnly" },
            results.Select(r => r.GetProperty("method").GetString()).ToArray());
        // Identical masks: every method counts the same PA pixels at a ratio; more are masked at 0.6.
        Assert.AreEqual(results[0].GetProperty("pa_pixels").GetInt64(), results[1].GetProperty("pa_pixels").GetInt64());
        Assert.AreEqual(results[0].GetProperty("pa_pixels").GetInt64(), results[2].GetProperty("pa_pixels").GetInt64());
        Assert.IsTrue(results[3].GetProperty("pa_pixels").GetInt64() > results[0].GetProperty("pa_pixels").GetInt64());
        // Outside the masks the ground truth is kept, so global mIoU is above PA-mIoU for the fill.
        Assert.IsTrue(results[1].GetProperty("miou").GetDouble() > results[1].GetProperty("pa_miou").GetDouble());
        Assert.IsTrue(File.Exists(Path.Combine(outDir, "per_class_pa_iou_r0.5.png")));
        Assert.IsTrue(File.Exists(Path.Combine(outDir, "per_class_pa_iou_r0.6.png")));
    }

    [TestMethod]
    public void Evaluate_InBFloat16_AgreesWithFloat32()
    {
        double PaMiou(string precision)
        {
            string outDir = Data.NewFolder("eval-" + precision);
            var result = CliRunner.Run("evaluate", "--model", s_model, "--data", Data.Root, "--format", "pairs", "--split", "val",
                "--ratios", "0.5", "--precision", precision, "--out", outDir);
            Assert.AreEqual(LmaeCli.Success, result.ExitCode, result.ToString());
            using var json = JsonDocument.Parse(File.ReadAllText(Path.Combine(outDir, "metrics.json")));
            return json.RootElement.GetProperty("results")[0].GetProperty("pa_miou").GetDouble();
        }
        double fp32 = PaMiou("fp32"), bf16 = PaMiou("bf16");
        Assert.IsTrue(fp32 > 0);
        Assert.AreEqual(fp32, bf16, 2.0, "a model completes nearly the same in bf16 autocast");
        var bad = CliRunner.Run("evaluate", "--model", s_model, "--data", Data.Root, "--format", "pairs", "--precision", "fp16");
        Assert.AreEqual(LmaeCli.UsageError, bad.ExitCode, bad.ToString());
    }

    [TestMethod]
    public void Train_InBFloat16_SavesThePrecisionWithTheModel()
    {
        string zip = Path.Combine(Data.Root, "models", "tiny-bf16.zip");
        var result = CliRunner.Run("train", "--data", Data.Root, "--format", "pairs", "--out", zip, "--config", "Tiny", "--epochs", "1",
            "--batch", "4", "--crop", "32", "--threads", "2", "--seed", "3", "--precision", "bf16");
        Assert.AreEqual(LmaeCli.Success, result.ExitCode, result.ToString());
        using var model = ModelFiles.Load(new MLContext(), zip);
        Assert.AreEqual(LabelCompletionPrecision.BFloat16, model.Options.Precision);
        using var fp32 = ModelFiles.Load(new MLContext(), s_model);
        Assert.AreEqual(LabelCompletionPrecision.Float32, fp32.Options.Precision, "FP32 is the default");
    }

    [TestMethod]
    public void Complete_WritesEveryLabelInTheInputFormatWithOverlaysAndConfidence()
    {
        string outDir = Data.NewFolder("complete");
        var result = CliRunner.Run("complete", "--model", s_model, "--data", Data.Root, "--format", "pairs", "--split", "holes",
            "--out", outDir, "--overlay", "--confidence");
        Assert.AreEqual(LmaeCli.Success, result.ExitCode, result.ToString());

        string[] inputs = Directory.GetFiles(Path.Combine(Data.Root, "holes", "labels"), "*.png").OrderBy(f => f).ToArray();
        Assert.HasCount(3, inputs);
        int patch;
        using (var model = ModelFiles.Load(new MLContext(), s_model)) patch = model.Configuration.PatchSize;
        foreach (string input in inputs)
        {
            string name = Path.GetFileName(input);
            string output = Path.Combine(outDir, "labels", name);
            Assert.AreEqual(3, PngChunks.ColorType(output), "the palette format is kept");
            CollectionAssert.AreEqual(PngChunks.Chunk(input, "PLTE"), PngChunks.Chunk(output, "PLTE"));
            var mapping = LabelValueMapping.Identity(SyntheticScenes.NumberOfClasses, 255);
            var source = SegmentationFiles.ReadLabel(input, mapping);
            var written = SegmentationFiles.ReadLabel(output, mapping);
            Assert.AreEqual(source.Width, written.Width);
            // The Unknown selector hides every patch with an unknown pixel; known pixels of the other patches are kept.
            var hidden = MaskSelector.ToPixelMask(MaskSelector.Unknown(source, patch, 255), source.Width, source.Height, patch);
            int holes = 0;
            for (int i = 0; i < source.Values.Length; i++)
            {
                int before = source.Values[i], after = written.Values[i];
                Assert.IsTrue(after < SyntheticScenes.NumberOfClasses, $"{name} pixel {i} is still {after}");
                if (before == 255) holes++;
                else if (!hidden[i]) Assert.AreEqual(before, after, $"{name}: visible known pixel {i} changed");
            }
            Assert.IsTrue(holes > 0, "the holes split has unknown pixels to complete");
            Assert.IsTrue(File.Exists(Path.Combine(outDir, "overlays", "labels", name)), result.ToString());
            Assert.IsTrue(File.Exists(Path.Combine(outDir, "confidence", "labels", name)), result.ToString());
        }
        Assert.IsFalse(Directory.EnumerateFiles(outDir, "*.tmp", SearchOption.AllDirectories).Any(), "no temporary files are left");
    }

    [TestMethod]
    public void Complete_RefusesToOverwriteTheInput()
    {
        var result = CliRunner.Run("complete", "--model", s_model, "--data", Path.Combine(Data.Root, "holes"), "--format", "pairs", "--out", Path.Combine(Data.Root, "holes"));
        Assert.AreEqual(LmaeCli.Failure, result.ExitCode, result.ToString());
        Assert.HasCount(1, result.ErrorLines, result.ToString());
    }
}
