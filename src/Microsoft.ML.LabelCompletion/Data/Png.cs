using System.Buffers.Binary;
using System.Globalization;
using System.IO.Compression;

namespace Microsoft.ML.LabelCompletion.Data;

/// <summary>PNG colour types (PNG specification, IHDR).</summary>
internal enum PngColorType : byte
{
    Grayscale = 0,
    Rgb = 2,
    Palette = 3,
    GrayscaleAlpha = 4,
    Rgba = 6,
}

/// <summary>
/// A decoded PNG with its samples exactly as stored: palette indices stay indices, grayscale values are not scaled,
/// samples of bit depth 1, 2 and 4 are unpacked to one byte each, 16-bit samples are two bytes, big-endian.
/// </summary>
internal sealed class PngImage
{
    public PngImage(int width, int height, int bitDepth, PngColorType colorType, byte[] samples, byte[]? palette, byte[]? transparency,
        int orientation = ExifOrientation.Upright)
    {
        Orientation = orientation;
        Width = width;
        Height = height;
        BitDepth = bitDepth;
        ColorType = colorType;
        Samples = samples;
        Palette = palette;
        Transparency = transparency;
    }

    public int Width { get; }
    public int Height { get; }
    public int BitDepth { get; }
    public PngColorType ColorType { get; }
    public int Channels => Png.ChannelsOf(ColorType);
    public int BytesPerSample => BitDepth == 16 ? 2 : 1;

    /// <summary>Samples row by row, pixel by pixel, channel by channel (see the class remarks).</summary>
    public byte[] Samples { get; }

    /// <summary>PLTE chunk: RGB triples (palette images, or a suggested palette for colour images).</summary>
    public byte[]? Palette { get; }

    /// <summary>tRNS chunk, raw.</summary>
    public byte[]? Transparency { get; }

    /// <summary>The EXIF orientation of an <c>eXIf</c> chunk (1..8), 1 when there is none; the samples are as stored.</summary>
    public int Orientation { get; }

    /// <summary>The value of sample <paramref name="index"/> (in samples, not bytes).</summary>
    public int Sample(int index) => BitDepth == 16 ? (Samples[2 * index] << 8) | Samples[2 * index + 1] : Samples[index];
}

/// <summary>
/// A small, strict PNG reader and writer (PNG specification, ISO/IEC 15948): every colour type (0, 2, 3, 4, 6), bit
/// depths 1/2/4/8/16, all five filter types, Adam7 interlacing, CRC checked on every chunk, zlib through
/// <see cref="ZLibStream"/> (which checks the Adler-32). The header's size is checked against a pixel limit before anything
/// is allocated, every size computation is checked arithmetic, and every failure is an <see cref="InvalidDataException"/>
/// whose message starts with the source.
/// </summary>
internal static class Png
{
    private static ReadOnlySpan<byte> Signature => [137, 80, 78, 71, 13, 10, 26, 10];

    // Adam7 passes: x start, y start, x step, y step.
    private static readonly (int X, int Y, int Dx, int Dy)[] s_adam7 =
        [(0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2), (0, 1, 1, 2)];

    private static readonly (int X, int Y, int Dx, int Dy)[] s_progressive = [(0, 0, 1, 1)];

    /// <summary>
    /// Default pixel limit (width x height) of a decoded image: 89,478,485, Pillow's <c>MAX_IMAGE_PIXELS</c> (a quarter GiB
    /// of 24-bit pixels, 1 GiB of 32-bit ones).
    /// </summary>
    public const long DefaultMaxPixels = 89_478_485;

    private static readonly uint[] s_crcTable = BuildCrcTable();

    public static int ChannelsOf(PngColorType colorType) => colorType switch
    {
        PngColorType.Grayscale => 1,
        PngColorType.Rgb => 3,
        PngColorType.Palette => 1,
        PngColorType.GrayscaleAlpha => 2,
        PngColorType.Rgba => 4,
        _ => throw new ArgumentOutOfRangeException(nameof(colorType)),
    };

    /// <summary>True when the bytes start with the PNG signature.</summary>
    public static bool HasSignature(ReadOnlySpan<byte> data) => data.Length >= 8 && data[..8].SequenceEqual(Signature);

    /// <summary>Reads and decodes a PNG file.</summary>
    public static PngImage Read(string path) => Decode(File.ReadAllBytes(path), path);

    /// <summary>
    /// Decodes a PNG held in memory; <paramref name="source"/> names it in error messages. A header of more than
    /// <paramref name="maxPixels"/> pixels is refused before any image buffer is allocated.
    /// </summary>
    /// <exception cref="InvalidDataException">Anything wrong with the file (the message starts with <paramref name="source"/>).</exception>
    public static PngImage Decode(byte[] data, string source, long maxPixels = DefaultMaxPixels)
    {
        ArgumentNullException.ThrowIfNull(data);
        try
        {
            return DecodeChecked(data, source, maxPixels);
        }
        catch (Exception e) when (e is not (InvalidDataException or OutOfMemoryException))
        {
            // A safety net: every size is checked before use, so this names a decoder bug rather than lets it escape as
            // an exception type that callers (and SkipBadRows) do not expect from a bad file.
            throw Corrupt(source, $"cannot be decoded ({e.GetType().Name}: {e.Message})", e);
        }
    }

    /// <summary>
    /// The EXIF orientation (1..8) of the first <c>eXIf</c> chunk of a PNG, 1 when there is none or the chunk structure is
    /// broken (the decoder reports broken files; this only looks). Used for RGB images, which SkiaSharp decodes.
    /// </summary>
    public static int ReadOrientation(ReadOnlySpan<byte> data)
    {
        if (!HasSignature(data)) return ExifOrientation.Upright;
        long pos = 8;
        while (pos + 12 <= data.Length)
        {
            uint length = BinaryPrimitives.ReadUInt32BigEndian(data[(int)pos..]);
            var type = data.Slice((int)pos + 4, 4);
            if (length > data.Length - pos - 12) return ExifOrientation.Upright;
            if (type.SequenceEqual("eXIf"u8)) return ExifOrientation.FromTiff(data.Slice((int)pos + 8, (int)length));
            if (type.SequenceEqual("IEND"u8)) break;
            pos += 12 + length;
        }
        return ExifOrientation.Upright;
    }

    private static PngImage DecodeChecked(byte[] data, string source, long maxPixels)
    {
        if (data.Length < 8 || !HasSignature(data))
            throw Corrupt(source, data.Length < 8 ? $"only {data.Length} bytes: too short to be a PNG file" : "not a PNG file (bad signature)");

        int pos = 8;
        bool sawHeader = false, sawEnd = false, idatDone = false;
        int width = 0, height = 0, bitDepth = 0;
        PngColorType colorType = 0;
        bool interlaced = false;
        byte[]? palette = null, transparency = null;
        int orientation = ExifOrientation.Upright;
        bool sawExif = false;
        var idat = new MemoryStream();

        while (!sawEnd)
        {
            if (pos + 8 > data.Length)
                throw Corrupt(source, $"truncated: file ends at byte {data.Length} before the IEND chunk");
            uint length = BinaryPrimitives.ReadUInt32BigEndian(data.AsSpan(pos));
            string type = ChunkType(data.AsSpan(pos + 4, 4), source, pos);
            if (length > int.MaxValue)
                throw Corrupt(source, $"chunk {type} at byte {pos} declares an impossible length {length}");
            if ((long)pos + 12 + length > data.Length)
                throw Corrupt(source, $"truncated: chunk {type} at byte {pos} declares {length} bytes but only {Math.Max(0, data.Length - pos - 12)} remain");
            var body = data.AsSpan(pos + 8, (int)length);
            uint storedCrc = BinaryPrimitives.ReadUInt32BigEndian(data.AsSpan(pos + 8 + (int)length));
            uint crc = Crc32(data.AsSpan(pos + 4, 4 + (int)length));
            if (crc != storedCrc)
                throw Corrupt(source, $"CRC mismatch in chunk {type} at byte {pos} (stored {storedCrc:x8}, computed {crc:x8}): the file is corrupt");

            if (!sawHeader && type != "IHDR")
                throw Corrupt(source, $"the first chunk is {type}, not IHDR");
            if (idat.Length > 0 && type != "IDAT")
                idatDone = true;

            switch (type)
            {
                case "IHDR":
                    if (sawHeader)
                        throw Corrupt(source, "more than one IHDR chunk");
                    if (length != 13)
                        throw Corrupt(source, $"IHDR has {length} bytes instead of 13");
                    sawHeader = true;
                    uint w = BinaryPrimitives.ReadUInt32BigEndian(body), h = BinaryPrimitives.ReadUInt32BigEndian(body[4..]);
                    if (w == 0 || h == 0 || w > int.MaxValue || h > int.MaxValue)
                        throw Corrupt(source, $"invalid size {w}x{h} (each side must be 1..2^31-1)");
                    width = (int)w;
                    height = (int)h;
                    bitDepth = body[8];
                    colorType = (PngColorType)body[9];
                    ValidateHeader(source, width, height, bitDepth, colorType, body[10], body[11], body[12]);
                    CheckPixelLimit(source, width, height, maxPixels);
                    interlaced = body[12] == 1;
                    break;
                case "PLTE":
                    if (palette != null)
                        throw Corrupt(source, "more than one PLTE chunk");
                    if (idat.Length > 0)
                        throw Corrupt(source, "PLTE chunk after image data");
                    if (length == 0 || length % 3 != 0 || length > 256 * 3)
                        throw Corrupt(source, $"PLTE chunk of {length} bytes is not 1..256 RGB entries");
                    if (colorType is PngColorType.Grayscale or PngColorType.GrayscaleAlpha)
                        throw Corrupt(source, "PLTE chunk in a grayscale image");
                    palette = body.ToArray();
                    break;
                case "tRNS":
                    transparency = body.ToArray();
                    break;
                case "IDAT":
                    if (idatDone)
                        throw Corrupt(source, "IDAT chunks are not consecutive");
                    idat.Write(body);
                    break;
                case "IEND":
                    sawEnd = true;
                    break;
                case "eXIf":
                    if (sawExif)
                        throw Corrupt(source, "more than one eXIf chunk");
                    sawExif = true;
                    orientation = ExifOrientation.FromTiff(body);
                    break;
                default:
                    if (char.IsUpper(type[0]))
                        throw Corrupt(source, $"unknown critical chunk {type}");
                    break; // ancillary chunk: skipped (its CRC was checked)
            }
            pos += 12 + (int)length;
        }

        if (idat.Length == 0)
            throw Corrupt(source, "no image data (IDAT)");
        if (colorType == PngColorType.Palette && palette == null)
            throw Corrupt(source, "palette image without a PLTE chunk");

        int channels = ChannelsOf(colorType);
        int bitsPerPixel = channels * bitDepth;
        var passes = interlaced ? s_adam7 : s_progressive;
        // With sides near 2^31 and 64 bits per pixel these products exceed a long. The pixel limit keeps them small, and
        // checked arithmetic turns an overflow (under a raised limit) into an error instead of a wrapped size.
        long expected = 0, sampleBytes;
        try
        {
            checked
            {
                foreach (var p in passes)
                {
                    long pw = PassSize(width, p.X, p.Dx), ph = PassSize(height, p.Y, p.Dy);
                    if (pw > 0 && ph > 0)
                        expected += ph * (1 + ((pw * bitsPerPixel + 7) / 8));
                }
                sampleBytes = (long)width * height * channels * (bitDepth == 16 ? 2 : 1);
            }
        }
        catch (OverflowException)
        {
            throw Corrupt(source, $"{width}x{height} image is too large to decode");
        }
        if (expected > Array.MaxLength || sampleBytes > Array.MaxLength)
            throw Corrupt(source, $"{width}x{height} image ({Math.Max(expected, sampleBytes)} bytes decoded) is too large to decode in memory");

        byte[] raw = Inflate(idat, (int)expected, source);
        var samples = new byte[sampleBytes];
        int offset = 0;
        foreach (var p in passes)
        {
            int pw = PassSize(width, p.X, p.Dx), ph = PassSize(height, p.Y, p.Dy);
            if (pw == 0 || ph == 0)
                continue;
            int rowBytes = (int)(((long)pw * bitsPerPixel + 7) / 8);
            Unfilter(raw.AsSpan(offset, ph * (rowBytes + 1)), rowBytes, Math.Max(1, bitsPerPixel / 8), source);
            Scatter(raw.AsSpan(offset), samples, width, pw, ph, rowBytes, p, channels, bitDepth);
            offset += ph * (rowBytes + 1);
        }

        if (colorType == PngColorType.Palette)
        {
            int entries = palette!.Length / 3;
            if (entries < 1 << bitDepth)
            {
                for (int i = 0; i < samples.Length; i++)
                {
                    if (samples[i] >= entries)
                        throw Corrupt(source, $"pixel ({i % width}, {i / width}) has palette index {samples[i]} but the palette has only {entries} entries");
                }
            }
        }

        return new PngImage(width, height, bitDepth, colorType, samples, palette, transparency, orientation);
    }

    /// <summary>Refuses a header of more than <paramref name="maxPixels"/> pixels (both sides are already 1..2^31-1).</summary>
    internal static void CheckPixelLimit(string source, int width, int height, long maxPixels)
    {
        long pixels = (long)width * height;
        if (pixels > maxPixels)
            throw Corrupt(source, string.Create(CultureInfo.InvariantCulture,
                $"{width}x{height} = {pixels:N0} pixels is above the limit of {maxPixels:N0} pixels (MaxImagePixels)"));
    }

    /// <summary>
    /// Encodes samples laid out as <see cref="PngImage.Samples"/> (one byte per sample below 8 bits, big-endian pairs at 16)
    /// into a PNG (Adam7-interlaced when asked), choosing each row's filter by the minimum-sum-of-absolute-differences
    /// heuristic, or always <paramref name="forceFilter"/> when given.
    /// </summary>
    public static void Encode(Stream output, int width, int height, PngColorType colorType, int bitDepth, ReadOnlySpan<byte> samples,
        ReadOnlySpan<byte> palette = default, ReadOnlySpan<byte> transparency = default, bool interlace = false, int? forceFilter = null)
    {
        ValidateHeader("encoder", width, height, bitDepth, colorType, 0, 0, 0);
        int channels = ChannelsOf(colorType);
        int bytesPerSample = bitDepth == 16 ? 2 : 1;
        int samplesPerRow = width * channels;
        if (samples.Length != (long)samplesPerRow * height * bytesPerSample)
            throw new ArgumentException($"{samples.Length} sample bytes do not make a {width}x{height} PNG with {channels} channel(s) of {bitDepth} bits.", nameof(samples));
        if (colorType == PngColorType.Palette && (palette.Length == 0 || palette.Length % 3 != 0 || palette.Length > 768))
            throw new ArgumentException("A palette image needs 1..256 RGB palette entries.", nameof(palette));
        if (bitDepth < 8)
        {
            int max = (1 << bitDepth) - 1;
            foreach (byte s in samples)
            {
                if (s > max)
                    throw new ArgumentException($"Sample value {s} does not fit in {bitDepth} bits.", nameof(samples));
            }
        }

        if (forceFilter is < 0 or > 4)
            throw new ArgumentOutOfRangeException(nameof(forceFilter), forceFilter, "Filter types are 0..4.");
        int bitsPerPixel = channels * bitDepth;
        int pixelBytes = channels * bytesPerSample;
        int bpp = Math.Max(1, bitsPerPixel / 8);
        int fullRowBytes = (int)(((long)width * bitsPerPixel + 7) / 8);
        var previous = new byte[fullRowBytes];
        var current = new byte[fullRowBytes];
        var candidate = new byte[fullRowBytes];
        var best = new byte[fullRowBytes];
        var gathered = interlace ? new byte[width * pixelBytes] : [];

        var compressed = new MemoryStream();
        using (var zlib = new ZLibStream(compressed, CompressionLevel.Optimal, leaveOpen: true))
        {
            foreach (var p in interlace ? s_adam7 : s_progressive)
            {
                int pw = PassSize(width, p.X, p.Dx), ph = PassSize(height, p.Y, p.Dy);
                if (pw == 0 || ph == 0)
                    continue;
                int rowBytes = (int)(((long)pw * bitsPerPixel + 7) / 8);
                previous.AsSpan(0, rowBytes).Clear();
                for (int r = 0; r < ph; r++)
                {
                    int y = p.Y + r * p.Dy;
                    ReadOnlySpan<byte> rowSamples = samples.Slice(y * width * pixelBytes, width * pixelBytes);
                    if (interlace)
                    {
                        for (int i = 0; i < pw; i++)
                            rowSamples.Slice((p.X + i * p.Dx) * pixelBytes, pixelBytes).CopyTo(gathered.AsSpan(i * pixelBytes));
                        rowSamples = gathered.AsSpan(0, pw * pixelBytes);
                    }
                    var cur = current.AsSpan(0, rowBytes);
                    var prev = previous.AsSpan(0, rowBytes);
                    PackRow(rowSamples, cur, bitDepth);
                    long bestScore = long.MaxValue;
                    byte bestFilter = 0;
                    for (byte filter = 0; filter <= 4; filter++)
                    {
                        if (forceFilter != null && filter != forceFilter)
                            continue;
                        FilterRow(filter, cur, prev, candidate.AsSpan(0, rowBytes), bpp);
                        long score = 0;
                        foreach (byte b in candidate.AsSpan(0, rowBytes))
                            score += Math.Abs((int)(sbyte)b);
                        if (score < bestScore)
                        {
                            bestScore = score;
                            bestFilter = filter;
                            (best, candidate) = (candidate, best);
                        }
                    }
                    zlib.WriteByte(bestFilter);
                    zlib.Write(best, 0, rowBytes);
                    (previous, current) = (current, previous);
                }
            }
        }

        Span<byte> header = stackalloc byte[13];
        BinaryPrimitives.WriteUInt32BigEndian(header, (uint)width);
        BinaryPrimitives.WriteUInt32BigEndian(header[4..], (uint)height);
        header[8] = (byte)bitDepth;
        header[9] = (byte)colorType;
        header[10] = header[11] = 0;
        header[12] = interlace ? (byte)1 : (byte)0;
        output.Write(Signature);
        WriteChunk(output, "IHDR", header);
        if (!palette.IsEmpty)
            WriteChunk(output, "PLTE", palette);
        if (!transparency.IsEmpty)
            WriteChunk(output, "tRNS", transparency);
        var data = compressed.GetBuffer().AsSpan(0, (int)compressed.Length);
        const int maxChunk = 1 << 20;
        for (int start = 0; start < data.Length; start += maxChunk)
            WriteChunk(output, "IDAT", data.Slice(start, Math.Min(maxChunk, data.Length - start)));
        WriteChunk(output, "IEND", []);
    }

    /// <summary>CRC-32 (ISO 3309, as PNG uses it).</summary>
    public static uint Crc32(ReadOnlySpan<byte> data)
    {
        uint c = 0xFFFFFFFFu;
        foreach (byte b in data)
            c = s_crcTable[(c ^ b) & 0xFF] ^ (c >> 8);
        return c ^ 0xFFFFFFFFu;
    }

    private static uint[] BuildCrcTable()
    {
        var table = new uint[256];
        for (uint n = 0; n < 256; n++)
        {
            uint c = n;
            for (int k = 0; k < 8; k++)
                c = (c & 1) != 0 ? 0xEDB88320u ^ (c >> 1) : c >> 1;
            table[n] = c;
        }
        return table;
    }

    private static InvalidDataException Corrupt(string source, string problem, Exception? inner = null) => new($"{source}: {problem}.", inner);

    private static string ChunkType(ReadOnlySpan<byte> bytes, string source, int pos)
    {
        foreach (byte b in bytes)
        {
            if (!(b is >= (byte)'A' and <= (byte)'Z' || b is >= (byte)'a' and <= (byte)'z'))
                throw Corrupt(source, $"invalid chunk type at byte {pos + 4}: the file is corrupt");
        }
        return string.Create(4, bytes.ToArray(), static (span, b) =>
        {
            for (int i = 0; i < 4; i++)
                span[i] = (char)b[i];
        });
    }

    private static void ValidateHeader(string source, int width, int height, int bitDepth, PngColorType colorType, int compression, int filter, int interlace)
    {
        if (width <= 0 || height <= 0)
            throw Corrupt(source, $"invalid size {width}x{height}");
        bool depthOk = colorType switch
        {
            PngColorType.Grayscale => bitDepth is 1 or 2 or 4 or 8 or 16,
            PngColorType.Palette => bitDepth is 1 or 2 or 4 or 8,
            PngColorType.Rgb or PngColorType.GrayscaleAlpha or PngColorType.Rgba => bitDepth is 8 or 16,
            _ => throw Corrupt(source, $"invalid colour type {(int)colorType}"),
        };
        if (!depthOk)
            throw Corrupt(source, $"bit depth {bitDepth} is not allowed for colour type {(int)colorType}");
        if (compression != 0 || filter != 0)
            throw Corrupt(source, $"unknown compression method {compression} or filter method {filter}");
        if (interlace > 1)
            throw Corrupt(source, $"unknown interlace method {interlace}");
    }

    private static int PassSize(int size, int start, int step) => size <= start ? 0 : (int)((size - (long)start + step - 1) / step);

    private static byte[] Inflate(MemoryStream idat, int expected, string source)
    {
        idat.Position = 0;
        // The buffer grows with what actually inflates (doubling from 1 MiB), so a small file that claims a large image
        // fails before the header's full size is allocated.
        var raw = new byte[Math.Min(expected, 1 << 20)];
        try
        {
            using var zlib = new ZLibStream(idat, CompressionMode.Decompress);
            int got = 0;
            while (got < expected)
            {
                if (got == raw.Length)
                    Array.Resize(ref raw, (int)Math.Min(expected, 2L * raw.Length));
                int n = zlib.Read(raw, got, raw.Length - got);
                if (n == 0)
                    throw Corrupt(source, $"truncated image data: {got} of {expected} bytes decompressed");
                got += n;
            }
            Span<byte> extra = stackalloc byte[1];
            if (zlib.Read(extra) != 0)
                throw Corrupt(source, "more compressed image data than the header's size allows");
        }
        catch (InvalidDataException ex) when (!ex.Message.StartsWith(source, StringComparison.Ordinal))
        {
            throw new InvalidDataException($"{source}: compressed image data is corrupt ({ex.Message}).", ex);
        }
        return raw;
    }

    private static void Unfilter(Span<byte> pass, int rowBytes, int bpp, string source)
    {
        int rows = pass.Length / (rowBytes + 1);
        Span<byte> zero = rowBytes <= 4096 ? stackalloc byte[rowBytes] : new byte[rowBytes];
        zero.Clear();
        ReadOnlySpan<byte> prev = zero;
        for (int r = 0; r < rows; r++)
        {
            int start = r * (rowBytes + 1);
            byte filter = pass[start];
            var cur = pass.Slice(start + 1, rowBytes);
            switch (filter)
            {
                case 0:
                    break;
                case 1:
                    for (int i = bpp; i < cur.Length; i++)
                        cur[i] += cur[i - bpp];
                    break;
                case 2:
                    for (int i = 0; i < cur.Length; i++)
                        cur[i] += prev[i];
                    break;
                case 3:
                    for (int i = 0; i < bpp; i++)
                        cur[i] += (byte)(prev[i] >> 1);
                    for (int i = bpp; i < cur.Length; i++)
                        cur[i] += (byte)((cur[i - bpp] + prev[i]) >> 1);
                    break;
                case 4:
                    for (int i = 0; i < bpp; i++)
                        cur[i] += prev[i];
                    for (int i = bpp; i < cur.Length; i++)
                        cur[i] += Paeth(cur[i - bpp], prev[i], prev[i - bpp]);
                    break;
                default:
                    throw Corrupt(source, $"row {r} uses unknown filter type {filter}");
            }
            prev = cur;
        }
    }

    private static byte Paeth(byte a, byte b, byte c)
    {
        int p = a + b - c;
        int pa = Math.Abs(p - a), pb = Math.Abs(p - b), pc = Math.Abs(p - c);
        return pa <= pb && pa <= pc ? a : pb <= pc ? b : c;
    }

    private static void Scatter(ReadOnlySpan<byte> pass, byte[] samples, int width, int pw, int ph, int rowBytes,
        (int X, int Y, int Dx, int Dy) p, int channels, int bitDepth)
    {
        int bytesPerSample = bitDepth == 16 ? 2 : 1;
        int pixelBytes = channels * bytesPerSample;
        int samplesPerRow = pw * channels;
        bool whole = p.Dx == 1 && p.Dy == 1;
        for (int r = 0; r < ph; r++)
        {
            var row = pass.Slice(r * (rowBytes + 1) + 1, rowBytes);
            int y = p.Y + r * p.Dy;
            if (bitDepth >= 8)
            {
                if (whole)
                {
                    row.CopyTo(samples.AsSpan(y * width * pixelBytes));
                    continue;
                }
                for (int i = 0; i < pw; i++)
                    row.Slice(i * pixelBytes, pixelBytes).CopyTo(samples.AsSpan(((y * width) + p.X + i * p.Dx) * pixelBytes));
                continue;
            }
            // Bit depths 1, 2, 4 occur only with one channel (grayscale or palette).
            int mask = (1 << bitDepth) - 1;
            int perByte = 8 / bitDepth;
            for (int i = 0; i < samplesPerRow; i++)
            {
                int b = row[i / perByte];
                int shift = 8 - bitDepth * (i % perByte + 1);
                samples[(y * width) + p.X + i * p.Dx] = (byte)((b >> shift) & mask);
            }
        }
    }

    private static void PackRow(ReadOnlySpan<byte> samples, Span<byte> row, int bitDepth)
    {
        if (bitDepth >= 8)
        {
            samples.CopyTo(row);
            return;
        }
        row.Clear();
        int perByte = 8 / bitDepth;
        for (int i = 0; i < samples.Length; i++)
            row[i / perByte] |= (byte)(samples[i] << (8 - bitDepth * (i % perByte + 1)));
    }

    private static void FilterRow(byte filter, ReadOnlySpan<byte> cur, ReadOnlySpan<byte> prev, Span<byte> dst, int bpp)
    {
        for (int i = 0; i < cur.Length; i++)
        {
            byte a = i >= bpp ? cur[i - bpp] : (byte)0;
            byte b = prev[i];
            byte c = i >= bpp ? prev[i - bpp] : (byte)0;
            dst[i] = filter switch
            {
                0 => cur[i],
                1 => (byte)(cur[i] - a),
                2 => (byte)(cur[i] - b),
                3 => (byte)(cur[i] - ((a + b) >> 1)),
                _ => (byte)(cur[i] - Paeth(a, b, c)),
            };
        }
    }

    private static void WriteChunk(Stream output, string type, ReadOnlySpan<byte> data)
    {
        Span<byte> head = stackalloc byte[8];
        BinaryPrimitives.WriteUInt32BigEndian(head, (uint)data.Length);
        for (int i = 0; i < 4; i++)
            head[4 + i] = (byte)type[i];
        output.Write(head);
        output.Write(data);
        uint c = 0xFFFFFFFFu;
        foreach (byte b in head[4..])
            c = s_crcTable[(c ^ b) & 0xFF] ^ (c >> 8);
        foreach (byte b in data)
            c = s_crcTable[(c ^ b) & 0xFF] ^ (c >> 8);
        Span<byte> crc = stackalloc byte[4];
        BinaryPrimitives.WriteUInt32BigEndian(crc, c ^ 0xFFFFFFFFu);
        output.Write(crc);
    }
}
