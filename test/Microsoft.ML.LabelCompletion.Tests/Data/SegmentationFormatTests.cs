using Microsoft.ML.LabelCompletion.Data;

namespace Microsoft.ML.LabelCompletion.Tests.Data;

/// <summary>Each layout: listing, reading, and read -> write -> read round trips in the input's own format.</summary>
[TestClass]
public sealed class SegmentationFormatTests
{
    private const int W = 20, H = 12;

    [TestMethod]
    public void CamVidReadsVoidAsUnknownAndWritesItBackAsVoid()
    {
        using var tmp = new TempFolder();
        var raw = DataTestFiles.MakeLabel(W, H, 1, 0, 3, 10, 11);
        for (int i = 0; i < 2; i++)
        {
            DataTestFiles.WriteRgbPng(tmp.File("val", $"f{i}.png"), DataTestFiles.MakeImage(W, H, i));
            DataTestFiles.WriteGrayLabel(tmp.File("valannot", $"f{i}.png"), raw);
        }
        var ds = SegmentationDataset.Open(new SegmentationDataOptions { Root = tmp.Path, Format = SegmentationDataFormat.CamVid, Split = "val" });
        Assert.AreEqual(2, ds.Count);
        Assert.AreEqual(11, ds.NumberOfClasses);
        var sample = ds.Read(0);
        CollectionAssert.AreEqual(DataTestFiles.MakeImage(W, H, 0).Pixels, sample.Image.Pixels);
        for (int i = 0; i < raw.Values.Length; i++)
            Assert.AreEqual(raw.Values[i] == 11 ? (byte)255 : raw.Values[i], sample.Label.Values[i]);

        AssertRoundTrip(ds, 0, sample.Label, expectedColourType: PngColorType.Grayscale);
    }

    [TestMethod]
    public void PascalVocReadsPaletteIndicesAndKeepsThePaletteOnWrite()
    {
        using var tmp = new TempFolder();
        string root = Path.Combine(tmp.Path, "VOCdevkit", "VOC2012");
        var palette = SegmentationPalettes.PascalVoc();
        var raw = DataTestFiles.MakeLabel(W, H, 2, 0, 1, 15, 20, 255);
        foreach (string id in new[] { "2007_000032", "2007_000039" })
        {
            DataTestFiles.WriteJpeg(Path.Combine(Directory.CreateDirectory(Path.Combine(root, "JPEGImages")).FullName, id + ".jpg"), DataTestFiles.MakeImage(W, H, 3));
            DataTestFiles.WritePng(tmp.File("VOCdevkit", "VOC2012", "SegmentationClass", id + ".png"), W, H, PngColorType.Palette, 8, raw.Values, palette);
        }
        File.WriteAllText(tmp.File("VOCdevkit", "VOC2012", "ImageSets", "Segmentation", "train.txt"), "2007_000032\n2007_000039\n\n");

        // The root may be given as VOCdevkit's parent: the VOC2012 folder is found.
        var ds = SegmentationDataset.Open(new SegmentationDataOptions { Root = tmp.Path, Format = SegmentationDataFormat.PascalVoc, Split = "train" });
        Assert.AreEqual(2, ds.Count);
        var sample = ds.Read(1);
        Assert.AreEqual(W, sample.Image.Width);
        CollectionAssert.AreEqual(raw.Values, sample.Label.Values, "palette indices are read exactly; 255 is the unknown value");
        string written = AssertRoundTrip(ds, 1, sample.Label, expectedColourType: PngColorType.Palette);
        CollectionAssert.AreEqual(palette, Png.Read(written).Palette, "the source palette is kept");

        // A completed label: unknown pixels filled with class 7, written with the VOC palette.
        var completed = new LabelMap(W, H, sample.Label.Values.Select(v => v == 255 ? (byte)7 : v).ToArray());
        string dest = Path.Combine(tmp.Path, "out", "completed.png");
        ds.WriteCompletedLabel(1, completed, dest);
        var back = Png.Read(dest);
        CollectionAssert.AreEqual(palette, back.Palette);
        CollectionAssert.AreEqual(completed.Values, back.Samples);
    }

    [TestMethod]
    public void CityscapesMapsLabelIdsToTrainIdsAndBack()
    {
        using var tmp = new TempFolder();
        // Label ids: 7 road -> 0, 26 car -> 13, 33 bicycle -> 18; 1 ego vehicle, 4 static, 0 unlabeled -> unknown.
        var raw = DataTestFiles.MakeLabel(W, H, 4, 7, 26, 33, 1, 4, 0);
        DataTestFiles.WriteRgbPng(tmp.File("leftImg8bit", "val", "lindau", "lindau_000000_000019_leftImg8bit.png"), DataTestFiles.MakeImage(W, H, 4));
        DataTestFiles.WriteGrayLabel(tmp.File("gtFine", "val", "lindau", "lindau_000000_000019_gtFine_labelIds.png"), raw);
        DataTestFiles.WriteRgbPng(tmp.File("leftImg8bit", "val", "munster", "munster_000001_000019_leftImg8bit.png"), DataTestFiles.MakeImage(W, H, 5));
        DataTestFiles.WriteGrayLabel(tmp.File("gtFine", "val", "munster", "munster_000001_000019_gtFine_labelIds.png"), raw);

        var ds = SegmentationDataset.Open(new SegmentationDataOptions { Root = tmp.Path, Format = SegmentationDataFormat.Cityscapes, Split = "val" });
        Assert.AreEqual(2, ds.Count);
        Assert.AreEqual(19, ds.NumberOfClasses);
        StringAssert.Contains(ds.Pairs[1].ImagePath, "munster");
        var sample = ds.Read(0);
        var expected = raw.Values.Select(v => v switch { 7 => (byte)0, 26 => (byte)13, 33 => (byte)18, _ => (byte)255 }).ToArray();
        CollectionAssert.AreEqual(expected, sample.Label.Values);

        // Untouched: identical label ids, including the ignored ones (1, 4, 0 keep their ids).
        AssertRoundTrip(ds, 0, sample.Label, expectedColourType: PngColorType.Grayscale);

        // Completed: unknown -> car; label ids output writes 26 there, train ids output writes 13.
        var completed = new LabelMap(W, H, sample.Label.Values.Select(v => v == 255 ? (byte)13 : v).ToArray());
        string ids = Path.Combine(tmp.Path, "out", "ids.png");
        string trainIds = Path.Combine(tmp.Path, "out", "train.png");
        ds.WriteCompletedLabel(0, completed, ids, CityscapesLabelOutput.LabelIds);
        ds.WriteCompletedLabel(0, completed, trainIds, CityscapesLabelOutput.TrainIds);
        CollectionAssert.AreEqual(raw.Values.Select(v => v is 7 or 26 or 33 ? v : (byte)26).ToArray(), Png.Read(ids).Samples);
        CollectionAssert.AreEqual(completed.Values, Png.Read(trainIds).Samples);
        CollectionAssert.AreEqual(completed.Values, SegmentationFiles.ReadLabel(ids, ds.LabelMapping).Values);
    }

    [TestMethod]
    public void ListFileReadsPairsRelativeToTheListAndRoundTripsSixteenBitLabels()
    {
        using var tmp = new TempFolder();
        var raw16 = new byte[W * H * 2];
        var expected = new byte[W * H];
        for (int i = 0; i < W * H; i++)
        {
            int v = i % 5 == 0 ? 255 : i % 4;
            raw16[2 * i + 1] = (byte)v;
            expected[i] = (byte)v;
        }
        DataTestFiles.WriteRgbPng(tmp.File("img", "a.png"), DataTestFiles.MakeImage(W, H, 6));
        DataTestFiles.WritePng(tmp.File("lab", "a.png"), W, H, PngColorType.Grayscale, 16, raw16);
        DataTestFiles.WriteJpeg(tmp.File("img", "b c.jpg"), DataTestFiles.MakeImage(W, H, 7));
        DataTestFiles.WriteGrayLabel(tmp.File("lab", "b.png"), new LabelMap(W, H, expected));
        File.WriteAllText(tmp.File("pairs.txt"), "# image label\nimg/a.png lab/a.png\n\nimg/b c.jpg\tlab/b.png\n");

        var ds = SegmentationDataset.Open(new SegmentationDataOptions
        {
            Format = SegmentationDataFormat.ListFile,
            ListFile = Path.Combine(tmp.Path, "pairs.txt"),
            NumberOfClasses = 4,
        });
        Assert.AreEqual(2, ds.Count);
        var a = ds.Read(0);
        CollectionAssert.AreEqual(expected, a.Label.Values, "16-bit values are read exactly");
        string written = AssertRoundTrip(ds, 0, a.Label, expectedColourType: PngColorType.Grayscale);
        Assert.AreEqual(16, Png.Read(written).BitDepth, "16-bit stays 16-bit");
        CollectionAssert.AreEqual(raw16, Png.Read(written).Samples);
        Assert.AreEqual(W, ds.Read(1).Image.Width);

        // The default list is {Root}/{Split}.txt.
        File.Copy(Path.Combine(tmp.Path, "pairs.txt"), Path.Combine(tmp.Path, "val.txt"));
        var byRoot = SegmentationDataset.Open(new SegmentationDataOptions { Format = SegmentationDataFormat.ListFile, Root = tmp.Path, Split = "val", NumberOfClasses = 4 });
        Assert.AreEqual(2, byRoot.Count);
    }

    [TestMethod]
    public void FoldersPairByNameAndApplyTheValueMap()
    {
        using var tmp = new TempFolder();
        var raw = DataTestFiles.MakeLabel(W, H, 8, 0, 1, 2, 9);
        foreach (string name in new[] { "x1", "x2", "x3" })
        {
            DataTestFiles.WriteJpeg(tmp.File("images", name + ".jpg"), DataTestFiles.MakeImage(W, H, 8));
            DataTestFiles.WriteGrayLabel(tmp.File("labels", name + ".png"), raw);
        }
        File.WriteAllText(tmp.File("images", "notes.txt"), "not an image");
        var ds = SegmentationDataset.Open(new SegmentationDataOptions
        {
            Root = tmp.Path,
            Format = SegmentationDataFormat.Folders,
            NumberOfClasses = 3,
            LabelValueMap = new Dictionary<int, byte> { [9] = 255 },
        });
        Assert.AreEqual(3, ds.Count);
        CollectionAssert.AreEqual(new[] { "x1.jpg", "x2.jpg", "x3.jpg" }, ds.Pairs.Select(p => Path.GetFileName(p.ImagePath)).ToArray());
        Assert.AreEqual(Path.Combine("labels", "x2.png"), ds.Pairs[1].RelativeLabelPath);
        var sample = ds.Read(2);
        CollectionAssert.AreEqual(raw.Values.Select(v => v == 9 ? (byte)255 : v).ToArray(), sample.Label.Values);
        string written = AssertRoundTrip(ds, 2, sample.Label, expectedColourType: PngColorType.Grayscale);
        CollectionAssert.AreEqual(raw.Values, Png.Read(written).Samples, "void 9 is written back as 9");
    }

    [TestMethod]
    public void ImagesOfEveryKindAreReadAsRgb()
    {
        using var tmp = new TempFolder();
        // Grayscale is replicated; RGBA loses alpha and keeps its colour (no premultiplication).
        var gray = new byte[] { 0, 50, 100, 200, 255, 7 };
        string g = tmp.File("g.png");
        DataTestFiles.WritePng(g, 3, 2, PngColorType.Grayscale, 8, gray);
        CollectionAssert.AreEqual(gray.SelectMany(v => new[] { v, v, v }).ToArray(), SegmentationFiles.ReadImage(g).Pixels);

        var rgba = new byte[] { 10, 20, 30, 0, 40, 50, 60, 128, 70, 80, 90, 255, 1, 2, 3, 4 };
        string a = tmp.File("a.png");
        DataTestFiles.WritePng(a, 2, 2, PngColorType.Rgba, 8, rgba);
        CollectionAssert.AreEqual(new byte[] { 10, 20, 30, 40, 50, 60, 70, 80, 90, 1, 2, 3 }, SegmentationFiles.ReadImage(a).Pixels);

        // A smooth image (JPEG's chroma subsampling would blur noise away).
        var smooth = new byte[16 * 8 * 3];
        for (int i = 0; i < 16 * 8; i++)
        {
            smooth[3 * i] = (byte)(i % 16 * 15);
            smooth[3 * i + 1] = (byte)(i / 16 * 30);
            smooth[3 * i + 2] = 128;
        }
        var image = new RgbImage(16, 8, smooth);
        string j = tmp.File("j.jpg");
        DataTestFiles.WriteJpeg(j, image, quality: 100);
        var decoded = SegmentationFiles.ReadImage(j);
        Assert.AreEqual(16, decoded.Width);
        double meanError = decoded.Pixels.Zip(image.Pixels, (x, y) => Math.Abs(x - y)).Average();
        Assert.IsLessThan(4.0, meanError, $"JPEG at quality 100 stays close to the source (mean error {meanError:F2})");
    }

    /// <summary>Writes the label back in the source's format and checks it reads back identically and the raw file is unchanged pixel for pixel.</summary>
    private static string AssertRoundTrip(SegmentationDataset ds, int index, LabelMap label, PngColorType expectedColourType)
    {
        string source = ds.Pairs[index].LabelPath;
        string dest = Path.Combine(Path.GetDirectoryName(source)!, "..", "roundtrip", Path.GetFileName(source));
        ds.WriteCompletedLabel(index, label, dest);
        CollectionAssert.AreEqual(label.Values, SegmentationFiles.ReadLabel(dest, ds.LabelMapping).Values, "read -> write -> read");
        var original = Png.Read(source);
        var written = Png.Read(dest);
        Assert.AreEqual(expectedColourType, written.ColorType);
        Assert.AreEqual(original.ColorType, written.ColorType);
        Assert.AreEqual(original.BitDepth, written.BitDepth);
        CollectionAssert.AreEqual(original.Samples, written.Samples, "an untouched label is identical pixel for pixel");
        CollectionAssert.AreEqual(original.Palette, written.Palette);
        Assert.IsFalse(Directory.EnumerateFiles(Path.GetDirectoryName(Path.GetFullPath(dest))!, "*.tmp").Any(), "no temporary file is left");
        return dest;
    }
}
