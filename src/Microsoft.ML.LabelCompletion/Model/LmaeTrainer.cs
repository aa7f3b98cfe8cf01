using System.Diagnostics;
using Microsoft.ML.LabelCompletion.Data;
using TorchSharp;
using static TorchSharp.torch;

namespace Microsoft.ML.LabelCompletion.Model;

/// <summary>
/// The training loop: seeded crops and Mask Selector draws per sample, Adam with weight decay, ReduceLROnPlateau on
/// the validation loss (training loss without validation data), optional early stopping, one dispose scope per step,
/// and the next batch prepared on a worker thread while the current step runs.
/// </summary>
internal sealed class LmaeTrainer
{
    private readonly LabelMaskAutoEncoder _model;
    private readonly LmaeConfig _config;
    private readonly LabelCompletionOptions _options;
    private readonly int _seed;
    private readonly Device _device;
    private readonly SegmentationAugmentationOptions _augmentation;

    public LmaeTrainer(LabelMaskAutoEncoder model, LmaeConfig config, LabelCompletionOptions options, int seed, Device device)
    {
        _model = model;
        _config = config;
        _options = options;
        _seed = seed;
        _device = device;
        _augmentation = new SegmentationAugmentationOptions
        {
            CropWidth = config.TrainingSize, CropHeight = config.TrainingSize, UnknownLabel = config.UnknownLabel,
        };
    }

    /// <summary>Pixel count per class over the known pixels of <paramref name="examples"/>.</summary>
    public static long[] ClassPixelCounts(IEnumerable<SegmentationExample> examples, int classes, byte unknown)
    {
        var counts = new long[classes];
        foreach (var e in examples)
            foreach (byte v in e.Label.Values)
                if (v != unknown) counts[v]++;
        return counts;
    }

    /// <summary>Seconds the training loop waited for the next batch to be prepared (data path not hidden by the step).</summary>
    public double DataWaitSeconds { get; private set; }

    /// <summary>Seconds spent in optimisation steps (forward, backward, update).</summary>
    public double StepSeconds { get; private set; }

    public void Run(IReadOnlyList<SegmentationExample> train, IReadOnlyList<SegmentationExample>? validation,
        Action<TrainingProgress>? progress, CancellationToken token)
    {
        var weightsArray = LmaeLoss.ClassWeights(_options.ClassWeighting, ClassPixelCounts(train, _config.NumberOfClasses, _config.UnknownLabel));
        using var classWeights = _options.ClassWeighting == ClassWeighting.None ? null : tensor(weightsArray, ScalarType.Float32, _device);
        using var optimizer = new AdamOptimizer(_model.parameters(), _options.LearningRate, 0.9, 0.999, 1e-8, _options.WeightDecay);
        var scheduler = new PlateauScheduler(_options.LearningRateFactor, _options.LearningRatePatience, _options.LearningRateThreshold);
        var validationSamples = validation is null ? null : ValidationSamples(validation);
        int batchSize = Math.Max(1, _options.BatchSize);
        int stepsPerEpoch = (train.Count + batchSize - 1) / batchSize;
        double best = double.PositiveInfinity;
        int epochsWithoutImprovement = 0;

        var trainingClock = Stopwatch.StartNew();
        for (int epoch = 1; epoch <= _options.Epochs; epoch++)
        {
            var order = Enumerable.Range(0, train.Count).ToArray();
            new Random(Mix(_seed, epoch, -1)).Shuffle(order);
            var batches = order.Chunk(batchSize).ToArray();
            double lossSum = 0;
            int images = 0;
            var clock = Stopwatch.StartNew();
            Task<List<WindowSample>>? next = PrepareAsync(train, batches[0], epoch, 0);
            for (int step = 0; step < batches.Length; step++)
            {
                token.ThrowIfCancellationRequested();
                long waitStart = Stopwatch.GetTimestamp();
                var samples = next!.GetAwaiter().GetResult();
                DataWaitSeconds += Stopwatch.GetElapsedTime(waitStart).TotalSeconds;
                next = step + 1 < batches.Length ? PrepareAsync(train, batches[step + 1], epoch, step + 1) : null;
                long stepStart = Stopwatch.GetTimestamp();
                float loss = Step(optimizer, samples, classWeights, epoch, step + 1);
                StepSeconds += Stopwatch.GetElapsedTime(stepStart).TotalSeconds;
                lossSum += loss * samples.Count;
                images += samples.Count;
                progress?.Invoke(new TrainingProgress(epoch, _options.Epochs, step + 1, stepsPerEpoch, loss,
                    images / Math.Max(1e-9, clock.Elapsed.TotalSeconds), optimizer.LearningRate, null, null, false));
            }
            next?.Wait();

            double trainLoss = lossSum / Math.Max(1, images);
            double? validationLoss = null, validationPaMiou = null;
            if (validationSamples is { Count: > 0 })
                (validationLoss, validationPaMiou) = Validate(validationSamples, classWeights);
            double watched = validationLoss ?? trainLoss;
            optimizer.LearningRate = scheduler.Step(watched, optimizer.LearningRate);
            progress?.Invoke(new TrainingProgress(epoch, _options.Epochs, stepsPerEpoch, stepsPerEpoch, trainLoss,
                images / Math.Max(1e-9, clock.Elapsed.TotalSeconds), optimizer.LearningRate, validationLoss, validationPaMiou, true));

            if (watched < best * (1 - _options.LearningRateThreshold)) { best = watched; epochsWithoutImprovement = 0; }
            else epochsWithoutImprovement++;
            if (_options.EarlyStoppingPatience > 0 && epochsWithoutImprovement >= _options.EarlyStoppingPatience) break;
            if (_options.TrainingTimeLimit is TimeSpan limit && trainingClock.Elapsed >= limit) break;
        }
    }

    /// <summary>One optimisation step in its own dispose scope; returns the loss.</summary>
    private float Step(AdamOptimizer optimizer, List<WindowSample> samples, Tensor? classWeights, int epoch, int step)
    {
        using var scope = NewDisposeScope();
        _model.train();
        using var inputs = WindowBatch.ToInputs(samples, _config, _device);
        var targets = WindowBatch.Targets(samples, _config, _device);
        var loss = LmaeLoss.Compute(_model.forward(inputs), targets, classWeights);
        optimizer.ZeroGrad();
        loss.backward();
        float value = loss.item<float>();
        if (!float.IsFinite(value))
            throw new InvalidOperationException(
                $"Training loss is {value} at epoch {epoch}, step {step}; batch: {string.Join(", ", samples.Select(s => s.Source))}.");
        optimizer.Step();
        return value;
    }

    private Task<List<WindowSample>> PrepareAsync(IReadOnlyList<SegmentationExample> train, int[] batch, int epoch, int step)
        => Task.Run(() =>
        {
            var random = new Random(Mix(_seed, epoch, step));
            return batch.Select(i => TrainingSample(train[i], random)).ToList();
        });

    /// <summary>Augmentation (or a plain random crop), the training Mask Selector, fusion-ready sample.</summary>
    private WindowSample TrainingSample(SegmentationExample example, Random random)
    {
        int t = _config.TrainingSize;
        var (image, label) = _options.Augment
            ? SegmentationAugmentation.Apply(example.Image, example.Label, _augmentation, random)
            : RandomCrop(example.Image, example.Label, t, random, _config.UnknownLabel);
        int patches = (t / _config.PatchSize) * (t / _config.PatchSize);
        var mask = MaskSelector.RandomForTraining(patches, _options.MaskRatio, random);
        return WindowBatch.FromCrop(image, label, mask, _config, _options.LossRegion, example.Source);
    }

    private static (RgbImage, LabelMap) RandomCrop(RgbImage image, LabelMap label, int size, Random random, byte unknown)
    {
        int x0 = image.Width >= size ? random.Next(image.Width - size + 1) : -random.Next(size - image.Width + 1);
        int y0 = image.Height >= size ? random.Next(image.Height - size + 1) : -random.Next(size - image.Height + 1);
        return WindowBatch.Crop(image, label, x0, y0, size, size, unknown);
    }

    /// <summary>Validation: a centre crop of the training size per image, protocol masks (seed 0) at the training ratio.</summary>
    private List<WindowSample> ValidationSamples(IReadOnlyList<SegmentationExample> validation)
    {
        int t = _config.TrainingSize, p = _config.PatchSize;
        var samples = new List<WindowSample>();
        for (int i = 0; i < validation.Count; i++)
        {
            var e = validation[i];
            int x0 = (e.Image.Width - t) / 2 / p * p, y0 = (e.Image.Height - t) / 2 / p * p;
            var (image, label) = WindowBatch.Crop(e.Image, e.Label, x0, y0, t, t, _config.UnknownLabel);
            var mask = MaskSelector.RandomForEvaluation((t / p) * (t / p), _options.MaskRatio, 0, i);
            samples.Add(WindowBatch.FromCrop(image, label, mask, _config, LossRegion.MaskedPatches, e.Source));
        }
        return samples;
    }

    /// <summary>Validation loss and PA-mIoU (0..100) over the masked, known pixels of the validation crops.</summary>
    private (double Loss, double PaMiou) Validate(List<WindowSample> samples, Tensor? classWeights)
    {
        var confusion = new Evaluation.SegmentationConfusionMatrix(_config.NumberOfClasses);
        double lossSum = 0;
        int count = 0;
        using (no_grad())
        {
            _model.eval();
            foreach (var chunk in samples.Chunk(Math.Max(1, _options.BatchSize)))
            {
                using var scope = NewDisposeScope();
                using var inputs = WindowBatch.ToInputs(chunk, _config, _device);
                var targets = WindowBatch.Targets(chunk, _config, _device);
                var logits = _model.forward(inputs);
                lossSum += LmaeLoss.Compute(logits, targets, classWeights).item<float>() * chunk.Length;
                count += chunk.Length;
                var predicted = logits.argmax(1).to(CPU).data<long>().ToArray();
                var truth = targets.to(CPU).data<long>().ToArray();
                for (int i = 0; i < truth.Length; i++)
                    if (truth[i] >= 0) confusion.Add((int)truth[i], (int)predicted[i]);
            }
        }
        return (lossSum / Math.Max(1, count), confusion.MeanIntersectionOverUnion);
    }

    /// <summary>A seed from (seed, epoch, step), stable across runs and thread timing.</summary>
    internal static int Mix(int seed, int epoch, int step)
    {
        ulong z = (ulong)(uint)seed * 0x9E3779B97F4A7C15UL ^ (ulong)(uint)epoch * 0xC2B2AE3D27D4EB4FUL ^ (ulong)(uint)step * 0x165667B19E3779F9UL;
        z = (z ^ (z >> 33)) * 0xFF51AFD7ED558CCDUL;
        z ^= z >> 33;
        return (int)(z & 0x7FFFFFFF);
    }
}
