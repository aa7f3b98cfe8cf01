using Microsoft.ML.LabelCompletion.Data;
using Microsoft.ML.LabelCompletion.Evaluation;
using Microsoft.ML.LabelCompletion.Model;
using TorchSharp;
using static TorchSharp.torch;

namespace Microsoft.ML.LabelCompletion.Tests.Model;

[TestClass]
public sealed class TrainingTests
{
    public TestContext TestContext { get; set; } = null!;

    [TestMethod]
    public void TinyModelBeatsNearestKnownFillOnMaskedPatches()
    {
        var options = ModelTestData.TinyOptions();
        options.Epochs = 30;
        options.BatchSize = 8;
        options.LearningRate = 2e-3;
        var train = ModelTestData.Scenes(64, 48, 48, 1000);
        var test = ModelTestData.Scenes(16, 48, 48, 5000);
        using var engine = LabelCompletionEngine.Train(train, null, options, 7, CPU, null, CancellationToken.None);

        long counted = 0, modelRight = 0, fillRight = 0;
        for (int i = 0; i < test.Count; i++)
        {
            var truth = test[i].Label;
            var (rows, columns) = MaskSelector.Grid(truth.Width, truth.Height, 8);
            var mask = MaskSelector.RandomForEvaluation(rows * columns, 0.5, 0, i);
            var masked = MaskSelector.Apply(truth, mask, 8, 255);
            var completed = engine.Complete([test[i] with { Label = masked }], [mask])[0].Completed;
            var fill = NearestKnownFill.Fill(masked, 255);
            var pixelMask = MaskSelector.ToPixelMask(mask, truth.Width, truth.Height, 8);
            for (int p = 0; p < pixelMask.Length; p++)
            {
                if (!pixelMask[p]) continue;
                counted++;
                if (completed.Values[p] == truth.Values[p]) modelRight++;
                if (fill.Values[p] == truth.Values[p]) fillRight++;
            }
        }
        double modelAccuracy = 100.0 * modelRight / counted, fillAccuracy = 100.0 * fillRight / counted;
        TestContext.WriteLine($"PA pixel accuracy: L-MAE Tiny {modelAccuracy:F2}, NearestKnown {fillAccuracy:F2} over {counted} pixels");
        Console.WriteLine($"PA pixel accuracy: L-MAE Tiny {modelAccuracy:F2}, NearestKnown {fillAccuracy:F2} over {counted} pixels");
        Assert.IsTrue(fillAccuracy > 50 && fillAccuracy < 97, $"the fill should be a real but beatable baseline ({fillAccuracy:F2})");
        Assert.IsTrue(modelAccuracy > fillAccuracy + 3, $"L-MAE {modelAccuracy:F2} vs NearestKnown {fillAccuracy:F2}");
    }

    [TestMethod]
    [DataRow(LabelCompletionPrecision.Float32)]
    [DataRow(LabelCompletionPrecision.BFloat16)]
    public void LiveTensorCountIsFlatOverFiftySteps(LabelCompletionPrecision precision)
    {
        var options = ModelTestData.TinyOptions();
        options.Precision = precision;
        options.Epochs = 13;           // 4 steps per epoch: 52 steps
        options.ValidationSet = null;
        var train = ModelTestData.Scenes(16, 32, 32, 77);
        var live = new List<long>();
        using var engine = LabelCompletionEngine.Train(train, ModelTestData.Scenes(4, 32, 32, 99), options, 3, CPU,
            _ => live.Add(DisposeScopeManager.Statistics.TensorStatistics.ThreadTotalLiveCount), CancellationToken.None);
        Assert.IsTrue(live.Count >= 50, $"{live.Count} progress reports");
        // After the first steps (Adam creates its state), the count must not move.
        long settled = live[8];
        Assert.IsTrue(live.Skip(8).All(c => c == settled), "live tensors: " + string.Join(",", live));
    }

    [TestMethod]
    public void SameSeedGivesIdenticalWeights()
    {
        var options = ModelTestData.TinyOptions();
        options.Epochs = 2;
        var train = ModelTestData.Scenes(12, 40, 36, 5);
        byte[] Weights(int seed)
        {
            using var engine = LabelCompletionEngine.Train(train, null, options, seed, CPU, null, CancellationToken.None);
            using var stream = new MemoryStream();
            using (var writer = new BinaryWriter(stream, System.Text.Encoding.UTF8, leaveOpen: true)) engine.SaveWeights(writer);
            return stream.ToArray();
        }
        var a = Weights(11);
        CollectionAssert.AreEqual(a, Weights(11), "same seed, same options must give the same weights");
        CollectionAssert.AreNotEqual(a, Weights(12), "another seed must give other weights");
    }

    [TestMethod]
    public void AdamScalesEachParametersStepByItsFactor()
    {
        // Adam's first step moves every coordinate by the learning rate (times the sign of its gradient), here times the scale.
        using var a = zeros(5).requires_grad_(true);
        using var b = zeros(5).requires_grad_(true);
        using var optimizer = new AdamOptimizer([(a, 1.0), (b, 0.1)], 1e-2);
        using (var loss = a.sum().add(b.sum())) loss.backward();
        optimizer.Step();
        using (var expectedA = full(5, -1e-2f)) Assert.IsTrue(a.detach().allclose(expectedA, 0, 1e-6), a.ToString(TorchSharp.TensorStringStyle.Julia));
        using (var expectedB = full(5, -1e-3f)) Assert.IsTrue(b.detach().allclose(expectedB, 0, 1e-7), b.ToString(TorchSharp.TensorStringStyle.Julia));
        optimizer.LearningRate = 2e-2;
        optimizer.ZeroGrad();
        using (var loss = a.sum().add(b.sum())) loss.backward();
        using var beforeA = a.detach().clone();
        using var beforeB = b.detach().clone();
        optimizer.Step();
        using var guard = no_grad();
        Assert.AreEqual(10.0, (double)a.sub(beforeA).abs().max().item<float>() / b.sub(beforeB).abs().max().item<float>(), 1e-3,
            "the scheduler's rate reaches both at their ratio");
    }

    [TestMethod]
    public void SavedWeightsReloadToIdenticalCompletions()
    {
        var options = ModelTestData.TinyOptions();
        var train = ModelTestData.Scenes(8, 32, 32, 21);
        using var engine = LabelCompletionEngine.Train(train, null, options, 1, CPU, null, CancellationToken.None);
        using var stream = new MemoryStream();
        using (var writer = new BinaryWriter(stream, System.Text.Encoding.UTF8, leaveOpen: true)) engine.SaveWeights(writer);
        stream.Position = 0;
        using var reader = new BinaryReader(stream);
        using var loaded = LabelCompletionEngine.Load(engine.Config, reader, CPU);
        var example = ModelTestData.Scenes(1, 50, 41, 400)[0];
        var mask = MaskSelector.RandomForEvaluation(MaskSelector.Grid(50, 41, 8) is var g ? g.Rows * g.Columns : 0, 0.5, 0, 0);
        var masked = example with { Label = MaskSelector.Apply(example.Label, mask, 8, 255) };
        var a = engine.Complete([masked], [mask])[0];
        var b = loaded.Complete([masked], [mask])[0];
        CollectionAssert.AreEqual(a.Completed.Values, b.Completed.Values);
        CollectionAssert.AreEqual(a.Confidence, b.Confidence);
    }

    [TestMethod]
    public void CancellationStopsTraining()
    {
        var options = ModelTestData.TinyOptions();
        options.Epochs = 100;
        using var cts = new CancellationTokenSource();
        int steps = 0;
        Assert.ThrowsExactly<OperationCanceledException>(() => LabelCompletionEngine.Train(ModelTestData.Scenes(8, 32, 32, 1), null, options, 1, CPU,
            p => { if (++steps == 3) cts.Cancel(); }, cts.Token));
        Assert.AreEqual(3, steps, "training must stop before the step after the cancellation");
    }

    [TestMethod]
    [DataRow(1)]
    [DataRow(3)]
    public void RefinementInChunksGivesTheWholeBatchLossAndGradients(int chunk)
    {
        // A training step runs the pixel refinement over a few images at a time (memory) and back-propagates the decoder once:
        // the loss and every parameter's gradient must be those of one pass over the whole batch.
        manual_seed(2);
        var config = LmaeConfig.FromOptions(ModelTestData.TinyOptions(11)) with
        {
            RefinementChannels = 16, DirectionalPrior = true, ImageFeatures = ImageFeatureInputs.All,
        };
        using var model = new LabelMaskAutoEncoder(config);
        using (no_grad())
            foreach (var parameter in model.parameters()) parameter.add_(randn_like(parameter).mul_(0.05));
        model.train();
        var random = new Random(4);
        var samples = Enumerable.Range(0, 5).Select(_ => ModelTests.RandomSample(32, 32, config, random, 0.5)).ToList();
        using var weights = rand(11).add_(0.5);
        var parameters = model.TrainableParameters().ToList();

        (float Loss, List<Tensor> Gradients) Run(int refinementChunk)
        {
            foreach (var parameter in parameters) parameter.grad?.zero_();
            using var scope = NewDisposeScope();
            using var inputs = WindowBatch.ToInputs(samples, config, CPU);
            var targets = WindowBatch.Targets(samples, config, CPU);
            model.RefinementPixelsPerPass = refinementChunk * 32 * 32;
            float loss = model.ForwardLoss(inputs, targets, weights);
            return (loss, parameters.Select(p => p.grad!.clone().DetachFromDisposeScope()).ToList());
        }

        var (wholeLoss, whole) = Run(samples.Count);
        var (chunkedLoss, chunked) = Run(chunk);
        Assert.AreEqual(chunk, model.RefinementChunk(32, 32), "the setting gives the chunk");
        Assert.AreEqual(wholeLoss, chunkedLoss, 1e-5 * Math.Abs(wholeLoss), "loss");
        for (int i = 0; i < whole.Count; i++)
        {
            double scale = Math.Max(1e-6, whole[i].abs().max().item<float>());
            Assert.IsTrue(chunked[i].allclose(whole[i], rtol: 1e-4, atol: 1e-5 * scale),
                $"gradient {i} {string.Join("x", whole[i].shape)}: max difference {(chunked[i] - whole[i]).abs().max().item<float>()} of {scale}");
        }
        foreach (var t in whole.Concat(chunked)) t.Dispose();
    }

    [TestMethod]
    public void TrainingAndCompletionSurviveConstantGarbageCollection()
    {
        // TorchSharp 0.107 frees implicitly converted Scalars (also the hidden alpha = 1 of Tensor + Tensor) from the
        // finalizer, possibly while libtorch reads them: "Unknown scalar type" or "Expected false to be true" at random.
        // The model, loss and optimizer pass only rooted or explicitly disposed Scalars; a thread forcing collections and
        // finalizers all the time must not break many steps of the hot path.
        var config = LmaeConfig.FromOptions(ModelTestData.TinyOptions()) with { RefinementChannels = 4, ImageFeatures = ImageFeatureInputs.All };
        using var model = new LabelMaskAutoEncoder(config);
        using var optimizer = new AdamOptimizer(model.parameters(), 1e-3, weightDecay: 1e-4);
        using var weights = ones(6);
        var samples = Enumerable.Range(0, 2).Select(i => ModelTests.RandomSample(16, 16, config, new Random(i), 0.5)).ToList();
        using var stop = new CancellationTokenSource();
        long collections = 0;
        var collector = new Thread(() =>
        {
            while (!stop.IsCancellationRequested)
            {
                GC.Collect();
                GC.WaitForPendingFinalizers();
                Interlocked.Increment(ref collections);
            }
        }) { IsBackground = true };
        collector.Start();
        try
        {
            for (int step = 0; step < 150; step++)
            {
                using var scope = NewDisposeScope();
                using var inputs = WindowBatch.ToInputs(samples, config, CPU);
                var loss = LmaeLoss.Compute(model.forward(inputs), WindowBatch.Targets(samples, config, CPU), weights);
                optimizer.ZeroGrad();
                loss.backward();
                optimizer.Step();
            }
        }
        finally
        {
            stop.Cancel();
            collector.Join();
        }
        Assert.IsTrue(Interlocked.Read(ref collections) > 30, $"only {collections} forced collections ran");
    }
}
