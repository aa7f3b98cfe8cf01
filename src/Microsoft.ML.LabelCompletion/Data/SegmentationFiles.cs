using System.Buffers;
using System.Globalization;
using SkiaSharp;

namespace Microsoft.ML.LabelCompletion.Data;

/// <summary>
/// Reading images and label maps from files and writing label maps, overlays and confidence heat maps. Labels are read
/// by the library's own PNG decoder so palette indices, grayscale ids and 16-bit values come back exactly; images (PNG,
/// JPEG) are decoded by SkiaSharp. Both readers refuse an image above a pixel limit from its header, before any pixel
/// buffer is allocated, and report every decoding failure as an <see cref="InvalidDataException"/> naming the file. Every
/// write is atomic and durable: a temporary file in the destination folder, flushed to the disk, renamed, and the folder
/// flushed too.
/// </summary>
public static class SegmentationFiles
{
    /// <summary>
    /// The default pixel limit (width x height) of an image or label: 89,478,485, Pillow's <c>MAX_IMAGE_PIXELS</c>
    /// (a quarter GiB of 24-bit pixels; a 9459 x 9459 image). Larger files are refused from their header.
    /// </summary>
    public const long DefaultMaxImagePixels = Png.DefaultMaxPixels;

    // Bytes an image file may have beyond 8 per pixel (16-bit RGBA, uncompressed): metadata, thumbnails, colour profiles.
    private const long FileSizeSlack = 64L << 20;

    /// <summary>
    /// Reads an RGB image (PNG or JPEG): grayscale is replicated to three channels, alpha is dropped, 16-bit samples are
    /// reduced to 8 bits, CMYK JPEGs are converted to RGB; the EXIF orientation is applied and the default pixel limit
    /// (<see cref="DefaultMaxImagePixels"/>) holds.
    /// </summary>
    /// <param name="path">The image file.</param>
    /// <exception cref="FileNotFoundException">The file does not exist.</exception>
    /// <exception cref="InvalidDataException">The file is not a decodable image, is truncated or corrupt, or is above the pixel limit.</exception>
    public static RgbImage ReadImage(string path) => ReadImage(path, DefaultMaxImagePixels, ExifOrientationHandling.Apply);

    /// <summary>Reads an RGB image (see <see cref="ReadImage(string)"/>) with a pixel limit and an EXIF orientation rule.</summary>
    /// <param name="path">The image file.</param>
    /// <param name="maxPixels">Largest width x height accepted (checked from the header before decoding).</param>
    /// <param name="orientation">What to do with an EXIF orientation tag.</param>
    /// <exception cref="FileNotFoundException">The file does not exist.</exception>
    /// <exception cref="InvalidDataException">The file is not a decodable image, is truncated or corrupt, is above the pixel limit, or its orientation is refused.</exception>
    public static RgbImage ReadImage(string path, long maxPixels, ExifOrientationHandling orientation)
        => DecodeImage(ReadAllBytes(path, "image", maxPixels), path, maxPixels, orientation, out _);

    /// <summary>Decodes an RGB image held in memory (see <see cref="ReadImage(string)"/>); <paramref name="source"/> names it in error messages.</summary>
    /// <param name="data">The encoded PNG or JPEG bytes.</param>
    /// <param name="source">A name for error messages, usually the file path.</param>
    public static RgbImage DecodeImage(byte[] data, string source)
        => DecodeImage(data, source, DefaultMaxImagePixels, ExifOrientationHandling.Apply, out _);

    /// <summary>Decodes an RGB image held in memory with a pixel limit and an EXIF orientation rule.</summary>
    /// <param name="data">The encoded PNG or JPEG bytes.</param>
    /// <param name="source">A name for error messages, usually the file path.</param>
    /// <param name="maxPixels">Largest width x height accepted (checked from the header before decoding).</param>
    /// <param name="orientation">What to do with an EXIF orientation tag.</param>
    public static RgbImage DecodeImage(byte[] data, string source, long maxPixels, ExifOrientationHandling orientation)
        => DecodeImage(data, source, maxPixels, orientation, out _);

    /// <summary>As the public overload; <paramref name="appliedOrientation"/> is the EXIF orientation applied (1 when none was).</summary>
    internal static RgbImage DecodeImage(byte[] data, string source, long maxPixels, ExifOrientationHandling orientation, out int appliedOrientation)
    {
        ArgumentNullException.ThrowIfNull(data);
        CheckMaxPixels(maxPixels);
        if (data.Length == 0)
            throw new InvalidDataException($"{source}: the image file is empty.");
        try
        {
            return DecodeWithSkia(data, source, maxPixels, orientation, out appliedOrientation);
        }
        catch (Exception e) when (e is not (InvalidDataException or OutOfMemoryException))
        {
            // SkiaSharp reports problems through results and nulls; anything thrown on the way is a bad file too.
            throw new InvalidDataException($"{source}: cannot be decoded as an image ({e.GetType().Name}: {e.Message}).", e);
        }
    }

    private static RgbImage DecodeWithSkia(byte[] data, string source, long maxPixels, ExifOrientationHandling handling, out int appliedOrientation)
    {
        appliedOrientation = ExifOrientation.Upright;
        using var skData = SKData.CreateCopy(data);
        using var codec = SKCodec.Create(skData)
            ?? throw new InvalidDataException($"{source}: not a decodable PNG or JPEG image (unrecognised format or corrupt header).");
        // The header's size, before any pixel buffer exists.
        int width = codec.Info.Width, height = codec.Info.Height;
        if (width <= 0 || height <= 0)
            throw new InvalidDataException($"{source}: invalid image size {width}x{height}.");
        Png.CheckPixelLimit(source, width, height, maxPixels);
        long count = (long)width * height;
        if (count * 4 > Array.MaxLength)
            throw new InvalidDataException($"{source}: {width}x{height} image is too large to decode in memory.");
        // SkiaSharp reads JPEG's EXIF orientation; PNG's eXIf chunk it does not, so that one is read here.
        int orientation = codec.EncodedFormat == SKEncodedImageFormat.Png ? Png.ReadOrientation(data) : (int)codec.EncodedOrigin;
        if (orientation is < 1 or > 8) orientation = ExifOrientation.Upright;
        if (orientation != ExifOrientation.Upright && handling == ExifOrientationHandling.Refuse)
            throw new InvalidDataException(
                $"{source}: the image carries EXIF orientation {orientation} ({ExifOrientation.Describe(orientation)}) and orientations are refused (ExifOrientation = Refuse).");

        var info = new SKImageInfo(width, height, SKColorType.Rgba8888, SKAlphaType.Unpremul);
        int n = (int)count;
        byte[] rgba = ArrayPool<byte>.Shared.Rent(n * 4);
        byte[] rgb;
        try
        {
            SKCodecResult result;
            unsafe
            {
                fixed (byte* p = rgba)
                    result = codec.GetPixels(info, (IntPtr)p);
            }
            if (result != SKCodecResult.Success)
            {
                string problem = result == SKCodecResult.IncompleteInput ? "truncated image data" : $"corrupt image data ({result})";
                throw new InvalidDataException($"{source}: {problem}.");
            }
            rgb = new byte[n * 3];
            for (int i = 0, j = 0; i < n; i++, j += 4)
            {
                rgb[3 * i] = rgba[j];
                rgb[3 * i + 1] = rgba[j + 1];
                rgb[3 * i + 2] = rgba[j + 2];
            }
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(rgba);
        }
        if (orientation == ExifOrientation.Upright || handling == ExifOrientationHandling.Ignore)
            return new RgbImage(width, height, rgb);
        appliedOrientation = orientation;
        var displayed = ExifOrientation.ToDisplayed(rgb, width, height, 3, orientation, out int displayedWidth, out int displayedHeight);
        return new RgbImage(displayedWidth, displayedHeight, displayed);
    }

    /// <summary>
    /// Reads a label map from a grayscale or palette PNG (any bit depth): each stored value (gray level or palette index,
    /// exactly as stored) is mapped by <paramref name="mapping"/> to a class id or the unknown value. The default pixel limit
    /// (<see cref="DefaultMaxImagePixels"/>) holds, and a label with an EXIF orientation other than 1 is refused
    /// (<see cref="ExifOrientationHandling.Apply"/>).
    /// </summary>
    /// <param name="path">The label PNG.</param>
    /// <param name="mapping">Raw value to class mapping (<see cref="LabelValueMapping.Identity"/> for plain class ids).</param>
    /// <exception cref="FileNotFoundException">The file does not exist.</exception>
    /// <exception cref="InvalidDataException">The file is corrupt or truncated, is not a single-channel label PNG, holds invalid values, is above the pixel limit, or is not upright.</exception>
    public static LabelMap ReadLabel(string path, LabelValueMapping mapping)
        => ReadLabel(path, mapping, DefaultMaxImagePixels, ExifOrientationHandling.Apply);

    /// <summary>Reads a label map (see <see cref="ReadLabel(string, LabelValueMapping)"/>) with a pixel limit and an EXIF orientation rule.</summary>
    /// <param name="path">The label PNG.</param>
    /// <param name="mapping">Raw value to class mapping.</param>
    /// <param name="maxPixels">Largest width x height accepted (checked from the header before decoding).</param>
    /// <param name="orientation">
    /// What to do with an EXIF orientation (<c>eXIf</c> chunk) other than 1: <see cref="ExifOrientationHandling.Ignore"/> uses
    /// the stored pixels, the other two refuse the label (labels are never turned: a completed label is written back upright).
    /// </param>
    /// <exception cref="FileNotFoundException">The file does not exist.</exception>
    /// <exception cref="InvalidDataException">The file is corrupt or truncated, is not a single-channel label PNG, holds invalid values, is above the pixel limit, or is not upright.</exception>
    public static LabelMap ReadLabel(string path, LabelValueMapping mapping, long maxPixels, ExifOrientationHandling orientation)
    {
        ArgumentNullException.ThrowIfNull(mapping);
        CheckMaxPixels(maxPixels);
        var png = Png.Decode(ReadAllBytes(path, "label", maxPixels), path, maxPixels);
        if (png.Orientation != ExifOrientation.Upright && orientation != ExifOrientationHandling.Ignore)
            throw new InvalidDataException(
                $"{path}: the label PNG carries EXIF orientation {png.Orientation} ({ExifOrientation.Describe(png.Orientation)}); label maps must be stored upright, "
                + "because completed labels are written without it. Save it without its eXIf chunk, or set ExifOrientation = Ignore to use the stored pixels of images and labels alike.");
        return ToLabelMap(png, mapping, path);
    }

    /// <summary>Writes a label map as an 8-bit grayscale PNG whose gray level is the value (class id or unknown).</summary>
    /// <param name="path">Destination file (written atomically).</param>
    /// <param name="label">The label map.</param>
    public static void WriteGrayscaleLabel(string path, LabelMap label)
    {
        ArgumentNullException.ThrowIfNull(label);
        CheckLabel(label);
        WriteAtomically(path, s => Png.Encode(s, label.Width, label.Height, PngColorType.Grayscale, 8, label.Values));
    }

    /// <summary>Writes a label map as an 8-bit palette PNG: the index is the value, <paramref name="paletteRgb"/> gives the colours.</summary>
    /// <param name="path">Destination file (written atomically).</param>
    /// <param name="label">The label map.</param>
    /// <param name="paletteRgb">1..256 RGB triples; every value in the label must have an entry.</param>
    public static void WritePaletteLabel(string path, LabelMap label, byte[] paletteRgb)
    {
        ArgumentNullException.ThrowIfNull(label);
        ArgumentNullException.ThrowIfNull(paletteRgb);
        CheckLabel(label);
        int entries = paletteRgb.Length / 3;
        foreach (byte v in label.Values)
        {
            if (v >= entries)
                throw new ArgumentException($"Label value {v} has no entry in the {entries}-colour palette.", nameof(paletteRgb));
        }
        WriteAtomically(path, s => Png.Encode(s, label.Width, label.Height, PngColorType.Palette, 8, label.Values, paletteRgb));
    }

    /// <summary>
    /// Writes <paramref name="label"/> in the format of the label file it came from: same colour type, bit depth, palette and
    /// transparency; values go back through <paramref name="mapping"/>, and pixels whose value did not change keep the raw
    /// value they had (so a label written back untouched is identical pixel for pixel, including raw values that read as unknown).
    /// </summary>
    /// <param name="destinationPath">Destination file (written atomically); may be the source itself.</param>
    /// <param name="label">The (completed) label map, same size as the source.</param>
    /// <param name="sourceLabelPath">The label file the map was read from.</param>
    /// <param name="mapping">The mapping the source was read with.</param>
    public static void WriteLabelLike(string destinationPath, LabelMap label, string sourceLabelPath, LabelValueMapping mapping)
    {
        ArgumentNullException.ThrowIfNull(label);
        ArgumentNullException.ThrowIfNull(mapping);
        CheckLabel(label);
        // The source was read before, at this size (whatever pixel limit that read had), and as stored (labels are never turned).
        long limit = Math.Max(DefaultMaxImagePixels, (long)label.Width * label.Height);
        var source = Png.Decode(ReadAllBytes(sourceLabelPath, "label", limit), sourceLabelPath, limit);
        if (source.ColorType is not (PngColorType.Grayscale or PngColorType.Palette))
            throw new InvalidDataException($"{sourceLabelPath}: colour type {(int)source.ColorType} is not a label PNG (grayscale or palette).");
        if (source.Width != label.Width || source.Height != label.Height)
            throw new ArgumentException($"The label is {label.Width}x{label.Height} but its source {sourceLabelPath} is {source.Width}x{source.Height}.", nameof(label));

        int n = label.Values.Length;
        int max = (1 << source.BitDepth) - 1;
        if (source.ColorType == PngColorType.Palette)
            max = Math.Min(max, source.Palette!.Length / 3 - 1);
        var samples = new byte[n * source.BytesPerSample];
        Span<int> toRaw = stackalloc int[256];
        for (int v = 0; v < 256; v++)
            toRaw[v] = v < mapping.NumberOfClasses || v == mapping.UnknownLabel ? mapping.ToRaw((byte)v) : -1;
        for (int i = 0; i < n; i++)
        {
            int raw = source.Sample(i);
            byte value = label.Values[i];
            if (!(mapping.TryMap(raw, out byte old) && old == value))
            {
                raw = toRaw[value];
                if (raw < 0)
                    throw new ArgumentException($"Pixel ({i % label.Width}, {i / label.Width}) has value {value}, which is neither a class (0..{mapping.NumberOfClasses - 1}) nor the unknown value {mapping.UnknownLabel}.", nameof(label));
                if (raw > max)
                    throw new InvalidDataException($"{sourceLabelPath}: value {raw} for class {value} does not fit the source's {(source.ColorType == PngColorType.Palette ? $"{max + 1}-entry palette" : $"{source.BitDepth}-bit depth")}.");
            }
            if (source.BytesPerSample == 2)
            {
                samples[2 * i] = (byte)(raw >> 8);
                samples[2 * i + 1] = (byte)raw;
            }
            else
            {
                samples[i] = (byte)raw;
            }
        }
        WriteAtomically(destinationPath, s => Png.Encode(s, source.Width, source.Height, source.ColorType, source.BitDepth, samples,
            source.ColorType == PngColorType.Palette ? source.Palette : null, source.Transparency));
    }

    /// <summary>Writes an RGB image as a PNG.</summary>
    /// <param name="path">Destination file (written atomically).</param>
    /// <param name="image">The image.</param>
    public static void WriteImage(string path, RgbImage image)
    {
        ArgumentNullException.ThrowIfNull(image);
        image.Validate();
        WriteAtomically(path, s => Png.Encode(s, image.Width, image.Height, PngColorType.Rgb, 8, image.Pixels));
    }

    /// <summary>
    /// Writes a colour overlay PNG for review by eye: each pixel is <c>(1-opacity)*image + opacity*colour(class)</c>; unknown
    /// pixels (and values without a colour) show the image unchanged.
    /// </summary>
    /// <param name="path">Destination file (written atomically).</param>
    /// <param name="image">The image.</param>
    /// <param name="label">The label map, same size.</param>
    /// <param name="classColoursRgb">RGB triples by class id, e.g. <see cref="SegmentationPalettes.For"/>.</param>
    /// <param name="unknownLabel">The unknown value.</param>
    /// <param name="opacity">Weight of the class colour, 0..1. Default 0.5.</param>
    public static void WriteOverlay(string path, RgbImage image, LabelMap label, byte[] classColoursRgb, byte unknownLabel = 255, float opacity = 0.5f)
    {
        ArgumentNullException.ThrowIfNull(image);
        ArgumentNullException.ThrowIfNull(label);
        ArgumentNullException.ThrowIfNull(classColoursRgb);
        image.Validate();
        CheckLabel(label);
        if (image.Width != label.Width || image.Height != label.Height)
            throw new ArgumentException($"The image is {image.Width}x{image.Height} but the label is {label.Width}x{label.Height}.", nameof(label));
        if (!(opacity >= 0 && opacity <= 1))
            throw new ArgumentOutOfRangeException(nameof(opacity), opacity, "Opacity is 0..1.");
        int colours = classColoursRgb.Length / 3;
        var rgb = new byte[image.Pixels.Length];
        for (int i = 0; i < label.Values.Length; i++)
        {
            byte v = label.Values[i];
            for (int c = 0; c < 3; c++)
            {
                byte px = image.Pixels[3 * i + c];
                rgb[3 * i + c] = v == unknownLabel || v >= colours
                    ? px
                    : (byte)Math.Clamp(MathF.Round((1 - opacity) * px + opacity * classColoursRgb[3 * v + c]), 0, 255);
            }
        }
        WriteAtomically(path, s => Png.Encode(s, image.Width, image.Height, PngColorType.Rgb, 8, rgb));
    }

    /// <summary>
    /// Writes a confidence heat map PNG: confidence 0 is dark blue, 0.5 green-yellow, 1 dark red (a blue-cyan-yellow-red ramp);
    /// pixels whose confidence is NaN (e.g. not completed) are black.
    /// </summary>
    /// <param name="path">Destination file (written atomically).</param>
    /// <param name="confidence">Row-major confidences in 0..1, <c>width * height</c> values.</param>
    /// <param name="width">Width in pixels.</param>
    /// <param name="height">Height in pixels.</param>
    public static void WriteConfidenceHeatMap(string path, float[] confidence, int width, int height)
    {
        ArgumentNullException.ThrowIfNull(confidence);
        if (width <= 0 || height <= 0 || confidence.Length != (long)width * height)
            throw new ArgumentException($"{confidence.Length} confidences do not make a {width}x{height} map.", nameof(confidence));
        var rgb = new byte[confidence.Length * 3];
        for (int i = 0; i < confidence.Length; i++)
        {
            float c = confidence[i];
            if (float.IsNaN(c))
                continue;
            HeatColour(Math.Clamp(c, 0f, 1f), out rgb[3 * i], out rgb[3 * i + 1], out rgb[3 * i + 2]);
        }
        WriteAtomically(path, s => Png.Encode(s, width, height, PngColorType.Rgb, 8, rgb));
    }

    /// <summary>
    /// Writes a file atomically and durably: the content goes to a temporary file in the destination's folder, which is
    /// flushed to the disk (<c>fsync</c>), renamed over the destination, and then the folder is flushed too, so that the new
    /// name survives a power cut (on Windows NTFS journals the rename). On failure the temporary file is deleted and the
    /// destination is untouched. <paramref name="write"/> may close the stream.
    /// </summary>
    /// <param name="path">Destination file.</param>
    /// <param name="write">Writes the content.</param>
    public static void WriteAtomically(string path, Action<Stream> write)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        ArgumentNullException.ThrowIfNull(write);
        string full = Path.GetFullPath(path);
        string folder = Path.GetDirectoryName(full)!;
        Directory.CreateDirectory(folder);
        string temp = Path.Combine(folder, $".{Path.GetFileName(full)}.{Guid.NewGuid():N}.tmp");
        try
        {
            bool flushed = false;
            using (var stream = new FileStream(temp, FileMode.CreateNew, FileAccess.Write, FileShare.None, 1 << 16))
            {
                write(stream);
                if (stream.CanWrite)
                {
                    stream.Flush(flushToDisk: true);
                    flushed = true;
                }
            }
            if (!flushed)
            {
                // The writer closed the stream (as some serializers do): its data is in the page cache, flush it from there.
                using var reopened = new FileStream(temp, FileMode.Open, FileAccess.ReadWrite, FileShare.None, 1);
                reopened.Flush(flushToDisk: true);
            }
            File.Move(temp, full, overwrite: true);
            Internal.FileDurability.FlushFolder(folder);
        }
        catch
        {
            try
            {
                File.Delete(temp);
            }
            catch (IOException)
            {
                // The original error matters more than a leftover temporary file.
            }
            throw;
        }
    }

    internal static LabelMap ToLabelMap(PngImage png, LabelValueMapping mapping, string source)
    {
        if (png.ColorType is not (PngColorType.Grayscale or PngColorType.Palette))
            throw new InvalidDataException(
                $"{source}: colour type {(int)png.ColorType} ({png.ColorType}) is not a label map; expected a single-channel grayscale or palette PNG of class ids.");
        int n = png.Width * png.Height;
        var values = new byte[n];
        if (png.BitDepth <= 8)
        {
            short[] lut = mapping.Lookup8();
            byte[] samples = png.Samples;
            for (int i = 0; i < n; i++)
            {
                short v = lut[samples[i]];
                if (v < 0)
                    throw InvalidValue(source, png.Width, i, samples[i], mapping);
                values[i] = (byte)v;
            }
        }
        else
        {
            for (int i = 0; i < n; i++)
            {
                int raw = png.Sample(i);
                if (!mapping.TryMap(raw, out byte v))
                    throw InvalidValue(source, png.Width, i, raw, mapping);
                values[i] = v;
            }
        }
        return new LabelMap(png.Width, png.Height, values);
    }

    private static InvalidDataException InvalidValue(string source, int width, int i, int raw, LabelValueMapping mapping) =>
        new($"{source}: pixel ({i % width}, {i / width}) has label value {raw}, which is neither a class (0..{mapping.NumberOfClasses - 1}) nor the unknown value {mapping.UnknownLabel}" +
            " nor a value the format maps (check the number of classes).");

    internal static byte[] ReadAllBytes(string path, string what, long maxPixels = DefaultMaxImagePixels)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        if (!File.Exists(path))
            throw new FileNotFoundException($"{path}: the {what} file does not exist.", path);
        // No image within the pixel limit needs more than 8 bytes per pixel (16-bit RGBA, stored without compression) plus
        // its metadata; a larger file is refused before it is read into memory.
        long length = new FileInfo(path).Length;
        long cap = maxPixels > (Array.MaxLength - FileSizeSlack) / 8 ? Array.MaxLength : maxPixels * 8 + FileSizeSlack;
        if (length > cap)
            throw new InvalidDataException(string.Create(CultureInfo.InvariantCulture,
                $"{path}: the {what} file has {length:N0} bytes, more than any image within the limit of {maxPixels:N0} pixels needs."));
        return File.ReadAllBytes(path);
    }

    private static void CheckMaxPixels(long maxPixels)
    {
        if (maxPixels < 1)
            throw new ArgumentOutOfRangeException(nameof(maxPixels), maxPixels, "The pixel limit must be at least 1.");
    }

    private static void CheckLabel(LabelMap label)
    {
        if (label.Width <= 0 || label.Height <= 0 || label.Values.Length != (long)label.Width * label.Height)
            throw new ArgumentException($"{label.Values.Length} values do not make a {label.Width}x{label.Height} label map.", nameof(label));
    }

    private static void HeatColour(float t, out byte r, out byte g, out byte b)
    {
        // Piecewise-linear "jet"-like ramp: 0 dark blue, 0.25 cyan... 0.5 green-yellow, 0.75 orange, 1 dark red.
        float rf = Math.Clamp(1.5f - Math.Abs(4f * t - 3f), 0f, 1f);
        float gf = Math.Clamp(1.5f - Math.Abs(4f * t - 2f), 0f, 1f);
        float bf = Math.Clamp(1.5f - Math.Abs(4f * t - 1f), 0f, 1f);
        r = (byte)MathF.Round(rf * 255);
        g = (byte)MathF.Round(gf * 255);
        b = (byte)MathF.Round(bf * 255);
    }
}
