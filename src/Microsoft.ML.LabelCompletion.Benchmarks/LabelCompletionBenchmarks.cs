using System.Diagnostics;
using System.Globalization;
using System.Text.Json;
using Microsoft.ML.LabelCompletion.Model;
using Microsoft.ML.LabelCompletion.Synthetic;
using static TorchSharp.torch;

namespace Microsoft.ML.LabelCompletion.Benchmarks;

/// <summary>One benchmark measurement: named fields in a fixed order, printed as one JSON object per line (DESIGN.md §6).</summary>
public sealed class BenchmarkRecord
{
    private readonly List<KeyValuePair<string, object>> _fields = new();

    /// <summary>Creates a record for benchmark <paramref name="bench"/>, with whether the process tuning was applied.</summary>
    public BenchmarkRecord(string bench) => Add("bench", bench).Add("process_tuning", LabelCompletionProcessTuning.Applied);

    /// <summary>The fields in insertion order.</summary>
    public IReadOnlyList<KeyValuePair<string, object>> Fields => _fields;

    /// <summary>Looks a numeric field up.</summary>
    public double this[string name] => Convert.ToDouble(_fields.First(f => f.Key == name).Value, CultureInfo.InvariantCulture);

    /// <summary>Adds a field (numbers are rounded to 4 significant decimals for printing).</summary>
    public BenchmarkRecord Add(string name, object value)
    {
        _fields.Add(new(name, value is double d ? Math.Round(d, 4) : value));
        return this;
    }

    /// <summary>The record as one line of JSON.</summary>
    public string ToJsonLine()
    {
        using var stream = new MemoryStream();
        using (var writer = new Utf8JsonWriter(stream))
        {
            writer.WriteStartObject();
            foreach (var (key, value) in _fields)
            {
                writer.WritePropertyName(key);
                JsonSerializer.Serialize(writer, value, value.GetType());
            }
            writer.WriteEndObject();
        }
        return System.Text.Encoding.UTF8.GetString(stream.ToArray());
    }
}

/// <summary>
/// The project's performance benchmarks (DESIGN.md §6): FP32 matmul ceiling, training step, inference, data path and the
/// paper-size step. Every timing fixes config, batch, threads and seed, warms up first and reports the median.
/// </summary>
public static class LabelCompletionBenchmarks
{
    /// <summary>
    /// Timed repeats of each ceiling measurement. The ceiling that <see cref="Train"/> and <see cref="Infer"/> divide by is the
    /// FP32 <see cref="Matmul"/> measured in the same process right before and right after the timed section, averaged (both
    /// are reported): a shared virtual machine's throughput can drift by tens of percent within minutes (docs/decisions.md,
    /// Speed), and a ceiling measured once at the start of the run would mix that drift into the fraction.
    /// </summary>
    private const int CeilingRepeats = 5;

    private static int _matmulWarmedUp;

    /// <summary>
    /// <c>n x n</c> matrix product GFLOP/s of this process with <paramref name="threads"/> threads: in FP32 the ceiling the
    /// others are divided by; in bf16 (<paramref name="precision"/>) the ceiling of bf16 autocast.
    /// </summary>
    public static BenchmarkRecord Matmul(int threads, int size = 2048, int repeats = 10, LabelCompletionPrecision precision = LabelCompletionPrecision.Float32)
    {
        set_num_threads(threads);
        manual_seed(0);
        var dtype = Autocast.Resolve(precision, CPU) == LabelCompletionPrecision.BFloat16 ? ScalarType.BFloat16 : ScalarType.Float32;
        using var a = randn(size, size).to(dtype);
        using var b = randn(size, size).to(dtype);
        void Product()
        {
            using var c = a.matmul(b);
            c.sum().to(ScalarType.Float32).item<float>();
        }
        // Warm-up: two products; the process's first measurement at least a second of them (right after start-up it read
        // 113-122 GFLOP/s in 7 of 9 infer runs on the 2-core AMD EPYC VM, the measurement after the timed section 145-165).
        double warmupSeconds = Interlocked.Exchange(ref _matmulWarmedUp, 1) == 0 ? 1.0 : 0.0;
        var warmup = Stopwatch.StartNew();
        for (int i = 0; i < 2 || warmup.Elapsed.TotalSeconds < warmupSeconds; i++) Product();
        var times = new List<double>();
        for (int i = 0; i < repeats; i++)
        {
            var sw = Stopwatch.StartNew();
            Product();
            times.Add(sw.Elapsed.TotalSeconds);
        }
        double seconds = Median(times);
        return new BenchmarkRecord("matmul").Add("config", $"{size}x{size}").Add("precision", Name(precision)).Add("batch", 1).Add("threads", threads)
            .Add("ms", seconds * 1000).Add("gflop_per_s", 2.0 * size * size * size / seconds / 1e9);
    }

    /// <summary>
    /// Training step of <paramref name="size"/> on synthetic scenes of <paramref name="crop"/> pixels: ms per image (median of
    /// <paramref name="steps"/> steps after <paramref name="warmup"/>), model GFLOP per image (forward + backward ≈ 3x forward),
    /// achieved GFLOP/s, its fraction of the FP32 matmul ceiling (see <see cref="CeilingRepeats"/>), the share of wall time waiting
    /// on data, peak RSS of this benchmark (<see cref="ResetPeakRss"/>; <c>peak_rss_scope</c> says <c>process</c> where it could not be reset).
    /// </summary>
    public static BenchmarkRecord Train(LabelCompletionModelSize size, int batch, double maskRatio, int threads,
        int crop = 224, int steps = 10, int warmup = 3, int seed = 0, string? name = null,
        LabelCompletionPrecision precision = LabelCompletionPrecision.Float32, ImageFeatureInputs? imageFeatures = null)
    {
        var options = new LabelCompletionOptions
        {
            NumberOfClasses = 11, ModelSize = size, BatchSize = batch, MaskRatio = (float)maskRatio, NumberOfThreads = threads,
            TrainingSize = crop, Epochs = 1, ClassWeighting = ClassWeighting.None, Precision = precision,
        };
        if (imageFeatures is { } features) options.ImageFeatures = features;
        var config = LmaeConfig.FromOptions(options);
        // The peak of this run only: earlier benchmarks' free memory back to the kernel first (after the Paper step, 4 GiB of
        // free native heap would otherwise count as the next Small run's peak), then the high-water mark reset.
        Internal.NativeHeapTuning.ReleaseGarbage();
        bool peakOfThisRun = ResetPeakRss();
        var examples = SyntheticExamples((warmup + steps) * batch, 480, 360, seed, config.NumberOfClasses);
        var stamps = new List<double>();
        double ceilingBefore = Matmul(threads, repeats: CeilingRepeats)["gflop_per_s"];
        var clock = Stopwatch.StartNew();
        using var engine = LabelCompletionEngine.Train(examples, null, options, seed, CPU,
            p => { if (!p.EndOfEpoch) stamps.Add(clock.Elapsed.TotalSeconds); }, CancellationToken.None);
        double ceilingAfter = Matmul(threads, repeats: CeilingRepeats)["gflop_per_s"];
        var stepTimes = stamps.Zip(stamps.Skip(1), (x, y) => y - x).Skip(warmup - 1).ToList();
        double msPerImage = Median(stepTimes) * 1000 / batch;
        double gflops = LmaeFlops.TrainingStep(config, config.TrainingSize, maskRatio) / 1e9;
        double achieved = gflops / (msPerImage / 1000);
        double total = engine.StepSeconds + engine.DataWaitSeconds;
        return new BenchmarkRecord(name ?? "train").Add("config", size.ToString()).Add("precision", Name(precision)).Add("batch", batch).Add("threads", threads)
            .Add("image_features", config.ImageFeatures.ToString()).Add("mask_ratio", maskRatio).Add("crop", config.TrainingSize).Add("ms_per_image", msPerImage)
            .Add("gflops_per_image", gflops).Add("gflop_per_s", achieved)
            .Add("matmul_gflop_per_s", (ceilingBefore + ceilingAfter) / 2).Add("matmul_before", ceilingBefore).Add("matmul_after", ceilingAfter)
            .Add("fraction_of_matmul", achieved / ((ceilingBefore + ceilingAfter) / 2))
            .Add("data_wait_share", total > 0 ? engine.DataWaitSeconds / total : 0.0)
            .Add("peak_rss_mb", PeakRssMiB()).Add("peak_rss_scope", peakOfThisRun ? "benchmark" : "process");
    }

    /// <summary>
    /// Completion of <paramref name="width"/> x <paramref name="height"/> images (padded to the patch grid, sliding windows of
    /// the training size) with the Unknown selector on protocol masks of ratio 0.5: ms per image (median of
    /// <paramref name="repeats"/> after warm-up completions of at least 12 images), GFLOP per image from the windows actually run and the one refinement over the
    /// whole image, fraction of the matmul ceiling.
    /// </summary>
    public static BenchmarkRecord Infer(LabelCompletionModelSize size, int batch, int threads,
        int width = 480, int height = 360, int repeats = 5, int seed = 0, LabelCompletionPrecision precision = LabelCompletionPrecision.Float32,
        ImageFeatureInputs? imageFeatures = null)
    {
        set_num_threads(threads);
        var options = new LabelCompletionOptions { NumberOfClasses = 11, ModelSize = size, NumberOfThreads = threads };
        if (imageFeatures is { } features) options.ImageFeatures = features;
        var config = LmaeConfig.FromOptions(options);
        using var engine = LabelCompletionEngine.Create(config, seed, CPU);
        var examples = SyntheticExamples(batch, width, height, seed, config.NumberOfClasses);
        int p = config.PatchSize;
        var (rows, columns) = MaskSelector.Grid(width, height, p);
        var masks = new List<bool[]>();
        for (int i = 0; i < batch; i++)
        {
            var mask = MaskSelector.RandomForEvaluation(rows * columns, 0.5, 0, i);
            examples[i] = examples[i] with { Label = MaskSelector.Apply(examples[i].Label, mask, p, config.UnknownLabel) };
            masks.Add(mask);
        }
        var times = new List<double>();
        var parts = new LapTimings();
        // Warm-up in two parts around the first ceiling: completions of at least 4 images (.NET's tiered JIT settles; a ceiling
        // measured before any completion reads low), the ceiling, then completions of at least 8 images (the native heap
        // settles again after the ceiling's 48 MB of matrices). Both batches are timed after the same warm-up
        // (docs/decisions.md, Speed).
        int beforeCeiling = Math.Max(1, (4 + batch - 1) / batch), warmup = beforeCeiling + Math.Max(1, (8 + batch - 1) / batch);
        (long Minor, long Major)? faultsBefore = null;
        double ceilingBefore = 0;
        for (int r = 0; r < repeats + warmup; r++)
        {
            if (r == beforeCeiling) ceilingBefore = Matmul(threads, repeats: CeilingRepeats)["gflop_per_s"];
            if (r == warmup) faultsBefore = PageFaults();
            var sw = Stopwatch.StartNew();
            if (r < warmup) engine.Complete(examples, masks, precision: precision);
            else
            {
                CompleteInSteps(engine.Network, examples, masks, precision, parts);
                times.Add(sw.Elapsed.TotalSeconds);
            }
        }
        var faultsAfter = PageFaults();
        double ceilingAfter = Matmul(threads, repeats: CeilingRepeats)["gflop_per_s"];
        double PerImage(string part) => parts.Milliseconds.GetValueOrDefault(part) / repeats / batch;
        double msPerImage = Median(times) * 1000 / batch;
        int pw = columns * p, ph = rows * p, ww = Math.Min(config.TrainingSize, pw), wh = Math.Min(config.TrainingSize, ph);
        // The ResNet18 and the refinement (with its feature projection) once over the whole image; the projections of the
        // patch features per window.
        double gflops = (LmaeFlops.Refinement(config, ph, pw) + LmaeFlops.Backbone(config, ph, pw, patches: true, pixels: true)
            + LmaeFlops.FeatureProjections(config, ph, pw, patches: false, pixels: true)) / 1e9;
        foreach (int y in WindowBatch.WindowStarts(ph, wh, config.WindowOverlap, p))
            foreach (int x in WindowBatch.WindowStarts(pw, ww, config.WindowOverlap, p))
            {
                int visible = 0;
                for (int rr = 0; rr < wh / p; rr++)
                    for (int cc = 0; cc < ww / p; cc++) if (!masks[0][(y / p + rr) * columns + x / p + cc]) visible++;
                gflops += (LmaeFlops.EncoderDecoder(config, wh, ww, visible) + LmaeFlops.FeatureProjections(config, wh, ww, patches: true, pixels: false)) / 1e9;
            }
        double achieved = gflops / (msPerImage / 1000);
        var record = new BenchmarkRecord("infer").Add("config", size.ToString()).Add("precision", Name(precision)).Add("batch", batch).Add("threads", threads)
            .Add("image_features", config.ImageFeatures.ToString()).Add("image", $"{width}x{height}").Add("ms_per_image", msPerImage).Add("gflops_per_image", gflops)
            .Add("gflop_per_s", achieved)
            .Add("matmul_gflop_per_s", (ceilingBefore + ceilingAfter) / 2).Add("matmul_before", ceilingBefore).Add("matmul_after", ceilingAfter)
            .Add("fraction_of_matmul", achieved / ((ceilingBefore + ceilingAfter) / 2))
            .Add("prepare_ms", PerImage("prepare_ms")).Add("image_features_ms", PerImage("image_features_ms")).Add("windows_ms", PerImage("windows_ms"))
            .Add("refine_decide_ms", PerImage("refine_decide_ms"));
        if (faultsBefore is var (minorBefore, majorBefore) && faultsAfter is var (minorAfter, majorAfter))
        {
            record.Add("page_faults_per_image", (minorAfter - minorBefore) / (double)(repeats * batch))
                .Add("major_page_faults_per_image", (majorAfter - majorBefore) / (double)(repeats * batch));
        }
        return record;
    }

    /// <summary>
    /// <see cref="LabelMaskAutoEncoder.Complete"/> step by step, timing each step into <paramref name="parts"/>:
    /// <c>prepare_ms</c> (pad, hide, priors, windows), <c>image_features_ms</c> (the ResNet18 once per whole image; 0 without
    /// image features), <c>windows_ms</c> (window tensors, encoder and decoder, averaging),
    /// <c>refine_decide_ms</c> (the refinement over whole images, softmax, the per-pixel decision).
    /// </summary>
    private static void CompleteInSteps(LabelMaskAutoEncoder model, IReadOnlyList<SegmentationExample> examples, IReadOnlyList<bool[]> masks,
        LabelCompletionPrecision precision, LapTimings parts)
    {
        parts.Restart();
        var images = model.PrepareImages(examples, masks, default);
        parts.Lap("prepare_ms");
        using (NewDisposeScope())
        using (no_grad())
        using (Autocast.Enter(precision, model.Device))
        {
            model.eval();
            var tensors = images.Select(im => new ImageTensors(im.Whole)).ToArray();
            var features = model.ImageFeatureMapsOf(tensors, default);
            parts.Lap("image_features_ms");
            var logits = model.DecoderLogits(images, tensors, features, default);
            parts.Lap("windows_ms");
            for (int i = 0; i < images.Length; i++) model.RefineAndDecide(examples[i], images[i], tensors[i], logits[i], features[i]);
            parts.Lap("refine_decide_ms");
        }
    }

    /// <summary>
    /// The process's minor and major page faults so far (Linux: <c>/proc/self/stat</c>), or null elsewhere. The infer
    /// benchmark reports them per timed image: on the development VM a first touch of a page cost 13-17 µs, and a timed
    /// completion whose native heap had to grow (fragmentation: a full-resolution refinement buffer fitting no free chunk) ran
    /// its refinement up to twice as long; major faults are pages read back from disk (that VM's kernel pages out cold file
    /// pages, libtorch's code among them). The counts tell such a run from a slow CPU (docs/decisions.md, Speed).
    /// </summary>
    internal static (long Minor, long Major)? PageFaults()
    {
        if (!OperatingSystem.IsLinux()) return null;
        try
        {
            string stat = File.ReadAllText("/proc/self/stat");
            // Fields after the command name (which may hold spaces): state ppid pgrp sid tty_nr tpgid flags minflt
            // cminflt majflt ...
            var fields = stat[(stat.LastIndexOf(')') + 2)..].Split(' ');
            return (long.Parse(fields[7], System.Globalization.CultureInfo.InvariantCulture),
                long.Parse(fields[9], System.Globalization.CultureInfo.InvariantCulture));
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or FormatException or IndexOutOfRangeException)
        {
            return null;
        }
    }

    /// <summary>
    /// Resets the process's peak resident set (Linux: writes <c>5</c> to <c>/proc/self/clear_refs</c>, which sets
    /// <c>VmHWM</c> to the current RSS), so that the next <see cref="PeakRssMiB"/> is the peak of what runs in between and not
    /// of an earlier benchmark of the same process (<c>lmae bench</c> runs Paper at 6 GiB before the Small mask-ratio steps).
    /// False where it cannot be reset; the peak is then the process's.
    /// </summary>
    internal static bool ResetPeakRss()
    {
        if (!OperatingSystem.IsLinux()) return false;
        try
        {
            File.WriteAllText("/proc/self/clear_refs", "5");
            return true;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return false;
        }
    }

    /// <summary>
    /// Peak resident set in MiB since the process started or since the last <see cref="ResetPeakRss"/> (the process's peak
    /// working set: on Linux .NET reads it from <c>VmHWM</c> in <c>/proc/self/status</c>, which the reset lowers).
    /// </summary>
    internal static double PeakRssMiB() => Process.GetCurrentProcess().PeakWorkingSet64 / 1048576.0;

    /// <summary>
    /// Where a training step's time goes (median ms per batch of <paramref name="repeats"/> after warm-up): data preparation
    /// (augmentation, masking, priors) on one thread, tensor building, then the steps of
    /// <see cref="LabelMaskAutoEncoder.ForwardLoss"/>: encoder forward, decoder forward (with the head and the prior residual),
    /// and the refinement with the loss and the whole backward (<c>refine_loss_backward_ms</c>; the refinement runs in chunks
    /// of <c>refinement_chunk</c> images), then the optimizer update.
    /// </summary>
    public static BenchmarkRecord Profile(LabelCompletionModelSize size, int batch, int threads, int repeats = 8, int seed = 0,
        LabelCompletionPrecision precision = LabelCompletionPrecision.Float32)
    {
        set_num_threads(threads);
        var options = new LabelCompletionOptions { NumberOfClasses = 11, ModelSize = size, BatchSize = batch, NumberOfThreads = threads };
        var config = LmaeConfig.FromOptions(options);
        using var engine = LabelCompletionEngine.Create(config, seed, CPU);
        var model = engine.Network;
        using var optimizer = new AdamOptimizer(model.TrainableParameters(), options.LearningRate, weightDecay: options.WeightDecay);
        var examples = SyntheticExamples(batch, 480, 360, seed, config.NumberOfClasses);
        var augmentation = new Data.SegmentationAugmentationOptions { CropWidth = config.TrainingSize, CropHeight = config.TrainingSize };
        int l = (config.TrainingSize / config.PatchSize) * (config.TrainingSize / config.PatchSize);
        var parts = new Dictionary<string, List<double>>();
        void Record(string part, double milliseconds)
            => (parts.TryGetValue(part, out var list) ? list : parts[part] = new List<double>()).Add(milliseconds);
        void Time(string part, Action action)
        {
            var sw = Stopwatch.StartNew();
            action();
            Record(part, sw.Elapsed.TotalMilliseconds);
        }
        long chunk = model.RefinementChunk(config.TrainingSize, config.TrainingSize);
        model.train();
        for (int r = 0; r < repeats + 2; r++)
        {
            using var scope = NewDisposeScope();
            using var autocast = Autocast.Enter(precision, CPU);
            var random = new Random(r);
            List<WindowSample> samples = null!;
            Time("data_ms", () => samples = examples.Select(e =>
            {
                var (image, label) = Data.SegmentationAugmentation.Apply(e.Image, e.Label, augmentation, random);
                return WindowBatch.FromCrop(image, label, MaskSelector.RandomForTraining(l, 0.5, random), config, LossRegion.MaskedPatches, e.Source);
            }).ToList());
            LmaeInputs inputs = null!;
            Tensor targets = null!;
            Time("tensors_ms", () => { inputs = WindowBatch.ToInputs(samples, config, CPU); targets = WindowBatch.Targets(samples, config, CPU); });
            optimizer.ZeroGrad();
            Tensor latent = null!, logits = null!;
            ImageFeatures features = null!;
            Time("image_features_ms", () => features = model.ImageFeaturesOf(inputs, patches: true, pixels: true));
            Time("encoder_ms", () => latent = model.ForwardEncoder(inputs, features));
            Time("decoder_ms", () => logits = model.ForwardDecoder(latent, inputs, features));
            Time("refine_loss_backward_ms", () => model.RefinedLossBackward(logits, inputs, features, targets, null));
            Time("update_ms", optimizer.Step);
            inputs.Dispose();
            if (r < 2) foreach (var list in parts.Values) list.RemoveAt(list.Count - 1);
        }
        var record = new BenchmarkRecord("profile").Add("config", size.ToString()).Add("precision", Name(precision)).Add("batch", batch).Add("threads", threads)
            .Add("refinement_channels", config.RefinementChannels).Add("directional_prior", config.DirectionalPrior)
            .Add("refinement_chunk", Math.Min(chunk, batch));
        foreach (var (part, times) in parts) record.Add(part, Median(times));
        return record;
    }

    /// <summary>Parameter count and forward GFLOP per image of a size preset at a square crop (mask ratio 0.5).</summary>
    public static BenchmarkRecord ModelSize(LabelCompletionModelSize size, int crop = 224, int classes = 11)
    {
        var config = LmaeConfig.FromOptions(new LabelCompletionOptions { NumberOfClasses = classes, ModelSize = size, TrainingSize = crop });
        using var model = new LabelMaskAutoEncoder(config);
        return new BenchmarkRecord("model").Add("config", size.ToString()).Add("classes", classes).Add("crop", config.TrainingSize)
            .Add("parameters_m", model.ParameterCount() / 1e6).Add("forward_gflops_per_image", LmaeFlops.Forward(config, config.TrainingSize, 0.5) / 1e9);
    }

    /// <summary>Synthetic training examples with <paramref name="classes"/> classes (scene classes folded into the range).</summary>
    internal static List<SegmentationExample> SyntheticExamples(int count, int width, int height, int seed, int classes)
        => SyntheticScenes.Generate(count, width, height, seed)
            .Select((s, i) => new SegmentationExample(s.Image, s.Label with { Values = s.Label.Values.Select(v => (byte)(v % classes)).ToArray() }, $"synthetic {i}"))
            .ToList();

    private static string Name(LabelCompletionPrecision precision)
        => Autocast.Resolve(precision, CPU) == LabelCompletionPrecision.BFloat16 ? "bf16" : "fp32";

    private static double Median(IReadOnlyList<double> values)
    {
        if (values.Count == 0) return double.NaN;
        var sorted = values.OrderBy(v => v).ToArray();
        return sorted.Length % 2 == 1 ? sorted[sorted.Length / 2] : (sorted[sorted.Length / 2 - 1] + sorted[sorted.Length / 2]) / 2;
    }
}
