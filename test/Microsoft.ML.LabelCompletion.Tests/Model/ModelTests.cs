using Microsoft.ML.LabelCompletion.Data;
using Microsoft.ML.LabelCompletion.Model;
using TorchSharp;
using static TorchSharp.torch;

namespace Microsoft.ML.LabelCompletion.Tests.Model;

[TestClass]
public sealed class ModelTests
{
    [TestMethod]
    [DataRow(32, 32, 1)]
    [DataRow(45, 27, 2)]   // not multiples of p = 8
    [DataRow(70, 50, 3)]   // larger than the 32 training window: sliding windows
    public void CompletionKeepsTheInputSizeAndPredictsHiddenPixels(int width, int height, int batch)
    {
        var options = ModelTestData.TinyOptions();
        using var engine = LabelCompletionEngine.Create(LmaeConfig.FromOptions(options), 1, CPU);
        var examples = ModelTestData.Scenes(batch, width, height, 10)
            .Select(e =>
            {
                var values = (byte[])e.Label.Values.Clone();
                for (int i = 0; i < values.Length; i += 7) values[i] = 255;
                return e with { Label = e.Label with { Values = values } };
            }).ToList();
        var masks = examples.Select(e => MaskSelector.Unknown(e.Label, 8, 255)).ToList();
        var results = engine.Complete(examples, masks);
        Assert.AreEqual(batch, results.Count);
        for (int b = 0; b < batch; b++)
        {
            var r = results[b];
            Assert.AreEqual(width, r.Completed.Width);
            Assert.AreEqual(height, r.Completed.Height);
            Assert.AreEqual(width * height, r.Confidence.Length);
            Assert.AreEqual(width * height, r.CompletionMask.Length);
            var hidden = MaskSelector.ToPixelMask(masks[b], width, height, 8);
            for (int i = 0; i < width * height; i++)
            {
                byte input = examples[b].Label.Values[i];
                Assert.AreEqual(hidden[i], r.CompletionMask[i], "the completion mask is the pixels of the masked patches");
                if (hidden[i])
                {
                    Assert.IsTrue(r.Completed.Values[i] < 6, "hidden pixel not predicted");
                    Assert.IsTrue(r.Confidence[i] > 0 && r.Confidence[i] <= 1.0001f);
                }
                else
                {
                    Assert.AreEqual(input, r.Completed.Values[i], "visible known pixel changed");
                }
            }
        }
    }

    [TestMethod]
    [DataRow(1, 16, 24, 0)]
    [DataRow(3, 32, 40, 0)]
    [DataRow(2, 24, 32, 8)]
    [DataRow(2, 16, 40, -8)]  // refinement with the directional prior
    public void ForwardGivesClassLogitsPerPixel(int batch, int height, int width, int refinementChannels)
    {
        var config = LmaeConfig.FromOptions(ModelTestData.TinyOptions())
            with { RefinementChannels = Math.Abs(refinementChannels), DirectionalPrior = refinementChannels < 0 };
        using var model = new LabelMaskAutoEncoder(config);
        var samples = Enumerable.Range(0, batch).Select(i => RandomSample(width, height, config, new Random(i), 0.5)).ToList();
        using var inputs = WindowBatch.ToInputs(samples, config, CPU);
        using var logits = model.forward(inputs);
        CollectionAssert.AreEqual(new long[] { batch, 6, height, width }, logits.shape);
        Assert.IsFalse(logits.isnan().any().item<bool>());
    }

    [TestMethod]
    public void CompletionRefinesTheWholeImageOnceOverTheMeanDecoderLogits()
    {
        var (engine, masked, mask) = TwoWindowCompletion(ImageFeatureInputs.None);
        using var _ = engine;
        var model = engine.Network;
        var config = engine.Config;
        var result = engine.Complete([masked], [mask])[0];

        // By hand: decoder logits of the two windows, averaged where they overlap, refinement over the whole image, softmax.
        using var scope = NewDisposeScope();
        using var guard = no_grad();
        model.eval();
        var prior = NearestKnownFill.Fill(masked.Label, 255).Values;
        var directional = DirectionalFill.Compute(masked.Label.Values, 48, 32, 255);
        var wholeSample = new WindowSample
        {
            Width = 48, Height = 32, Rgb = masked.Image.Pixels, InputLabel = masked.Label.Values, PatchMask = mask,
            Prior = prior, Directional = directional,
        };
        WindowSample Window(int x0, int width) => CopyWindow(wholeSample, x0, 0, width, 32, 8);
        Tensor Decoder(WindowSample sample)
        {
            var inputs = WindowBatch.ToInputs([sample], config, CPU);
            var features = model.ImageFeaturesOf(inputs, patches: true, pixels: false);
            return model.ForwardDecoder(model.ForwardEncoder(inputs, features), inputs, features);
        }
        var left = Decoder(Window(0, 32));
        var right = Decoder(Window(16, 32));
        var sum = zeros(1, 6, 32, 48);
        var count = zeros(1, 1, 32, 48);
        sum.narrow(3, 0, 32).add_(left);
        sum.narrow(3, 16, 32).add_(right);
        count.narrow(3, 0, 32).add_(ones(1, 1, 32, 32));
        count.narrow(3, 16, 32).add_(ones(1, 1, 32, 32));
        var whole = WindowBatch.ToInputs([Window(0, 48)], config, CPU);
        var probabilities = nn.functional.softmax(model.Refine(sum.div(count), whole, model.ImageFeaturesOf(whole, patches: false, pixels: true)), 1);
        var expectedLabel = probabilities.argmax(1).flatten().data<long>().ToArray();
        var expectedConfidence = probabilities.max(1).values.flatten().data<float>().ToArray();
        var withoutRefinement = nn.functional.softmax(sum.div(count), 1).argmax(1).flatten().data<long>().ToArray();

        int predicted = 0, refinementMatters = 0;
        for (int i = 0; i < 48 * 32; i++)
        {
            if (masked.Label.Values[i] != 255) continue;
            predicted++;
            Assert.AreEqual(expectedLabel[i], (long)result.Completed.Values[i], $"pixel {i}");
            Assert.AreEqual(expectedConfidence[i], result.Confidence[i], 1e-4f, $"pixel {i}");
            if (withoutRefinement[i] != expectedLabel[i]) refinementMatters++;
        }
        Assert.IsTrue(predicted > 300, $"{predicted} predicted pixels");
        Assert.IsTrue(refinementMatters > 0, "the test must be able to tell whether the refinement ran");
    }

    [TestMethod]
    public void CompletionDoesNotDependOnHowWindowsAreGroupedIntoForwards()
    {
        // Windows run sorted by their visible-patch count, several per forward, padded to the most visible of the chunk; one
        // window per forward has no padding at all. Two images whose windows range from almost all known to almost all hidden
        // (so that sorting regroups them and padding is large) must complete the same either way.
        var options = ModelTestData.TinyOptions();
        options.PixelRefinementChannels = 8;
        var config = LmaeConfig.FromOptions(options);
        using var engine = LabelCompletionEngine.Create(config, 4, CPU);
        var scenes = ModelTestData.Scenes(2, 64, 48, 9);
        var (rows, columns) = MaskSelector.Grid(64, 48, 8);
        var masks = new List<bool[]>();
        var examples = new List<SegmentationExample>();
        for (int i = 0; i < scenes.Count; i++)
        {
            // Hidden share rises from left to right: the left windows see most patches, the right ones few.
            var random = new Random(i);
            var mask = Enumerable.Range(0, rows * columns).Select(k => random.NextDouble() < (k % columns + 0.5) / columns).ToArray();
            masks.Add(mask);
            examples.Add(scenes[i] with { Label = MaskSelector.Apply(scenes[i].Label, mask, 8, 255) });
        }
        engine.Network.WindowsPerForward = 3;
        var grouped = engine.Complete(examples, masks);
        engine.Network.WindowsPerForward = 1;
        var single = engine.Complete(examples, masks);
        for (int i = 0; i < examples.Count; i++)
        {
            CollectionAssert.AreEqual(single[i].Completed.Values, grouped[i].Completed.Values, $"image {i}");
            for (int k = 0; k < single[i].Confidence.Length; k++)
                Assert.AreEqual(single[i].Confidence[k], grouped[i].Confidence[k], 1e-5f, $"image {i}, pixel {k}");
        }
    }

    [TestMethod]
    public void WindowsCutFromImageTensorsGiveTheInputsOfCopiedWindows()
    {
        var config = LmaeConfig.FromOptions(ModelTestData.TinyOptions()) with { RefinementChannels = 8, DirectionalPrior = true };
        var whole = RandomSample(48, 40, config, new Random(5), 0.5);
        using var scope = NewDisposeScope();
        using var image = new ImageTensors(whole);
        // Two 32x24 windows at different places, batched together, against the same pixels copied out of the arrays.
        (int X, int Y)[] origins = [(16, 8), (0, 16)];
        var copies = origins.Select(o => CopyWindow(whole, o.X, o.Y, 32, 24, config.PatchSize)).ToList();
        var cuts = origins.Zip(copies, (o, c) => new WindowCut(image, o.X, o.Y, 32, 24, c.PatchMask)).ToList();
        using var expected = WindowBatch.ToInputs(copies, config, CPU);
        using var forRefinement = WindowBatch.ToInputs(cuts, config, CPU, forRefinement: true);
        using var forNetwork = WindowBatch.ToInputs(cuts, config, CPU, forRefinement: false);

        void AssertEqual(Tensor? a, Tensor? b, string what)
        {
            Assert.IsNotNull(a, what);
            Assert.IsNotNull(b, what);
            CollectionAssert.AreEqual(a.shape, b.shape, what);
            Assert.AreEqual(a.dtype, b.dtype, what);
            Assert.IsTrue(a.eq(b).all().item<bool>(), what);
        }
        foreach (var actual in new[] { forRefinement, forNetwork })
        {
            AssertEqual(expected.Labels, actual.Labels, "labels");
            AssertEqual(expected.Rgb, actual.Rgb, "image");
            AssertEqual(expected.Prior, actual.Prior, "prior");
            AssertEqual(expected.VisibleIndex, actual.VisibleIndex, "visible tokens");
            AssertEqual(expected.InsertIndex, actual.InsertIndex, "insertion");
            Assert.AreEqual(expected.VisibleKeyMask is null, actual.VisibleKeyMask is null, "key mask");
            if (expected.VisibleKeyMask is not null) AssertEqual(expected.VisibleKeyMask, actual.VisibleKeyMask, "key mask");
        }
        AssertEqual(expected.Directional, forRefinement.Directional, "directional labels");
        AssertEqual(expected.DirectionalDistance, forRefinement.DirectionalDistance, "directional distances");
        // Encoder and decoder never read the directional planes; windows for them leave them out.
        Assert.IsNull(forNetwork.Directional);
        Assert.IsNull(forNetwork.DirectionalDistance);
        Assert.IsFalse(expected.Rgb.eq(forRefinement.Rgb.flip(0)).all().item<bool>(), "the two windows must differ");
        var outside = Assert.ThrowsExactly<ArgumentException>(() => WindowBatch.ToInputs([new WindowCut(image, 24, 0, 32, 24, copies[0].PatchMask)], config, CPU, false));
        StringAssert.Contains(outside.Message, "test: the 32x24 window at (24, 0) does not lie inside the 48x40 image");
    }

    /// <summary>
    /// A Tiny network with an 8-channel refinement whose output layer has weights (it starts at zero, and a skipped
    /// refinement must show), <paramref name="features"/>, and a 48x32 scene with half its 8-pixel patches hidden: with
    /// 32-pixel windows at overlap 0.5 completion runs two windows, at x = 0 and 16, which cover columns 16..31 twice.
    /// </summary>
    internal static (LabelCompletionEngine Engine, SegmentationExample Masked, bool[] Mask) TwoWindowCompletion(ImageFeatureInputs features)
    {
        var options = ModelTestData.TinyOptions();
        options.PixelRefinementChannels = 8;
        options.ImageFeatures = features;
        var engine = LabelCompletionEngine.Create(LmaeConfig.FromOptions(options), 2, CPU);
        using (no_grad())
        {
            manual_seed(2);
            foreach (var (name, parameter) in engine.Network.named_parameters())
                if (name.Contains("_refinement._output", StringComparison.Ordinal)) nn.init.normal_(parameter, 0, 2.0);
        }
        var example = ModelTestData.Scenes(1, 48, 32, 21)[0];
        var (rows, columns) = MaskSelector.Grid(48, 32, 8);
        var mask = MaskSelector.RandomForEvaluation(rows * columns, 0.5, 0, 3);
        return (engine, example with { Label = MaskSelector.Apply(example.Label, mask, 8, 255) }, mask);
    }

    /// <summary>The <paramref name="width"/> x <paramref name="height"/> window at (<paramref name="x0"/>, <paramref name="y0"/>) of <paramref name="whole"/>, copied array by array.</summary>
    internal static WindowSample CopyWindow(WindowSample whole, int x0, int y0, int width, int height, int p)
    {
        byte[] Cut(byte[] source, int planes, int channels)
        {
            var window = new byte[planes * width * height * channels];
            for (int k = 0; k < planes; k++)
                for (int y = 0; y < height; y++)
                    Array.Copy(source, ((k * whole.Height + y0 + y) * whole.Width + x0) * channels, window, (k * height + y) * width * channels, width * channels);
            return window;
        }
        int columns = whole.Width / p, windowColumns = width / p;
        var mask = new bool[height / p * windowColumns];
        for (int r = 0; r < height / p; r++)
            for (int c = 0; c < windowColumns; c++) mask[r * windowColumns + c] = whole.PatchMask[(y0 / p + r) * columns + x0 / p + c];
        return new WindowSample
        {
            Width = width, Height = height, Rgb = Cut(whole.Rgb, 1, 3), InputLabel = Cut(whole.InputLabel, 1, 1), PatchMask = mask,
            Prior = whole.Prior is null ? null : Cut(whole.Prior, 1, 1),
            Directional = whole.Directional is null ? null : Cut(whole.Directional, DirectionalFill.Planes, 1),
        };
    }

    [TestMethod]
    public void InferenceAttentionMatchesScaledDotProductAttention()
    {
        using var scope = NewDisposeScope();
        manual_seed(7);
        // [B=3, h=4, N=9, d=8]; row 1 hides its last 4 keys, row 2 attends to its first key only (a row without visible tokens).
        var q = randn(3, 4, 9, 8).mul(3);
        var k = randn(3, 4, 9, 8);
        var v = randn(3, 4, 9, 8);
        var keep = ones(3, 1, 1, 9, dtype: ScalarType.Bool);
        keep[1, 0, 0, TensorIndex.Slice(5)] = tensor(false);
        keep[2, 0, 0, TensorIndex.Slice(1)] = tensor(false);
        foreach (var mask in new Tensor?[] { null, keep })
        {
            var expected = nn.functional.scaled_dot_product_attention(q, k, v, mask);
            var actual = MultiHeadAttention.Attend(q, k, v, mask);
            Assert.IsTrue(actual.sub(expected).abs().max().item<float>() < 1e-5f, mask is null ? "no mask" : "key mask");
        }
        // The hidden keys get no weight: changing their values changes nothing.
        var changed = v.clone();
        changed[1, TensorIndex.Colon, TensorIndex.Slice(5)] = tensor(100f);
        Assert.IsTrue(MultiHeadAttention.Attend(q, k, changed, keep)[1].equal(MultiHeadAttention.Attend(q, k, v, keep)[1]).all().item<bool>());
        // Row 2 attends to key 0 only: every query gets value 0.
        Assert.AreEqual(0f, v[2, TensorIndex.Colon, 0].unsqueeze(1).expand(4, 9, 8).sub(MultiHeadAttention.Attend(q, k, v, keep)[2]).abs().max().item<float>(), 1e-6f);

        // The block uses it without autograd: the same output as with autograd (the fused kernel).
        using var attention = new MultiHeadAttention(16, 4);
        var x = randn(2, 5, 16);
        var keyMask = ones(2, 1, 1, 5, dtype: ScalarType.Bool);
        keyMask[0, 0, 0, 4] = tensor(false);
        var trained = attention.forward(x, keyMask);
        using (no_grad())
            Assert.IsTrue(attention.forward(x, keyMask).sub(trained.detach()).abs().max().item<float>() < 1e-5f);
    }

    [TestMethod]
    public void BuildingTrainingAndCompletingLeaveTheHostsNnpackSwitchAndRandomGeneratorAlone()
    {
        bool? nnpackBefore = Internal.LibTorchSettings.NnpackEnabled();
        bool canSet = Internal.LibTorchSettings.SetNnpackEnabled(true);
        try
        {
            manual_seed(123);
            using var before = random.get_rng_state();
            var options = ModelTestData.TinyOptions();
            using var engine = LabelCompletionEngine.Train(ModelTestData.Scenes(2, 32, 32, 3), null, options, 1, CPU, null, default);
            var scene = ModelTestData.Scenes(1, 32, 32, 4)[0];
            engine.Complete([scene], [MaskSelector.Unknown(scene.Label, 8, 255)]);
            using var after = random.get_rng_state();
            Assert.IsTrue(before.eq(after).all().item<bool>(), "the global random generator's state changed");
            if (canSet) Assert.AreEqual(true, Internal.LibTorchSettings.NnpackEnabled(), "the library switched NNPACK off on its own");
        }
        finally
        {
            if (nnpackBefore is bool b) Internal.LibTorchSettings.SetNnpackEnabled(b);
        }
    }

    [TestMethod]
    public void ProcessTuningSwitchesNnpackOffWhenAsked()
    {
        // libtorch logs a warning for every small convolution on CPUs that NNPACK does not know (LibTorchSettings).
        LabelCompletionProcessTuning.Apply();
        Assert.IsTrue(LabelCompletionProcessTuning.Applied);
        if (OperatingSystem.IsLinux()) Assert.AreEqual(false, Internal.LibTorchSettings.NnpackEnabled());
        else Assert.IsNull(Internal.LibTorchSettings.NnpackEnabled());
    }

    [TestMethod]
    public void DirectionalFillGivesTheNearestKnownLabelPerDirection()
    {
        const byte U = 255;
        // 6x2: row 0 = U 2 U U 5 U, row 1 = 1 U U U U U.
        byte[] labels = [U, 2, U, U, 5, U, 1, U, U, U, U, U];
        var planes = DirectionalFill.Compute(labels, 6, 2, U);
        byte[] Plane(int k) => planes.Skip(k * 12).Take(12).ToArray();
        CollectionAssert.AreEqual(new byte[] { U, 2, 2, 2, 5, 5, 1, 1, 1, 1, 1, 1 }, Plane(0), "left");
        CollectionAssert.AreEqual(new byte[] { 255, 0, 1, 2, 0, 1, 0, 1, 2, 3, 4, 5 }, Plane(4), "left distance");
        CollectionAssert.AreEqual(new byte[] { 2, 2, 5, 5, 5, U, 1, U, U, U, U, U }, Plane(1), "right");
        CollectionAssert.AreEqual(new byte[] { 1, 0, 2, 1, 0, 255, 0, 255, 255, 255, 255, 255 }, Plane(5), "right distance");
        CollectionAssert.AreEqual(new byte[] { U, 2, U, U, 5, U, 1, 2, U, U, 5, U }, Plane(2), "up");
        CollectionAssert.AreEqual(new byte[] { 255, 0, 255, 255, 0, 255, 0, 1, 255, 255, 1, 255 }, Plane(6), "up distance");
        CollectionAssert.AreEqual(new byte[] { 1, 2, U, U, 5, U, 1, U, U, U, U, U }, Plane(3), "down");
    }

    [TestMethod]
    public void PixelRefinementStartsAsNoCorrectionAndSeesTheImage()
    {
        var config = LmaeConfig.FromOptions(ModelTestData.TinyOptions()) with { RefinementChannels = 8, DirectionalPrior = false, ImageFeatures = ImageFeatureInputs.None };
        using var refinement = new PixelRefinement(6, 8);
        using var features = randn(2, 16, 12, 12);
        Assert.AreEqual(0f, refinement.forward(features.narrow(1, 0, 6), features.narrow(1, 6, 10)).abs().max().item<float>(),
            "the output layer starts at zero");
        using var model = new LabelMaskAutoEncoder(config);
        using var plain = new LabelMaskAutoEncoder(config with { RefinementChannels = 0 });
        Assert.AreEqual((16L * 8 * 9 + 8) + 3 * (8L * 8 * 9 + 8) + (8L * 6 + 6), model.ParameterCount() - plain.ParameterCount());
    }

    [TestMethod]
    [DataRow(true)]
    [DataRow(false)]
    public void NetworkOutputDoesNotDependOnWhatTheAllocatorLeftBehind(bool training)
    {
        // With 11 classes and the directional prior, the refinement's first convolution reads 11 logit and 63 context
        // channels. A blocked oneDNN convolution over an NCHW input whose channel count is not a multiple of its block read
        // the block's uninitialised tail (and its input gradient did so when the filters were not), whatever an earlier
        // tensor had left there; NaN times a zero weight is NaN, so
        // training stopped with "loss is NaN" at a random step (seen after 4 to 400 steps on CamVid and synthetic scenes).
        // Freed NaN-filled buffers make the stale memory NaN on purpose (the heap tuning of training reuses freed buffers):
        // the same batch must give the same finite output every time.
        LabelCompletionProcessTuning.Apply();
        manual_seed(5);
        var config = LmaeConfig.FromOptions(ModelTestData.TinyOptions(11)) with { TrainingSize = 64, RefinementChannels = 32, DirectionalPrior = true };
        using var model = new LabelMaskAutoEncoder(config);
        using (no_grad())
            foreach (var parameter in model.parameters()) parameter.add_(randn_like(parameter).mul_(0.05));
        if (training) model.train(); else model.eval();
        var random = new Random(7);
        var samples = Enumerable.Range(0, 4).Select(_ => RandomSample(64, 64, config, random, 0.5)).ToList();
        using var reference = Run();
        Assert.IsTrue(reference.isfinite().all().item<bool>(), "the first output is finite");
        for (int step = 0; step < 150; step++)
        {
            foreach (long channels in new long[] { 11, 32, 63, 64, 74 })
                full([4, channels, 64, 64], float.NaN).Dispose();
            using var output = Run();
            Assert.IsTrue(output.equal(reference).all().item<bool>(),
                $"step {step}: the output changed{(output.isnan().any().item<bool>() ? " to NaN" : "")} although the input did not");
        }

        Tensor Run()
        {
            using var scope = NewDisposeScope();
            using var mode = training ? null : no_grad();
            using var inputs = WindowBatch.ToInputs(samples, config, CPU);
            var logits = model.forward(inputs);
            if (training) logits.square().mean().backward();
            return logits.detach().clone().MoveToOuterDisposeScope();
        }
    }

    [TestMethod]
    public void PixelRefinementTrainingAndInferenceFormsComputeTheSameFunctionAndGradient()
    {
        // Training splits the first convolution (logits part with an input gradient, context part without); inference
        // runs it over the concatenated input laid out channels-last. Both must be the convolution over cat(logits, context).
        // (16 hidden channels and 6 + 10 inputs: the plain convolutions of the reference need multiples of 16, see PixelRefinement.)
        manual_seed(3);
        using var refinement = new PixelRefinement(6, 16);
        using (no_grad())
            foreach (var parameter in refinement.parameters()) parameter.normal_(0, 0.2);
        using var scope = NewDisposeScope();
        var logitValues = randn(2, 6, 12, 20);
        var context = randn(2, 10, 12, 20);
        var logits = logitValues.clone().requires_grad_(true);
        var trained = refinement.forward(logits, context);
        trained.square().sum().backward();
        Tensor inferred;
        using (no_grad()) inferred = refinement.forward(logitValues, context);
        Assert.IsTrue(inferred.allclose(trained.detach(), rtol: 1e-4, atol: 1e-5), "the two forms give the same correction");
        Assert.IsTrue(inferred.is_contiguous(), "the correction comes back in the standard (NCHW) layout");

        // Reference: the plain layer stack over the concatenated input, its gradients with respect to the logits and weights.
        var firstWeightGrad = ((TorchSharp.Modules.Conv2d)refinement.named_modules().First(m => m.name == "_body.0").module).weight!.grad!.clone();
        var logitGrad = logits.grad!.clone();
        foreach (var parameter in refinement.parameters()) parameter.grad?.zero_();
        var reference = logitValues.clone().requires_grad_(true);
        var x = cat([reference, context], 1);
        var layers = RefinementLayers(refinement);
        int[] dilations = [1, 2, 4, 8];
        for (int i = 0; i < 4; i++)
            x = nn.functional.gelu(nn.functional.conv2d(x, layers[i].weight!, layers[i].bias, padding: [dilations[i], dilations[i]], dilation: [dilations[i], dilations[i]]));
        var expected = nn.functional.conv2d(x, layers[4].weight!, layers[4].bias);
        expected.square().sum().backward();
        Assert.IsTrue(trained.allclose(expected, rtol: 1e-4, atol: 1e-5), "training form = convolution over cat(logits, context)");
        Assert.IsTrue(logitGrad.allclose(reference.grad!, rtol: 1e-4, atol: 1e-4),
            $"same gradient for the logits (max difference {(logitGrad - reference.grad!).abs().max().item<float>()}, largest {logitGrad.abs().max().item<float>()}, {reference.grad!.abs().max().item<float>()})");
        // (A sum over every pixel: the padded and the plain convolution add in another order, so the tolerance scales with it.)
        double scale = firstWeightGrad.abs().max().item<float>();
        Assert.IsTrue(firstWeightGrad.allclose(layers[0].weight!.grad!, rtol: 1e-4, atol: 1e-5 * scale),
            $"same gradient for the first layer's weights (max difference {(firstWeightGrad - layers[0].weight!.grad!).abs().max().item<float>()}, largest {firstWeightGrad.abs().max().item<float>()})");
    }

    [TestMethod]
    [DataRow(11, true, false)]   // CamVid with the directional prior (the default): 74 input channels at inference
    [DataRow(11, true, true)]
    [DataRow(19, true, true)]    // Cityscapes: 122
    [DataRow(21, true, false)]   // Pascal VOC: 134
    [DataRow(21, false, true)]   // without the directional prior: 46
    public void PixelRefinementMatchesADoublePrecisionReference(int classes, bool directional, bool training)
    {
        // The float32 convolutions go through libtorch's oneDNN kernels; float64 ones through ATen's own reference kernels.
        // On the 2-core development VM (its CPUID reports no cache topology) oneDNN's NCHW convolutions over a channel count
        // that is not a multiple of 16 came out wrong by up to about 1.3 on values up to 9 (without the training form's zero
        // channels this test failed for every training row); the channels-last inference form was exact. Both forms must
        // therefore equal the float64 stack, output and (training) gradients, for the class counts of the supported data sets.
        manual_seed(11);
        int channels = 32, contextChannels = classes + 4 + (directional ? 4 * classes + 4 : 0);
        using var refinement = new PixelRefinement(classes, channels, directional);
        using (no_grad())
            foreach (var parameter in refinement.parameters()) parameter.normal_(0, 0.1);
        using var scope = NewDisposeScope();
        var logitValues = randn(2, classes, 40, 56);
        var context = randn(2, contextChannels, 40, 56);
        var logits = logitValues.clone().requires_grad_(training);
        Tensor actual;
        using (training ? null : no_grad()) actual = refinement.forward(logits, context);
        if (training) actual.square().sum().backward();

        var layers = RefinementLayers(refinement);
        var weights = layers.Select(l => l.weight!.detach().to(ScalarType.Float64).requires_grad_(true)).ToList();
        var biases = layers.Select(l => l.bias!.detach().to(ScalarType.Float64)).ToList();
        var referenceLogits = logitValues.to(ScalarType.Float64).requires_grad_(true);
        var x = cat([referenceLogits, context.to(ScalarType.Float64)], 1);
        int[] dilations = [1, 2, 4, 8];
        for (int i = 0; i < 4; i++)
            x = nn.functional.gelu(nn.functional.conv2d(x, weights[i], biases[i], padding: [dilations[i], dilations[i]], dilation: [dilations[i], dilations[i]]));
        var expected = nn.functional.conv2d(x, weights[4], biases[4]);
        expected.square().sum().backward();

        string form = $"{(training ? "training" : "inference")} form, {classes} classes";
        AssertClose(actual.detach(), expected.detach(), $"{form}: correction");
        if (!training) return;
        AssertClose(logits.grad!, referenceLogits.grad!, $"{form}: gradient of the logits");
        for (int i = 0; i < layers.Count; i++)
            AssertClose(layers[i].weight!.grad!, weights[i].grad!, $"{form}: gradient of layer {i}'s weights");

        static void AssertClose(Tensor value, Tensor reference, string what)
        {
            double difference = (value.to(ScalarType.Float64) - reference).abs().max().item<double>();
            double largest = reference.abs().max().item<double>();
            Assert.IsTrue(difference <= 1e-4 * Math.Max(1, largest), $"{what}: max difference {difference} from float64 (largest value {largest})");
        }
    }

    /// <summary>The refinement's convolutions in the order they run: the four dilated layers, then the 1x1 output.</summary>
    private static List<TorchSharp.Modules.Conv2d> RefinementLayers(PixelRefinement refinement)
    {
        var named = refinement.named_modules().Where(m => m.module is TorchSharp.Modules.Conv2d).ToList();
        var layers = named.Where(m => m.name.StartsWith("_body.", StringComparison.Ordinal))
            .OrderBy(m => int.Parse(m.name["_body.".Length..], System.Globalization.CultureInfo.InvariantCulture))
            .Concat(named.Where(m => m.name == "_output")).Select(m => (TorchSharp.Modules.Conv2d)m.module).ToList();
        Assert.AreEqual(5, layers.Count, string.Join(", ", named.Select(m => m.name)));
        return layers;
    }

    [TestMethod]
    public void InputTensorsHoldTheSamplesValuesExactly_AndAWrongSizedArrayIsNamed()
    {
        var config = LmaeConfig.FromOptions(ModelTestData.TinyOptions()) with { RefinementChannels = 8, DirectionalPrior = true };
        var sample = RandomSample(16, 24, config, new Random(11), 0.5);
        using var scope = NewDisposeScope();
        using var inputs = WindowBatch.ToInputs([sample, sample], config, CPU);
        int hw = 16 * 24;
        var labels = inputs.Labels.data<long>().ToArray();
        var prior = inputs.Prior!.data<long>().ToArray();
        var directional = inputs.Directional!.data<long>().ToArray();
        var distances = inputs.DirectionalDistance!.data<float>().ToArray();
        var rgb = inputs.Rgb.data<float>().ToArray();
        for (int i = 0; i < hw; i++)
        {
            Assert.AreEqual(sample.InputLabel[i] == 255 ? -1L : sample.InputLabel[i], labels[hw + i], $"label {i} of the second sample");
            Assert.AreEqual(sample.Prior![i] == 255 ? -1L : sample.Prior[i], prior[i], $"prior {i}");
            for (int c = 0; c < 3; c++)
                Assert.AreEqual(StackFusion.Normalize(sample.Rgb[3 * i + c], c), rgb[3 * hw + c * hw + i], $"pixel {i} channel {c}: bit-identical");
        }
        for (int i = 0; i < 4 * hw; i++)
        {
            Assert.AreEqual(sample.Directional![i] == 255 ? -1L : sample.Directional[i], directional[4 * hw + i], $"directional label {i}");
            Assert.AreEqual(sample.Directional[4 * hw + i] / 255f, distances[4 * hw + i], $"directional distance {i}");
        }

        var broken = new WindowSample
        {
            Width = 16, Height = 24, Rgb = sample.Rgb, InputLabel = sample.InputLabel, Prior = sample.Prior![..^1],
            Directional = sample.Directional, PatchMask = sample.PatchMask, Source = "row 7",
        };
        var error = Assert.ThrowsExactly<ArgumentException>(() => WindowBatch.ToInputs([sample, broken], config, CPU));
        StringAssert.Contains(error.Message, "row 7");
        StringAssert.Contains(error.Message, "label prior has 383 values");
    }

    [TestMethod]
    public void StackFusionHasZeroOneHotInMaskedPatchesAndExactOneHotElsewhere()
    {
        var config = LmaeConfig.FromOptions(ModelTestData.TinyOptions());
        var sample = RandomSample(16, 16, config, new Random(5), 0.5);
        using var inputs = WindowBatch.ToInputs([sample], config, CPU);
        using var fused = StackFusion.Fuse(inputs.Labels, inputs.Rgb, 6);
        CollectionAssert.AreEqual(new long[] { 1, 9, 16, 16 }, fused.shape);
        var values = fused.data<float>().ToArray();
        var pixelMask = MaskSelector.ToPixelMask(sample.PatchMask, 16, 16, 8);
        Assert.IsTrue(sample.PatchMask.Any(m => m) && sample.PatchMask.Any(m => !m));
        for (int i = 0; i < 256; i++)
        {
            byte label = sample.InputLabel[i];
            for (int c = 0; c < 6; c++)
            {
                float expected = pixelMask[i] || label == 255 ? 0f : (label == c ? 1f : 0f);
                Assert.AreEqual(expected, values[c * 256 + i], $"pixel {i} channel {c}");
            }
            Assert.AreEqual(StackFusion.Normalize(sample.Rgb[3 * i], 0), values[6 * 256 + i], 1e-6f);
        }
    }

    [TestMethod]
    public void FusedPatchesAreThePatchifiedFuseMapOfTheVisibleTokens()
    {
        // Two windows of 32x48 (patch 8: 4x6 tokens), labels with unknown pixels; the token-layout Stack Fusion must give the
        // same bits as patchifying the full Fuse Map and gathering the visible tokens.
        var config = LmaeConfig.FromOptions(ModelTestData.TinyOptions());
        var random = new Random(11);
        var samples = new[] { RandomSample(48, 32, config, random, 0.5), RandomSample(48, 32, config, random, 0.25) };
        using var scope = NewDisposeScope();
        var inputs = WindowBatch.ToInputs(samples, config, CPU);
        var labels = inputs.Labels;
        Assert.IsTrue(labels.lt(0).any().item<bool>() && labels.ge(0).any().item<bool>(), "the labels have known and unknown pixels");
        var all = Patches.Patchify(StackFusion.Fuse(labels, inputs.Rgb, 6), 8);
        var index = inputs.VisibleIndex;
        var expected = all.gather(1, index.unsqueeze(-1).expand(-1, -1, all.shape[2]));
        var visible = StackFusion.FusedPatches(labels, inputs.Rgb, 6, 8, index);
        CollectionAssert.AreEqual(expected.shape, visible.shape);
        Assert.AreEqual(ScalarType.Float32, visible.dtype);
        Assert.IsTrue(Same(visible, expected), "visible tokens: bit-identical to Patchify(Fuse) gathered");
        Assert.IsTrue(Same(StackFusion.FusedPatches(labels, inputs.Rgb, 6, 8), all), "all tokens");
        // Wrong order inside a token (channel-major instead of pixel-major) must not pass: the same values, permuted.
        Assert.IsFalse(Same(all.reshape(2, 24, 64, 9).transpose(2, 3).reshape(2, 24, -1), all));

        var prior = StackFusion.OneHotPatches(inputs.Prior!, 6, 8);
        CollectionAssert.AreEqual(new long[] { 2, 24, 64, 6 }, prior.shape);
        Assert.AreEqual(ScalarType.Bool, prior.dtype);
        Assert.IsTrue(Same(prior, Patches.PatchifyPixels(StackFusion.OneHotMask(inputs.Prior!, 6), 8)), "prior one-hot in token layout");
    }

    /// <summary>Same shape, dtype and every element equal (bit for bit for floats that are not NaN).</summary>
    private static bool Same(Tensor a, Tensor b) =>
        a.shape.SequenceEqual(b.shape) && a.dtype == b.dtype && a.eq(b).all().item<bool>();

    [TestMethod]
    public void PositionEmbeddingMatchesTheClosedForm()
    {
        // D = 8: quarter 2, omega = [1, 1/100]; channels 0-1 sin(row*w), 2-3 cos(row*w), 4-5 sin(col*w), 6-7 cos(col*w).
        var table = PositionEmbedding.Table(8, 3, 5);
        int At(int r, int c) => (r * 5 + c) * 8;
        Assert.AreEqual(Math.Sin(2), table[At(2, 4) + 0], 1e-6);
        Assert.AreEqual(Math.Sin(2 / 100.0), table[At(2, 4) + 1], 1e-6);
        Assert.AreEqual(Math.Cos(2), table[At(2, 4) + 2], 1e-6);
        Assert.AreEqual(Math.Sin(4), table[At(2, 4) + 4], 1e-6);
        Assert.AreEqual(Math.Cos(4 / 100.0), table[At(2, 4) + 7], 1e-6);
        Assert.AreEqual(1.0, table[At(0, 0) + 2], 1e-9);
        // A different grid gives the same vector at the same (row, column).
        var big = PositionEmbedding.Table(8, 7, 9);
        for (int k = 0; k < 8; k++) Assert.AreEqual(table[At(2, 4) + k], big[(2 * 9 + 4) * 8 + k], 1e-7);
    }

    [TestMethod]
    public void ImagePatchSupplementCarriesMaskedImageOnlyWhenOn()
    {
        // The paper's model: no label prior and no pixel refinement (which would carry the image by itself).
        var on = LmaeConfig.FromOptions(ModelTestData.TinyOptions())
            with { LabelPrior = LabelPriorMode.None, RefinementChannels = 0, DirectionalPrior = false };
        var off = on with { UseImagePatchSupplement = false };
        using var withIps = new LabelMaskAutoEncoder(on);
        using var withoutIps = new LabelMaskAutoEncoder(off);
        // IPS is Linear(3p² → Dd) + bias; the mask token is one Dd vector.
        Assert.AreEqual(3 * 64 * 32 + 32 - 32, withIps.ParameterCount() - withoutIps.ParameterCount());

        var sample = RandomSample(16, 16, on, new Random(9), 0.5);
        int masked = Array.IndexOf(sample.PatchMask, true);
        var changed = CloneWithChangedPatchImage(sample, masked, 8);
        Assert.IsTrue(OutputDiffers(withIps, on, sample, changed), "with IPS the masked patch's image must reach the output");
        Assert.IsFalse(OutputDiffers(withoutIps, off, sample, changed), "without IPS the masked patch's image is discarded");
    }

    [TestMethod]
    public void LossIgnoresUnknownTruthAndWeighsClasses()
    {
        manual_seed(1);
        using var logits = randn(1, 3, 2, 2);
        using var targets = tensor(new long[] { 0, 2, -1, 1 }, [1, 2, 2]);
        using var weights = tensor(new[] { 1f, 2f, 0.5f });
        float loss = LmaeLoss.Compute(logits, targets, weights).item<float>();
        // Changing logits at the unknown pixel changes nothing.
        using var changed = logits.clone();
        changed[0, TensorIndex.Colon, 1, 0] = tensor(new[] { 50f, -50f, 10f });
        Assert.AreEqual(loss, LmaeLoss.Compute(changed, targets, weights).item<float>(), 1e-6f);
        // Hand computation of eq. 11-12.
        var l = logits.data<float>().ToArray();
        double Nll(int pixel, int cls)
        {
            double max = Enumerable.Range(0, 3).Max(c => l[c * 4 + pixel]);
            double lse = max + Math.Log(Enumerable.Range(0, 3).Sum(c => Math.Exp(l[c * 4 + pixel] - max)));
            return lse - l[cls * 4 + pixel];
        }
        double expected = (1 * Nll(0, 0) + 0.5 * Nll(1, 2) + 2 * Nll(3, 1)) / (1 + 0.5 + 2);
        Assert.AreEqual(expected, loss, 1e-5);
        // Nothing counted → zero, not NaN.
        using var none = full(new long[] { 1, 2, 2 }, -1L, ScalarType.Int64);
        Assert.AreEqual(0f, LmaeLoss.Compute(logits, none, weights).item<float>());
    }

    [TestMethod]
    public void Equation10WeightsMatchAHandComputation()
    {
        long[] counts = [600, 300, 100];
        double[] x = [0.6, 0.3, 0.1];
        double e = x.Average(), v = x.Select(t => (t - e) * (t - e)).Average();
        var w = LmaeLoss.Equation10(counts);
        for (int i = 0; i < 3; i++)
            Assert.AreEqual(1 - 1 / (1 + Math.Exp(-(x[i] - e) / (v + 1e-6))), w[i], 1e-6);
        Assert.IsTrue(w[0] < w[1] && w[1] < w[2], "rarer classes weigh more");
        var m = LmaeLoss.MedianFrequency(counts);
        Assert.AreEqual(0.5, m[0], 1e-6);
        Assert.AreEqual(1.0, m[1], 1e-6);
        Assert.AreEqual(3.0, m[2], 1e-6);
    }

    internal static WindowSample RandomSample(int width, int height, LmaeConfig config, Random random, double ratio)
    {
        var (image, label) = Synthetic.SyntheticScenes.Generate(width, height, random.Next());
        var (rows, columns) = MaskSelector.Grid(width, height, config.PatchSize);
        var mask = MaskSelector.RandomForTraining(rows * columns, ratio, random);
        return WindowBatch.FromCrop(image, label, mask, config, LossRegion.MaskedPatches, "test");
    }

    private static WindowSample CloneWithChangedPatchImage(WindowSample s, int patch, int p)
    {
        var rgb = (byte[])s.Rgb.Clone();
        int columns = s.Width / p, r0 = patch / columns * p, c0 = patch % columns * p;
        for (int y = r0; y < r0 + p; y++)
            for (int x = c0; x < c0 + p; x++)
                for (int c = 0; c < 3; c++) rgb[(y * s.Width + x) * 3 + c] = (byte)(255 - rgb[(y * s.Width + x) * 3 + c]);
        return new WindowSample { Width = s.Width, Height = s.Height, Rgb = rgb, InputLabel = s.InputLabel, Prior = s.Prior, PatchMask = s.PatchMask, Target = s.Target };
    }

    private static bool OutputDiffers(LabelMaskAutoEncoder model, LmaeConfig config, WindowSample a, WindowSample b)
    {
        using var scope = NewDisposeScope();
        using var guard = no_grad();
        model.eval();
        using var ia = WindowBatch.ToInputs([a], config, CPU);
        using var ib = WindowBatch.ToInputs([b], config, CPU);
        return model.forward(ia).sub(model.forward(ib)).abs().max().item<float>() > 1e-6f;
    }
}
