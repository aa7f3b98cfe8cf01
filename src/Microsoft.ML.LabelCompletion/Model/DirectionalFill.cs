namespace Microsoft.ML.LabelCompletion.Model;

/// <summary>
/// Directional nearest-known labels, an input of the <see cref="PixelRefinement"/>: for every pixel, the label of the
/// nearest known pixel to its left, right, above and below (same row or column) and the distance to it. A thin vertical
/// structure hidden by a masked patch shows as the same class above and below; the Euclidean NearestKnown fill loses that
/// when background is as close on the sides.
/// </summary>
internal static class DirectionalFill
{
    /// <summary>Number of planes: 4 labels (left, right, up, down), then their 4 distances.</summary>
    public const int Planes = 8;

    /// <summary>Distances are clamped to this value (pixels).</summary>
    public const int MaxDistance = 255;

    /// <summary>
    /// Computes the 8 planes, each <c>width*height</c>, row-major: labels (unknown where no known pixel lies in that direction)
    /// then distances in pixels (0 at known pixels, <see cref="MaxDistance"/> where none or farther).
    /// </summary>
    public static byte[] Compute(ReadOnlySpan<byte> labels, int width, int height, byte unknownLabel)
    {
        int n = width * height;
        if (labels.Length != n) throw new ArgumentException($"{labels.Length} labels do not make a {width}x{height} map.", nameof(labels));
        var planes = new byte[Planes * n];
        Scan(labels, planes, width, height, unknownLabel, 0, horizontal: true, forward: true);
        Scan(labels, planes, width, height, unknownLabel, 1, horizontal: true, forward: false);
        Scan(labels, planes, width, height, unknownLabel, 2, horizontal: false, forward: true);
        Scan(labels, planes, width, height, unknownLabel, 3, horizontal: false, forward: false);
        return planes;
    }

    private static void Scan(ReadOnlySpan<byte> labels, byte[] planes, int width, int height, byte unknown, int plane, bool horizontal, bool forward)
    {
        int n = width * height;
        int lines = horizontal ? height : width, length = horizontal ? width : height;
        var labelPlane = planes.AsSpan(plane * n, n);
        var distancePlane = planes.AsSpan((4 + plane) * n, n);
        for (int line = 0; line < lines; line++)
        {
            byte last = unknown;
            int lastAt = int.MinValue / 2;
            for (int k = 0; k < length; k++)
            {
                int t = forward ? k : length - 1 - k;
                int i = horizontal ? line * width + t : t * width + line;
                if (labels[i] != unknown)
                {
                    last = labels[i];
                    lastAt = k;
                }
                labelPlane[i] = last;
                distancePlane[i] = (byte)Math.Min(MaxDistance, k - lastAt);
            }
        }
    }
}
