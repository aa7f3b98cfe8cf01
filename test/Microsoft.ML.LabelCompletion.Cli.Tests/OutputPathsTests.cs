using System.Security.Cryptography;

namespace Microsoft.ML.LabelCompletion.Cli.Tests;

/// <summary>
/// Output folders are compared with the input by real path (<see cref="OutputPaths"/>): a symbolic link, <c>..</c>, a trailing
/// slash or a folder nested either way never lets <c>complete --force</c>, <c>evaluate</c> or <c>train</c> write among the input
/// files; every refusal is one line naming both paths, and the input's bytes stay as they were.
/// </summary>
[TestClass]
public sealed class OutputPathsTests
{
    private static SyntheticPairs? s_data;
    private static string s_model = "";
    private static string s_work = "";

    [ClassInitialize]
    public static void TrainOnce(TestContext context)
    {
        _ = context;
        s_data = new SyntheticPairs(21, ("train", 4, false), ("holes", 3, true));
        s_work = Path.Combine(Path.GetTempPath(), "lmae-out-tests-" + Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(s_work);
        s_model = Path.Combine(s_work, "tiny.zip");
        var train = CliRunner.Run("train", "--data", s_data.Root, "--format", "pairs", "--out", s_model, "--config", "Tiny", "--epochs", "1",
            "--batch", "4", "--crop", "32", "--threads", "1", "--seed", "3");
        Assert.AreEqual(LmaeCli.Success, train.ExitCode, train.ToString());
    }

    [ClassCleanup]
    public static void Cleanup()
    {
        s_data?.Dispose();
        if (Directory.Exists(s_work)) Directory.Delete(s_work, recursive: true);
    }

    private static SyntheticPairs Data => s_data ?? throw new InvalidOperationException("ClassInitialize did not run.");

    /// <summary>The input root of <c>--split holes</c>: the folder holding <c>images/</c> and <c>labels/</c>.</summary>
    private static string Holes => Path.Combine(Data.Root, "holes");

    /// <summary>A fresh name in the work folder (outside the data).</summary>
    private static string Fresh(string name) => Path.Combine(s_work, name + "-" + Guid.NewGuid().ToString("N")[..8]);

    private static string Link(string target)
    {
        string link = Fresh("alias");
        Directory.CreateSymbolicLink(link, target);
        return link;
    }

    private static CliResult Complete(string outDir) =>
        CliRunner.Run("complete", "--model", s_model, "--data", Data.Root, "--format", "pairs", "--split", "holes", "--out", outDir,
            "--overlay", "--force");

    /// <summary>SHA-256 of every file under the holes split, by relative path.</summary>
    private static Dictionary<string, string> InputHashes() =>
        Directory.EnumerateFiles(Holes, "*", SearchOption.AllDirectories)
            .ToDictionary(f => Path.GetRelativePath(Holes, f), f => Convert.ToHexString(SHA256.HashData(File.ReadAllBytes(f))));

    /// <summary>Runs <c>complete --force</c> into <paramref name="outDir"/> and checks it is refused, naming both paths, with the input untouched.</summary>
    private static void AssertRefused(string outDir, params string[] named)
    {
        var before = InputHashes();
        var result = Complete(outDir);
        Assert.AreEqual(LmaeCli.Failure, result.ExitCode, result.ToString());
        Assert.HasCount(1, result.ErrorLines, result.ToString());
        foreach (string path in named) StringAssert.Contains(result.Error, path, result.ToString());
        CollectionAssert.AreEquivalent(before.ToList(), InputHashes().ToList(), "the input files are unchanged");
        Assert.IsFalse(File.Exists(Path.Combine(Holes, ".lmae-complete")), "no marker is left in the data");
    }

    [TestMethod]
    public void Complete_IntoASymlinkToTheData_IsRefused()
    {
        string alias = Link(Holes);
        AssertRefused(alias, alias, Holes);
    }

    [TestMethod]
    [DataRow(0, DisplayName = "a link's '..' (alias/labels/..)")]
    [DataRow(1, DisplayName = "'..' back into the data (holes/labels/../../holes/completed)")]
    public void Complete_ThroughDotDot_IsRefused(int variant) =>
        AssertRefused(variant == 0 ? Path.Combine(Link(Holes), "labels", "..") : Path.Combine(Holes, "labels", "..", "..", "holes", "completed"), Holes);

    [TestMethod]
    [DataRow(0, DisplayName = "alias/")]
    [DataRow(1, DisplayName = "alias//")]
    [DataRow(2, DisplayName = "holes/labels/")]
    public void Complete_WithTrailingSlashes_IsRefused(int variant)
    {
        char slash = Path.DirectorySeparatorChar;
        AssertRefused(variant switch
        {
            0 => Link(Holes) + slash,
            1 => Link(Holes) + slash + slash,
            _ => Path.Combine(Holes, "labels") + slash,
        }, Holes);
    }

    [TestMethod]
    public void Complete_IntoAFolderInsideTheData_IsRefused() =>
        AssertRefused(Path.Combine(Holes, "completed"), Path.Combine(Holes, "completed"), Holes);

    [TestMethod]
    public void Complete_IntoAFolderThatHoldsTheData_IsRefused() => AssertRefused(Data.Root, Data.Root, Holes);

    [TestMethod]
    public void Complete_IntoAFolderWhoseSubfolderLinksToTheData_IsRefused()
    {
        // The folder itself is elsewhere, but its labels/ (where the completed labels go) is the data's labels/.
        string outDir = Fresh("out");
        Directory.CreateDirectory(outDir);
        Directory.CreateSymbolicLink(Path.Combine(outDir, "labels"), Path.Combine(Holes, "labels"));
        AssertRefused(outDir, Path.Combine(Holes, "labels"));
    }

    [TestMethod]
    public void Complete_IntoASeparateFolder_Works_AndCaseFollowsTheFileSystem()
    {
        string outDir = Fresh("out");
        var result = Complete(outDir);
        Assert.AreEqual(LmaeCli.Success, result.ExitCode, result.ToString());
        Assert.HasCount(3, Directory.GetFiles(Path.Combine(outDir, "labels")));

        // The data root spelled in upper case: the same folder on a case-insensitive file system (refused), another one on a
        // case-sensitive one (allowed).
        string upper = Path.Combine(Data.Root, "HOLES");
        if (Directory.Exists(upper)) AssertRefused(upper, Holes);
        else
        {
            var other = Complete(upper);
            Assert.AreEqual(LmaeCli.Success, other.ExitCode, other.ToString());
        }
    }

    [TestMethod]
    public void Evaluate_IntoTheData_IsRefused()
    {
        var before = InputHashes();
        var result = CliRunner.Run("evaluate", "--model", s_model, "--data", Data.Root, "--format", "pairs", "--split", "holes",
            "--ratios", "0.5", "--out", Link(Path.Combine(Holes, "labels")));
        Assert.AreEqual(LmaeCli.Failure, result.ExitCode, result.ToString());
        Assert.HasCount(1, result.ErrorLines, result.ToString());
        StringAssert.Contains(result.Error, Holes);
        CollectionAssert.AreEquivalent(before.ToList(), InputHashes().ToList());
    }

    [TestMethod]
    public void Train_WithCheckpointsAroundTheData_IsRefused()
    {
        string trainRoot = Path.Combine(Data.Root, "train");
        var checkpoints = CliRunner.Run("train", "--data", Data.Root, "--format", "pairs", "--out", Fresh("m") + ".zip", "--config", "Tiny",
            "--epochs", "1", "--batch", "4", "--crop", "32", "--threads", "1", "--checkpoints", Link(Data.Root));
        Assert.AreEqual(LmaeCli.Failure, checkpoints.ExitCode, checkpoints.ToString());
        StringAssert.Contains(checkpoints.Error, "--checkpoints");
        StringAssert.Contains(checkpoints.Error, trainRoot);
    }

    [TestMethod]
    public void Train_WithTheModelInsideTheData_IsRefused()
    {
        string trainRoot = Path.Combine(Data.Root, "train");
        string model = Path.Combine(Link(Path.Combine(trainRoot, "labels")), "m.zip");
        var inside = CliRunner.Run("train", "--data", Data.Root, "--format", "pairs", "--out", model, "--config", "Tiny",
            "--epochs", "1", "--batch", "4", "--crop", "32", "--threads", "1");
        Assert.AreEqual(LmaeCli.Failure, inside.ExitCode, inside.ToString());
        StringAssert.Contains(inside.Error, "--out");
        StringAssert.Contains(inside.Error, trainRoot);
        Assert.IsFalse(File.Exists(Path.Combine(trainRoot, "labels", "m.zip")));
    }

    [TestMethod]
    public void RealPath_FollowsLinksDotDotAndSeparatorsAsTheSystemDoes()
    {
        var paths = new OutputPaths();
        string target = Path.Combine(Holes, "labels");
        string alias = Link(target);
        Assert.AreEqual(target, paths.RealPath(alias));
        Assert.AreEqual(Holes, paths.RealPath(Path.Combine(alias, "..")), "a link's '..' is its target's parent");
        Assert.AreEqual(target, paths.RealPath(alias + "/./"));
        Assert.AreEqual(Path.Combine(target, "new", "deeper"), paths.RealPath(Path.Combine(alias, "new", "x", "..", "deeper")),
            "names that do not exist yet are kept, '..' among them resolved");

        string relative = Fresh("relative");
        Directory.CreateSymbolicLink(relative, Path.Combine("..", Path.GetFileName(s_work), Path.GetFileName(alias)));
        Assert.AreEqual(target, paths.RealPath(relative), "a relative link target starts at the link's folder, links in it followed");

        string loop = Fresh("loop");
        Directory.CreateSymbolicLink(loop, loop);
        var e = Assert.ThrowsExactly<CliException>(() => paths.RealPath(Path.Combine(loop, "x")));
        StringAssert.Contains(e.Message, "symbolic links");
    }
}
