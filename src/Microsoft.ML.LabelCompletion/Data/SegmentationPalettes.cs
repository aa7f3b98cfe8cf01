namespace Microsoft.ML.LabelCompletion.Data;

/// <summary>Class colours of the supported data sets, as RGB triples indexed by class id (for palettes and overlays).</summary>
public static class SegmentationPalettes
{
    /// <summary>CamVid's 11 classes plus void (id 11, black), in SegNet's display colours.</summary>
    public static byte[] CamVid() =>
    [
        128, 128, 128, // 0 sky
        128, 0, 0, // 1 building
        192, 192, 128, // 2 pole
        128, 64, 128, // 3 road
        60, 40, 222, // 4 pavement
        128, 128, 0, // 5 tree
        192, 128, 128, // 6 sign/symbol
        64, 64, 128, // 7 fence
        64, 0, 128, // 8 car
        64, 64, 0, // 9 pedestrian
        0, 128, 192, // 10 bicyclist
        0, 0, 0, // 11 void
    ];

    /// <summary>
    /// The standard 256-entry Pascal VOC palette: entry <c>i</c> spreads the bits of <c>i</c> over the high bits of R, G, B
    /// (bit 0 to R, bit 1 to G, bit 2 to B, then the next three bits one position lower, and so on); 255 is (224, 224, 192).
    /// </summary>
    public static byte[] PascalVoc()
    {
        var palette = new byte[256 * 3];
        for (int i = 0; i < 256; i++)
        {
            int r = 0, g = 0, b = 0, c = i;
            for (int shift = 7; shift >= 0; shift--)
            {
                r |= (c & 1) << shift;
                g |= ((c >> 1) & 1) << shift;
                b |= ((c >> 2) & 1) << shift;
                c >>= 3;
            }
            palette[3 * i] = (byte)r;
            palette[3 * i + 1] = (byte)g;
            palette[3 * i + 2] = (byte)b;
        }
        return palette;
    }

    /// <summary>Cityscapes' 19 train ids in the official colours (road, sidewalk, ..., bicycle).</summary>
    public static byte[] Cityscapes() =>
    [
        128, 64, 128, 244, 35, 232, 70, 70, 70, 102, 102, 156, 190, 153, 153, 153, 153, 153, 250, 170, 30, 220, 220, 0,
        107, 142, 35, 152, 251, 152, 70, 130, 180, 220, 20, 60, 255, 0, 0, 0, 0, 142, 0, 0, 70, 0, 60, 100, 0, 80, 100,
        0, 0, 230, 119, 11, 32,
    ];

    /// <summary>The colours for a format (generic formats use the VOC palette, which gives every index a distinct colour).</summary>
    /// <param name="format">The data format.</param>
    public static byte[] For(SegmentationDataFormat format) => format switch
    {
        SegmentationDataFormat.CamVid => CamVid(),
        SegmentationDataFormat.Cityscapes => Cityscapes(),
        _ => PascalVoc(),
    };
}
