using Microsoft.ML.LabelCompletion.Benchmarks;
using Microsoft.ML.Data;
using Microsoft.ML.LabelCompletion.Data;

namespace Microsoft.ML.LabelCompletion.Tests.Data;

[TestClass]
public sealed class WritersAndConversionsTests
{
    [TestMethod]
    public void MLImageConvertsBothWaysForBgraAndRgba()
    {
        var image = DataTestFiles.MakeImage(7, 5, 2);
        using var bgra = image.ToMLImage();
        Assert.AreEqual(MLPixelFormat.Bgra32, bgra.PixelFormat);
        CollectionAssert.AreEqual(image.Pixels, bgra.ToRgbImage().Pixels);
        Assert.AreEqual(image.Pixels[2], bgra.Pixels[0], "blue first");

        var rgbaPixels = new byte[7 * 5 * 4];
        for (int i = 0; i < 35; i++)
        {
            rgbaPixels[4 * i] = image.Pixels[3 * i];
            rgbaPixels[4 * i + 1] = image.Pixels[3 * i + 1];
            rgbaPixels[4 * i + 2] = image.Pixels[3 * i + 2];
            rgbaPixels[4 * i + 3] = 255;
        }
        using var rgba = MLImage.CreateFromPixels(7, 5, MLPixelFormat.Rgba32, rgbaPixels);
        Assert.AreEqual(MLPixelFormat.Rgba32, rgba.PixelFormat);
        CollectionAssert.AreEqual(image.Pixels, rgba.ToRgbImage().Pixels);

        // An image loaded by ML.NET itself from a file converts too.
        using var tmp = new TempFolder();
        string path = tmp.File("m.png");
        SegmentationFiles.WriteImage(path, image);
        using var loaded = MLImage.CreateFromFile(path);
        CollectionAssert.AreEqual(image.Pixels, loaded.ToRgbImage().Pixels);
    }

    [TestMethod]
    public void OverlayBlendsClassColoursAndLeavesUnknownPixels()
    {
        using var tmp = new TempFolder();
        var image = new RgbImage(2, 1, [100, 100, 100, 10, 20, 30]);
        var label = new LabelMap(2, 1, [1, 255]);
        string path = tmp.File("overlay.png");
        SegmentationFiles.WriteOverlay(path, image, label, SegmentationPalettes.CamVid(), 255, 0.5f);
        var png = Png.Read(path);
        Assert.AreEqual(PngColorType.Rgb, png.ColorType);
        // Class 1 (building) is (128, 0, 0).
        CollectionAssert.AreEqual(new byte[] { 114, 50, 50, 10, 20, 30 }, png.Samples);
    }

    [TestMethod]
    public void HeatMapRunsFromBlueToRedAndNaNIsBlack()
    {
        using var tmp = new TempFolder();
        string path = tmp.File("heat.png");
        SegmentationFiles.WriteConfidenceHeatMap(path, [0f, 0.5f, 1f, float.NaN], 2, 2);
        var s = Png.Read(path).Samples;
        Assert.IsTrue(s[2] > s[0], "confidence 0 is blue");
        Assert.IsTrue(s[4] > s[3] && s[4] > s[5], "0.5 is green");
        Assert.IsTrue(s[6] > s[8], "1 is red");
        CollectionAssert.AreEqual(new byte[] { 0, 0, 0 }, s[9..12]);
        Assert.ThrowsExactly<ArgumentException>(() => SegmentationFiles.WriteConfidenceHeatMap(path, [0f], 2, 2));
    }

    [TestMethod]
    public void WritesAreAtomicAndAFailedWriteLeavesTheOldFile()
    {
        using var tmp = new TempFolder();
        string path = tmp.File("sub", "label.png");
        var label = DataTestFiles.MakeLabel(6, 4, 1, 0, 1);
        SegmentationFiles.WriteGrayscaleLabel(path, label);
        byte[] before = File.ReadAllBytes(path);
        Assert.ThrowsExactly<InvalidOperationException>(() => SegmentationFiles.WriteAtomically(path, s =>
        {
            s.Write(new byte[100]);
            throw new InvalidOperationException("interrupted");
        }));
        CollectionAssert.AreEqual(before, File.ReadAllBytes(path), "the destination is untouched");
        CollectionAssert.AreEqual(new[] { "label.png" }, Directory.GetFiles(Path.GetDirectoryName(path)!).Select(Path.GetFileName).ToArray(), "no temporary file is left");

        // Overwriting works and the palette writer keeps the palette.
        var palette = SegmentationPalettes.PascalVoc();
        SegmentationFiles.WritePaletteLabel(path, label, palette);
        var png = Png.Read(path);
        CollectionAssert.AreEqual(palette, png.Palette);
        CollectionAssert.AreEqual(label.Values, png.Samples);
        Assert.ThrowsExactly<ArgumentException>(() => SegmentationFiles.WritePaletteLabel(path, new LabelMap(1, 1, [9]), palette[..9]));
    }

    [TestMethod]
    public void TransparencyAndLowBitDepthPalettesSurviveAWriteBack()
    {
        using var tmp = new TempFolder();
        string source = tmp.File("src.png");
        var samples = DataTestFiles.MakeLabel(9, 5, 3, 0, 1, 2, 3).Values;
        byte[] palette = [0, 0, 0, 255, 0, 0, 0, 255, 0, 0, 0, 255];
        DataTestFiles.WritePng(source, 9, 5, PngColorType.Palette, 2, samples, palette, transparency: [0, 255], interlace: true);
        var mapping = LabelValueMapping.Identity(3, 3); // index 3 is the unknown value here
        var label = SegmentationFiles.ReadLabel(source, mapping);
        CollectionAssert.AreEqual(samples, label.Values);
        string dest = tmp.File("dest.png");
        SegmentationFiles.WriteLabelLike(dest, label, source, mapping);
        var written = Png.Read(dest);
        Assert.AreEqual(2, written.BitDepth);
        CollectionAssert.AreEqual(samples, written.Samples);
        CollectionAssert.AreEqual(palette, written.Palette);
        CollectionAssert.AreEqual(new byte[] { 0, 255 }, written.Transparency);
    }

    [TestMethod]
    public void VocPaletteIsTheStandardOne()
    {
        var p = SegmentationPalettes.PascalVoc();
        CollectionAssert.AreEqual(new byte[] { 0, 0, 0, 128, 0, 0, 0, 128, 0, 128, 128, 0 }, p[..12]);
        CollectionAssert.AreEqual(new byte[] { 192, 128, 128 }, p[(3 * 15)..(3 * 15 + 3)], "person");
        CollectionAssert.AreEqual(new byte[] { 224, 224, 192 }, p[^3..], "void 255");
    }

    [TestMethod]
    public void LoaderBenchmarkMeasuresASmallSet()
    {
        using var tmp = new TempFolder();
        for (int i = 0; i < 4; i++)
        {
            DataTestFiles.WriteRgbPng(tmp.File("train", $"b{i}.png"), DataTestFiles.MakeImage(32, 24, i));
            DataTestFiles.WriteGrayLabel(tmp.File("trainannot", $"b{i}.png"), DataTestFiles.MakeLabel(32, 24, i, 0, 11));
        }
        var ds = SegmentationDataset.Open(new SegmentationDataOptions { Root = tmp.Path });
        var result = LoaderBenchmark.Run(ds, threads: 2, passes: 1);
        Assert.AreEqual(4, result.Images);
        Assert.IsTrue(result.ImagesPerSecond > 0 && double.IsFinite(result.ImagesPerSecond));
        Assert.IsTrue(result.ImageDecodeMs > 0 && result.LabelDecodeMs > 0);
        StringAssert.StartsWith(result.ToJson(), "{\"bench\":\"loader\"");
    }
}
