using TorchSharp;
using Microsoft.ML.LabelCompletion.Data;
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

/// <summary>
/// The bytes of one padded image as uint8 CPU tensors, in the layout of <see cref="WindowSample"/>: copied from the
/// managed arrays once, so that completion cuts its overlapping windows as views instead of copying each window's bytes.
/// </summary>
internal sealed class ImageTensors : IDisposable
{
    /// <summary>Copies <paramref name="image"/>'s arrays into tensors.</summary>
    public ImageTensors(WindowSample image)
    {
        int h = image.Height, w = image.Width, hw = h * w;
        Width = w;
        Height = h;
        Source = image.Source;
        Labels = WindowBatch.FromBytes([image], s => s.InputLabel, hw, [h, w], "input label");
        Rgb = WindowBatch.FromBytes([image], s => s.Rgb, 3 * hw, [h, w, 3], "image");
        Prior = image.Prior is null ? null : WindowBatch.FromBytes([image], s => s.Prior, hw, [h, w], "label prior");
        Directional = image.Directional is null ? null
            : WindowBatch.FromBytes([image], s => s.Directional, DirectionalFill.Planes * hw, [DirectionalFill.Planes, h, w], "directional prior");
    }

    /// <summary>Width in pixels (a multiple of the patch size).</summary>
    public int Width { get; }

    /// <summary>Height in pixels (a multiple of the patch size).</summary>
    public int Height { get; }

    /// <summary>Where the image came from, for error messages.</summary>
    public string Source { get; }

    /// <summary><c>[H, W]</c> input label bytes.</summary>
    public Tensor Labels { get; }

    /// <summary><c>[H, W, 3]</c> interleaved RGB bytes.</summary>
    public Tensor Rgb { get; }

    /// <summary><c>[H, W]</c> label prior bytes, or null.</summary>
    public Tensor? Prior { get; }

    /// <summary><c>[8, H, W]</c> <see cref="DirectionalFill"/> planes, or null.</summary>
    public Tensor? Directional { get; }

    /// <summary>Disposes the tensors.</summary>
    public void Dispose()
    {
        Labels.Dispose();
        Rgb.Dispose();
        Prior?.Dispose();
        Directional?.Dispose();
    }
}

/// <summary>A window of <paramref name="Image"/> at (<paramref name="X"/>, <paramref name="Y"/>) and its patch mask (true = masked).</summary>
internal sealed record WindowCut(ImageTensors Image, int X, int Y, int Width, int Height, bool[] PatchMask);

/// <summary>
/// One image padded to the patch grid during completion: its prepared bytes (the whole image, also the refinement's input)
/// and its windows (origin, size, the part of the patch mask they cover).
/// </summary>
internal sealed record PaddedImage(WindowSample Whole, IReadOnlyList<(int X, int Y, int Width, int Height, bool[] PatchMask)> Windows);

/// <summary>Turns <see cref="WindowSample"/>s into the network's tensors, and prepares samples (masking, prior, crops).</summary>
internal static class WindowBatch
{
    /// <summary>
    /// Builds the network input for samples of equal size. The samples' bytes are copied straight into uint8 tensors and
    /// widened inside libtorch through 256-entry lookup tables (ImageNet normalisation, unknown → -1, distance / 255), so a
    /// batch leaves no large managed arrays behind (they were the .NET large-object-heap garbage of every step) and the
    /// values are exactly those of <see cref="StackFusion.Normalize"/>.
    /// </summary>
    public static LmaeInputs ToInputs(IReadOnlyList<WindowSample> samples, LmaeConfig config, Device device)
    {
        int b = samples.Count, h = samples[0].Height, w = samples[0].Width, hw = h * w;
        foreach (var sample in samples)
            if (sample.Width != w || sample.Height != h) throw new ArgumentException("Samples of one batch must share their size.");
        using var scope = NewDisposeScope();
        var inputs = Widen(
            FromBytes(samples, s => s.InputLabel, hw, [b, h, w], "input label"),
            FromBytes(samples, s => s.Rgb, 3 * hw, [b, h, w, 3], "image"),
            config.LabelPrior == LabelPriorMode.None ? null : FromBytes(samples, s => s.Prior, hw, [b, h, w], "label prior"),
            config.DirectionalPrior ? FromBytes(samples, s => s.Directional, DirectionalFill.Planes * hw, [b, DirectionalFill.Planes, h, w], "directional prior") : null,
            samples.Select(s => s.PatchMask).ToList(), config, device);
        inputs.MoveToOuterDisposeScope();
        return inputs;
    }

    /// <summary>
    /// Builds the network input for windows of equal size cut from <see cref="ImageTensors"/>: the windows' bytes are
    /// stacked from views of the images' uint8 tensors (no managed copies), then widened as in the sample overload, so
    /// both give the same values for the same pixels. The <see cref="DirectionalFill"/> planes are left out unless
    /// <paramref name="forRefinement"/>: only the <see cref="PixelRefinement"/> reads them, and completion runs it over whole
    /// images, not windows (they are 8 of a pixel's 13 bytes).
    /// </summary>
    public static LmaeInputs ToInputs(IReadOnlyList<WindowCut> windows, LmaeConfig config, Device device, bool forRefinement)
    {
        int h = windows[0].Height, w = windows[0].Width;
        foreach (var window in windows)
        {
            if (window.Width != w || window.Height != h) throw new ArgumentException("Windows of one batch must share their size.");
            if (window.X < 0 || window.Y < 0 || window.X + w > window.Image.Width || window.Y + h > window.Image.Height)
                throw new ArgumentException($"{window.Image.Source}: the {w}x{h} window at ({window.X}, {window.Y}) does not lie inside the {window.Image.Width}x{window.Image.Height} image.");
        }
        using var scope = NewDisposeScope();
        // Each plane group is [.., H, W] with the rows and columns in its last two (or, for the image, the two before the
        // interleaved channels) dimensions.
        Tensor Stack(Func<ImageTensors, Tensor?> select, string what, int rowDimension) => stack(windows.Select(c =>
            (select(c.Image) ?? throw new ArgumentException($"{c.Image.Source}: the image has no {what}."))
                .narrow(rowDimension, c.Y, h).narrow(rowDimension + 1, c.X, w)).ToArray());
        var inputs = Widen(
            Stack(i => i.Labels, "input label", 0),
            Stack(i => i.Rgb, "image", 0),
            config.LabelPrior == LabelPriorMode.None ? null : Stack(i => i.Prior, "label prior", 0),
            config.DirectionalPrior && forRefinement ? Stack(i => i.Directional, "directional prior", 1) : null,
            windows.Select(c => c.PatchMask).ToList(), config, device);
        inputs.MoveToOuterDisposeScope();
        return inputs;
    }

    /// <summary>
    /// The network input from uint8 tensors: <paramref name="labelBytes"/> <c>[B, H, W]</c>, <paramref name="rgbBytes"/>
    /// <c>[B, H, W, 3]</c>, <paramref name="priorBytes"/> <c>[B, H, W]</c>, <paramref name="directionalBytes"/>
    /// <c>[B, 8, H, W]</c> (<see cref="DirectionalFill"/> labels, then distances), widened inside libtorch through 256-entry
    /// lookup tables; visible and insertion indices from the patch masks.
    /// </summary>
    private static LmaeInputs Widen(Tensor labelBytes, Tensor rgbBytes, Tensor? priorBytes, Tensor? directionalBytes,
        IReadOnlyList<bool[]> patchMasks, LmaeConfig config, Device device)
    {
        int b = (int)labelBytes.shape[0], h = (int)labelBytes.shape[1], w = (int)labelBytes.shape[2], p = config.PatchSize;
        int rows = h / p, columns = w / p, l = rows * columns;
        using var scope = NewDisposeScope();
        using var labelTable = LabelTable(config.UnknownLabel);
        var labels = Lookup(labelBytes, labelTable);
        var rgb = NormalizedRgb(rgbBytes);
        Tensor? prior = priorBytes is null ? null : Lookup(priorBytes, labelTable);
        Tensor? directional = null, distances = null;
        if (directionalBytes is not null)
        {
            directional = Lookup(directionalBytes.narrow(1, 0, 4).reshape(b * 4, h, w), labelTable);
            using var distanceTable = tensor(Enumerable.Range(0, 256).Select(d => d / (float)DirectionalFill.MaxDistance).ToArray());
            distances = Lookup(directionalBytes.narrow(1, 4, 4), distanceTable);
        }

        var (visibleIndex, keyMask, insertIndex) = LabelMaskAutoEncoder.VisibleTokens(patchMasks, l, device);
        var inputs = new LmaeInputs(
            labels.to(device),
            rgb.to(device),
            prior?.to(device),
            visibleIndex,
            keyMask,
            insertIndex,
            rows, columns,
            directional?.to(device),
            distances?.to(device));
        inputs.MoveToOuterDisposeScope();
        return inputs;
    }

    /// <summary>Training targets int64 <c>[B, H, W]</c>: the class, or -1 where the pixel does not count.</summary>
    public static Tensor Targets(IReadOnlyList<WindowSample> samples, LmaeConfig config, Device device)
    {
        int b = samples.Count, h = samples[0].Height, w = samples[0].Width;
        using var scope = NewDisposeScope();
        using var labelTable = LabelTable(config.UnknownLabel);
        var targets = Lookup(FromBytes(samples, s => s.Target, h * w, [b, h, w], "training target"), labelTable);
        return targets.to(device).MoveToOuterDisposeScope();
    }

    /// <summary>
    /// A uint8 CPU tensor of <paramref name="shape"/> holding, for each sample in turn, the <paramref name="length"/> bytes of
    /// <paramref name="select"/>(sample), copied straight into the tensor's storage.
    /// </summary>
    internal static Tensor FromBytes(IReadOnlyList<WindowSample> samples, Func<WindowSample, byte[]?> select, int length,
        long[] shape, string what)
    {
        var result = empty(shape, ScalarType.Byte);
        var storage = result.bytes;
        for (int s = 0; s < samples.Count; s++)
        {
            var source = select(samples[s]) ?? throw new ArgumentException($"{samples[s].Source}: the sample has no {what}.");
            if (source.Length != length)
                throw new ArgumentException($"{samples[s].Source}: the {what} has {source.Length} values, a {samples[s].Width}x{samples[s].Height} window needs {length}.");
            source.CopyTo(storage.Slice(s * length, length));
        }
        return result;
    }

    /// <summary>int64 lookup of label bytes: a class stays itself, the unknown value becomes -1.</summary>
    private static Tensor LabelTable(byte unknown)
        => tensor(Enumerable.Range(0, 256).Select(v => v == unknown ? -1L : v).ToArray());

    /// <summary><paramref name="table"/>[<paramref name="bytes"/>], elementwise, in the shape of <paramref name="bytes"/>.</summary>
    private static Tensor Lookup(Tensor bytes, Tensor table) => table.take(bytes.to(ScalarType.Int64));

    /// <summary>Interleaved RGB bytes <c>[B, H, W, 3]</c> → ImageNet-normalised float <c>[B, 3, H, W]</c> (Stack Fusion's image part).</summary>
    internal static Tensor NormalizedRgb(Tensor interleaved)
    {
        // One 768-entry table (channel-major): entry c·256 + v = StackFusion.Normalize(v, c).
        var values = new float[3 * 256];
        for (int c = 0; c < 3; c++)
            for (int v = 0; v < 256; v++) values[c * 256 + v] = StackFusion.Normalize((byte)v, c);
        using var table = tensor(values);
        using var channelOffsets = tensor(new long[] { 0, 256, 512 }, [1, 3, 1, 1]);
        using var one = 1L.ToScalar(); // (an integral alpha for integral tensors, explicit and disposed)
        return table.take(interleaved.permute(0, 3, 1, 2).to(ScalarType.Int64).add(channelOffsets, one));
    }

    /// <summary>
    /// A training or validation sample from a crop: the label with the masked patches hidden and what the network derives from
    /// it (<see cref="Prepare"/>), and as target the known pixels of the loss region.
    /// </summary>
    public static WindowSample FromCrop(RgbImage image, LabelMap label, bool[] patchMask, LmaeConfig config, LossRegion region, string source)
    {
        byte[] target = label.Values;
        if (region == LossRegion.MaskedPatches)
        {
            var pixelMask = MaskSelector.ToPixelMask(patchMask, label.Width, label.Height, config.PatchSize);
            target = (byte[])label.Values.Clone();
            for (int i = 0; i < target.Length; i++) if (!pixelMask[i]) target[i] = config.UnknownLabel;
        }
        return Prepare(image, label, patchMask, config, target, source);
    }

    /// <summary>
    /// The one input preparation of training crops, validation crops and completion images (sizes multiples of the patch
    /// size): the masked patches of <paramref name="label"/> are hidden before anything is derived from it, then the label
    /// prior (<see cref="NearestKnownFill"/>) and the <see cref="DirectionalFill"/> planes are computed from what is left;
    /// with <paramref name="parallel"/>, the two side by side. With <paramref name="keepKnownLabels"/> (completion with the
    /// Unknown selector, whose masked patches are masked for holding unknown pixels, not to hide their known ones) the
    /// priors read every known pixel of <paramref name="label"/>; the encoder still sees only the visible patches.
    /// </summary>
    public static WindowSample Prepare(RgbImage image, LabelMap label, bool[] patchMask, LmaeConfig config, byte[]? target, string source,
        ParallelOptions? parallel = null, bool keepKnownLabels = false)
    {
        byte unknown = config.UnknownLabel;
        var input = MaskSelector.Apply(label, patchMask, config.PatchSize, unknown);
        // The priors read what is known: the masked input, or with keepKnownLabels the whole label (see Complete).
        var known = keepKnownLabels ? label : input;
        byte[]? prior = null, directional = null;
        void Prior() => prior = config.LabelPrior == LabelPriorMode.None ? null : NearestKnownFill.Fill(known, unknown).Values;
        void Directional() => directional = config.DirectionalPrior ? DirectionalFill.Compute(known.Values, known.Width, known.Height, unknown) : null;
        if (parallel is null)
        {
            Prior();
            Directional();
        }
        else Parallel.Invoke(parallel, Prior, Directional);
        return new WindowSample
        {
            Width = image.Width, Height = image.Height, Rgb = image.Pixels, InputLabel = input.Values,
            Prior = prior, Directional = directional, PatchMask = patchMask, Target = target, Source = source,
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
