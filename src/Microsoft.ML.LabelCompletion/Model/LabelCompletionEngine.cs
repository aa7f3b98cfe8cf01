using Microsoft.ML.LabelCompletion.Data;
using TorchSharp;
using static TorchSharp.torch;

namespace Microsoft.ML.LabelCompletion.Model;

/// <summary>One training or completion example: an RGB image, its (possibly incomplete) label map, and where it came from.</summary>
/// <param name="Image">The RGB image.</param>
/// <param name="Label">The label map, same size as the image; unknown pixels hold the unknown value.</param>
/// <param name="Source">Where the example came from (file names or row number), for error messages.</param>
internal sealed record SegmentationExample(RgbImage Image, LabelMap Label, string Source)
{
    /// <summary>Throws when the label does not match the image or holds values that are neither class nor unknown.</summary>
    public void Validate(LmaeConfig config)
    {
        Image.Validate(Source);
        if (Label.Width != Image.Width || Label.Height != Image.Height)
            throw new InvalidDataException($"{Source}: the label is {Label.Width}x{Label.Height} but the image is {Image.Width}x{Image.Height}.");
        Label.Validate(config.NumberOfClasses, config.UnknownLabel, Source);
    }
}

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
    /// Creates an untrained network on <paramref name="device"/>, initialised from <paramref name="seed"/>, with the ImageNet
    /// ResNet18's weights read from its ONNX file when the network uses image features; the global random generator's state
    /// is what it was before (the host's random sequence is not changed).
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
        try
        {
            model.LoadImageEncoder();
        }
        catch
        {
            model.Dispose();
            throw;
        }
        model.to(device);
        return new LabelCompletionEngine(config, device, model);
    }

    /// <summary>
    /// Trains a new network. <paramref name="train"/> is read once and kept decoded in memory for the epochs;
    /// <paramref name="validation"/> likewise (a fixed centre crop per image, protocol masks with seed 0).
    /// </summary>
    public static LabelCompletionEngine Train(IEnumerable<SegmentationExample> train, IEnumerable<SegmentationExample>? validation,
        LabelCompletionSettings options, int seed, Device device, Action<TrainingProgress>? progress, CancellationToken cancellationToken,
        Func<IReadOnlyList<(byte[] Target, byte[] Predicted)>, double>? validationScore = null, Func<int, int, bool>? injectNonFiniteLoss = null)
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
            var trainer = new LmaeTrainer(engine._model, config, options, seed, device)
            {
                InjectNonFiniteLoss = injectNonFiniteLoss, ValidationScore = validationScore,
            };
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

    /// <summary>Completes a batch of images with the network: <see cref="LabelMaskAutoEncoder.Complete"/>.</summary>
    public IReadOnlyList<CompletionResult> Complete(IReadOnlyList<SegmentationExample> batch, IReadOnlyList<bool[]> patchMasks,
        CancellationToken cancellationToken = default, LabelCompletionPrecision precision = LabelCompletionPrecision.Float32,
        bool keepKnownLabels = false)
        => _model.Complete(batch, patchMasks, precision, cancellationToken, keepKnownLabels);

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

    private static List<SegmentationExample> ReadExamples(IEnumerable<SegmentationExample> source, LmaeConfig config, CancellationToken token, string what)
    {
        var list = new List<SegmentationExample>();
        foreach (var example in source)
        {
            token.ThrowIfCancellationRequested();
            example.Validate(config);
            list.Add(example);
        }
        return list;
    }
}
