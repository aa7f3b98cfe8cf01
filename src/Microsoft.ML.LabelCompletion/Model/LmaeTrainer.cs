using System.Diagnostics;
using Microsoft.ML.LabelCompletion.Data;
using Microsoft.ML.LabelCompletion.Internal;
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
    private readonly LabelCompletionSettings _options;
    private readonly int _seed;
    private readonly Device _device;
    private readonly SegmentationAugmentationOptions _augmentation;

    public LmaeTrainer(LabelMaskAutoEncoder model, LmaeConfig config, LabelCompletionSettings options, int seed, Device device)
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

    /// <summary>Test hook: returns true for the (epoch, 1-based step) whose loss is to be replaced by NaN (fault injection).</summary>
    internal Func<int, int, bool>? InjectNonFiniteLoss { get; init; }

    /// <summary>The checkpoint training resumed from, or null.</summary>
    public string? ResumedFrom { get; private set; }

    /// <summary>Checkpoint files that failed their check while looking for the latest (file and reason); they were not used.</summary>
    public List<string> RejectedCheckpoints { get; } = new();

    public void Run(IReadOnlyList<SegmentationExample> train, IReadOnlyList<SegmentationExample>? validation,
        Action<TrainingProgress>? progress, CancellationToken token)
    {
        var weightsArray = LmaeLoss.ClassWeights(_options.ClassWeighting, ClassPixelCounts(train, _config.NumberOfClasses, _config.UnknownLabel));
        using var classWeights = _options.ClassWeighting == ClassWeighting.None ? null : tensor(weightsArray, ScalarType.Float32, _device);
        // With a learning-rate scale for the image encoder, its last stage trains too, at that multiple of the rate.
        double encoderScale = _options.ImageEncoderLearningRateScale;
        using var fineTuning = _model.FineTuneImageEncoder(encoderScale > 0);
        var encoderParameters = _model.ImageEncoderParameters().Select(p => p.Handle).ToHashSet();
        using var optimizer = new AdamOptimizer(
            _model.TrainableParameters().Select(p => ((Tensor)p, encoderParameters.Contains(p.Handle) ? encoderScale : 1.0)),
            _options.LearningRate, 0.9, 0.999, 1e-8, _options.WeightDecay);
        var scheduler = new PlateauScheduler(_options.LearningRateFactor, _options.LearningRatePatience, _options.LearningRateThreshold);
        var validationSamples = validation is null ? null : ValidationSamples(validation);
        int batchSize = Math.Max(1, _options.BatchSize);
        int stepsPerEpoch = (train.Count + batchSize - 1) / batchSize;

        // Where training stands; a checkpoint restores exactly these values (and the weights and Adam's state).
        var at = new Position { Epoch = 1, EarlyStoppingBest = double.PositiveInfinity };
        using var checkpoints = _options.CheckpointDirectory is { } directory
            ? new CheckpointWriter(this, directory, Fingerprint(train, validation), optimizer, scheduler)
            : null;
        if (checkpoints is not null && checkpoints.Start(_options.ResumeFromCheckpoint) is { } resumed)
        {
            ResumedFrom = resumed.Path;
            var c = resumed.Checkpoint;
            at = new Position
            {
                Epoch = c.EpochComplete ? c.Epoch + 1 : c.Epoch, Step = c.EpochComplete ? 0 : c.StepsDone, GlobalStep = c.GlobalStep,
                LossSum = c.EpochComplete ? 0 : c.LossSum, Images = c.EpochComplete ? 0 : c.Images, Stopped = c.Finished,
                EarlyStoppingBest = c.EarlyStoppingBest, EpochsWithoutImprovement = c.EpochsWithoutImprovement,
            };
        }

        var trainingClock = Stopwatch.StartNew();
        for (; at.Epoch <= _options.Epochs && !at.Stopped; at.Epoch++, at.Step = 0, at.LossSum = 0, at.Images = 0)
        {
            int epoch = at.Epoch;
            var order = Enumerable.Range(0, train.Count).ToArray();
            new Random(Mix(_seed, epoch, -1)).Shuffle(order);
            var batches = order.Chunk(batchSize).ToArray();
            var clock = Stopwatch.StartNew();
            int imagesAtStart = at.Images;
            Task<List<WindowSample>>? next = at.Step < batches.Length ? PrepareAsync(train, batches[at.Step], epoch, at.Step) : null;
            for (; at.Step < batches.Length; )
            {
                StopIfCancelled(checkpoints, at, token);
                long waitStart = Stopwatch.GetTimestamp();
                var samples = next!.GetAwaiter().GetResult();
                DataWaitSeconds += Stopwatch.GetElapsedTime(waitStart).TotalSeconds;
                next = at.Step + 1 < batches.Length ? PrepareAsync(train, batches[at.Step + 1], epoch, at.Step + 1) : null;
                long stepStart = Stopwatch.GetTimestamp();
                float loss = Step(optimizer, samples, classWeights, epoch, at.Step + 1);
                StepSeconds += Stopwatch.GetElapsedTime(stepStart).TotalSeconds;
                NativeHeapTuning.CollectStepGarbage();
                at.LossSum += loss * samples.Count;
                at.Images += samples.Count;
                at.Step++;
                at.GlobalStep++;
                // The last step of an epoch is followed by the epoch-end checkpoint.
                if (checkpoints is not null && _options.CheckpointEverySteps > 0 && at.GlobalStep % _options.CheckpointEverySteps == 0
                    && at.Step < batches.Length)
                    checkpoints.Write(at, epochComplete: false);
                progress?.Invoke(new TrainingProgress(epoch, _options.Epochs, at.Step, stepsPerEpoch, loss,
                    (at.Images - imagesAtStart) / Math.Max(1e-9, clock.Elapsed.TotalSeconds), optimizer.LearningRate, null, null, false));
            }
            next?.Wait();

            StopIfCancelled(checkpoints, at, token);
            double trainLoss = at.LossSum / Math.Max(1, at.Images);
            double? validationLoss = null, validationPaMiou = null;
            if (validationSamples is { Count: > 0 })
            {
                try
                {
                    double loss;
                    (loss, validationPaMiou) = Validate(validationSamples, classWeights, token);
                    validationLoss = loss;
                }
                catch (OperationCanceledException)
                {
                    StopIfCancelled(checkpoints, at, token);
                    throw;
                }
                if (!double.IsFinite(validationLoss.Value))
                    throw new InvalidOperationException($"Validation loss is {validationLoss} at the end of epoch {epoch} (the training loss was {trainLoss}).");
            }
            // An epoch's garbage and heap fragmentation do not carry into the next (a background collection after every step
            // was measured as well: 7% slower steps, docs/decisions.md).
            NativeHeapTuning.ReleaseGarbage();
            double watched = validationLoss ?? trainLoss;
            optimizer.LearningRate = scheduler.Step(watched, optimizer.LearningRate);

            if (watched < at.EarlyStoppingBest * (1 - _options.LearningRateThreshold)) { at.EarlyStoppingBest = watched; at.EpochsWithoutImprovement = 0; }
            else at.EpochsWithoutImprovement++;
            at.Stopped = _options.EarlyStoppingPatience > 0 && at.EpochsWithoutImprovement >= _options.EarlyStoppingPatience;
            checkpoints?.Write(at, epochComplete: true);
            progress?.Invoke(new TrainingProgress(epoch, _options.Epochs, stepsPerEpoch, stepsPerEpoch, trainLoss,
                (at.Images - imagesAtStart) / Math.Max(1e-9, clock.Elapsed.TotalSeconds), optimizer.LearningRate, validationLoss, validationPaMiou, true));
            // The time budget ends training between epochs (a resume may continue it).
            if (_options.TrainingTimeLimit is TimeSpan limit && trainingClock.Elapsed >= limit) break;
        }
    }

    /// <summary>On cancellation, saves where training stands (between two steps, so the state is whole) and throws.</summary>
    private static void StopIfCancelled(CheckpointWriter? checkpoints, Position at, CancellationToken token)
    {
        if (!token.IsCancellationRequested) return;
        checkpoints?.Write(at, epochComplete: false);
        token.ThrowIfCancellationRequested();
    }

    /// <summary>What identifies a training run for a resume: data, seed and every setting that changes the weights.</summary>
    private List<string> Fingerprint(IReadOnlyList<SegmentationExample> train, IReadOnlyList<SegmentationExample>? validation)
        => TrainingCheckpoint.RunFingerprint(_options, _seed, Autocast.Resolve(_options.Precision, _device), DataHash(train),
            validation is null ? "none" : DataHash(validation));

    /// <summary>Row count and SHA-256 of every example's source, size, pixels and label.</summary>
    private static string DataHash(IReadOnlyList<SegmentationExample> examples)
    {
        using var hash = System.Security.Cryptography.IncrementalHash.CreateHash(System.Security.Cryptography.HashAlgorithmName.SHA256);
        Span<byte> size = stackalloc byte[8];
        foreach (var e in examples)
        {
            hash.AppendData(System.Text.Encoding.UTF8.GetBytes(e.Source + "\0"));
            BitConverter.TryWriteBytes(size[..4], e.Image.Width);
            BitConverter.TryWriteBytes(size[4..], e.Image.Height);
            hash.AppendData(size);
            hash.AppendData(e.Image.Pixels);
            hash.AppendData(e.Label.Values);
        }
        return $"{examples.Count} rows, SHA-256 {Convert.ToHexString(hash.GetHashAndReset())}";
    }

    /// <summary>Where the training loop stands: what a checkpoint saves besides the weights and the optimizer.</summary>
    private sealed class Position
    {
        public int Epoch;
        public int Step;
        public long GlobalStep;
        public double LossSum;
        public int Images;
        public double EarlyStoppingBest;
        public int EpochsWithoutImprovement;
        public bool Stopped;
    }

    /// <summary>
    /// Writes checkpoints of one run into its folder, keeps the newest two, and finds the one to resume from; holds the folder's
    /// lock from <see cref="Start"/> until disposed, so no second trainer writes into the same folder.
    /// </summary>
    private sealed class CheckpointWriter(LmaeTrainer trainer, string directory, List<string> fingerprint,
        AdamOptimizer optimizer, PlateauScheduler scheduler) : IDisposable
    {
        private const int Keep = 2;
        private (int, int, int)? _lastWritten;
        private TrainingCheckpoint.FolderLock? _lock;

        public void Dispose() => _lock?.Dispose();

        /// <summary>Prepares the folder; returns the checkpoint to resume from (weights and optimizer already restored) or null.</summary>
        public (string Path, TrainingCheckpoint Checkpoint)? Start(bool resume)
        {
            _lock = TrainingCheckpoint.FolderLock.Acquire(directory);
            TrainingCheckpoint.DeleteLeftovers(directory);
            if (!resume)
            {
                if (TrainingCheckpoint.List(directory).Count > 0)
                    throw new InvalidOperationException(
                        $"{directory} already holds training checkpoints; set ResumeFromCheckpoint to continue that run, or use an empty folder.");
                return null;
            }
            // The newest checkpoint that loads; one that passes its hash but does not load is reported and the one before is used.
            var latest = TrainingCheckpoint.Resume(directory, fingerprint, reader =>
            {
                trainer._model.load(reader, strict: true);
                optimizer.LoadState(reader);
            }, trainer.RejectedCheckpoints);
            if (latest is null) return null;
            var header = latest.Value.Checkpoint;
            scheduler.Best = header.SchedulerBest;
            scheduler.BadEpochs = header.SchedulerBadEpochs;
            _lastWritten = header.Order;
            return latest;
        }

        public void Write(Position at, bool epochComplete)
        {
            var checkpoint = new TrainingCheckpoint
            {
                LibraryVersion = LibraryInfo.Version,
                Fingerprint = fingerprint,
                Epoch = at.Epoch, StepsDone = at.Step, EpochComplete = epochComplete, Finished = epochComplete && at.Stopped,
                GlobalStep = at.GlobalStep, LossSum = at.LossSum, Images = at.Images,
                LearningRate = optimizer.LearningRate, SchedulerBest = scheduler.Best, SchedulerBadEpochs = scheduler.BadEpochs,
                EarlyStoppingBest = at.EarlyStoppingBest, EpochsWithoutImprovement = at.EpochsWithoutImprovement,
            };
            if (_lastWritten == checkpoint.Order) return;
            checkpoint.Write(directory, writer =>
            {
                trainer._model.save(writer);
                optimizer.SaveState(writer);
            });
            _lastWritten = checkpoint.Order;
            foreach (var old in TrainingCheckpoint.List(directory).OrderByDescending(TrainingCheckpoint.OrderOfName).Skip(Keep))
            {
                try { File.Delete(old); }
                catch (IOException) { }
            }
        }
    }

    /// <summary>One optimisation step in its own dispose scope; returns the loss.</summary>
    private float Step(AdamOptimizer optimizer, List<WindowSample> samples, Tensor? classWeights, int epoch, int step)
    {
        using var scope = NewDisposeScope();
        _model.train();
        using var autocast = Autocast.Enter(_options.Precision, _device);
        using var inputs = WindowBatch.ToInputs(samples, _config, _device);
        var targets = WindowBatch.Targets(samples, _config, _device);
        optimizer.ZeroGrad();
        float value = _model.ForwardLoss(inputs, targets, classWeights, InjectNonFiniteLoss?.Invoke(epoch, step) == true ? float.NaN : null);
        if (!float.IsFinite(value))
            throw new InvalidOperationException(
                $"Training loss is {value} at epoch {epoch}, step {step}; batch: {string.Join(", ", samples.Select(s => s.Source))}. "
                + "The weights were not updated; the last checkpoint, if any, holds the state before this step.");
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

    /// <summary>
    /// Validation loss over the masked, known pixels of the validation crops, and their PA-mIoU (0..100) as
    /// <see cref="ValidationScore"/> computes it from each crop's target and predicted classes (null without a scorer).
    /// </summary>
    private (double Loss, double? PaMiou) Validate(List<WindowSample> samples, Tensor? classWeights, CancellationToken token)
    {
        var predictions = new List<(byte[] Target, byte[] Predicted)>(samples.Count);
        double lossSum = 0;
        int count = 0;
        using (no_grad())
        using (Autocast.Enter(_options.Precision, _device))
        {
            _model.eval();
            foreach (var chunk in samples.Chunk(Math.Max(1, _options.BatchSize)))
            {
                token.ThrowIfCancellationRequested();
                using var scope = NewDisposeScope();
                using var inputs = WindowBatch.ToInputs(chunk, _config, _device);
                var targets = WindowBatch.Targets(chunk, _config, _device);
                var logits = _model.forward(inputs);
                lossSum += LmaeLoss.Compute(logits, targets, classWeights).item<float>() * chunk.Length;
                count += chunk.Length;
                if (ValidationScore is null) continue;
                using var predicted = logits.argmax(1).to(ScalarType.Byte).to(CPU).contiguous();
                var bytes = predicted.bytes;
                int pixels = chunk[0].Width * chunk[0].Height;
                for (int k = 0; k < chunk.Length; k++) predictions.Add((chunk[k].Target!, bytes.Slice(k * pixels, pixels).ToArray()));
            }
        }
        return (lossSum / Math.Max(1, count), ValidationScore?.Invoke(predictions));
    }

    /// <summary>
    /// Scores an epoch's validation predictions, one (target, predicted classes) pair per crop with the unknown value where a
    /// pixel does not count: the PA-mIoU (0..100) reported with the epoch. Supplied by the evaluation layer, so that training
    /// and every evaluation count with the same confusion matrix; null reports none.
    /// </summary>
    public Func<IReadOnlyList<(byte[] Target, byte[] Predicted)>, double>? ValidationScore { get; init; }

    /// <summary>A seed from (seed, epoch, step), stable across runs and thread timing.</summary>
    internal static int Mix(int seed, int epoch, int step)
    {
        ulong z = (ulong)(uint)seed * 0x9E3779B97F4A7C15UL ^ (ulong)(uint)epoch * 0xC2B2AE3D27D4EB4FUL ^ (ulong)(uint)step * 0x165667B19E3779F9UL;
        z = (z ^ (z >> 33)) * 0xFF51AFD7ED558CCDUL;
        z ^= z >> 33;
        return (int)(z & 0x7FFFFFFF);
    }
}
