using System.IO.Compression;

namespace Microsoft.ML.LabelCompletion.Cli.Tests;

/// <summary>User mistakes give one line on standard error, no stack trace, and a non-zero exit code.</summary>
[TestClass]
public sealed class ArgumentErrorTests
{
    private static void AssertOneLineError(CliResult result, int expectedCode, string expectedText)
    {
        Assert.AreEqual(expectedCode, result.ExitCode, result.ToString());
        Assert.HasCount(1, result.ErrorLines, result.ToString());
        Assert.IsTrue(result.Error.StartsWith("lmae: ", StringComparison.Ordinal), result.ToString());
        Assert.IsTrue(result.Error.Contains(expectedText, StringComparison.Ordinal), $"expected '{expectedText}' in:\n{result}");
        Assert.IsFalse(result.Error.Contains("   at ", StringComparison.Ordinal), "no stack trace expected:\n" + result);
    }

    [TestMethod]
    public void NoCommand_IsAUsageError() => AssertOneLineError(CliRunner.Run(), LmaeCli.UsageError, "command");

    [TestMethod]
    public void UnknownCommand_IsAUsageError() => AssertOneLineError(CliRunner.Run("fly"), LmaeCli.UsageError, "fly");

    [TestMethod]
    public void MissingRequiredOption_NamesIt() =>
        AssertOneLineError(CliRunner.Run("train", "--format", "pairs", "--out", "m.zip"), LmaeCli.UsageError, "--data");

    [TestMethod]
    public void WrongFormatValue_IsAUsageError() =>
        AssertOneLineError(CliRunner.Run("train", "--data", ".", "--format", "kitti", "--out", "m.zip"), LmaeCli.UsageError, "kitti");

    [TestMethod]
    public void NonNumericEpochs_IsAUsageError() =>
        AssertOneLineError(CliRunner.Run("train", "--data", ".", "--format", "pairs", "--out", "m.zip", "--epochs", "many"), LmaeCli.UsageError, "many");

    [TestMethod]
    public void UnknownImageFeaturePlacement_IsOneLine()
    {
        using var data = new SyntheticPairs(3, ("train", 2, false));
        AssertOneLineError(CliRunner.Run("train", "--data", data.Root, "--format", "pairs", "--out", Path.Combine(data.Root, "m.zip"), "--image-features", "encoder,decoder"),
            LmaeCli.Failure, "'decoder' is not one of all, none, encoder, supplement, refinement");
    }

    [TestMethod]
    public void ImageEncoderFineTuningWithoutPatchFeatures_IsOneLine()
    {
        using var data = new SyntheticPairs(3, ("train", 2, false));
        AssertOneLineError(CliRunner.Run("train", "--data", data.Root, "--format", "pairs", "--out", Path.Combine(data.Root, "m.zip"),
                "--image-features", "refinement", "--image-encoder-lr", "0.1"),
            LmaeCli.Failure, "ImageEncoderLearningRateScale");
        AssertOneLineError(CliRunner.Run("train", "--data", data.Root, "--format", "pairs", "--out", Path.Combine(data.Root, "m.zip"),
                "--image-encoder-lr", "-1"),
            LmaeCli.Failure, "must be in [0, 10]");
    }

    [TestMethod]
    public void ImageFeaturePlacementsCombine()
    {
        Assert.AreEqual(ImageFeatureInputs.EncoderTokens | ImageFeatureInputs.PixelRefinement, Commands.TrainCommand.ParseImageFeatures("encoder, refinement"));
        Assert.AreEqual(ImageFeatureInputs.All, Commands.TrainCommand.ParseImageFeatures("ALL"));
        Assert.AreEqual(ImageFeatureInputs.None, Commands.TrainCommand.ParseImageFeatures("none"));
        Assert.AreEqual(ImageFeatureInputs.PatchSupplement, Commands.TrainCommand.ParseImageFeatures("supplement"));
    }

    [TestMethod]
    public void MissingDataFolder_IsOneLine()
    {
        string missing = Path.Combine(Path.GetTempPath(), "lmae-no-such-folder-" + Guid.NewGuid().ToString("N"));
        AssertOneLineError(CliRunner.Run("train", "--data", missing, "--format", "camvid", "--out", Path.Combine(missing, "m.zip")),
            LmaeCli.Failure, "does not exist");
    }

    [TestMethod]
    public void FolderOfTheWrongFormat_IsOneLine()
    {
        using var data = new SyntheticPairs(3, ("train", 2, false));
        // A pairs folder read as CamVid: no train/ + trainannot/ folders.
        AssertOneLineError(CliRunner.Run("train", "--data", data.Root, "--format", "camvid", "--out", Path.Combine(data.Root, "m.zip")),
            LmaeCli.Failure, "camvid");
    }

    [TestMethod]
    public void BadRatio_IsOneLine()
    {
        using var data = new SyntheticPairs(3, ("val", 1, false));
        string zip = Path.Combine(data.Root, "model.zip");
        File.WriteAllText(zip, "x");
        AssertOneLineError(CliRunner.Run("evaluate", "--model", zip, "--data", data.Root, "--format", "pairs", "--ratios", "0.5,2"),
            LmaeCli.Failure, "--ratios");
    }

    [TestMethod]
    public void MissingModel_IsOneLine()
    {
        using var data = new SyntheticPairs(3, ("val", 1, false));
        AssertOneLineError(CliRunner.Run("evaluate", "--model", Path.Combine(data.Root, "none.zip"), "--data", data.Root, "--format", "pairs"),
            LmaeCli.Failure, "does not exist");
    }

    [TestMethod]
    public void ZipThatIsNotAModel_IsOneLine()
    {
        using var data = new SyntheticPairs(3, ("train", 1, false));
        string zip = Path.Combine(data.Root, "photos.zip");
        using (var archive = ZipFile.Open(zip, ZipArchiveMode.Create))
        {
            using var writer = new StreamWriter(archive.CreateEntry("readme.txt").Open());
            writer.Write("not a model");
        }
        AssertOneLineError(CliRunner.Run("complete", "--model", zip, "--data", data.Root, "--format", "pairs", "--out", data.NewFolder("c")),
            LmaeCli.Failure, "not an L-MAE model");
    }

    [TestMethod]
    public void FileThatIsNotAZip_IsOneLine()
    {
        using var data = new SyntheticPairs(3, ("val", 1, false));
        string notZip = Path.Combine(data.Root, "model.zip");
        File.WriteAllBytes(notZip, [1, 2, 3, 4, 5, 6, 7, 8]);
        AssertOneLineError(CliRunner.Run("evaluate", "--model", notZip, "--data", data.Root, "--format", "pairs"),
            LmaeCli.Failure, "not an L-MAE model");
    }

    [TestMethod]
    public void MLNetModelOfAnotherKind_IsOneLine()
    {
        using var data = new SyntheticPairs(3, ("val", 1, false));
        string zip = Path.Combine(data.Root, "other.zip");
        var ml = new MLContext(seed: 0);
        var schema = ml.Data.LoadFromEnumerable(new[] { new OtherRow { X = 1 } }).Schema;
        ml.Model.Save(new Microsoft.ML.Data.TransformerChain<ITransformer>(), schema, zip);
        AssertOneLineError(CliRunner.Run("evaluate", "--model", zip, "--data", data.Root, "--format", "pairs"),
            LmaeCli.Failure, "not an L-MAE label-completion model");
    }

    [TestMethod]
    public void UnknownBenchmark_IsOneLine() =>
        AssertOneLineError(CliRunner.Run("bench", "--only", "matmul,warp"), LmaeCli.Failure, "warp");

    [TestMethod]
    public void Help_PrintsUsageAndSucceeds()
    {
        var result = CliRunner.Run("train", "--help");
        Assert.AreEqual(LmaeCli.Success, result.ExitCode, result.ToString());
        Assert.IsTrue(result.Output.Contains("--mask-ratio", StringComparison.Ordinal), result.ToString());
        Assert.IsTrue(result.Output.Contains("--label-prior", StringComparison.Ordinal), result.ToString());
    }

    /// <summary>A row type for a model that is not ours.</summary>
    public sealed class OtherRow
    {
        /// <summary>A number.</summary>
        public float X { get; set; }
    }
}
