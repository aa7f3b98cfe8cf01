using System.Buffers.Binary;
using System.Diagnostics;
using System.IO.Compression;
using Microsoft.ML.LabelCompletion.Data;
using Microsoft.ML.LabelCompletion.Tests.Data;

namespace Microsoft.ML.LabelCompletion.Tests.Reliability;

/// <summary>
/// Structure-aware fuzzing of both image readers (our PNG decoder for labels, SkiaSharp for images): IHDR extremes, zlib
/// bombs and chunk orders, built with correct CRCs so they reach the checks behind the CRC. Each case has a time and a
/// memory bound (managed bytes allocated by the decoding thread) and must decode or throw an
/// <see cref="InvalidDataException"/> whose message starts with the file's name; where the PNG specification says what
/// the answer is, the test says it too.
/// </summary>
[TestClass]
public sealed class PngStructureFuzzTests
{
    private const string Source = "fuzz/structured.png";

    /// <summary>Runs <paramref name="decode"/> within <paramref name="seconds"/> and <paramref name="bytes"/> of managed allocation; returns the error, or null when it decoded.</summary>
    private static InvalidDataException? Bounded(string what, Action decode, double seconds = 1, long bytes = 16 << 20)
    {
        long allocated = GC.GetAllocatedBytesForCurrentThread();
        var clock = Stopwatch.StartNew();
        InvalidDataException? error = null;
        try
        {
            decode();
        }
        catch (InvalidDataException e)
        {
            StringAssert.StartsWith(e.Message, Source + ": ", what);
            error = e;
        }
        catch (Exception e)
        {
            Assert.Fail($"{what}: {e.GetType().Name} instead of InvalidDataException: {e.Message}");
        }
        Assert.IsTrue(clock.Elapsed.TotalSeconds < seconds, $"{what}: {clock.Elapsed.TotalSeconds:F2} s");
        long used = GC.GetAllocatedBytesForCurrentThread() - allocated;
        Assert.IsTrue(used < bytes, $"{what}: {used:N0} bytes allocated");
        return error;
    }

    private static bool DepthAllowed(byte type, byte depth) => type switch
    {
        0 => depth is 1 or 2 or 4 or 8 or 16,
        3 => depth is 1 or 2 or 4 or 8,
        2 or 4 or 6 => depth is 8 or 16,
        _ => false,
    };

    [TestMethod]
    [Timeout(120_000)]
    public void IhdrExtremes_AreRefusedByTheSpecificationsRules_OrTheLimit_OrDecode()
    {
        uint[] sides = [0, 1, 9, 65535, 0x7FFFFFFF, 0x80000000, 0xFFFFFFFF];
        byte[] types = [0, 1, 2, 3, 4, 5, 6, 7, 255];
        byte[] depths = [0, 1, 2, 3, 4, 8, 16, 32];
        byte[] palette = new byte[3 * 256];
        int cases = 0, decoded = 0;
        foreach (uint width in sides)
        foreach (uint height in sides)
        foreach (byte type in types)
        foreach (byte depth in depths)
        foreach (byte interlace in new byte[] { 0, 1, 2 })
        {
            // Image data for exactly one pixel (a filter byte and the pixel's bytes): all of a 1x1 image, too little for the rest.
            int channels = type switch { 2 => 3, 4 => 2, 6 => 4, _ => 1 };
            var chunks = new List<byte[]> { PngBuilder.Ihdr(width, height, depth, type, interlace: interlace) };
            if (type == 3) chunks.Add(PngBuilder.Chunk("PLTE", palette));
            chunks.Add(PngBuilder.Idat(new byte[1 + Math.Max(1, (channels * depth + 7) / 8)]));
            chunks.Add(PngBuilder.Iend());
            byte[] png = PngBuilder.Build([.. chunks]);
            string what = $"{width}x{height} type {type} depth {depth} interlace {interlace}";
            var error = Bounded(what, () => Png.Decode(png, Source));
            bool sizeOk = width is >= 1 and <= int.MaxValue && height is >= 1 and <= int.MaxValue;
            bool headerOk = sizeOk && DepthAllowed(type, depth) && interlace <= 1;
            if (!headerOk)
                Assert.IsNotNull(error, $"{what}: an IHDR the specification forbids must be refused");
            else if ((long)width * height > SegmentationFiles.DefaultMaxImagePixels)
                StringAssert.Contains(error?.Message, "above the limit", what);
            else if (width == 1 && height == 1)
                Assert.IsNull(error, $"{what}: a valid 1x1 image with enough data decodes ({error?.Message})");
            if (error is null) decoded++;
            // The image reader (SkiaSharp) gets the same file: it may decode what ours refuses (it is laxer), never crash.
            Bounded(what + " (SkiaSharp)", () => SegmentationFiles.DecodeImage(png, Source));
            cases++;
        }
        Assert.AreEqual(7 * 7 * 9 * 8 * 3, cases);
        Assert.IsTrue(decoded > 0, "some headers are valid and decode");
    }

    [TestMethod]
    [Timeout(120_000)]
    public void ZlibBombs_StopAtTheHeadersSize_InBoundedTimeAndMemory()
    {
        // 1. 64 MiB of zeros (64 KiB compressed) behind a 100x100 header that needs 10,100 bytes: refused after reading one byte too many.
        byte[] bomb = PngBuilder.Build(PngBuilder.Ihdr(100, 100, 8, 0), PngBuilder.Chunk("IDAT", Deflated(64 << 20)), PngBuilder.Iend());
        Assert.IsTrue(bomb.Length < 200_000, $"{bomb.Length} bytes");
        var error = Bounded("64 MiB bomb", () => Png.Decode(bomb, Source), bytes: 2 << 20);
        StringAssert.Contains(error?.Message, "more compressed image data than the header's size allows");
        Bounded("64 MiB bomb (SkiaSharp)", () => SegmentationFiles.DecodeImage(bomb, Source), bytes: 2 << 20);

        // 2. A header within the limit that claims 648 MB of 16-bit RGBA samples, with a few bytes of data: it fails as
        //    truncated, and what it allocated follows the data that inflated, not the header.
        byte[] claim = PngBuilder.Build(PngBuilder.Ihdr(9000, 9000, 16, 6), PngBuilder.Idat(new byte[100]), PngBuilder.Iend());
        var truncated = Bounded("648 MB claimed, 100 bytes given", () => Png.Decode(claim, Source), bytes: 4 << 20);
        StringAssert.Contains(truncated?.Message, "truncated image data: 100 of 648009000 bytes decompressed");

        // 3. A big image within the limit whose data is all zeros: it decodes, with memory of the order of its size.
        const int side = 4000;
        byte[] big = PngBuilder.Build(PngBuilder.Ihdr(side, side, 8, 0), PngBuilder.Chunk("IDAT", Deflated(side * (side + 1))), PngBuilder.Iend());
        Assert.IsNull(Bounded("16 MP of zeros", () => Png.Decode(big, Source), seconds: 5, bytes: 4L * side * side));
        Assert.IsNull(Bounded("16 MP of zeros (SkiaSharp)", () => SegmentationFiles.DecodeImage(big, Source), seconds: 5, bytes: 8L * side * side + (8 << 20)));

        // 4. 200,000 empty stored deflate blocks (1 MB of input, no output) before the real data: time grows with the input only.
        byte[] raw = new byte[8 * (1 + 8)];
        using var zlib = new MemoryStream();
        zlib.Write([0x78, 0x01]);
        for (int i = 0; i < 200_000; i++) zlib.Write([0x00, 0x00, 0x00, 0xFF, 0xFF]);
        zlib.WriteByte(0x01);
        Span<byte> len = stackalloc byte[4];
        BinaryPrimitives.WriteUInt16LittleEndian(len, (ushort)raw.Length);
        BinaryPrimitives.WriteUInt16LittleEndian(len[2..], (ushort)~raw.Length);
        zlib.Write(len);
        zlib.Write(raw);
        Span<byte> adler = stackalloc byte[4];
        BinaryPrimitives.WriteUInt32BigEndian(adler, Adler32(raw));
        zlib.Write(adler);
        byte[] slow = PngBuilder.Build(PngBuilder.Ihdr(8, 8, 8, 0), PngBuilder.Chunk("IDAT", zlib.ToArray()), PngBuilder.Iend());
        Assert.IsNull(Bounded("empty stored blocks", () => Png.Decode(slow, Source), seconds: 2, bytes: 8 << 20));
        Bounded("empty stored blocks (SkiaSharp)", () => SegmentationFiles.DecodeImage(slow, Source), seconds: 2, bytes: 8 << 20);
    }

    [TestMethod]
    [Timeout(120_000)]
    public void ChunkOrders_DecodeExactlyWhenTheyMakeAValidImage()
    {
        // A 4x4 palette image with its data split over two IDAT chunks and an ancillary tEXt chunk: all 720 orders of the six.
        byte[] indices = [.. Enumerable.Range(0, 16).Select(i => (byte)(i % 3))];
        byte[] palette = [255, 0, 0, 0, 255, 0, 0, 0, 255];
        var chunks = PngBuilder.Split(PngBuilder.Encode(4, 4, PngColorType.Palette, 8, indices, palette));
        byte[] zlib = chunks.Where(c => c.Type == "IDAT").SelectMany(c => c.Bytes[8..^4]).ToArray();
        var parts = new Dictionary<string, byte[]>
        {
            ["IHDR"] = chunks.Single(c => c.Type == "IHDR").Bytes,
            ["PLTE"] = chunks.Single(c => c.Type == "PLTE").Bytes,
            ["IDAT1"] = PngBuilder.Chunk("IDAT", zlib[..(zlib.Length / 2)]),
            ["IDAT2"] = PngBuilder.Chunk("IDAT", zlib[(zlib.Length / 2)..]),
            ["tEXt"] = PngBuilder.Chunk("tEXt", "Comment\0fuzz"u8),
            ["IEND"] = PngBuilder.Iend(),
        };
        int valid = 0, orders = 0;
        foreach (var order in Permutations([.. parts.Keys]))
        {
            byte[] png = PngBuilder.Build([.. order.Select(k => parts[k])]);
            string what = string.Join(",", order);
            // Valid: IHDR first, PLTE before the IDATs, the IDATs together and in order (PNG specification); the reader stops
            // at IEND, so chunks after it are not read.
            var seen = order.TakeWhile(k => k != "IEND").ToList();
            int plte = seen.IndexOf("PLTE"), first = seen.IndexOf("IDAT1"), second = seen.IndexOf("IDAT2");
            bool allowed = order.Contains("IEND") && seen.Count > 0 && seen[0] == "IHDR" && plte >= 0 && first > plte && second == first + 1;
            var error = Bounded(what, () =>
            {
                var image = Png.Decode(png, Source);
                CollectionAssert.AreEqual(indices, image.Samples, what);
            });
            if (allowed) Assert.IsNull(error, $"{what}: a valid image, refused: {error?.Message}");
            else Assert.IsNotNull(error, $"{what}: not a valid image, decoded");
            Bounded(what + " (SkiaSharp)", () => SegmentationFiles.DecodeImage(png, Source));
            if (allowed) valid++;
            orders++;
        }
        Assert.AreEqual(720, orders);
        // IHDR,PLTE,IDAT1,IDAT2 then IEND, with tEXt after IHDR, after PLTE, after IDAT2 or after IEND.
        Assert.AreEqual(4, valid);

        // Chunks the specification allows once, twice.
        foreach (string twice in new[] { "IHDR", "PLTE" })
        {
            var doubled = new[] { "IHDR", "PLTE", "IDAT1", "IDAT2", "IEND" }.SelectMany(k => k == twice ? new[] { k, k } : new[] { k });
            var error = Bounded("two " + twice, () => Png.Decode(PngBuilder.Build([.. doubled.Select(k => parts[k])]), Source));
            StringAssert.Contains(error?.Message, "more than one " + twice);
        }
        byte[] exif = PngBuilder.Chunk("eXIf", PngBuilder.ExifTiff(1));
        var twoExif = Bounded("two eXIf", () => Png.Decode(PngBuilder.Build(parts["IHDR"], exif, exif, parts["PLTE"], parts["IDAT1"], parts["IDAT2"], parts["IEND"]), Source));
        StringAssert.Contains(twoExif?.Message, "more than one eXIf");
    }

    private static byte[] Deflated(int zeros)
    {
        using var output = new MemoryStream();
        using (var zlib = new ZLibStream(output, CompressionLevel.SmallestSize, leaveOpen: true))
        {
            var block = new byte[1 << 20];
            for (int left = zeros; left > 0; left -= block.Length) zlib.Write(block, 0, Math.Min(block.Length, left));
        }
        return output.ToArray();
    }

    private static uint Adler32(ReadOnlySpan<byte> data)
    {
        uint a = 1, b = 0;
        foreach (byte x in data) { a = (a + x) % 65521; b = (b + a) % 65521; }
        return (b << 16) | a;
    }

    private static IEnumerable<List<string>> Permutations(List<string> items)
    {
        if (items.Count <= 1) { yield return [.. items]; yield break; }
        for (int i = 0; i < items.Count; i++)
        {
            var rest = items.Where((_, j) => j != i).ToList();
            foreach (var tail in Permutations(rest)) yield return [items[i], .. tail];
        }
    }
}
