using Microsoft.ML.LabelCompletion.Data;

namespace Microsoft.ML.LabelCompletion.Tests.Data;

[TestClass]
public sealed class PngCodecTests
{
    [TestMethod]
    [DataRow((int)PngColorType.Grayscale, 1)]
    [DataRow((int)PngColorType.Grayscale, 2)]
    [DataRow((int)PngColorType.Grayscale, 4)]
    [DataRow((int)PngColorType.Grayscale, 8)]
    [DataRow((int)PngColorType.Grayscale, 16)]
    [DataRow((int)PngColorType.Palette, 1)]
    [DataRow((int)PngColorType.Palette, 2)]
    [DataRow((int)PngColorType.Palette, 4)]
    [DataRow((int)PngColorType.Palette, 8)]
    [DataRow((int)PngColorType.Rgb, 8)]
    [DataRow((int)PngColorType.Rgb, 16)]
    [DataRow((int)PngColorType.GrayscaleAlpha, 8)]
    [DataRow((int)PngColorType.GrayscaleAlpha, 16)]
    [DataRow((int)PngColorType.Rgba, 8)]
    [DataRow((int)PngColorType.Rgba, 16)]
    public void EveryColourTypeAndDepthRoundTripsExactlyForEveryFilterAndInterlace(int colourType, int depth)
    {
        var type = (PngColorType)colourType;
        using var tmp = new TempFolder();
        // Odd sizes exercise partial bytes at low depths and empty Adam7 passes.
        const int width = 13, height = 7;
        int channels = Png.ChannelsOf(type);
        int bytes = width * height * channels * (depth == 16 ? 2 : 1);
        var rng = new Random(depth * 31 + (int)type);
        var samples = new byte[bytes];
        int max = depth >= 8 ? 255 : (1 << depth) - 1;
        for (int i = 0; i < bytes; i++)
            samples[i] = (byte)rng.Next(max + 1);
        byte[]? palette = type == PngColorType.Palette ? SegmentationPalettes.PascalVoc()[..(3 * (1 << depth))] : null;

        foreach (bool interlace in new[] { false, true })
        {
            foreach (int? filter in new int?[] { null, 0, 1, 2, 3, 4 })
            {
                string path = tmp.File($"t{interlace}{filter}.png");
                DataTestFiles.WritePng(path, width, height, type, depth, samples, palette, interlace: interlace, filter: filter);
                var png = Png.Read(path);
                Assert.AreEqual(width, png.Width);
                Assert.AreEqual(height, png.Height);
                Assert.AreEqual(type, png.ColorType);
                Assert.AreEqual(depth, png.BitDepth);
                CollectionAssert.AreEqual(samples, png.Samples, $"interlace {interlace}, filter {filter}");
                if (palette != null)
                    CollectionAssert.AreEqual(palette, png.Palette);
            }
        }
    }

    [TestMethod]
    public void OurEncodingDecodesIdenticallyInSkiaSharpForEveryFilterAndAdam7()
    {
        // An independent decoder (Skia's libpng) checks the filters and the interlacing our reader and writer agree on.
        using var tmp = new TempFolder();
        var image = DataTestFiles.MakeImage(37, 23, 5);
        foreach (bool interlace in new[] { false, true })
        {
            foreach (int? filter in new int?[] { null, 0, 1, 2, 3, 4 })
            {
                string path = tmp.File($"s{interlace}{filter}.png");
                DataTestFiles.WritePng(path, image.Width, image.Height, PngColorType.Rgb, 8, image.Pixels, interlace: interlace, filter: filter);
                var rgba = DataTestFiles.SkiaRgba(path, out int w, out int h);
                Assert.AreEqual(image.Width, w);
                Assert.AreEqual(image.Height, h);
                for (int i = 0; i < w * h; i++)
                {
                    for (int c = 0; c < 3; c++)
                        Assert.AreEqual(image.Pixels[3 * i + c], rgba[4 * i + c], $"pixel {i} channel {c}, interlace {interlace}, filter {filter}");
                }
                CollectionAssert.AreEqual(image.Pixels, SegmentationFiles.ReadImage(path).Pixels);
            }
        }
    }

    [TestMethod]
    public void CrcMismatchIsReportedWithFileAndChunk()
    {
        using var tmp = new TempFolder();
        string path = tmp.File("crc.png");
        DataTestFiles.WriteGrayLabel(path, DataTestFiles.MakeLabel(8, 8, 1, 0, 1, 2));
        var bytes = File.ReadAllBytes(path);
        bytes[8 + 8 + 3] ^= 0x01; // inside IHDR's data (width)
        File.WriteAllBytes(path, bytes);
        var ex = Assert.ThrowsExactly<InvalidDataException>(() => Png.Read(path));
        StringAssert.Contains(ex.Message, path);
        StringAssert.Contains(ex.Message, "CRC mismatch in chunk IHDR");
    }

    [TestMethod]
    public void TruncationAnywhereIsAnErrorNamingTheFile()
    {
        using var tmp = new TempFolder();
        string path = tmp.File("full.png");
        DataTestFiles.WriteGrayLabel(path, DataTestFiles.MakeLabel(40, 30, 1, 0, 1, 2, 3));
        var bytes = File.ReadAllBytes(path);
        string cut = tmp.File("cut.png");
        for (int length = 0; length < bytes.Length; length += Math.Max(1, bytes.Length / 40))
        {
            File.WriteAllBytes(cut, bytes[..length]);
            var ex = Assert.ThrowsExactly<InvalidDataException>(() => Png.Read(cut), $"cut at {length}");
            StringAssert.Contains(ex.Message, cut);
        }
        File.WriteAllBytes(cut, bytes[..^12]); // everything but IEND
        StringAssert.Contains(Assert.ThrowsExactly<InvalidDataException>(() => Png.Read(cut)).Message, "truncated");
    }

    [TestMethod]
    public void CorruptCompressedDataWithValidCrcIsReported()
    {
        // Rewrite the IDAT payload with garbage and a correct CRC, so only zlib can notice.
        using var tmp = new TempFolder();
        string path = tmp.File("z.png");
        DataTestFiles.WriteGrayLabel(path, DataTestFiles.MakeLabel(16, 16, 3, 0, 1));
        var bytes = File.ReadAllBytes(path);
        int pos = 8;
        while (System.Text.Encoding.ASCII.GetString(bytes, pos + 4, 4) != "IDAT")
            pos += 12 + System.Buffers.Binary.BinaryPrimitives.ReadInt32BigEndian(bytes.AsSpan(pos));
        int length = System.Buffers.Binary.BinaryPrimitives.ReadInt32BigEndian(bytes.AsSpan(pos));
        for (int i = 2; i < length; i++)
            bytes[pos + 8 + i] ^= 0x5A;
        System.Buffers.Binary.BinaryPrimitives.WriteUInt32BigEndian(bytes.AsSpan(pos + 8 + length), Png.Crc32(bytes.AsSpan(pos + 4, 4 + length)));
        File.WriteAllBytes(path, bytes);
        var ex = Assert.ThrowsExactly<InvalidDataException>(() => Png.Read(path));
        StringAssert.Contains(ex.Message, path);
    }

    [TestMethod]
    public void NotAPngAndBadHeadersAreRejected()
    {
        using var tmp = new TempFolder();
        string path = tmp.File("x.png");
        File.WriteAllText(path, "this is not a png file at all");
        StringAssert.Contains(Assert.ThrowsExactly<InvalidDataException>(() => Png.Read(path)).Message, "bad signature");
        Assert.ThrowsExactly<ArgumentException>(() => Png.Encode(new MemoryStream(), 2, 2, PngColorType.Grayscale, 2, new byte[] { 0, 1, 2, 4 }));
        Assert.ThrowsExactly<InvalidDataException>(() => Png.Encode(new MemoryStream(), 2, 2, PngColorType.Rgb, 4, new byte[12]));
    }

    [TestMethod]
    public void PaletteIndexBeyondThePaletteIsRejected()
    {
        using var tmp = new TempFolder();
        string path = tmp.File("p.png");
        DataTestFiles.WritePng(path, 2, 2, PngColorType.Palette, 8, [0, 1, 2, 3], palette: [0, 0, 0, 1, 1, 1, 2, 2, 2]);
        StringAssert.Contains(Assert.ThrowsExactly<InvalidDataException>(() => Png.Read(path)).Message, "palette index 3");
    }

    [TestMethod]
    public void CrcMatchesTheStandardCheckValue() =>
        Assert.AreEqual(0xCBF43926u, Png.Crc32("123456789"u8));
}
