using System.Buffers.Binary;

namespace Microsoft.ML.LabelCompletion.Data;

/// <summary>
/// What the image and label readers do with an EXIF orientation tag (JPEG APP1 Exif segment, PNG <c>eXIf</c> chunk): the tag
/// says how the stored pixels are turned for display, as cameras store portrait photos sideways and tag them.
/// </summary>
public enum ExifOrientationHandling
{
    /// <summary>
    /// Images are turned to their displayed orientation (what a browser or an annotation tool shows, so what the label
    /// was drawn on). Label maps must be stored upright: a label file whose tag is not 1 is refused with an error naming
    /// it, because a completed label is written back without a tag.
    /// </summary>
    Apply = 0,

    /// <summary>The tag is ignored for images and labels alike: the pixels are used as stored.</summary>
    Ignore = 1,

    /// <summary>Any image or label whose tag is not 1 (upright) is refused with an error naming the file.</summary>
    Refuse = 2,
}

/// <summary>EXIF orientation values (TIFF tag 0x0112: 1..8) and turning stored pixels into displayed ones.</summary>
internal static class ExifOrientation
{
    /// <summary>Orientation 1: the stored pixels are displayed as they are.</summary>
    public const int Upright = 1;

    /// <summary>What orientation <paramref name="orientation"/> does to the stored pixels for display.</summary>
    public static string Describe(int orientation) => orientation switch
    {
        1 => "upright",
        2 => "mirrored left-right",
        3 => "rotated 180 degrees",
        4 => "mirrored top-bottom",
        5 => "transposed",
        6 => "rotated 90 degrees clockwise",
        7 => "transversed",
        8 => "rotated 90 degrees counter-clockwise",
        _ => "unknown",
    };

    /// <summary>Orientations 5..8 swap width and height.</summary>
    public static bool SwapsAxes(int orientation) => orientation is >= 5 and <= 8;

    /// <summary>
    /// The orientation in an EXIF block laid out as TIFF ("II*\0" or "MM\0*", then IFD0), as PNG's <c>eXIf</c> chunk holds it;
    /// 1 when the block has no orientation tag, or is malformed, or holds a value outside 1..8 (as SkiaSharp treats JPEG EXIF).
    /// </summary>
    public static int FromTiff(ReadOnlySpan<byte> tiff)
    {
        if (tiff.Length < 8) return Upright;
        bool little;
        if (tiff[0] == 'I' && tiff[1] == 'I') little = true;
        else if (tiff[0] == 'M' && tiff[1] == 'M') little = false;
        else return Upright;
        ushort U16(ReadOnlySpan<byte> s) => little ? BinaryPrimitives.ReadUInt16LittleEndian(s) : BinaryPrimitives.ReadUInt16BigEndian(s);
        uint U32(ReadOnlySpan<byte> s) => little ? BinaryPrimitives.ReadUInt32LittleEndian(s) : BinaryPrimitives.ReadUInt32BigEndian(s);
        if (U16(tiff[2..]) != 42) return Upright;
        uint ifd = U32(tiff[4..]);
        if (ifd > (uint)tiff.Length - 2) return Upright;
        int entries = U16(tiff[(int)ifd..]);
        long end = ifd + 2L + 12L * entries;
        if (end > tiff.Length) return Upright;
        for (int i = 0; i < entries; i++)
        {
            var entry = tiff.Slice((int)ifd + 2 + 12 * i, 12);
            if (U16(entry) != 0x0112) continue;
            // SHORT, one value: it sits in the first two bytes of the value field.
            if (U16(entry[2..]) != 3 || U32(entry[4..]) != 1) return Upright;
            int value = U16(entry[8..]);
            return value is >= 1 and <= 8 ? value : Upright;
        }
        return Upright;
    }

    /// <summary>
    /// The displayed pixels of <paramref name="stored"/> (<paramref name="width"/> x <paramref name="height"/> pixels of
    /// <paramref name="bytesPerPixel"/> bytes, row-major) under <paramref name="orientation"/>; for 5..8 the result is
    /// <paramref name="height"/> pixels wide. Displayed pixel (x, y) is stored pixel: 2 (W-1-x, y), 3 (W-1-x, H-1-y),
    /// 4 (x, H-1-y), 5 (y, x), 6 (y, H-1-x), 7 (W-1-y, H-1-x), 8 (W-1-y, x).
    /// </summary>
    public static byte[] ToDisplayed(byte[] stored, int width, int height, int bytesPerPixel, int orientation, out int displayedWidth, out int displayedHeight)
    {
        if (orientation is < 1 or > 8) throw new ArgumentOutOfRangeException(nameof(orientation), orientation, "EXIF orientations are 1..8.");
        bool swap = SwapsAxes(orientation);
        displayedWidth = swap ? height : width;
        displayedHeight = swap ? width : height;
        if (orientation == Upright) return stored;
        var displayed = new byte[stored.Length];
        int dw = displayedWidth, dh = displayedHeight, bpp = bytesPerPixel;
        for (int y = 0; y < dh; y++)
        {
            for (int x = 0; x < dw; x++)
            {
                (int sx, int sy) = orientation switch
                {
                    2 => (width - 1 - x, y),
                    3 => (width - 1 - x, height - 1 - y),
                    4 => (x, height - 1 - y),
                    5 => (y, x),
                    6 => (y, height - 1 - x),
                    7 => (width - 1 - y, height - 1 - x),
                    _ => (width - 1 - y, x),
                };
                stored.AsSpan((sy * width + sx) * bpp, bpp).CopyTo(displayed.AsSpan((y * dw + x) * bpp, bpp));
            }
        }
        return displayed;
    }
}
