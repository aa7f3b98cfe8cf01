using Microsoft.ML.LabelCompletion.Data;

namespace Microsoft.ML.LabelCompletion.Tests.Data;

/// <summary>Every kind of bad input: a clear exception naming the file and the problem, or, with skipping on, a counted and reported bad row.</summary>
[TestClass]
public sealed class BadInputTests
{
    private const int W = 10, H = 6;

    /// <summary>A CamVid-layout folder with three good pairs; returns the root.</summary>
    private static string MakeCamVid(TempFolder tmp)
    {
        for (int i = 0; i < 3; i++)
        {
            DataTestFiles.WriteRgbPng(tmp.File("train", $"p{i}.png"), DataTestFiles.MakeImage(W, H, i));
            DataTestFiles.WriteGrayLabel(tmp.File("trainannot", $"p{i}.png"), DataTestFiles.MakeLabel(W, H, i, 0, 5, 11));
        }
        return tmp.Path;
    }

    private static SegmentationDataOptions CamVid(string root, bool skip = false) =>
        new() { Root = root, Format = SegmentationDataFormat.CamVid, Split = "train", SkipBadRows = skip };

    [TestMethod]
    public void ImageAndLabelOfDifferentSizes()
    {
        using var tmp = new TempFolder();
        string root = MakeCamVid(tmp);
        string label = Path.Combine(root, "trainannot", "p1.png");
        DataTestFiles.WriteGrayLabel(label, DataTestFiles.MakeLabel(W + 1, H, 1, 0));
        var ds = SegmentationDataset.Open(CamVid(root));
        var ex = Assert.ThrowsExactly<InvalidDataException>(() => ds.ToList());
        StringAssert.Contains(ex.Message, label);
        StringAssert.Contains(ex.Message, $"{W + 1}x{H}");
        StringAssert.Contains(ex.Message, $"{W}x{H}");

        AssertSkippedAndReported(CamVid(root, skip: true), 2, label, "label is");
    }

    [TestMethod]
    public void LabelValuesThatAreNeitherClassNorUnknown()
    {
        using var tmp = new TempFolder();
        string root = MakeCamVid(tmp);
        string label = Path.Combine(root, "trainannot", "p2.png");
        var values = DataTestFiles.MakeLabel(W, H, 1, 0, 3).Values;
        values[2 * W + 7] = 12; // CamVid has 0..10 and void 11
        DataTestFiles.WriteGrayLabel(label, new LabelMap(W, H, values));
        var ds = SegmentationDataset.Open(CamVid(root));
        var ex = Assert.ThrowsExactly<InvalidDataException>(() => ds.Read(2));
        StringAssert.Contains(ex.Message, label);
        StringAssert.Contains(ex.Message, "pixel (7, 2) has label value 12");

        AssertSkippedAndReported(CamVid(root, skip: true), 2, label, "label value 12");

        // A generic format checks against the number of classes it is given.
        var generic = SegmentationDataset.Open(new SegmentationDataOptions
        {
            Root = root, Format = SegmentationDataFormat.Folders, ImageFolder = "train", LabelFolder = "trainannot", NumberOfClasses = 6,
        });
        StringAssert.Contains(Assert.ThrowsExactly<InvalidDataException>(() => generic.Read(0)).Message, "label value 11");
    }

    [TestMethod]
    public void MissingLabelFile()
    {
        using var tmp = new TempFolder();
        string root = MakeCamVid(tmp);
        string label = Path.Combine(root, "trainannot", "p0.png");
        File.Delete(label);
        var ex = Assert.ThrowsExactly<FileNotFoundException>(() => SegmentationDataset.Open(CamVid(root)));
        Assert.AreEqual(label, ex.FileName);
        StringAssert.Contains(ex.Message, label);
        StringAssert.Contains(ex.Message, "does not exist");

        AssertSkippedAndReported(CamVid(root, skip: true), 2, label, "does not exist");

        // A label that disappears after listing: reading names it.
        var ds = SegmentationDataset.Open(CamVid(root, skip: true));
        string other = Path.Combine(root, "trainannot", "p1.png");
        File.Delete(other);
        Assert.AreEqual(1, ds.Count(), "the enumeration skips the row");
        Assert.IsTrue(ds.BadRows.Any(r => r.LabelPath == other && r.Reason.Contains(other, StringComparison.Ordinal)));
        Assert.AreEqual(1L, ds.KnownGoodRowCount);
    }

    [TestMethod]
    public void CorruptOrTruncatedPngAndJpeg()
    {
        using var tmp = new TempFolder();
        string root = MakeCamVid(tmp);
        string image = Path.Combine(root, "train", "p0.png");
        var bytes = File.ReadAllBytes(image);
        File.WriteAllBytes(image, bytes[..(bytes.Length / 2)]);
        var ds = SegmentationDataset.Open(CamVid(root));
        var ex = Assert.ThrowsExactly<InvalidDataException>(() => ds.Read(0));
        StringAssert.Contains(ex.Message, image);

        string label = Path.Combine(root, "trainannot", "p1.png");
        var labelBytes = File.ReadAllBytes(label);
        labelBytes[^20] ^= 0xFF;
        File.WriteAllBytes(label, labelBytes);
        ex = Assert.ThrowsExactly<InvalidDataException>(() => ds.Read(1));
        StringAssert.Contains(ex.Message, label);

        var skipping = SegmentationDataset.Open(CamVid(root, skip: true));
        Assert.AreEqual(1, skipping.Count());
        Assert.AreEqual(2, skipping.BadRowCount);

        // JPEG: truncated and garbled.
        string jpeg = tmp.File("j.jpg");
        DataTestFiles.WriteJpeg(jpeg, DataTestFiles.MakeImage(64, 48, 1));
        var jpegBytes = File.ReadAllBytes(jpeg);
        File.WriteAllBytes(jpeg, jpegBytes[..(jpegBytes.Length / 2)]);
        ex = Assert.ThrowsExactly<InvalidDataException>(() => SegmentationFiles.ReadImage(jpeg));
        StringAssert.Contains(ex.Message, jpeg);
        StringAssert.Contains(ex.Message, "truncated");
        File.WriteAllBytes(jpeg, jpegBytes[..40]);
        StringAssert.Contains(Assert.ThrowsExactly<InvalidDataException>(() => SegmentationFiles.ReadImage(jpeg)).Message, jpeg);
        File.WriteAllBytes(jpeg, []);
        StringAssert.Contains(Assert.ThrowsExactly<InvalidDataException>(() => SegmentationFiles.ReadImage(jpeg)).Message, "empty");
        File.WriteAllText(jpeg, "definitely not an image");
        StringAssert.Contains(Assert.ThrowsExactly<InvalidDataException>(() => SegmentationFiles.ReadImage(jpeg)).Message, "not a decodable");
    }

    [TestMethod]
    public void EmptyDataSet()
    {
        using var tmp = new TempFolder();
        Directory.CreateDirectory(Path.Combine(tmp.Path, "train"));
        Directory.CreateDirectory(Path.Combine(tmp.Path, "trainannot"));
        var ex = Assert.ThrowsExactly<InvalidDataException>(() => SegmentationDataset.Open(CamVid(tmp.Path)));
        StringAssert.Contains(ex.Message, Path.Combine(tmp.Path, "train"));
        StringAssert.Contains(ex.Message, "empty");

        File.WriteAllText(tmp.File("list.txt"), "# nothing here\n\n");
        var listOptions = new SegmentationDataOptions { Format = SegmentationDataFormat.ListFile, ListFile = tmp.File("list.txt"), NumberOfClasses = 3 };
        StringAssert.Contains(Assert.ThrowsExactly<InvalidDataException>(() => SegmentationDataset.Open(listOptions)).Message, "list.txt");

        // All rows bad and skipped: still an error, with the first reason.
        DataTestFiles.WriteRgbPng(tmp.File("train", "only.png"), DataTestFiles.MakeImage(W, H, 0));
        ex = Assert.ThrowsExactly<InvalidDataException>(() => SegmentationDataset.Open(CamVid(tmp.Path, skip: true)));
        StringAssert.Contains(ex.Message, "1 bad row");
        StringAssert.Contains(ex.Message, Path.Combine(tmp.Path, "trainannot", "only.png"));

        Assert.ThrowsExactly<DirectoryNotFoundException>(() => SegmentationDataset.Open(CamVid(Path.Combine(tmp.Path, "missing"))));
    }

    [TestMethod]
    public void ListFileNamingFilesThatDoNotExist()
    {
        using var tmp = new TempFolder();
        string root = MakeCamVid(tmp);
        string list = tmp.File("list.txt");
        File.WriteAllText(list, "train/p0.png trainannot/p0.png\ntrain/nope.png trainannot/p1.png\ntrain/p2.png trainannot/p2.png\n");
        var options = new SegmentationDataOptions { Format = SegmentationDataFormat.ListFile, ListFile = list, NumberOfClasses = 11, LabelValueMap = new Dictionary<int, byte> { [11] = 255 } };
        var ex = Assert.ThrowsExactly<FileNotFoundException>(() => SegmentationDataset.Open(options));
        StringAssert.Contains(ex.Message, list + " line 2");
        StringAssert.Contains(ex.Message, Path.Combine(root, "train", "nope.png"));

        options.SkipBadRows = true;
        var ds = SegmentationDataset.Open(options);
        Assert.AreEqual(2, ds.Count);
        Assert.AreEqual(1, ds.BadRowCount);
        StringAssert.Contains(ds.BadRows[0].Reason, "line 2");

        // Malformed line and missing list file.
        File.WriteAllText(list, "train/p0.png\n");
        options.SkipBadRows = false;
        StringAssert.Contains(Assert.ThrowsExactly<InvalidDataException>(() => SegmentationDataset.Open(options)).Message, "line 1: expected 'image label'");
        options.ListFile = Path.Combine(root, "absent.txt");
        Assert.AreEqual(options.ListFile, Assert.ThrowsExactly<FileNotFoundException>(() => SegmentationDataset.Open(options)).FileName);
    }

    [TestMethod]
    public void PathOutsideTheDataRootInAListFile()
    {
        using var tmp = new TempFolder();
        string root = MakeCamVid(tmp);
        string list = tmp.File("list.txt");
        File.WriteAllText(list, "train/p0.png trainannot/p0.png\n../../etc/passwd trainannot/p1.png\n");
        var options = new SegmentationDataOptions { Format = SegmentationDataFormat.ListFile, ListFile = list, NumberOfClasses = 11, LabelValueMap = new Dictionary<int, byte> { [11] = 255 } };
        var ex = Assert.ThrowsExactly<InvalidDataException>(() => SegmentationDataset.Open(options));
        StringAssert.Contains(ex.Message, list + " line 2");
        StringAssert.Contains(ex.Message, "outside the data root");

        // Absolute paths are judged the same way.
        File.WriteAllText(list, $"{Path.Combine(root, "train", "p0.png")} {Path.GetFullPath("/etc/hostname")}\n");
        StringAssert.Contains(Assert.ThrowsExactly<InvalidDataException>(() => SegmentationDataset.Open(options)).Message, "outside the data root");

        File.WriteAllText(list, "train/p0.png trainannot/p0.png\n../../etc/passwd trainannot/p1.png\n");
        options.SkipBadRows = true;
        var ds = SegmentationDataset.Open(options);
        Assert.AreEqual(1, ds.Count);
        Assert.AreEqual(1, ds.BadRowCount);
        StringAssert.Contains(ds.BadRows[0].Reason, "outside the data root");

        // A Folders layout cannot point outside its root either.
        Assert.ThrowsExactly<ArgumentException>(() => SegmentationDataset.Open(new SegmentationDataOptions
        {
            Root = Path.Combine(root, "train"), Format = SegmentationDataFormat.Folders, ImageFolder = ".", LabelFolder = "../trainannot", NumberOfClasses = 12,
        }));
    }

    [TestMethod]
    public void InconsistentOptions()
    {
        using var tmp = new TempFolder();
        string root = MakeCamVid(tmp);
        StringAssert.Contains(Assert.ThrowsExactly<ArgumentException>(() => SegmentationDataset.Open(new SegmentationDataOptions { Root = root, Format = SegmentationDataFormat.Folders })).Message, "NumberOfClasses");
        StringAssert.Contains(Assert.ThrowsExactly<ArgumentException>(() => SegmentationDataset.Open(new SegmentationDataOptions { Root = root, NumberOfClasses = 12 })).Message, "11 classes");
        Assert.ThrowsExactly<ArgumentException>(() => SegmentationDataset.Open(new SegmentationDataOptions { Root = "" }));
        Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => SegmentationDataset.Open(new SegmentationDataOptions { Root = root, UnknownLabel = 3 }));
    }

    private static void AssertSkippedAndReported(SegmentationDataOptions options, int expectedGood, string badFile, string reasonPart)
    {
        var ds = SegmentationDataset.Open(options);
        var samples = ds.ToList();
        Assert.AreEqual(expectedGood, samples.Count);
        Assert.AreEqual(1, ds.BadRowCount);
        var bad = ds.BadRows.Single();
        Assert.IsTrue(bad.ImagePath == badFile || bad.LabelPath == badFile, $"bad row names {badFile}");
        StringAssert.Contains(bad.Reason, badFile);
        StringAssert.Contains(bad.Reason, reasonPart);
        // A second pass neither duplicates the report nor changes the rows.
        Assert.AreEqual(expectedGood, ds.Count());
        Assert.AreEqual(1, ds.BadRowCount);
    }
}
