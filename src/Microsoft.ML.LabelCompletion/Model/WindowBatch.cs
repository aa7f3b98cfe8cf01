using Microsoft.ML.LabelCompletion.Data;
using Microsoft.ML.LabelCompletion.Evaluation;
using static TorchSharp.torch;

namespace Microsoft.ML.LabelCompletion.Model;

/// <summary>
/// One network input of fixed size (a training crop or an inference window), held as plain arrays until a batch is
/// turned into tensors. <c>Width</c> and <c>Height</c> are multiples of the patch size.
/// </summary>
internal sealed class WindowSample
{
    public required int Width { get; init; }
    public required int Height { get; init; }

    /// <summary>Interleaved RGB bytes, <c>Height x Width x 3</c>.</summary>
    public required byte[] Rgb { get; init; }

    /// <summary>Input label with masked patches hidden (unknown value for unknown).</summary>
    public required byte[] InputLabel { get; init; }

    /// <summary>NearestKnown fill of the input label, or null without a label prior.</summary>
    public byte[]? Prior { get; init; }

    /// <summary><see cref="DirectionalFill"/> planes of the input label, or null without the directional prior.</summary>
    public byte[]? Directional { get; init; }

    /// <summary>Patch mask on this window's grid: true = masked.</summary>
    public required bool[] PatchMask { get; init; }

    /// <summary>Training target (class or unknown value for "not counted"), or null at inference.</summary>
    public byte[]? Target { get; init; }

    /// <summary>Where the sample came from, for error messages.</summary>
    public string Source { get; init; } = "";
}

/// <summary>Turns <see cref="WindowSample"/>s into the network's tensors, and prepares samples (masking, prior, crops).</summary>
internal static class WindowBatch
{
    /// <summary>Builds the network input for samples of equal size.</summary>
    public static LmaeInputs ToInputs(IReadOnlyList<WindowSample> samples, LmaeConfig config, Device device)
    {
        int b = samples.Count, h = samples[0].Height, w = samples[0].Width, p = config.PatchSize;
        int rows = h / p, columns = w / p, l = rows * columns, hw = h * w;
        var rgb = new float[b * 3 * hw];
        var labels = new long[b * hw];
        long[]? prior = config.LabelPrior == LabelPriorMode.None ? null : new long[b * hw];
        long[]? directional = config.DirectionalPrior ? new long[b * 4 * hw] : null;
        float[]? distances = config.DirectionalPrior ? new float[b * 4 * hw] : null;
        byte unknown = config.UnknownLabel;
        int maxVisible = 0;
        for (int s = 0; s < b; s++)
        {
            var sample = samples[s];
            if (sample.Width != w || sample.Height != h) throw new ArgumentException("Samples of one batch must share their size.");
            int baseRgb = s * 3 * hw, baseLabel = s * hw;
            var src = sample.Rgb;
            for (int i = 0; i < hw; i++)
            {
                rgb[baseRgb + i] = StackFusion.Normalize(src[3 * i], 0);
                rgb[baseRgb + hw + i] = StackFusion.Normalize(src[3 * i + 1], 1);
                rgb[baseRgb + 2 * hw + i] = StackFusion.Normalize(src[3 * i + 2], 2);
                byte v = sample.InputLabel[i];
                labels[baseLabel + i] = v == unknown ? -1 : v;
            }
            if (prior is not null)
            {
                var pr = sample.Prior ?? throw new ArgumentException("The label prior is on but a sample has no prior.");
                for (int i = 0; i < hw; i++) prior[baseLabel + i] = pr[i] == unknown ? -1 : pr[i];
            }
            if (directional is not null)
            {
                var planes = sample.Directional ?? throw new ArgumentException("The directional prior is on but a sample has none.");
                for (int i = 0; i < 4 * hw; i++)
                {
                    directional[s * 4 * hw + i] = planes[i] == unknown ? -1 : planes[i];
                    distances![s * 4 * hw + i] = planes[4 * hw + i] / (float)DirectionalFill.MaxDistance;
                }
            }
            maxVisible = Math.Max(maxVisible, sample.PatchMask.Count(m => !m));
        }

        // Visible tokens: each row's visible patch indices in order, padded to the longest row.
        int nv = Math.Max(1, maxVisible);
        var visibleIndex = new long[b * nv];
        var insertIndex = new long[b * nv];
        var keyMask = new bool[b * nv];
        bool padded = false;
        for (int s = 0; s < b; s++)
        {
            int k = 0;
            var mask = samples[s].PatchMask;
            for (int i = 0; i < l; i++)
            {
                if (mask[i]) continue;
                visibleIndex[s * nv + k] = i;
                insertIndex[s * nv + k] = i;
                keyMask[s * nv + k] = true;
                k++;
            }
            if (k < nv) padded = true;
            for (int j = k; j < nv; j++)
            {
                visibleIndex[s * nv + j] = 0;
                insertIndex[s * nv + j] = l;          // dropped after the insertion
                keyMask[s * nv + j] = k == 0 && j == 0; // a row with no visible token attends to one dummy token
            }
        }

        return new LmaeInputs(
            tensor(labels, [b, h, w], ScalarType.Int64, device),
            tensor(rgb, [b, 3, h, w], ScalarType.Float32, device),
            prior is null ? null : tensor(prior, [b, h, w], ScalarType.Int64, device),
            tensor(visibleIndex, [b, nv], ScalarType.Int64, device),
            padded ? tensor(keyMask, [b, 1, 1, nv], ScalarType.Bool, device) : null,
            tensor(insertIndex, [b, nv], ScalarType.Int64, device),
            rows, columns,
            directional is null ? null : tensor(directional, [b * 4, h, w], ScalarType.Int64, device),
            distances is null ? null : tensor(distances, [b, 4, h, w], ScalarType.Float32, device));
    }

    /// <summary>Training targets int64 <c>[B, H, W]</c>: the class, or -1 where the pixel does not count.</summary>
    public static Tensor Targets(IReadOnlyList<WindowSample> samples, LmaeConfig config, Device device)
    {
        int b = samples.Count, h = samples[0].Height, w = samples[0].Width, hw = h * w;
        var targets = new long[b * hw];
        for (int s = 0; s < b; s++)
        {
            var t = samples[s].Target ?? throw new ArgumentException("A training sample has no target.");
            for (int i = 0; i < hw; i++) targets[s * hw + i] = t[i] == config.UnknownLabel ? -1 : t[i];
        }
        return tensor(targets, [b, h, w], ScalarType.Int64, device);
    }

    /// <summary>
    /// A training or validation sample from a crop: hides the masked patches, computes the prior from what is left,
    /// and keeps as target the known pixels of the loss region.
    /// </summary>
    public static WindowSample FromCrop(RgbImage image, LabelMap label, bool[] patchMask, LmaeConfig config, LossRegion region, string source)
    {
        var input = MaskSelector.Apply(label, patchMask, config.PatchSize, config.UnknownLabel);
        byte[] target = label.Values;
        if (region == LossRegion.MaskedPatches)
        {
            var pixelMask = MaskSelector.ToPixelMask(patchMask, label.Width, label.Height, config.PatchSize);
            target = (byte[])label.Values.Clone();
            for (int i = 0; i < target.Length; i++) if (!pixelMask[i]) target[i] = config.UnknownLabel;
        }
        return new WindowSample
        {
            Width = image.Width, Height = image.Height, Rgb = image.Pixels, InputLabel = input.Values,
            Prior = config.LabelPrior == LabelPriorMode.None ? null : NearestKnownFill.Fill(input, config.UnknownLabel).Values,
            Directional = config.DirectionalPrior ? DirectionalFill.Compute(input.Values, input.Width, input.Height, config.UnknownLabel) : null,
            PatchMask = patchMask, Target = target, Source = source,
        };
    }

    /// <summary>
    /// Cuts a <paramref name="width"/> x <paramref name="height"/> region at (<paramref name="x0"/>, <paramref name="y0"/>);
    /// parts outside the source become zero image and unknown label.
    /// </summary>
    public static (RgbImage Image, LabelMap Label) Crop(RgbImage image, LabelMap label, int x0, int y0, int width, int height, byte unknown)
    {
        var rgb = new byte[width * height * 3];
        var values = new byte[width * height];
        Array.Fill(values, unknown);
        for (int y = 0; y < height; y++)
        {
            int sy = y0 + y;
            if (sy < 0 || sy >= image.Height) continue;
            int sx0 = Math.Max(0, x0), sx1 = Math.Min(image.Width, x0 + width);
            if (sx1 <= sx0) continue;
            int dx = sx0 - x0, n = sx1 - sx0;
            Array.Copy(image.Pixels, (sy * image.Width + sx0) * 3, rgb, (y * width + dx) * 3, n * 3);
            Array.Copy(label.Values, sy * label.Width + sx0, values, y * width + dx, n);
        }
        return (new RgbImage(width, height, rgb), new LabelMap(width, height, values));
    }

    /// <summary>
    /// Window origins along one axis of length <paramref name="length"/> (a multiple of <paramref name="patch"/>):
    /// windows of <paramref name="window"/> with the given overlap, aligned to the patch grid, the last one flush with the end.
    /// </summary>
    public static IReadOnlyList<int> WindowStarts(int length, int window, float overlap, int patch)
    {
        if (length <= window) return [0];
        int stride = Math.Max(patch, (int)Math.Floor(window * (1 - overlap) / patch) * patch);
        var starts = new List<int>();
        for (int s = 0; ; s += stride)
        {
            if (s + window >= length)
            {
                starts.Add(length - window);
                break;
            }
            starts.Add(s);
        }
        return starts;
    }
}
