using System.Buffers.Binary;
using System.Globalization;
using System.Security.Cryptography;
using System.Text;

namespace Microsoft.ML.LabelCompletion.Data;

/// <summary>
/// Shard <see cref="Index"/> of <see cref="Count"/> of a data set, so that <c>Count</c> machines can each process one shard
/// under any job scheduler. An item belongs to the shard chosen by the SHA-256 of its key (for example the label file's path
/// relative to the data set's root, with '/' separators): the same on every machine and operating system, independent of the
/// order in which files are listed, and an item never changes shard when others are added or removed.
/// </summary>
/// <param name="Index">0-based shard index, below <see cref="Count"/>.</param>
/// <param name="Count">Number of shards, at least 1.</param>
public readonly record struct DataShard(int Index, int Count)
{
    /// <summary>The whole data set: shard 0 of 1.</summary>
    public static DataShard All => new(0, 1);

    /// <summary>Parses <c>"i/n"</c> (for example <c>"2/8"</c>: the third of eight shards).</summary>
    /// <param name="text">The shard, <c>index/count</c> with <c>0 &lt;= index &lt; count</c>.</param>
    /// <exception cref="FormatException">The text is not of that form.</exception>
    public static DataShard Parse(string text)
    {
        ArgumentNullException.ThrowIfNull(text);
        var parts = text.Split('/');
        if (parts.Length != 2
            || !int.TryParse(parts[0], NumberStyles.None, CultureInfo.InvariantCulture, out int index)
            || !int.TryParse(parts[1], NumberStyles.None, CultureInfo.InvariantCulture, out int count)
            || count < 1 || index >= count)
            throw new FormatException($"'{text}' is not a shard: write i/n with 0 <= i < n, for example 0/4.");
        return new DataShard(index, count);
    }

    /// <summary>Whether the item with <paramref name="key"/> belongs to this shard.</summary>
    /// <param name="key">A stable name of the item; backslashes are read as '/', so Windows and Unix paths agree.</param>
    public bool Contains(string key)
    {
        ArgumentNullException.ThrowIfNull(key);
        if (Count <= 1) return true;
        Span<byte> hash = stackalloc byte[32];
        SHA256.HashData(Encoding.UTF8.GetBytes(key.Replace('\\', '/')), hash);
        return (int)(BinaryPrimitives.ReadUInt64LittleEndian(hash) % (ulong)Count) == Index;
    }

    /// <summary><c>index/count</c>.</summary>
    public override string ToString() => $"{Index}/{Count}";
}
