using System.Buffers;
using Microsoft.ML.LabelCompletion.Data;

namespace Microsoft.ML.LabelCompletion.Model;

/// <summary>
/// The <c>NearestKnown</c> completion: every unknown pixel takes the label of the nearest known pixel by exact
/// Euclidean distance. It is the baseline of the evaluation protocol and the model's "label prior".
/// </summary>
/// <remarks>
/// <para>
/// The nearest known pixel is found with the exact separable squared Euclidean distance transform of
/// Felzenszwalb and Huttenlocher (2012), carrying the index of the nearest site: a vertical pass finds, per
/// pixel, the nearest known pixel in its column; a horizontal pass takes, per row, the lower envelope of the
/// parabolas <c>g(x') + (x - x')²</c>. Intersections are computed in integers, so the result is exact.
/// Cost is <c>O(width * height)</c>.
/// </para>
/// <para>
/// Ties are broken deterministically: among known pixels at the same smallest distance the one in the
/// leftmost column wins, and within that column the upper one. In other words, the chosen site is the minimum of
/// (squared distance, x, y) in lexicographic order.
/// </para>
/// <para>Any value other than the unknown value is a known pixel; class ranges are not checked here.</para>
/// </remarks>
public static class NearestKnownFill
{
    /// <summary>
    /// Returns a copy of <paramref name="label"/> whose unknown pixels hold the label of the nearest known pixel.
    /// A label without any known pixel is returned unchanged (a copy, all pixels unknown).
    /// </summary>
    /// <param name="label">The incomplete label map.</param>
    /// <param name="unknownLabel">The value that marks an unknown pixel.</param>
    /// <returns>A new label map of the same size in which every pixel is known, unless none was.</returns>
    public static LabelMap Fill(LabelMap label, byte unknownLabel)
    {
        ArgumentNullException.ThrowIfNull(label);
        var result = new byte[label.Values.Length];
        Fill(label.Values, label.Width, label.Height, unknownLabel, result);
        return label with { Values = result };
    }

    /// <summary>
    /// Writes the nearest-known fill of <paramref name="values"/> into <paramref name="result"/>. Known pixels are
    /// copied; if no pixel is known, <paramref name="result"/> receives a copy of <paramref name="values"/>.
    /// </summary>
    /// <param name="values">The label, row-major, <c>width * height</c> bytes.</param>
    /// <param name="width">Width in pixels.</param>
    /// <param name="height">Height in pixels.</param>
    /// <param name="unknownLabel">The value that marks an unknown pixel.</param>
    /// <param name="result">Receives the filled label, <c>width * height</c> bytes. It may be the same memory as
    /// <paramref name="values"/> (in-place fill): known pixels never change, and only known pixels are read as sources.</param>
    /// <remarks>Scratch memory (one <see cref="int"/> per pixel and two per column) is rented from the shared array pool.</remarks>
    public static void Fill(ReadOnlySpan<byte> values, int width, int height, byte unknownLabel, Span<byte> result)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(width);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(height);
        int count = checked(width * height);
        if (values.Length != count)
            throw new ArgumentException($"The label has {values.Length} values; a {width}x{height} label has {count}.", nameof(values));
        if (result.Length != count)
            throw new ArgumentException($"The result buffer has {result.Length} values; a {width}x{height} label has {count}.", nameof(result));

        int[] siteRow = ArrayPool<int>.Shared.Rent(count);
        int[] columnState = ArrayPool<int>.Shared.Rent(width);
        int[] envelopeColumns = ArrayPool<int>.Shared.Rent(width);
        int[] envelopeStarts = ArrayPool<int>.Shared.Rent(width);
        try
        {
            bool anyKnown = NearestInColumn(values, width, height, unknownLabel, siteRow, columnState);
            if (!anyKnown)
            {
                values.CopyTo(result); // memmove semantics: also right when both are the same memory
                return;
            }
            for (int y = 0; y < height; y++)
                FillRow(values, width, y, siteRow, envelopeColumns, envelopeStarts, result);
        }
        finally
        {
            ArrayPool<int>.Shared.Return(envelopeStarts);
            ArrayPool<int>.Shared.Return(envelopeColumns);
            ArrayPool<int>.Shared.Return(columnState);
            ArrayPool<int>.Shared.Return(siteRow);
        }
    }

    /// <summary>
    /// Vertical pass: <paramref name="siteRow"/>[y*W+x] = the row of the nearest known pixel in column x
    /// (the upper one on a tie), or -1 when column x has no known pixel. Walks rows, not columns, for cache locality.
    /// </summary>
    private static bool NearestInColumn(ReadOnlySpan<byte> values, int width, int height, byte unknownLabel, int[] siteRow, int[] columnState)
    {
        // Downward sweep: nearest known pixel at or above.
        Span<int> lastKnown = columnState.AsSpan(0, width);
        lastKnown.Fill(-1);
        bool anyKnown = false;
        for (int y = 0; y < height; y++)
        {
            ReadOnlySpan<byte> row = values.Slice(y * width, width);
            Span<int> sites = siteRow.AsSpan(y * width, width);
            for (int x = 0; x < width; x++)
            {
                if (row[x] != unknownLabel)
                {
                    lastKnown[x] = y;
                    anyKnown = true;
                }
                sites[x] = lastKnown[x];
            }
        }
        if (!anyKnown) return false;

        // Upward sweep: nearest known pixel strictly below; keep the upper one unless the lower one is strictly nearer.
        Span<int> nextKnown = lastKnown;
        nextKnown.Fill(-1);
        for (int y = height - 1; y >= 0; y--)
        {
            ReadOnlySpan<byte> row = values.Slice(y * width, width);
            Span<int> sites = siteRow.AsSpan(y * width, width);
            for (int x = 0; x < width; x++)
            {
                if (row[x] != unknownLabel)
                {
                    nextKnown[x] = y;
                    continue; // the pixel is its own site, already set by the downward sweep
                }
                int below = nextKnown[x];
                if (below < 0) continue;
                int above = sites[x];
                if (above < 0 || below - y < y - above) sites[x] = below;
            }
        }
        return true;
    }

    /// <summary>
    /// Horizontal pass over row <paramref name="y"/>: the lower envelope of the parabolas
    /// <c>f(q) + (x - q)²</c>, <c>f(q) = (y - siteRow(q))²</c>, over columns q holding a site, restricted to integer x.
    /// <c>starts[k]</c> is the first x at which parabola <c>columns[k]</c> is strictly below <c>columns[k-1]</c>,
    /// so on a tie the left (smaller column) parabola keeps the pixel.
    /// </summary>
    private static void FillRow(ReadOnlySpan<byte> values, int width, int y, int[] siteRow, int[] columns, int[] starts, Span<byte> result)
    {
        ReadOnlySpan<int> sites = siteRow.AsSpan(y * width, width);
        int k = -1;
        for (int q = 0; q < width; q++)
        {
            int sq = sites[q];
            if (sq < 0) continue;
            long fq = (long)(y - sq) * (y - sq);
            int start = 0;
            while (k >= 0)
            {
                int r = columns[k];
                long fr = (long)(y - sites[r]) * (y - sites[r]);
                start = FirstStrictlyBetter(fq, q, fr, r);
                if (start > starts[k]) break;
                k--; // parabola r owns no integer x any more
            }
            if (k < 0) start = 0;
            if (start >= width) continue; // q never wins inside the row
            k++;
            columns[k] = q;
            starts[k] = start;
        }

        // k >= 0: NearestInColumn found a known pixel somewhere, so every row has at least one site column.
        int segments = k + 1;
        int segment = 0;
        int rowOffset = y * width;
        Span<byte> output = result.Slice(rowOffset, width);
        for (int x = 0; x < width; x++)
        {
            while (segment + 1 < segments && starts[segment + 1] <= x) segment++;
            int column = columns[segment];
            output[x] = values[sites[column] * width + column];
        }
    }

    /// <summary>
    /// For parabolas at columns r &lt; q with offsets fr and fq, the first integer x at which
    /// <c>fq + (x-q)² &lt; fr + (x-r)²</c>, i.e. <c>x &gt; (fq + q² - fr - r²) / (2(q - r))</c>.
    /// </summary>
    private static int FirstStrictlyBetter(long fq, int q, long fr, int r)
    {
        long numerator = fq + (long)q * q - fr - (long)r * r;
        long denominator = 2L * (q - r);
        long floor = numerator >= 0 ? numerator / denominator : -((-numerator + denominator - 1) / denominator);
        long first = floor + 1;
        return first > int.MaxValue ? int.MaxValue : (int)Math.Max(first, int.MinValue);
    }
}
