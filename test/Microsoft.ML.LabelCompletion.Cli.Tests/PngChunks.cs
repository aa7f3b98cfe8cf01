using System.Buffers.Binary;
using System.Text;

namespace Microsoft.ML.LabelCompletion.Cli.Tests;

/// <summary>Reads a PNG's header fields and raw chunks, to check what format a file was written in.</summary>
public static class PngChunks
{
    /// <summary>The PNG colour type (0 gray, 2 RGB, 3 palette, ...) from IHDR.</summary>
    public static int ColorType(string path) => Chunk(path, "IHDR")![9];

    /// <summary>Width and height from IHDR.</summary>
    public static (int Width, int Height) Size(string path)
    {
        var ihdr = Chunk(path, "IHDR")!;
        return (BinaryPrimitives.ReadInt32BigEndian(ihdr), BinaryPrimitives.ReadInt32BigEndian(ihdr.AsSpan(4)));
    }

    /// <summary>The data of the first chunk of <paramref name="type"/>, or null.</summary>
    public static byte[]? Chunk(string path, string type)
    {
        var bytes = File.ReadAllBytes(path);
        int offset = 8;
        while (offset + 8 <= bytes.Length)
        {
            int length = BinaryPrimitives.ReadInt32BigEndian(bytes.AsSpan(offset));
            string name = Encoding.ASCII.GetString(bytes, offset + 4, 4);
            if (name == type) return bytes.AsSpan(offset + 8, length).ToArray();
            offset += 12 + length;
        }
        return null;
    }
}
