using Microsoft.ML.Data;

namespace Microsoft.ML.LabelCompletion.Data;

/// <summary>Conversions between ML.NET's <see cref="MLImage"/> and <see cref="RgbImage"/>.</summary>
public static class ImageConversions
{
    /// <summary>
    /// Copies an <see cref="MLImage"/> (<see cref="MLPixelFormat.Bgra32"/> or <see cref="MLPixelFormat.Rgba32"/>) into an
    /// <see cref="RgbImage"/>, dropping alpha. Row padding in the source, if any, is skipped.
    /// </summary>
    /// <param name="image">The image.</param>
    /// <exception cref="NotSupportedException">The pixel format is neither BGRA32 nor RGBA32.</exception>
    public static RgbImage ToRgbImage(this MLImage image)
    {
        ArgumentNullException.ThrowIfNull(image);
        int width = image.Width, height = image.Height;
        bool bgra = image.PixelFormat switch
        {
            MLPixelFormat.Bgra32 => true,
            MLPixelFormat.Rgba32 => false,
            var f => throw new NotSupportedException($"MLImage pixel format {f} is not supported; expected Bgra32 or Rgba32."),
        };
        ReadOnlySpan<byte> pixels = image.Pixels;
        int stride = height > 0 ? pixels.Length / height : 0;
        if (width <= 0 || height <= 0 || stride < width * 4L)
            throw new InvalidDataException($"MLImage holds {pixels.Length} bytes, too few for {width}x{height} 32-bit pixels.");
        if ((long)width * height * 3 > Array.MaxLength)
            throw new InvalidDataException($"MLImage of {width}x{height} pixels is too large to convert in memory.");
        var rgb = new byte[width * height * 3];
        int r = bgra ? 2 : 0, b = bgra ? 0 : 2;
        for (int y = 0; y < height; y++)
        {
            var row = pixels.Slice(y * stride, width * 4);
            int o = y * width * 3;
            for (int x = 0; x < width; x++, o += 3)
            {
                rgb[o] = row[4 * x + r];
                rgb[o + 1] = row[4 * x + 1];
                rgb[o + 2] = row[4 * x + b];
            }
        }
        return new RgbImage(width, height, rgb);
    }

    /// <summary>Creates an opaque <see cref="MLPixelFormat.Bgra32"/> <see cref="MLImage"/> from an <see cref="RgbImage"/>.</summary>
    /// <param name="image">The image.</param>
    public static MLImage ToMLImage(this RgbImage image)
    {
        ArgumentNullException.ThrowIfNull(image);
        image.Validate();
        int n = image.Width * image.Height; // Validate checked that Pixels holds n * 3 bytes
        if ((long)n * 4 > Array.MaxLength)
            throw new InvalidDataException($"RgbImage of {image.Width}x{image.Height} pixels is too large for an MLImage.");
        var bgra = new byte[n * 4];
        var rgb = image.Pixels;
        for (int i = 0; i < n; i++)
        {
            bgra[4 * i] = rgb[3 * i + 2];
            bgra[4 * i + 1] = rgb[3 * i + 1];
            bgra[4 * i + 2] = rgb[3 * i];
            bgra[4 * i + 3] = 255;
        }
        return MLImage.CreateFromPixels(image.Width, image.Height, MLPixelFormat.Bgra32, bgra);
    }
}
