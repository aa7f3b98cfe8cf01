namespace Microsoft.ML.LabelCompletion.Data;

/// <summary>The training augmentation's parameters (DESIGN.md §2, "Augmentation").</summary>
internal sealed class SegmentationAugmentationOptions
{
    /// <summary>Width of the output crop in pixels. Default 224.</summary>
    public int CropWidth = 224;

    /// <summary>Height of the output crop in pixels. Default 224.</summary>
    public int CropHeight = 224;

    /// <summary>Smallest random scale factor. Default 0.5.</summary>
    public double MinScale = 0.5;

    /// <summary>Largest random scale factor. Default 2.0.</summary>
    public double MaxScale = 2.0;

    /// <summary>Whether to flip horizontally with probability 1/2. Default true.</summary>
    public bool HorizontalFlip = true;

    /// <summary>The unknown label value used for padding. Default 255.</summary>
    public byte UnknownLabel = 255;
}

/// <summary>
/// Training augmentation as a pure function of the sample and an explicit <see cref="Random"/>: random scale, random crop
/// to the training size (padding with zero image and the unknown label where the scaled image is smaller), horizontal flip.
/// Images are resampled bilinearly, labels by nearest neighbour (no new label values ever appear). Same seed, same output.
/// </summary>
internal static class SegmentationAugmentation
{
    /// <summary>
    /// Augments one sample. The random draws, in order: scale <c>U[MinScale, MaxScale)</c>, crop x offset, crop y offset, flip.
    /// Where the scaled image is larger than the crop, the crop window is placed uniformly inside it; where smaller, the
    /// scaled image is placed uniformly inside the crop and the rest is padding.
    /// </summary>
    /// <param name="image">The image.</param>
    /// <param name="label">Its label map, same size.</param>
    /// <param name="options">Crop size, scale range, flip, unknown value.</param>
    /// <param name="random">The random source (seeded by the caller).</param>
    /// <returns>The augmented image and label, both <c>CropWidth x CropHeight</c>.</returns>
    public static (RgbImage Image, LabelMap Label) Apply(RgbImage image, LabelMap label, SegmentationAugmentationOptions options, Random random)
    {
        ArgumentNullException.ThrowIfNull(image);
        ArgumentNullException.ThrowIfNull(label);
        ArgumentNullException.ThrowIfNull(options);
        ArgumentNullException.ThrowIfNull(random);
        if (image.Width != label.Width || image.Height != label.Height)
            throw new ArgumentException($"The image is {image.Width}x{image.Height} but the label is {label.Width}x{label.Height}.", nameof(label));
        if (options.CropWidth <= 0 || options.CropHeight <= 0)
            throw new ArgumentOutOfRangeException(nameof(options), $"Crop size {options.CropWidth}x{options.CropHeight} is not positive.");
        if (!(options.MinScale > 0 && options.MaxScale >= options.MinScale))
            throw new ArgumentOutOfRangeException(nameof(options), $"Scale range [{options.MinScale}, {options.MaxScale}] is invalid.");

        double scale = options.MinScale + random.NextDouble() * (options.MaxScale - options.MinScale);
        int w = image.Width, h = image.Height, cw = options.CropWidth, ch = options.CropHeight;
        int sw = Math.Max(1, (int)Math.Round(w * scale)), sh = Math.Max(1, (int)Math.Round(h * scale));
        int offX = sw >= cw ? random.Next(sw - cw + 1) : -random.Next(cw - sw + 1);
        int offY = sh >= ch ? random.Next(sh - ch + 1) : -random.Next(ch - sh + 1);
        bool flip = options.HorizontalFlip && random.Next(2) == 1;
        return Resample(image, label, sw, sh, offX, offY, flip, cw, ch, options.UnknownLabel);
    }

    /// <summary>
    /// The deterministic core: scale the sample to <paramref name="scaledWidth"/> x <paramref name="scaledHeight"/>, flip it if asked,
    /// and cut the <paramref name="cropWidth"/> x <paramref name="cropHeight"/> window whose top-left corner is at
    /// (<paramref name="offsetX"/>, <paramref name="offsetY"/>) of the scaled image (negative offsets pad before it).
    /// Pixel centres are aligned (<c>src = (dst + 0.5) * size / scaledSize - 0.5</c>).
    /// </summary>
    /// <param name="image">The image.</param>
    /// <param name="label">Its label map.</param>
    /// <param name="scaledWidth">Width after scaling.</param>
    /// <param name="scaledHeight">Height after scaling.</param>
    /// <param name="offsetX">Crop x in the scaled image.</param>
    /// <param name="offsetY">Crop y in the scaled image.</param>
    /// <param name="flip">Flip horizontally (applied to the scaled image, before cropping).</param>
    /// <param name="cropWidth">Output width.</param>
    /// <param name="cropHeight">Output height.</param>
    /// <param name="unknownLabel">Label of padding pixels.</param>
    public static (RgbImage Image, LabelMap Label) Resample(RgbImage image, LabelMap label, int scaledWidth, int scaledHeight,
        int offsetX, int offsetY, bool flip, int cropWidth, int cropHeight, byte unknownLabel)
    {
        ArgumentNullException.ThrowIfNull(image);
        ArgumentNullException.ThrowIfNull(label);
        int w = image.Width, h = image.Height;
        // Per output column / row: source indices and weights (padding: index -1). Allocations are per call, not per pixel.
        var cx0 = new int[cropWidth];
        var cx1 = new int[cropWidth];
        var cwx = new float[cropWidth];
        var cxn = new int[cropWidth];
        for (int x = 0; x < cropWidth; x++)
        {
            int sx = x + offsetX;
            if (sx < 0 || sx >= scaledWidth)
            {
                cx0[x] = cxn[x] = -1;
                continue;
            }
            if (flip)
                sx = scaledWidth - 1 - sx;
            Axis(sx, scaledWidth, w, out cx0[x], out cx1[x], out cwx[x], out cxn[x]);
        }
        var ry0 = new int[cropHeight];
        var ry1 = new int[cropHeight];
        var rwy = new float[cropHeight];
        var ryn = new int[cropHeight];
        for (int y = 0; y < cropHeight; y++)
        {
            int sy = y + offsetY;
            if (sy < 0 || sy >= scaledHeight)
            {
                ry0[y] = ryn[y] = -1;
                continue;
            }
            Axis(sy, scaledHeight, h, out ry0[y], out ry1[y], out rwy[y], out ryn[y]);
        }

        var outRgb = new byte[cropWidth * cropHeight * 3];
        var outLabel = new byte[cropWidth * cropHeight];
        byte[] src = image.Pixels, lab = label.Values;
        for (int y = 0; y < cropHeight; y++)
        {
            int rowOut = y * cropWidth;
            if (ry0[y] < 0)
            {
                outLabel.AsSpan(rowOut, cropWidth).Fill(unknownLabel);
                continue;
            }
            int r0 = ry0[y] * w * 3, r1 = ry1[y] * w * 3, rn = ryn[y] * w;
            float wy = rwy[y], wy0 = 1 - wy;
            for (int x = 0; x < cropWidth; x++)
            {
                int o = rowOut + x;
                if (cx0[x] < 0)
                {
                    outLabel[o] = unknownLabel;
                    continue;
                }
                outLabel[o] = lab[rn + cxn[x]];
                int a = cx0[x] * 3, b = cx1[x] * 3;
                float wx = cwx[x], wx0 = 1 - wx;
                for (int c = 0; c < 3; c++)
                {
                    float top = wx0 * src[r0 + a + c] + wx * src[r0 + b + c];
                    float bottom = wx0 * src[r1 + a + c] + wx * src[r1 + b + c];
                    outRgb[3 * o + c] = (byte)(wy0 * top + wy * bottom + 0.5f);
                }
            }
        }
        return (new RgbImage(cropWidth, cropHeight, outRgb), new LabelMap(cropWidth, cropHeight, outLabel));
    }

    private static void Axis(int dst, int scaledSize, int size, out int i0, out int i1, out float weight, out int nearest)
    {
        double ratio = (double)size / scaledSize;
        double f = (dst + 0.5) * ratio - 0.5;
        if (f <= 0)
        {
            i0 = i1 = 0;
            weight = 0;
        }
        else if (f >= size - 1)
        {
            i0 = i1 = size - 1;
            weight = 0;
        }
        else
        {
            i0 = (int)f;
            i1 = i0 + 1;
            weight = (float)(f - i0);
        }
        nearest = Math.Min(size - 1, (int)((dst + 0.5) * ratio));
    }
}
