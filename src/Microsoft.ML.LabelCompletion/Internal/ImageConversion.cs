using Microsoft.ML.Data;
using Microsoft.ML.LabelCompletion.Data;

namespace Microsoft.ML.LabelCompletion.Internal;

/// <summary>Converts ML.NET's <see cref="MLImage"/> (32-bit BGRA or RGBA pixels) to the model's <see cref="RgbImage"/>.</summary>
internal static class ImageConversion
{
    /// <summary>Copies the colour channels of <paramref name="image"/> into an interleaved RGB buffer (alpha is dropped).</summary>
    public static RgbImage ToRgb(MLImage image, string source)
    {
        ArgumentNullException.ThrowIfNull(image);
        int width = image.Width, height = image.Height;
        if (width <= 0 || height <= 0)
            throw new InvalidDataException($"{source}: the image has size {width}x{height}.");
        if (image.BitsPerPixel != 32)
            throw new InvalidDataException($"{source}: the image has {image.BitsPerPixel} bits per pixel; 32-bit BGRA or RGBA images are expected.");
        (int r, int b) = image.PixelFormat switch
        {
            MLPixelFormat.Bgra32 => (2, 0),
            MLPixelFormat.Rgba32 => (0, 2),
            _ => throw new InvalidDataException($"{source}: the image's pixel format {image.PixelFormat} is not supported (BGRA32 or RGBA32 expected)."),
        };
        ReadOnlySpan<byte> pixels = image.Pixels;
        long count = (long)width * height;
        if (pixels.Length < count * 4)
            throw new InvalidDataException($"{source}: the image holds {pixels.Length} bytes, fewer than {width}x{height}x4.");
        if (count * 3 > Array.MaxLength)
            throw new InvalidDataException($"{source}: the {width}x{height} image is too large to convert in memory.");
        var rgb = new byte[count * 3];
        for (int i = 0, s = 0, d = 0; i < count; i++, s += 4, d += 3)
        {
            rgb[d] = pixels[s + r];
            rgb[d + 1] = pixels[s + 1];
            rgb[d + 2] = pixels[s + b];
        }
        return new RgbImage(width, height, rgb);
    }
}
