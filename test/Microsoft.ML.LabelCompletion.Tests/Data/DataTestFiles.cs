using Microsoft.ML.LabelCompletion.Data;
using SkiaSharp;

namespace Microsoft.ML.LabelCompletion.Tests.Data;

/// <summary>A temporary folder the tests write their own small data files into; deleted on dispose.</summary>
internal sealed class TempFolder : IDisposable
{
    public TempFolder()
    {
        Path = System.IO.Path.Combine(System.IO.Path.GetTempPath(), "lmae-data-tests-" + Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(Path);
    }

    public string Path { get; }

    public string File(params string[] parts)
    {
        string full = System.IO.Path.Combine([Path, .. parts]);
        Directory.CreateDirectory(System.IO.Path.GetDirectoryName(full)!);
        return full;
    }

    public void Dispose()
    {
        try
        {
            Directory.Delete(Path, recursive: true);
        }
        catch (IOException)
        {
        }
    }
}

internal static class DataTestFiles
{
    /// <summary>A deterministic RGB test image with smooth gradients and some noise.</summary>
    public static RgbImage MakeImage(int width, int height, int seed)
    {
        var rng = new Random(seed);
        var px = new byte[width * height * 3];
        for (int y = 0; y < height; y++)
        {
            for (int x = 0; x < width; x++)
            {
                int i = 3 * (y * width + x);
                px[i] = (byte)(x * 255 / Math.Max(1, width - 1));
                px[i + 1] = (byte)(y * 255 / Math.Max(1, height - 1));
                px[i + 2] = (byte)rng.Next(256);
            }
        }
        return new RgbImage(width, height, px);
    }

    /// <summary>A deterministic label map with values drawn from <paramref name="values"/>.</summary>
    public static LabelMap MakeLabel(int width, int height, int seed, params byte[] values)
    {
        var rng = new Random(seed);
        var v = new byte[width * height];
        for (int i = 0; i < v.Length; i++)
            v[i] = values[rng.Next(values.Length)];
        return new LabelMap(width, height, v);
    }

    public static void WriteRgbPng(string path, RgbImage image) => SegmentationFiles.WriteImage(path, image);

    /// <summary>Encodes an RGB image as JPEG with SkiaSharp.</summary>
    public static void WriteJpeg(string path, RgbImage image, int quality = 95)
    {
        using var bitmap = new SKBitmap(new SKImageInfo(image.Width, image.Height, SKColorType.Rgba8888, SKAlphaType.Opaque));
        for (int y = 0; y < image.Height; y++)
        {
            for (int x = 0; x < image.Width; x++)
            {
                int i = 3 * (y * image.Width + x);
                bitmap.SetPixel(x, y, new SKColor(image.Pixels[i], image.Pixels[i + 1], image.Pixels[i + 2]));
            }
        }
        using var data = bitmap.Encode(SKEncodedImageFormat.Jpeg, quality);
        System.IO.File.WriteAllBytes(path, data.ToArray());
    }

    public static void WriteGrayLabel(string path, LabelMap label) => SegmentationFiles.WriteGrayscaleLabel(path, label);

    public static void WritePng(string path, int width, int height, PngColorType type, int depth, byte[] samples, byte[]? palette = null,
        byte[]? transparency = null, bool interlace = false, int? filter = null)
    {
        using var stream = System.IO.File.Create(path);
        Png.Encode(stream, width, height, type, depth, samples, palette, transparency, interlace, filter);
    }

    /// <summary>Decodes with SkiaSharp to RGBA (an independent decoder to check ours against).</summary>
    public static byte[] SkiaRgba(string path, out int width, out int height)
    {
        using var codec = SKCodec.Create(path) ?? throw new InvalidDataException(path);
        width = codec.Info.Width;
        height = codec.Info.Height;
        var info = new SKImageInfo(width, height, SKColorType.Rgba8888, SKAlphaType.Unpremul);
        var rgba = new byte[width * height * 4];
        Assert.AreEqual(SKCodecResult.Success, codec.GetPixels(info, rgba));
        return rgba;
    }

    /// <summary>
    /// The shared CamVid folder: <c>$LMAE_SHARED/data/camvid</c> when LMAE_SHARED is set, else <c>../shared/data/camvid</c>
    /// next to the repository (found by walking up to the folder holding Microsoft.ML.LabelCompletion.sln).
    /// </summary>
    public static string CamVidRoot()
    {
        string? shared = Environment.GetEnvironmentVariable("LMAE_SHARED");
        if (!string.IsNullOrEmpty(shared))
            return System.IO.Path.GetFullPath(System.IO.Path.Combine(shared, "data", "camvid"));
        var dir = new DirectoryInfo(AppContext.BaseDirectory);
        while (dir != null && !System.IO.File.Exists(System.IO.Path.Combine(dir.FullName, "Microsoft.ML.LabelCompletion.sln")))
            dir = dir.Parent;
        if (dir == null)
            Assert.Fail($"Cannot find the repository (Microsoft.ML.LabelCompletion.sln) above {AppContext.BaseDirectory}; set LMAE_SHARED to the shared folder.");
        string candidate = System.IO.Path.GetFullPath(System.IO.Path.Combine(dir!.FullName, "..", "shared", "data", "camvid"));
        // Worktrees live beside the main checkout: /work/wt-x next to /work/shared as well.
        return candidate;
    }

    public static string RequireCamVid()
    {
        string root = CamVidRoot();
        if (!Directory.Exists(root))
            Assert.Fail($"The CamVid data folder {root} does not exist. Put the SegNet CamVid set there or set LMAE_SHARED to the folder holding data/camvid.");
        return root;
    }
}
