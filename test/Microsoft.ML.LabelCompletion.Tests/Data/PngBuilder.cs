using System.Buffers.Binary;
using System.IO.Compression;
using System.Text;
using Microsoft.ML.LabelCompletion.Data;

namespace Microsoft.ML.LabelCompletion.Tests.Data;

/// <summary>Builds PNG and JPEG files chunk by chunk (with correct CRCs), to reach the checks behind the CRC.</summary>
internal static class PngBuilder
{
    public static readonly byte[] Signature = [137, 80, 78, 71, 13, 10, 26, 10];

    public static byte[] Chunk(string type, ReadOnlySpan<byte> body)
    {
        var chunk = new byte[12 + body.Length];
        BinaryPrimitives.WriteUInt32BigEndian(chunk, (uint)body.Length);
        Encoding.ASCII.GetBytes(type, chunk.AsSpan(4, 4));
        body.CopyTo(chunk.AsSpan(8));
        BinaryPrimitives.WriteUInt32BigEndian(chunk.AsSpan(8 + body.Length), Png.Crc32(chunk.AsSpan(4, 4 + body.Length)));
        return chunk;
    }

    public static byte[] Ihdr(uint width, uint height, byte depth, byte colourType, byte compression = 0, byte filter = 0, byte interlace = 0)
    {
        var body = new byte[13];
        BinaryPrimitives.WriteUInt32BigEndian(body, width);
        BinaryPrimitives.WriteUInt32BigEndian(body.AsSpan(4), height);
        body[8] = depth;
        body[9] = colourType;
        body[10] = compression;
        body[11] = filter;
        body[12] = interlace;
        return Chunk("IHDR", body);
    }

    public static byte[] Idat(ReadOnlySpan<byte> raw) => Chunk("IDAT", Zlib(raw));

    public static byte[] Iend() => Chunk("IEND", []);

    public static byte[] Zlib(ReadOnlySpan<byte> raw)
    {
        using var output = new MemoryStream();
        using (var zlib = new ZLibStream(output, CompressionLevel.SmallestSize, leaveOpen: true)) zlib.Write(raw);
        return output.ToArray();
    }

    /// <summary>The signature and the chunks, in the order given.</summary>
    public static byte[] Build(params byte[][] chunks) => [.. Signature, .. chunks.SelectMany(c => c)];

    /// <summary>The chunks of a PNG (each with its length, type and CRC), in file order.</summary>
    public static List<(string Type, byte[] Bytes)> Split(byte[] png)
    {
        var chunks = new List<(string, byte[])>();
        for (int pos = 8; pos + 12 <= png.Length;)
        {
            int length = (int)BinaryPrimitives.ReadUInt32BigEndian(png.AsSpan(pos));
            chunks.Add((Encoding.ASCII.GetString(png, pos + 4, 4), png[pos..(pos + 12 + length)]));
            pos += 12 + length;
        }
        return chunks;
    }

    /// <summary>A PNG with <paramref name="chunk"/> inserted right after IHDR.</summary>
    public static byte[] InsertAfterHeader(byte[] png, byte[] chunk) => [.. png[..33], .. chunk, .. png[33..]];

    /// <summary>An EXIF block laid out as TIFF (PNG's eXIf content) with one IFD0 entry: the orientation.</summary>
    public static byte[] ExifTiff(int orientation, bool littleEndian = false)
    {
        var tiff = new byte[26];
        void U16(int at, int v) { if (littleEndian) BinaryPrimitives.WriteUInt16LittleEndian(tiff.AsSpan(at), (ushort)v); else BinaryPrimitives.WriteUInt16BigEndian(tiff.AsSpan(at), (ushort)v); }
        void U32(int at, uint v) { if (littleEndian) BinaryPrimitives.WriteUInt32LittleEndian(tiff.AsSpan(at), v); else BinaryPrimitives.WriteUInt32BigEndian(tiff.AsSpan(at), v); }
        tiff[0] = tiff[1] = (byte)(littleEndian ? 'I' : 'M');
        U16(2, 42);
        U32(4, 8);
        U16(8, 1);          // one entry
        U16(10, 0x0112);    // Orientation
        U16(12, 3);         // SHORT
        U32(14, 1);         // one value
        U16(18, orientation);
        U32(22, 0);         // no next IFD
        return tiff;
    }

    /// <summary>A JPEG with an APP1 Exif segment holding <paramref name="orientation"/> inserted right after SOI.</summary>
    public static byte[] JpegWithOrientation(byte[] jpeg, int orientation)
    {
        Assert.IsTrue(jpeg[0] == 0xFF && jpeg[1] == 0xD8, "a JPEG starts with SOI");
        byte[] payload = [.. "Exif\0\0"u8, .. ExifTiff(orientation, littleEndian: true)];
        var app1 = new byte[4 + payload.Length];
        app1[0] = 0xFF;
        app1[1] = 0xE1;
        BinaryPrimitives.WriteUInt16BigEndian(app1.AsSpan(2), (ushort)(2 + payload.Length));
        payload.CopyTo(app1, 4);
        return [.. jpeg[..2], .. app1, .. jpeg[2..]];
    }

    /// <summary>Encodes an RGB image as a JPEG with SkiaSharp.</summary>
    public static byte[] Jpeg(RgbImage image, int quality = 100)
    {
        string path = Path.Combine(Path.GetTempPath(), $"lmae-jpeg-{Guid.NewGuid():N}.jpg");
        try
        {
            DataTestFiles.WriteJpeg(path, image, quality);
            return File.ReadAllBytes(path);
        }
        finally
        {
            File.Delete(path);
        }
    }

    /// <summary>Encodes with our PNG encoder into memory.</summary>
    public static byte[] Encode(int width, int height, PngColorType type, int depth, byte[] samples, byte[]? palette = null)
    {
        using var stream = new MemoryStream();
        Png.Encode(stream, width, height, type, depth, samples, palette);
        return stream.ToArray();
    }
}
