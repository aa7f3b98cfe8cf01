using System.Buffers.Binary;
using System.Diagnostics;
using Microsoft.ML.LabelCompletion.Data;

namespace Microsoft.ML.LabelCompletion.Tests.Data;

/// <summary>
/// The pixel limit (checked from the header before anything large is allocated), checked size arithmetic, and every decoder
/// failure as an <see cref="InvalidDataException"/> naming the file, which <see cref="SegmentationDataOptions.SkipBadRows"/> skips.
/// </summary>
[TestClass]
public sealed class ImageLimitsTests
{
    private const string Source = "labels/forged.png";

    /// <summary>A label PNG whose header claims <paramref name="width"/> x <paramref name="height"/> pixels, with one byte of image data.</summary>
    private static byte[] Forged(uint width, uint height, byte depth, byte colourType)
    {
        var chunks = new List<byte[]> { PngBuilder.Ihdr(width, height, depth, colourType) };
        if (colourType == 3) chunks.Add(PngBuilder.Chunk("PLTE", new byte[3 * 4]));
        chunks.Add(PngBuilder.Idat([0]));
        chunks.Add(PngBuilder.Iend());
        return PngBuilder.Build([.. chunks]);
    }

    [TestMethod]
    [DataRow((byte)6, (byte)16, DisplayName = "RGBA 16")]
    [DataRow((byte)2, (byte)16, DisplayName = "RGB 16")]
    [DataRow((byte)4, (byte)16, DisplayName = "gray+alpha 16")]
    [DataRow((byte)0, (byte)16, DisplayName = "gray 16")]
    [DataRow((byte)6, (byte)8, DisplayName = "RGBA 8")]
    [DataRow((byte)3, (byte)8, DisplayName = "palette 8")]
    [DataRow((byte)0, (byte)1, DisplayName = "gray 1")]
    public void LabelPng_ClaimingHugeSize_IsRefusedFromItsHeader(byte colourType, byte depth)
    {
        byte[] png = Forged(int.MaxValue, int.MaxValue, depth, colourType);
        Assert.IsTrue(png.Length <= 100, $"a {png.Length}-byte file");
        long allocated = GC.GetAllocatedBytesForCurrentThread();
        var clock = Stopwatch.StartNew();
        var error = Assert.Throws<InvalidDataException>(() => Png.Decode(png, Source));
        Assert.IsTrue(clock.Elapsed < TimeSpan.FromSeconds(1), $"{clock.Elapsed.TotalSeconds:F2} s");
        Assert.IsTrue(GC.GetAllocatedBytesForCurrentThread() - allocated < 1 << 20, "nothing large is allocated");
        StringAssert.StartsWith(error.Message, Source + ": ");
        StringAssert.Contains(error.Message, "2147483647x2147483647 = 4,611,686,014,132,420,609 pixels is above the limit of 89,478,485 pixels");

        // With the limit lifted, the size computations themselves must refuse (checked arithmetic), not wrap or throw
        // OverflowException.
        var lifted = Assert.Throws<InvalidDataException>(() => Png.Decode(png, Source, long.MaxValue));
        StringAssert.StartsWith(lifted.Message, Source + ": ");
        StringAssert.Contains(lifted.Message, "too large to decode");
    }

    [TestMethod]
    public void PixelLimit_IsSettable_ForLabelsAndImagesAlike()
    {
        using var tmp = new TempFolder();
        string image = tmp.File("a.png"), jpeg = tmp.File("a.jpg"), label = tmp.File("a-label.png");
        var rgb = DataTestFiles.MakeImage(100, 80, 1);
        DataTestFiles.WriteRgbPng(image, rgb);
        DataTestFiles.WriteJpeg(jpeg, rgb);
        DataTestFiles.WriteGrayLabel(label, DataTestFiles.MakeLabel(100, 80, 2, 0, 1));
        var mapping = LabelValueMapping.Identity(2, 255);
        foreach (string file in new[] { image, jpeg })
        {
            Assert.AreEqual(100, SegmentationFiles.ReadImage(file, 8000, ExifOrientationHandling.Apply).Width);
            var error = Assert.Throws<InvalidDataException>(() => SegmentationFiles.ReadImage(file, 7999, ExifOrientationHandling.Apply));
            StringAssert.StartsWith(error.Message, file + ": 100x80 = 8,000 pixels is above the limit of 7,999 pixels");
        }
        Assert.AreEqual(100, SegmentationFiles.ReadLabel(label, mapping, 8000, ExifOrientationHandling.Apply).Width);
        var labelError = Assert.Throws<InvalidDataException>(() => SegmentationFiles.ReadLabel(label, mapping, 7999, ExifOrientationHandling.Apply));
        StringAssert.StartsWith(labelError.Message, label + ": 100x80 = 8,000 pixels is above the limit of 7,999 pixels");
        Assert.Throws<ArgumentOutOfRangeException>(() => SegmentationFiles.ReadImage(image, 0, ExifOrientationHandling.Apply));
    }

    [TestMethod]
    public void SkiaImages_ClaimingHugeSize_AreRefusedBeforeDecoding()
    {
        // A PNG header of 20000x20000 RGB (400 MP, 1.6 GB of RGBA) and a JPEG whose frame header is patched to 30000x30000.
        byte[] png = PngBuilder.Build(PngBuilder.Ihdr(20000, 20000, 8, 2), PngBuilder.Idat(new byte[1 + 3 * 20000]), PngBuilder.Iend());
        byte[] jpeg = PngBuilder.Jpeg(DataTestFiles.MakeImage(16, 16, 3));
        int sof = FindMarker(jpeg, 0xC0);
        BinaryPrimitives.WriteUInt16BigEndian(jpeg.AsSpan(sof + 5), 30000); // height
        BinaryPrimitives.WriteUInt16BigEndian(jpeg.AsSpan(sof + 7), 30000); // width
        foreach (var (name, bytes, size) in new[] { ("huge.png", png, "20000x20000 = 400,000,000"), ("huge.jpg", jpeg, "30000x30000 = 900,000,000") })
        {
            long allocated = GC.GetAllocatedBytesForCurrentThread();
            var clock = Stopwatch.StartNew();
            var error = Assert.Throws<InvalidDataException>(() => SegmentationFiles.DecodeImage(bytes, name));
            Assert.IsTrue(clock.Elapsed < TimeSpan.FromSeconds(1), $"{name}: {clock.Elapsed.TotalSeconds:F2} s");
            Assert.IsTrue(GC.GetAllocatedBytesForCurrentThread() - allocated < 4 << 20, $"{name}: no pixel buffer is allocated");
            StringAssert.StartsWith(error.Message, $"{name}: {size} pixels is above the limit of 89,478,485 pixels");
        }
    }

    [TestMethod]
    public void DataSet_WithTheForgedLabel_NamesTheFile_AndSkipBadRowsSkipsIt()
    {
        using var tmp = new TempFolder();
        DataTestFiles.WriteRgbPng(tmp.File("images", "a.png"), DataTestFiles.MakeImage(8, 8, 1));
        DataTestFiles.WriteGrayLabel(tmp.File("labels", "a.png"), DataTestFiles.MakeLabel(8, 8, 1, 0, 1));
        DataTestFiles.WriteRgbPng(tmp.File("images", "b.png"), DataTestFiles.MakeImage(8, 8, 2));
        string forged = tmp.File("labels", "b.png");
        File.WriteAllBytes(forged, Forged(int.MaxValue, int.MaxValue, 16, 6));
        var options = new SegmentationDataOptions { Root = tmp.Path, Format = SegmentationDataFormat.Folders, NumberOfClasses = 2 };

        var strict = SegmentationDataset.Open(options);
        var error = Assert.Throws<InvalidDataException>(() => strict.Read(1));
        StringAssert.StartsWith(error.Message, forged + ": ");
        StringAssert.Contains(error.Message, "above the limit");

        options.SkipBadRows = true;
        var skipping = SegmentationDataset.Open(options);
        var rows = skipping.ToList();
        Assert.AreEqual(1, rows.Count);
        Assert.AreEqual(1, skipping.BadRowCount);
        StringAssert.StartsWith(skipping.BadRows[0].Reason, forged + ": ");

        options.MaxImagePixels = 63;
        var small = SegmentationDataset.Open(options);
        Assert.AreEqual(0, small.Count(), "8x8 = 64 pixels is above a limit of 63");
        StringAssert.Contains(small.BadRows[0].Reason, "8x8 = 64 pixels is above the limit of 63 pixels");
        options.MaxImagePixels = 0;
        Assert.Throws<ArgumentException>(() => SegmentationDataset.Open(options));
    }

    [TestMethod]
    public void HeaderSidesOutsideTheirRange_AndUnknownFormats_FailNamingTheFile()
    {
        // IHDR sides outside 1..2^31-1 (a side read as int would be negative), and bytes SkiaSharp does not recognise.
        byte[] wide = Forged(0x80000000u, 1, 8, 0);
        var error = Assert.Throws<InvalidDataException>(() => Png.Decode(wide, Source));
        StringAssert.StartsWith(error.Message, Source + ": invalid size 2147483648x1");
        var zero = Assert.Throws<InvalidDataException>(() => Png.Decode(Forged(0, 5, 8, 0), Source));
        StringAssert.StartsWith(zero.Message, Source + ": invalid size 0x5");
        var notAnImage = Assert.Throws<InvalidDataException>(() => SegmentationFiles.DecodeImage([1, 2, 3], "x.jpg"));
        StringAssert.StartsWith(notAnImage.Message, "x.jpg: ");
    }

    private static int FindMarker(byte[] jpeg, byte marker)
    {
        for (int i = 2; i + 1 < jpeg.Length; i++)
            if (jpeg[i] == 0xFF && jpeg[i + 1] == marker) return i;
        Assert.Fail($"marker FF{marker:X2} not found");
        return -1;
    }
}
