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
/// <param name="Completed">The network's argmax where the pixel lay in a masked patch or was unknown; the input label elsewhere.</param>
/// <param name="Confidence">Per pixel, the max softmax probability where the network decided; 1 where the input label was kept.</param>
/// <param name="CompletionMask">Per pixel, <c>true</c> exactly where the value came from the network (a masked patch or an unknown pixel).</param>
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

    /// <summary>
    /// Creates an untrained network on <paramref name="device"/>, initialised from <paramref name="seed"/>; the global random
    /// generator's state is what it was before (the host's random sequence is not changed).
    /// </summary>
    public static LabelCompletionEngine Create(LmaeConfig config, int seed, Device device)
    {
        using var hostState = random.get_rng_state();
        LabelMaskAutoEncoder model;
        try
        {
            random.manual_seed(seed);
            model = new LabelMaskAutoEncoder(config);
        }
        finally
        {
            random.set_rng_state(hostState);
        }
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
        if (options.NumberOfThreads is int threads) set_num_threads(threads);
        var examples = ReadExamples(train, config, cancellationToken, "training");
        if (examples.Count == 0) throw new InvalidOperationException("The training data has no rows.");
        var validationExamples = validation is null ? null : ReadExamples(validation, config, cancellationToken, "validation");
        // The decoded examples stay for every epoch; with the process tuning (LabelCompletionProcessTuning), what decoding
        // them left behind (file buffers, PNG rows, in the GC heap and in the native heap) goes back to the operating system
        // once, before the first step.
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
    /// <see cref="LmaeConfig.PatchSize"/> (see <see cref="MaskSelector"/>). Hidden means hidden, whatever the selector: the
    /// label pixels of a masked patch are removed before any input is derived from the label (the input label, the label
    /// prior, the directional planes), and every pixel of a masked patch, like every unknown pixel, takes the network's
    /// prediction; the other pixels keep the input. Large images run as overlapping windows of the training size; the patch decoder's logits are averaged
    /// where windows overlap, and the <see cref="PixelRefinement"/> then runs once over the whole image (a convolution needs no
    /// windows: this saves the refinement's repeated work in overlaps, about half the FLOPs of a 480x360 completion).
    /// Runs under no_grad/eval, in <paramref name="precision"/> (<see cref="Autocast"/>); safe to call from several threads.
    /// </summary>
    public IReadOnlyList<CompletionResult> Complete(IReadOnlyList<SegmentationExample> batch, IReadOnlyList<bool[]> patchMasks,
        CancellationToken cancellationToken = default, int windowsPerForward = 8,
        LabelCompletionPrecision precision = LabelCompletionPrecision.Float32, LapTimings? timings = null)
    {
        ArgumentNullException.ThrowIfNull(batch);
        ArgumentNullException.ThrowIfNull(patchMasks);
        if (batch.Count != patchMasks.Count) throw new ArgumentException("One patch mask per image is needed.", nameof(patchMasks));
        int p = Config.PatchSize, c = Config.NumberOfClasses, t = Config.TrainingSize;
        byte unknown = Config.UnknownLabel;

        timings?.Restart();
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

        void PrepareImage(int i)
        {
            var example = batch[i];
            var (rows, columns) = MaskSelector.Grid(example.Image.Width, example.Image.Height, p);
            int pw = columns * p, ph = rows * p;
            var (image, label) = WindowBatch.Crop(example.Image, example.Label, 0, 0, pw, ph, unknown);
            var input = MaskSelector.Apply(label, patchMasks[i], p, unknown);
            byte[]? prior = null, directional = null;
            Parallel.Invoke(parallel,
                () => prior = Config.LabelPrior == LabelPriorMode.None ? null : Evaluation.NearestKnownFill.Fill(input, unknown).Values,
                () => directional = Config.DirectionalPrior ? DirectionalFill.Compute(input.Values, pw, ph, unknown) : null);
            var whole = new WindowSample
            {
                Width = pw, Height = ph, Rgb = image.Pixels, InputLabel = input.Values, PatchMask = patchMasks[i],
                Prior = prior, Directional = directional, Source = example.Source,
            };
            int ww = Math.Min(t, pw), wh = Math.Min(t, ph);
            var windows = new List<(int X, int Y, int Width, int Height, bool[] PatchMask)>();
            foreach (int y in WindowBatch.WindowStarts(ph, wh, Config.WindowOverlap, p))
                foreach (int x in WindowBatch.WindowStarts(pw, ww, Config.WindowOverlap, p))
                    windows.Add((x, y, ww, wh, WindowMask(patchMasks[i], columns, x / p, y / p, ww / p, wh / p)));
            images[i] = new PaddedImage(whole, windows);
        }

        timings?.Lap("prepare_ms");
        var results = new CompletionResult[batch.Count];
        using (NewDisposeScope())
        using (no_grad())
        using (Autocast.Enter(precision, Device))
        {
            _model.eval();
            // 2. Each image's bytes become tensors once; windows are views of them. Windows of equal size run together through
            //    encoder and decoder; the decoder logits are summed per image, and how many windows covered each pixel counted
            //    (in libtorch: the window logits never become managed arrays).
            var tensors = images.Select(im => new ImageTensors(im.Whole)).ToArray(); // (their tensors belong to this dispose scope)
            var sums = images.Select(im => zeros(c, im.Whole.Height, im.Whole.Width, device: Device)).ToArray();
            var counts = images.Select(im => zeros(1, 1, im.Whole.Height, im.Whole.Width, device: Device)).ToArray();
            var windows = images.SelectMany((im, i) => im.Windows.Select(w => (Image: i, Cut: new WindowCut(tensors[i], w.X, w.Y, w.Width, w.Height, w.PatchMask))));
            timings?.Lap("tensors_ms");
            // Within a size, windows run in order of their visible-patch count: a forward pads every window's encoder tokens to
            // the most visible ones of its chunk, so similar counts together waste fewer (random 50% masks on 480x360 images:
            // 1300 → 1204 encoder tokens at batch 1, 10184 → 9376 at batch 8, for 1166 and 9310 visible; partly annotated
            // labels, whose windows range from all known to all unknown, far more). The order is stable.
            foreach (var group in windows.GroupBy(w => (w.Cut.Width, w.Cut.Height)))
                foreach (var chunk in group.OrderBy(w => w.Cut.PatchMask.Count(masked => !masked)).Chunk(Math.Max(1, windowsPerForward)))
                {
                    cancellationToken.ThrowIfCancellationRequested();
                    using var scope = NewDisposeScope();
                    using var inputs = WindowBatch.ToInputs(chunk.Select(w => w.Cut).ToList(), Config, Device, forRefinement: false);
                    timings?.Lap("tensors_ms");
                    var logits = _model.ForwardDecoder(_model.ForwardEncoder(inputs), inputs);
                    timings?.Lap("network_ms");
                    for (int k = 0; k < chunk.Length; k++)
                    {
                        var (image, cut) = chunk[k];
                        sums[image].narrow(1, cut.Y, cut.Height).narrow(2, cut.X, cut.Width).add_(logits[k]);
                        counts[image].narrow(2, cut.Y, cut.Height).narrow(3, cut.X, cut.Width).add_(TorchScalars.One);
                    }
                    timings?.Lap("accumulate_ms");
                }

            // 3. Per image: the mean decoder logits, the pixel refinement (if any) over the whole image, softmax; its max and
            //    argmax; then the per-pixel decision, read straight from those two tensors.
            for (int i = 0; i < images.Length; i++)
            {
                cancellationToken.ThrowIfCancellationRequested();
                using var scope = NewDisposeScope();
                var whole = images[i].Whole;
                var logits = sums[i].unsqueeze(0).div(counts[i]);
                if (_model.HasRefinement)
                {
                    using var inputs = WindowBatch.ToInputs([new WindowCut(tensors[i], 0, 0, whole.Width, whole.Height, whole.PatchMask)], Config, Device, forRefinement: true);
                    logits = _model.Refine(logits, inputs);
                }
                var (probability, best) = nn.functional.softmax(logits, 1).max(1);
                using var probabilities = probability.to(CPU).contiguous();
                using var classes = best.to(ScalarType.Byte).to(CPU).contiguous();
                timings?.Lap("refinement_ms");
                // 4. Decide per pixel.
                results[i] = Decide(batch[i], whole.Width, System.Runtime.InteropServices.MemoryMarshal.Cast<byte, float>(probabilities.bytes),
                    classes.bytes, patchMasks[i]);
                timings?.Lap("decide_ms");
            }
        }
        return results;
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

    /// <summary>The part of an image's <paramref name="patchMask"/> (<paramref name="columns"/> patches wide) that a window of
    /// <paramref name="windowColumns"/> x <paramref name="windowRows"/> patches at patch (<paramref name="column"/>, <paramref name="row"/>) covers.</summary>
    private static bool[] WindowMask(bool[] patchMask, int columns, int column, int row, int windowColumns, int windowRows)
    {
        var mask = new bool[windowRows * windowColumns];
        for (int r = 0; r < windowRows; r++)
            Array.Copy(patchMask, (row + r) * columns + column, mask, r * windowColumns, windowColumns);
        return mask;
    }

    /// <summary>
    /// The completed label of one image: the network's class (<paramref name="best"/>, <paramref name="probability"/>, over
    /// the padded image <paramref name="paddedWidth"/> wide) where the input is unknown or in a masked patch; the input label
    /// elsewhere. The completion mask marks exactly the pixels whose value came from the network.
    /// </summary>
    private CompletionResult Decide(SegmentationExample example, int paddedWidth, ReadOnlySpan<float> probability, ReadOnlySpan<byte> best,
        bool[] patchMask)
    {
        int w = example.Image.Width, h = example.Image.Height, p = Config.PatchSize, columns = paddedWidth / p;
        byte unknown = Config.UnknownLabel;
        var values = new byte[w * h];
        var confidence = new float[w * h];
        var completionMask = new bool[w * h];
        for (int y = 0; y < h; y++)
        {
            int row = y / p * columns;
            for (int x = 0; x < w; x++)
            {
                int i = y * w + x, j = y * paddedWidth + x;
                byte input = example.Label.Values[i];
                bool masked = patchMask[row + x / p];
                bool predict = input == unknown || masked;
                completionMask[i] = predict;
                values[i] = predict ? best[j] : input;
                confidence[i] = predict ? probability[j] : 1f;
            }
        }
        return new CompletionResult(new LabelMap(w, h, values), confidence, completionMask);
    }

    /// <summary>
    /// One image padded to the patch grid during completion: its bytes (the whole image, also the refinement's input) and
    /// its windows (origin, size, the part of the patch mask they cover).
    /// </summary>
    private sealed record PaddedImage(WindowSample Whole, IReadOnlyList<(int X, int Y, int Width, int Height, bool[] PatchMask)> Windows);
}
