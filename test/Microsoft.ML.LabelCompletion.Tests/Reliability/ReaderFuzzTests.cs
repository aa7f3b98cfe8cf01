using System.Diagnostics;
using Microsoft.ML.LabelCompletion.Data;
using SkiaSharp;

namespace Microsoft.ML.LabelCompletion.Tests.Reliability;

/// <summary>
/// Mutation fuzzing of the label (our PNG decoder) and image (SkiaSharp) readers: truncated and bit-flipped files either
/// decode or fail with <see cref="InvalidDataException"/> naming the file, never crash, throw anything else, or hang.
/// </summary>
[TestClass]
public sealed class ReaderFuzzTests
{
    private const string Source = "fuzz/input.png";

    /// <summary>Valid seeds for the label reader: every colour type the labels use, bit depths, Adam7, tRNS.</summary>
    private static IEnumerable<(string Name, byte[] Bytes)> LabelSeeds()
    {
        var random = new Random(1);
        byte[] values = new byte[23 * 17];
        for (int i = 0; i < values.Length; i++) values[i] = (byte)(i / 37 % 5);
        byte[] palette = Enumerable.Range(0, 5 * 3).Select(i => (byte)(i * 17)).ToArray();
        yield return ("gray8", Encode(s => Png.Encode(s, 23, 17, PngColorType.Grayscale, 8, values)));
        yield return ("palette8-adam7", Encode(s => Png.Encode(s, 23, 17, PngColorType.Palette, 8, values, palette, interlace: true)));
        yield return ("palette4-trns", Encode(s => Png.Encode(s, 23, 17, PngColorType.Palette, 4, values, palette, transparency: [0, 255])));
        byte[] wide = new byte[23 * 17 * 2];
        random.NextBytes(wide);
        yield return ("gray16", Encode(s => Png.Encode(s, 23, 17, PngColorType.Grayscale, 16, wide)));
    }

    /// <summary>Valid seeds for the image reader: PNG and JPEG from SkiaSharp.</summary>
    private static IEnumerable<(string Name, byte[] Bytes)> ImageSeeds()
    {
        using var bitmap = new SKBitmap(24, 18, SKColorType.Rgba8888, SKAlphaType.Unpremul);
        var random = new Random(2);
        for (int y = 0; y < 18; y++)
            for (int x = 0; x < 24; x++) bitmap.SetPixel(x, y, new SKColor((byte)(x * 10), (byte)(y * 14), (byte)random.Next(256)));
        foreach (var (name, format) in new[] { ("png", SKEncodedImageFormat.Png), ("jpeg", SKEncodedImageFormat.Jpeg) })
        {
            using var data = bitmap.Encode(format, 90);
            yield return (name, data.ToArray());
        }
    }

    [TestMethod]
    [Timeout(60_000)]
    public void LabelReader_TruncatedOrBitFlippedPng_DecodesOrFailsClearly()
    {
        foreach (var (name, bytes) in LabelSeeds())
        {
            Assert.IsNotNull(Png.Decode(bytes, Source), name); // the seed itself is valid
            Fuzz(name, bytes, data => Png.Decode(data, Source), trials: 250);
        }
    }

    [TestMethod]
    [Timeout(60_000)]
    public void ImageReader_TruncatedOrBitFlippedPngAndJpeg_DecodesOrFailsClearly()
    {
        foreach (var (name, bytes) in ImageSeeds())
        {
            Assert.AreEqual(24, SegmentationFiles.DecodeImage(bytes, Source).Width, name);
            Fuzz(name, bytes, data => SegmentationFiles.DecodeImage(data, Source), trials: 150);
        }
    }

    /// <summary>
    /// Truncations at every few bytes and random bit flips (1 to 4 bits) of <paramref name="seed"/>: each mutant must decode
    /// or throw <see cref="InvalidDataException"/> whose message starts with the source, within 2 s.
    /// </summary>
    private static void Fuzz(string name, byte[] seed, Action<byte[]> decode, int trials)
    {
        var random = new Random(name.Length * 7919 + seed.Length);
        var mutants = new List<(string What, byte[] Data)>();
        for (int length = 0; length < seed.Length; length += Math.Max(1, seed.Length / 60)) mutants.Add(($"truncated to {length}", seed[..length]));
        for (int t = 0; t < trials; t++)
        {
            byte[] data = (byte[])seed.Clone();
            int flips = 1 + random.Next(4);
            var positions = new List<int>();
            for (int f = 0; f < flips; f++)
            {
                int p = random.Next(data.Length);
                data[p] ^= (byte)(1 << random.Next(8));
                positions.Add(p);
            }
            mutants.Add(($"bits flipped at {string.Join(",", positions)}", data));
        }
        int rejected = 0;
        foreach (var (what, data) in mutants)
        {
            var clock = Stopwatch.StartNew();
            try
            {
                decode(data);
            }
            catch (InvalidDataException e)
            {
                rejected++;
                StringAssert.StartsWith(e.Message, Source, $"{name}, {what}");
            }
            catch (Exception e)
            {
                Assert.Fail($"{name}, {what}: {e.GetType().Name} instead of InvalidDataException: {e.Message}");
            }
            Assert.IsTrue(clock.Elapsed < TimeSpan.FromSeconds(2), $"{name}, {what}: {clock.Elapsed.TotalSeconds:F1} s");
        }
        Assert.IsTrue(rejected > mutants.Count / 4, $"{name}: only {rejected} of {mutants.Count} mutants were rejected");
    }

    private static byte[] Encode(Action<Stream> write)
    {
        using var stream = new MemoryStream();
        write(stream);
        return stream.ToArray();
    }
}
