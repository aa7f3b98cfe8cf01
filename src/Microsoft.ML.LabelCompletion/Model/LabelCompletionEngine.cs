using System.Diagnostics;
using Microsoft.ML.LabelCompletion.Data;
using TorchSharp;
using static TorchSharp.torch;

namespace Microsoft.ML.LabelCompletion.Model;

/// <summary>One training or completion example: an RGB image, its (possibly incomplete) label map, and where it came from.</summary>
/// <param name="Image">The RGB image.</param>
/// <param name="Label">The label map, same size as the image; unknown pixels hold the unknown value.</param>
/// <param name="Source">Where the example came from (file names or row number), for error messages.</param>
public sealed record SegmentationExample(RgbImage Image, LabelMap Label, string Source);

/// <summary>What completion returns for one image.</summary>
/// <param name="Completed">Input label where known, the network's argmax where the pixel lay in a masked patch or was unknown.</param>
/// <param name="Confidence">Per pixel, the max softmax probability where the network decided; 1 where the input label was kept.</param>
/// <param name="CompletionMask">Per pixel, <c>true</c> where the pixel lay in a masked patch.</param>
public sealed record CompletionResult(LabelMap Completed, float[] Confidence, bool[] CompletionMask);

/// <summary>Progress of training, reported once per step and once per epoch.</summary>
/// <param name="Epoch">1-based epoch.</param>
/// <param name="Epochs">Total epochs.</param>
/// <param name="Step">1-based step within the epoch.</param>
/// <param name="StepsPerEpoch">Steps per epoch (may be null while the first epoch streams).</param>
/// <param name="Loss">Mean training loss of the step (or of the epoch at epoch end).</param>
/// <param name="ImagesPerSecond">Training throughput.</param>
/// <param name="LearningRate">Current learning rate.</param>
/// <param name="ValidationLoss">Validation loss at epoch end, when a validation set is given.</param>
/// <param name="ValidationPaMiou">Validation PA-mIoU (0..100) at epoch end, when a validation set is given.</param>
/// <param name="EndOfEpoch"><c>true</c> for the epoch summary.</param>
public sealed record TrainingProgress(int Epoch, int Epochs, int Step, int? StepsPerEpoch, double Loss, double ImagesPerSecond,
    double LearningRate, double? ValidationLoss, double? ValidationPaMiou, bool EndOfEpoch);

/// <summary>
/// The trained L-MAE and everything needed to use it: training, batched completion with sliding windows, and
/// (de)serialisation of the weights. This is the boundary between the TorchSharp model and the ML.NET layer.
/// </summary>
internal sealed class LabelCompletionEngine : IDisposable
{
    private readonly LabelMaskAutoEncoder _model;

    private LabelCompletionEngine(LmaeConfig config, Device device, LabelMaskAutoEncoder model)
    {
        Config = config;
        Device = device;
        _model = model;
    }

    /// <summary>The resolved network configuration.</summary>
    public LmaeConfig Config { get; }

    /// <summary>The device the network runs on.</summary>
    public Device Device { get; }

    /// <summary>The network (for inspection: parameter counts, tests).</summary>
    public LabelMaskAutoEncoder Network => _model;

    /// <summary>Number of validated training examples used by the last <see cref="Train"/> (for reports).</summary>
    public int TrainingExampleCount { get; private set; }

    /// <summary>Seconds the last training waited on data preparation.</summary>
    public double DataWaitSeconds { get; private set; }

    /// <summary>Seconds the last training spent in optimisation steps.</summary>
    public double StepSeconds { get; private set; }

    /// <summary>The checkpoint the last <see cref="Train"/> resumed from, or null.</summary>
    public string? ResumedFrom { get; private set; }

    /// <summary>Checkpoint files the last <see cref="Train"/> found invalid and skipped (file and reason).</summary>
    public IReadOnlyList<string> RejectedCheckpoints { get; private set; } = [];

    /// <summary>Creates an untrained network (seeded) on <paramref name="device"/>.</summary>
    public static LabelCompletionEngine Create(LmaeConfig config, int seed, Device device)
    {
        random.manual_seed(seed);
        var model = new LabelMaskAutoEncoder(config);
        model.to(device);
        return new LabelCompletionEngine(config, device, model);
    }

    /// <summary>
    /// Trains a new network. <paramref name="train"/> is read once and kept decoded in memory for the epochs;
    /// <paramref name="validation"/> likewise (a fixed centre crop per image, protocol masks with seed 0).
    /// </summary>
    public static LabelCompletionEngine Train(IEnumerable<SegmentationExample> train, IEnumerable<SegmentationExample>? validation,
        LabelCompletionOptions options, int seed, Device device, Action<TrainingProgress>? progress, CancellationToken cancellationToken,
        Func<int, int, bool>? injectNonFiniteLoss = null)
    {
        ArgumentNullException.ThrowIfNull(train);
        ArgumentNullException.ThrowIfNull(options);
        var config = LmaeConfig.FromOptions(options);
        Internal.NativeHeapTuning.Apply();
        if (options.NumberOfThreads is int threads) set_num_threads(threads);
        var examples = ReadExamples(train, config, cancellationToken, "training");
        if (examples.Count == 0) throw new InvalidOperationException("The training data has no rows.");
        var validationExamples = validation is null ? null : ReadExamples(validation, config, cancellationToken, "validation");
        // The decoded examples stay for every epoch; what decoding them left behind (file buffers, PNG rows, in the GC heap and
        // in the native heap the tuning keeps) goes back to the operating system once, before the first step.
        Internal.NativeHeapTuning.ReleaseGarbage();
        var engine = Create(config, seed, device);
        try
        {
            var trainer = new LmaeTrainer(engine._model, config, options, seed, device) { InjectNonFiniteLoss = injectNonFiniteLoss };
            try
            {
                trainer.Run(examples, validationExamples, progress, cancellationToken);
            }
            finally
            {
                engine.ResumedFrom = trainer.ResumedFrom;
                engine.RejectedCheckpoints = trainer.RejectedCheckpoints;
            }
            engine.TrainingExampleCount = examples.Count;
            engine.DataWaitSeconds = trainer.DataWaitSeconds;
            engine.StepSeconds = trainer.StepSeconds;
            return engine;
        }
        catch
        {
            engine.Dispose();
            throw;
        }
    }

    /// <summary>
    /// Completes a batch of images. <paramref name="patchMasks"/>[i] is the Mask Selector's choice for image i on the grid of
    /// <see cref="LmaeConfig.PatchSize"/> (see <see cref="MaskSelector"/>). Pixels that are unknown, and with
    /// <paramref name="replaceKnownInMaskedPatches"/> every pixel of a masked patch, take the network's prediction; the rest
    /// keep the input. Large images run as overlapping windows of the training size; the patch decoder's logits are averaged
    /// where windows overlap, and the <see cref="PixelRefinement"/> then runs once over the whole image (a convolution needs no
    /// windows: this saves the refinement's repeated work in overlaps, about half the FLOPs of a 480x360 completion).
    /// Runs under no_grad/eval, in <paramref name="precision"/> (<see cref="Autocast"/>); safe to call from several threads.
    /// </summary>
    public IReadOnlyList<CompletionResult> Complete(IReadOnlyList<SegmentationExample> batch, IReadOnlyList<bool[]> patchMasks,
        CancellationToken cancellationToken = default, bool replaceKnownInMaskedPatches = false, int windowsPerForward = 8,
        LabelCompletionPrecision precision = LabelCompletionPrecision.Float32, CompletionTimings? timings = null)
    {
        ArgumentNullException.ThrowIfNull(batch);
        ArgumentNullException.ThrowIfNull(patchMasks);
        if (batch.Count != patchMasks.Count) throw new ArgumentException("One patch mask per image is needed.", nameof(patchMasks));
        Internal.NativeHeapTuning.Apply();
        int p = Config.PatchSize, c = Config.NumberOfClasses, t = Config.TrainingSize;
        byte unknown = Config.UnknownLabel;

        long started = Stopwatch.GetTimestamp();
        // 1. Pad every image to the patch grid, hide masked patches, compute the prior, cut windows. Checked first, in order
        //    (the first bad row is the one named); then the images in parallel, and within an image its two priors side by
        //    side (measured with lmae bench --only infer: docs/decisions.md, Speed). Windows keep the images' order.
        for (int i = 0; i < batch.Count; i++)
        {
            ValidateExample(batch[i], Config);
            var (rows, columns) = MaskSelector.Grid(batch[i].Image.Width, batch[i].Image.Height, p);
            if (patchMasks[i].Length != rows * columns)
                throw new ArgumentException($"{batch[i].Source}: the patch mask has {patchMasks[i].Length} entries, the {columns}x{rows} patch grid needs {rows * columns}.");
        }
        var images = new PaddedImage[batch.Count];
        var imageWindows = new List<(int Image, int X, int Y, WindowSample Sample)>[batch.Count];
        // As many threads as libtorch's (NumberOfThreads when set): the network runs only after this.
        var parallel = new ParallelOptions { CancellationToken = cancellationToken, MaxDegreeOfParallelism = Math.Max(1, get_num_threads()) };
        try
        {
            Parallel.For(0, batch.Count, parallel, PrepareImage);
        }
        catch (AggregateException e)
        {
            // The caller sees what went wrong, as from a sequential loop, not a wrapper.
            System.Runtime.ExceptionServices.ExceptionDispatchInfo.Capture(e.Flatten().InnerExceptions[0]).Throw();
        }
        var windows = imageWindows.SelectMany(w => w).ToList();

        void PrepareImage(int i)
        {
            var example = batch[i];
            var (rows, columns) = MaskSelector.Grid(example.Image.Width, example.Image.Height, p);
            int pw = columns * p, ph = rows * p;
            var (image, label) = WindowBatch.Crop(example.Image, example.Label, 0, 0, pw, ph, unknown);
            var input = MaskSelector.Apply(label, patchMasks[i], p, unknown);
            var priorSource = replaceKnownInMaskedPatches ? input : label;
            byte[]? prior = null, directional = null;
            Parallel.Invoke(parallel,
                () => prior = Config.LabelPrior == LabelPriorMode.None ? null : Evaluation.NearestKnownFill.Fill(priorSource, unknown).Values,
                () => directional = Config.DirectionalPrior ? DirectionalFill.Compute(priorSource.Values, pw, ph, unknown) : null);
            images[i] = new PaddedImage(pw, ph, new float[pw * ph], Config.RefinementChannels > 0
                ? CutWindow(image, input, prior, directional, patchMasks[i], columns, 0, 0, pw, ph, example.Source)
                : null);
            int ww = Math.Min(t, pw), wh = Math.Min(t, ph);
            var cut = imageWindows[i] = new List<(int, int, int, WindowSample)>();
            foreach (int y in WindowBatch.WindowStarts(ph, wh, Config.WindowOverlap, p))
                foreach (int x in WindowBatch.WindowStarts(pw, ww, Config.WindowOverlap, p))
                {
                    cut.Add((i, x, y, CutWindow(image, input, prior, directional, patchMasks[i], columns, x, y, ww, wh, example.Source)));
                    for (int yy = y; yy < y + wh; yy++)
                        for (int xx = x; xx < x + ww; xx++) images[i].Counts[yy * pw + xx] += 1;
                }
        }

        timings?.Add(ref timings.PrepareSeconds, ref started);
        using (NewDisposeScope())
        using (no_grad())
        using (Autocast.Enter(precision, Device))
        {
            _model.eval();
            // 2. Run windows of equal size together through encoder and decoder; sum the decoder logits per image (in libtorch:
            //    the window logits never become managed arrays).
            var sums = images.Select(im => zeros(c, im.Height, im.Width, device: Device)).ToArray();
            foreach (var group in windows.GroupBy(w => (w.Sample.Width, w.Sample.Height)))
                foreach (var chunk in group.Chunk(Math.Max(1, windowsPerForward)))
                {
                    cancellationToken.ThrowIfCancellationRequested();
                    using var scope = NewDisposeScope();
                    using var inputs = WindowBatch.ToInputs(chunk.Select(w => w.Sample).ToList(), Config, Device);
                    timings?.Add(ref timings.TensorSeconds, ref started);
                    var logits = _model.ForwardDecoder(_model.ForwardEncoder(inputs), inputs);
                    timings?.Add(ref timings.NetworkSeconds, ref started);
                    for (int k = 0; k < chunk.Length; k++)
                    {
                        var (image, x, y, sample) = chunk[k];
                        sums[image].narrow(1, y, sample.Height).narrow(2, x, sample.Width).add_(logits[k]);
                    }
                    timings?.Add(ref timings.AccumulateSeconds, ref started);
                }

            // 3. Per image: the mean decoder logits, the pixel refinement (if any) over the whole image, softmax; its max and argmax.
            for (int i = 0; i < images.Length; i++)
            {
                cancellationToken.ThrowIfCancellationRequested();
                using var scope = NewDisposeScope();
                var padded = images[i];
                using var counts = tensor(padded.Counts, [1, 1, padded.Height, padded.Width], ScalarType.Float32, Device);
                var logits = sums[i].unsqueeze(0).div(counts);
                if (padded.Whole is not null)
                {
                    using var whole = WindowBatch.ToInputs([padded.Whole], Config, Device);
                    logits = _model.Refine(logits, whole);
                }
                var (probability, best) = nn.functional.softmax(logits, 1).max(1);
                padded.Probability = new float[padded.Width * padded.Height];
                padded.Best = new byte[padded.Width * padded.Height];
                CopyOut(probability, padded.Probability);
                CopyOut(best.to(ScalarType.Byte), padded.Best);
                timings?.Add(ref timings.RefinementSeconds, ref started);
            }
        }

        // 4. Decide per pixel.
        var results = new CompletionResult[batch.Count];
        for (int i = 0; i < batch.Count; i++)
            results[i] = Decide(batch[i], images[i], patchMasks[i], replaceKnownInMaskedPatches);
        timings?.Add(ref timings.DecideSeconds, ref started);
        return results;
    }

    /// <summary>Copies a tensor's values into <paramref name="destination"/> through its storage bytes (one block copy).</summary>
    private static void CopyOut<T>(Tensor values, T[] destination) where T : unmanaged
    {
        using var cpu = values.to(CPU).contiguous();
        System.Runtime.InteropServices.MemoryMarshal.Cast<byte, T>(cpu.bytes).CopyTo(destination);
    }

    /// <summary>Writes the weights (TorchSharp state dict format) to <paramref name="writer"/>; the config is saved by the caller.</summary>
    public void SaveWeights(BinaryWriter writer) => _model.save(writer);

    /// <summary>Rebuilds a network of <paramref name="config"/> on <paramref name="device"/> and reads its weights.</summary>
    public static LabelCompletionEngine Load(LmaeConfig config, BinaryReader reader, Device device)
    {
        var model = new LabelMaskAutoEncoder(config);
        try
        {
            model.load(reader, strict: true);
            model.to(device);
            model.eval();
            return new LabelCompletionEngine(config, device, model);
        }
        catch
        {
            model.Dispose();
            throw;
        }
    }

    /// <summary>Releases the network's tensors.</summary>
    public void Dispose() => _model.Dispose();

    /// <summary>Throws when an example's label does not match its image or holds values that are neither class nor unknown.</summary>
    internal static void ValidateExample(SegmentationExample example, LmaeConfig config)
    {
        example.Image.Validate(example.Source);
        if (example.Label.Width != example.Image.Width || example.Label.Height != example.Image.Height)
            throw new InvalidDataException($"{example.Source}: the label is {example.Label.Width}x{example.Label.Height} but the image is {example.Image.Width}x{example.Image.Height}.");
        example.Label.Validate(config.NumberOfClasses, config.UnknownLabel, example.Source);
    }

    private static List<SegmentationExample> ReadExamples(IEnumerable<SegmentationExample> source, LmaeConfig config, CancellationToken token, string what)
    {
        var list = new List<SegmentationExample>();
        foreach (var example in source)
        {
            token.ThrowIfCancellationRequested();
            ValidateExample(example, config);
            list.Add(example);
        }
        return list;
    }

    private static WindowSample CutWindow(RgbImage image, LabelMap input, byte[]? prior, byte[]? directional, bool[] patchMask, int columns,
        int x0, int y0, int width, int height, string source)
    {
        int p = input.Width / columns;
        var (rgb, label) = WindowBatch.Crop(image, input, x0, y0, width, height, 0);
        int wc = width / p, wr = height / p;
        var mask = new bool[wr * wc];
        for (int r = 0; r < wr; r++)
            for (int c = 0; c < wc; c++) mask[r * wc + c] = patchMask[(y0 / p + r) * columns + x0 / p + c];
        return new WindowSample
        {
            Width = width, Height = height, Rgb = rgb.Pixels, InputLabel = label.Values, PatchMask = mask, Source = source,
            Prior = prior is null ? null : CropPlanes(prior, 1, input.Width, input.Height, x0, y0, width, height),
            Directional = directional is null ? null : CropPlanes(directional, DirectionalFill.Planes, input.Width, input.Height, x0, y0, width, height),
        };
    }

    /// <summary>Cuts a window out of <paramref name="planes"/> stacked planes of a <paramref name="sourceWidth"/>-wide map.</summary>
    private static byte[] CropPlanes(byte[] source, int planes, int sourceWidth, int sourceHeight, int x0, int y0, int width, int height)
    {
        var window = new byte[planes * width * height];
        for (int k = 0; k < planes; k++)
            for (int y = 0; y < height; y++)
                Array.Copy(source, k * sourceWidth * sourceHeight + (y0 + y) * sourceWidth + x0, window, (k * height + y) * width, width);
        return window;
    }

    private CompletionResult Decide(SegmentationExample example, PaddedImage padded, bool[] patchMask, bool replaceKnown)
    {
        int w = example.Image.Width, h = example.Image.Height;
        byte unknown = Config.UnknownLabel;
        var pixelMask = MaskSelector.ToPixelMask(patchMask, w, h, Config.PatchSize);
        var values = new byte[w * h];
        var confidence = new float[w * h];
        var completionMask = new bool[w * h];
        for (int y = 0; y < h; y++)
            for (int x = 0; x < w; x++)
            {
                int i = y * w + x, j = y * padded.Width + x;
                byte input = example.Label.Values[i];
                bool predict = input == unknown || (replaceKnown && pixelMask[i]);
                completionMask[i] = pixelMask[i] || input == unknown;
                values[i] = predict ? padded.Best![j] : input;
                confidence[i] = predict ? padded.Probability![j] : 1f;
            }
        return new CompletionResult(new LabelMap(w, h, values), confidence, completionMask);
    }

    /// <summary>
    /// One image padded to the patch grid during completion: how many windows cover each pixel; the whole image as one
    /// refinement input (null without a refinement); after the network, per pixel the most probable class and its probability.
    /// </summary>
    private sealed record PaddedImage(int Width, int Height, float[] Counts, WindowSample? Whole)
    {
        public byte[]? Best { get; set; }

        public float[]? Probability { get; set; }
    }
}

/// <summary>
/// Where <see cref="LabelCompletionEngine.Complete"/> spends its wall time (seconds, summed over calls): CPU-side preparation
/// (padding, masking, priors, window cuts), building input tensors, encoder and decoder, accumulating window logits, the
/// whole-image refinement with softmax, and the per-pixel decision. Filled by the benchmark.
/// </summary>
internal sealed class CompletionTimings
{
    public double PrepareSeconds;
    public double TensorSeconds;
    public double NetworkSeconds;
    public double AccumulateSeconds;
    public double RefinementSeconds;
    public double DecideSeconds;

    /// <summary>Adds the time since <paramref name="since"/> to <paramref name="part"/> and restarts the clock.</summary>
    public void Add(ref double part, ref long since)
    {
        long now = Stopwatch.GetTimestamp();
        part += Stopwatch.GetElapsedTime(since, now).TotalSeconds;
        since = now;
    }
}
