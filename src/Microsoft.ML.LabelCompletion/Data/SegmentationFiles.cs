using System.Buffers;
using SkiaSharp;

namespace Microsoft.ML.LabelCompletion.Data;

/// <summary>
/// Reading images and label maps from files and writing label maps, overlays and confidence heat maps. Labels are read
/// by the library's own PNG decoder so palette indices, grayscale ids and 16-bit values come back exactly; images (PNG,
/// JPEG) are decoded by SkiaSharp. Every write is atomic: a temporary file in the destination folder, then a rename.
/// </summary>
public static class SegmentationFiles
{
    /// <summary>Reads an RGB image (PNG or JPEG): grayscale is replicated to three channels, alpha is dropped.</summary>
    /// <param name="path">The image file.</param>
    /// <exception cref="FileNotFoundException">The file does not exist.</exception>
    /// <exception cref="InvalidDataException">The file is not a decodable image, or is truncated or corrupt.</exception>
    public static RgbImage ReadImage(string path) => DecodeImage(ReadAllBytes(path, "image"), path);

    /// <summary>Decodes an RGB image held in memory; <paramref name="source"/> names it in error messages.</summary>
    /// <param name="data">The encoded PNG or JPEG bytes.</param>
    /// <param name="source">A name for error messages, usually the file path.</param>
    public static RgbImage DecodeImage(byte[] data, string source)
    {
        ArgumentNullException.ThrowIfNull(data);
        if (data.Length == 0)
            throw new InvalidDataException($"{source}: the image file is empty.");
        using var skData = SKData.CreateCopy(data);
        using var codec = SKCodec.Create(skData)
            ?? throw new InvalidDataException($"{source}: not a decodable PNG or JPEG image (unrecognised format or corrupt header).");
        int width = codec.Info.Width, height = codec.Info.Height;
        if (width <= 0 || height <= 0)
            throw new InvalidDataException($"{source}: invalid image size {width}x{height}.");
        var info = new SKImageInfo(width, height, SKColorType.Rgba8888, SKAlphaType.Unpremul);
        int count = checked(width * height);
        byte[] rgba = ArrayPool<byte>.Shared.Rent(checked(count * 4));
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
            var rgb = new byte[count * 3];
            for (int i = 0, j = 0; i < count; i++, j += 4)
            {
                rgb[3 * i] = rgba[j];
                rgb[3 * i + 1] = rgba[j + 1];
                rgb[3 * i + 2] = rgba[j + 2];
            }
            return new RgbImage(width, height, rgb);
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(rgba);
        }
    }

    /// <summary>
    /// Reads a label map from a grayscale or palette PNG (any bit depth): each stored value (gray level or palette index,
    /// exactly as stored) is mapped by <paramref name="mapping"/> to a class id or the unknown value.
    /// </summary>
    /// <param name="path">The label PNG.</param>
    /// <param name="mapping">Raw value to class mapping (<see cref="LabelValueMapping.Identity"/> for plain class ids).</param>
    /// <exception cref="FileNotFoundException">The file does not exist.</exception>
    /// <exception cref="InvalidDataException">The file is corrupt or truncated, is not a single-channel label PNG, or holds invalid values.</exception>
    public static LabelMap ReadLabel(string path, LabelValueMapping mapping)
    {
        ArgumentNullException.ThrowIfNull(mapping);
        return ToLabelMap(Png.Decode(ReadAllBytes(path, "label"), path), mapping, path);
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
        var source = Png.Decode(ReadAllBytes(sourceLabelPath, "label"), sourceLabelPath);
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
    /// Writes a file atomically: the content goes to a temporary file in the destination's folder, which is then renamed
    /// over the destination; on failure the temporary file is deleted and the destination is untouched.
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
            using (var stream = new FileStream(temp, FileMode.CreateNew, FileAccess.Write, FileShare.None, 1 << 16))
            {
                write(stream);
                stream.Flush(flushToDisk: true);
            }
            File.Move(temp, full, overwrite: true);
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

    internal static byte[] ReadAllBytes(string path, string what)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        if (!File.Exists(path))
            throw new FileNotFoundException($"{path}: the {what} file does not exist.", path);
        return File.ReadAllBytes(path);
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
