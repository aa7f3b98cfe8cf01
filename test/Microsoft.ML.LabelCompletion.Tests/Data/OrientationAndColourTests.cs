using Microsoft.ML.LabelCompletion.Data;

namespace Microsoft.ML.LabelCompletion.Tests.Data;

/// <summary>
/// EXIF orientation (applied to images, refused on labels, or ignored for both), and the inputs that are not 8-bit RGB:
/// 16-bit PNG images and labels, CMYK JPEGs.
/// </summary>
[TestClass]
public sealed class OrientationAndColourTests
{
    private static string Fixture(string name) => Path.Combine(AppContext.BaseDirectory, "Reliability", "Fixtures", "images", name);

    private static double MeanAbsoluteDifference(RgbImage a, RgbImage b)
    {
        Assert.AreEqual((a.Width, a.Height), (b.Width, b.Height));
        long sum = 0;
        for (int i = 0; i < a.Pixels.Length; i++) sum += Math.Abs(a.Pixels[i] - b.Pixels[i]);
        return (double)sum / a.Pixels.Length;
    }

    [TestMethod]
    public void PillowsOrientationFixtures_TurnBackToTheUprightPicture()
    {
        // An independent reference: Pillow's exif_transpose brings each of these within a mean difference of 17 of hopper.jpg;
        // ours within 4.65-4.85 (JPEG noise), the stored pixels are 59-82 away.
        var upright = SegmentationFiles.ReadImage(Fixture("hopper.jpg"));
        for (int orientation = 2; orientation <= 8; orientation++)
        {
            string file = Fixture($"hopper_orientation_{orientation}.jpg");
            double applied = MeanAbsoluteDifference(upright, SegmentationFiles.ReadImage(file));
            double ignored = MeanAbsoluteDifference(upright, SegmentationFiles.ReadImage(file, SegmentationFiles.DefaultMaxImagePixels, ExifOrientationHandling.Ignore));
            Assert.IsTrue(applied < 8, $"orientation {orientation}: mean difference {applied:F1} after turning");
            Assert.IsTrue(ignored > 2 * applied + 10, $"orientation {orientation}: the stored pixels must differ ({ignored:F1} against {applied:F1})");
            var refused = Assert.Throws<InvalidDataException>(() =>
                SegmentationFiles.ReadImage(file, SegmentationFiles.DefaultMaxImagePixels, ExifOrientationHandling.Refuse));
            StringAssert.StartsWith(refused.Message, $"{file}: the image carries EXIF orientation {orientation} (");
        }
    }

    [TestMethod]
    [DataRow(false, DisplayName = "big-endian EXIF")]
    [DataRow(true, DisplayName = "little-endian EXIF")]
    public void PngImage_WithAnExifChunk_IsTurned_ExactlyAsTheTagSays(bool littleEndian)
    {
        // Stored 3x2:  a b c / d e f.  Orientation 6 (rotate 90 degrees clockwise) displays 2x3:  d a / e b / f c.
        byte[] stored = [.. Enumerable.Range(1, 6).SelectMany(k => new[] { (byte)(40 * k), (byte)k, (byte)0 })];
        byte[] png = PngBuilder.Encode(3, 2, PngColorType.Rgb, 8, stored);
        byte[] tagged = PngBuilder.InsertAfterHeader(png, PngBuilder.Chunk("eXIf", PngBuilder.ExifTiff(6, littleEndian)));
        var image = SegmentationFiles.DecodeImage(tagged, "turned.png");
        Assert.AreEqual((2, 3), (image.Width, image.Height));
        CollectionAssert.AreEqual(new byte[] { 4, 1, 5, 2, 6, 3 }, Enumerable.Range(0, 6).Select(i => image.Pixels[3 * i + 1]).ToArray());
        // Orientation 8 (rotate 90 degrees counter-clockwise) displays  c f / b e / a d;  3 (180 degrees)  f e d / c b a.
        var eight = SegmentationFiles.DecodeImage(PngBuilder.InsertAfterHeader(png, PngBuilder.Chunk("eXIf", PngBuilder.ExifTiff(8, littleEndian))), "8.png");
        CollectionAssert.AreEqual(new byte[] { 3, 6, 2, 5, 1, 4 }, Enumerable.Range(0, 6).Select(i => eight.Pixels[3 * i + 1]).ToArray());
        var three = SegmentationFiles.DecodeImage(PngBuilder.InsertAfterHeader(png, PngBuilder.Chunk("eXIf", PngBuilder.ExifTiff(3, littleEndian))), "3.png");
        CollectionAssert.AreEqual(new byte[] { 6, 5, 4, 3, 2, 1 }, Enumerable.Range(0, 6).Select(i => three.Pixels[3 * i + 1]).ToArray());
        var ignored = SegmentationFiles.DecodeImage(tagged, "turned.png", SegmentationFiles.DefaultMaxImagePixels, ExifOrientationHandling.Ignore);
        CollectionAssert.AreEqual(stored, ignored.Pixels);
    }

    [TestMethod]
    public void LabelPng_WithAnExifOrientation_IsRefusedUnlessIgnored()
    {
        using var tmp = new TempFolder();
        string path = tmp.File("label.png");
        byte[] values = [0, 1, 1, 0, 2, 2];
        File.WriteAllBytes(path, PngBuilder.InsertAfterHeader(PngBuilder.Encode(3, 2, PngColorType.Grayscale, 8, values),
            PngBuilder.Chunk("eXIf", PngBuilder.ExifTiff(6))));
        var mapping = LabelValueMapping.Identity(3);
        foreach (var handling in new[] { ExifOrientationHandling.Apply, ExifOrientationHandling.Refuse })
        {
            var error = Assert.Throws<InvalidDataException>(() => SegmentationFiles.ReadLabel(path, mapping, SegmentationFiles.DefaultMaxImagePixels, handling));
            StringAssert.StartsWith(error.Message, $"{path}: the label PNG carries EXIF orientation 6 (rotated 90 degrees clockwise)");
        }
        Assert.Throws<InvalidDataException>(() => SegmentationFiles.ReadLabel(path, mapping));
        var stored = SegmentationFiles.ReadLabel(path, mapping, SegmentationFiles.DefaultMaxImagePixels, ExifOrientationHandling.Ignore);
        CollectionAssert.AreEqual(values, stored.Values);
        Assert.AreEqual(3, stored.Width);
    }

    [TestMethod]
    public void DataSet_TurnedJpeg_AlignsWithALabelOfTheDisplayedPicture_AndNamesTheOrientationOtherwise()
    {
        using var tmp = new TempFolder();
        // 48x32 stored, tagged 6: displayed 32x48. Pair a has a label of the displayed picture, pair b one of the stored pixels.
        byte[] jpeg = PngBuilder.JpegWithOrientation(PngBuilder.Jpeg(DataTestFiles.MakeImage(48, 32, 4)), 6);
        File.WriteAllBytes(tmp.File("images", "a.jpg"), jpeg);
        File.WriteAllBytes(tmp.File("images", "b.jpg"), jpeg);
        DataTestFiles.WriteGrayLabel(tmp.File("labels", "a.png"), DataTestFiles.MakeLabel(32, 48, 1, 0, 1));
        DataTestFiles.WriteGrayLabel(tmp.File("labels", "b.png"), DataTestFiles.MakeLabel(48, 32, 1, 0, 1));
        var options = new SegmentationDataOptions { Root = tmp.Path, Format = SegmentationDataFormat.Folders, NumberOfClasses = 2 };
        var dataset = SegmentationDataset.Open(options);
        var a = dataset.Read(0);
        Assert.AreEqual((32, 48), (a.Image.Width, a.Image.Height));
        var error = Assert.Throws<InvalidDataException>(() => dataset.Read(1));
        StringAssert.StartsWith(error.Message, $"{dataset.Pairs[1].LabelPath}: the label is 48x32 but its image {dataset.Pairs[1].ImagePath} is 32x48 after its EXIF orientation 6");
        StringAssert.Contains(error.Message, "ExifOrientation = Ignore");

        options.ExifOrientation = ExifOrientationHandling.Ignore;
        var stored = SegmentationDataset.Open(options);
        Assert.AreEqual((48, 32), (stored.Read(1).Image.Width, stored.Read(1).Image.Height));
    }

    [TestMethod]
    [DataRow((int)PngColorType.Grayscale)]
    [DataRow((int)PngColorType.GrayscaleAlpha)]
    [DataRow((int)PngColorType.Rgb)]
    [DataRow((int)PngColorType.Rgba)]
    public void SixteenBitPngImage_ReadsAsTheNearest8BitValues(int colourType)
    {
        var type = (PngColorType)colourType;
        int channels = Png.ChannelsOf(type), width = 9, height = 5;
        var random = new Random(colourType);
        var values = new int[width * height * channels];
        for (int i = 0; i < values.Length; i++) values[i] = i % 7 == 0 ? (i % 2) * 65535 : random.Next(65536);
        if (type is PngColorType.GrayscaleAlpha or PngColorType.Rgba)
            for (int i = channels - 1; i < values.Length; i += channels) values[i] = 65535; // opaque: colours are stored as they are
        byte[] samples = [.. values.SelectMany(v => new[] { (byte)(v >> 8), (byte)v })];
        var image = SegmentationFiles.DecodeImage(PngBuilder.Encode(width, height, type, 16, samples), "wide.png");
        Assert.AreEqual((width, height), (image.Width, image.Height));
        int colours = channels >= 3 ? 3 : 1;
        for (int p = 0; p < width * height; p++)
        {
            for (int c = 0; c < 3; c++)
            {
                double expected = values[p * channels + (colours == 3 ? c : 0)] / 257.0;
                Assert.IsTrue(Math.Abs(image.Pixels[3 * p + c] - expected) <= 1, $"pixel {p} channel {c}: {image.Pixels[3 * p + c]} for {expected:F2}");
            }
        }
    }

    [TestMethod]
    public void SixteenBitLabel_ReadsExactValues_AndColourLabelsAreRefused()
    {
        using var tmp = new TempFolder();
        string path = tmp.File("label16.png");
        int[] raw = [0, 1, 2, 300, 65535, 2];
        DataTestFiles.WritePng(path, 3, 2, PngColorType.Grayscale, 16, [.. raw.SelectMany(v => new[] { (byte)(v >> 8), (byte)v })]);
        var mapping = LabelValueMapping.Create(3, 255, new Dictionary<int, byte> { [300] = 1, [65535] = 255 });
        CollectionAssert.AreEqual(new byte[] { 0, 1, 2, 1, 255, 2 }, SegmentationFiles.ReadLabel(path, mapping).Values);

        string bad = tmp.File("bad16.png");
        DataTestFiles.WritePng(bad, 2, 1, PngColorType.Grayscale, 16, [0, 0, 1, 0]);
        var error = Assert.Throws<InvalidDataException>(() => SegmentationFiles.ReadLabel(bad, mapping));
        StringAssert.StartsWith(error.Message, $"{bad}: pixel (1, 0) has label value 256");

        string colour = tmp.File("rgb16.png");
        DataTestFiles.WritePng(colour, 1, 1, PngColorType.Rgb, 16, new byte[6]);
        var refused = Assert.Throws<InvalidDataException>(() => SegmentationFiles.ReadLabel(colour, mapping));
        StringAssert.StartsWith(refused.Message, $"{colour}: colour type 2 (Rgb) is not a label map");
    }

    [TestMethod]
    public void CmykJpeg_ReadsAsTheSamePictureAsItsRgbVersion()
    {
        // Pillow's CMYK sample (Adobe APP14, inverted CMYK as Photoshop writes it): red in the top-left corner, black in the
        // bottom-right; its RGB version is the same picture.
        var cmyk = SegmentationFiles.ReadImage(Fixture("pil_sample_cmyk.jpg"));
        var rgb = SegmentationFiles.ReadImage(Fixture("pil_sample_rgb.jpg"));
        Assert.AreEqual((100, 100), (cmyk.Width, cmyk.Height));
        byte[] topLeft = cmyk.Pixels[..3], bottomRight = cmyk.Pixels[^3..];
        Assert.IsTrue(topLeft[0] > 200 && topLeft[1] < 60 && topLeft[2] < 60, $"top-left {string.Join(",", topLeft)} is red");
        Assert.IsTrue(bottomRight.All(v => v < 30), $"bottom-right {string.Join(",", bottomRight)} is black");
        double difference = MeanAbsoluteDifference(cmyk, rgb);
        Assert.IsTrue(difference < 8, $"mean difference {difference:F1} from the RGB version");
    }
}
