using Microsoft.ML.LabelCompletion.Model;
using TorchSharp;
using static TorchSharp.torch;

namespace Microsoft.ML.LabelCompletion.Tests.Model;

/// <summary>The pretrained image branch: frozen ResNet18, trained projections, saved with the model, bounded options.</summary>
[TestClass]
public sealed class ImageFeatureTests
{
    [TestMethod]
    public void TrainingReachesTheProjectionsButNotTheResNet()
    {
        var config = LmaeConfig.FromOptions(ModelTestData.TinyOptions()) with { RefinementChannels = 8, ImageFeatures = ImageFeatureInputs.All };
        using var engine = LabelCompletionEngine.Create(config, 3, CPU);
        var model = engine.Network;
        model.train();
        // The refinement's output layer starts at zero, which stops every gradient below it on the first step: give it weights.
        using (no_grad())
            foreach (var (name, parameter) in model.named_parameters())
                if (name.Contains("_refinement._output", StringComparison.Ordinal)) nn.init.normal_(parameter, 0, 1.0);
        var samples = Enumerable.Range(0, 3).Select(i => ModelTests.RandomSample(32, 32, config, new Random(i), 0.5)).ToList();
        using var scope = NewDisposeScope();
        using var inputs = WindowBatch.ToInputs(samples, config, CPU);
        model.ForwardLoss(inputs, WindowBatch.Targets(samples, config, CPU), null);
        var named = model.named_parameters().ToList();
        var backbone = named.Where(p => p.name.Contains("_backbone", StringComparison.Ordinal)).ToList();
        Assert.IsTrue(backbone.Count > 20, "the ResNet18 is part of the model");
        Assert.IsTrue(backbone.All(p => !p.parameter.requires_grad && p.parameter.grad is null), "the ResNet18 is frozen");
        Assert.IsTrue(backbone.Any(p => p.parameter.abs().sum().item<float>() > 0), "the ResNet18's weights were read");
        foreach (var projection in new[] { "_toEncoder.weight", "_toSupplement.weight", "_toRefinement.weight", "_patchNorm.weight" })
        {
            var (name, parameter) = named.Single(p => p.name.EndsWith(projection, StringComparison.Ordinal));
            Assert.IsTrue(parameter.grad is not null && parameter.grad.abs().sum().item<float>() > 0, $"{name} gets a gradient");
        }
        Assert.IsFalse(model.TrainableParameters().Any(p => !p.requires_grad));
    }

    [TestMethod]
    public void EachPlacementChangesTheOutput()
    {
        var baseConfig = LmaeConfig.FromOptions(ModelTestData.TinyOptions()) with { RefinementChannels = 8 };
        var sample = ModelTests.RandomSample(32, 32, baseConfig, new Random(7), 0.5);
        foreach (var placement in new[] { ImageFeatureInputs.EncoderTokens, ImageFeatureInputs.PatchSupplement, ImageFeatureInputs.PixelRefinement })
        {
            var config = baseConfig with { ImageFeatures = placement };
            using var engine = LabelCompletionEngine.Create(config, 3, CPU);
            var model = engine.Network;
            model.eval();
            using var scope = NewDisposeScope();
            using var guard = no_grad();
            // The refinement's output layer starts at zero (no correction): give it weights so its inputs show.
            foreach (var (name, parameter) in model.named_parameters())
                if (name.Contains("_refinement._output", StringComparison.Ordinal)) nn.init.normal_(parameter, 0, 1.0);
            using var inputs = WindowBatch.ToInputs([sample], config, CPU);
            var withFeatures = model.forward(inputs);
            // The same network with the ResNet18's input zeroed: only the image features differ.
            var black = inputs with { Rgb = inputs.Rgb.mul(0).add(5) };
            var features = model.ImageFeaturesOf(inputs, patches: true, pixels: true);
            var otherFeatures = model.ImageFeaturesOf(black, patches: true, pixels: true);
            var latent = model.ForwardEncoder(inputs, otherFeatures);
            var withOther = model.Refine(model.ForwardDecoder(latent, inputs, otherFeatures), inputs, otherFeatures);
            Assert.IsTrue(withFeatures.sub(withOther).abs().max().item<float>() > 1e-4, $"{placement}: the features reach the output");
            Assert.AreEqual(placement == ImageFeatureInputs.PixelRefinement, features.Patches is null, $"{placement}: patch features only where read");
            Assert.AreEqual(placement != ImageFeatureInputs.PixelRefinement, features.Pixels is null, $"{placement}: pixel features only where read");
        }
    }

    [TestMethod]
    public void CompletionRunsTheResNetOncePerImageAndCutsEachWindowsFeatures()
    {
        var (engine, masked, mask) = ModelTests.TwoWindowCompletion(ImageFeatureInputs.All);
        using var _ = engine;
        var model = engine.Network;
        var config = engine.Config;
        var (rows, columns) = MaskSelector.Grid(48, 32, 8);
        var result = engine.Complete([masked], [mask])[0];

        // By hand: the features of the whole image, each window's patch features cut from them, decoder logits averaged,
        // the refinement over the whole image with the whole image's pixel features.
        using var scope = NewDisposeScope();
        using var guard = no_grad();
        model.eval();
        var wholeSample = new WindowSample
        {
            Width = 48, Height = 32, Rgb = masked.Image.Pixels, InputLabel = masked.Label.Values, PatchMask = mask,
            Prior = NearestKnownFill.Fill(masked.Label, 255).Values, Directional = DirectionalFill.Compute(masked.Label.Values, 48, 32, 255),
        };
        var whole = WindowBatch.ToInputs([wholeSample], config, CPU);
        var imageFeatures = model.ImageFeaturesOf(whole, patches: true, pixels: true);
        Assert.IsNotNull(imageFeatures.Patches);
        Assert.IsNotNull(imageFeatures.Pixels);
        var grid = imageFeatures.Patches.view(1, rows, columns, -1);
        var sum = zeros(1, 6, 32, 48);
        var count = zeros(1, 1, 32, 48);
        Tensor? perWindowPatches = null;
        foreach (int x0 in new[] { 0, 16 })
        {
            var inputs = WindowBatch.ToInputs([ModelTests.CopyWindow(wholeSample, x0, 0, 32, 32, 8)], config, CPU);
            var cut = new ImageFeatures(grid.narrow(2, x0 / 8, 4).reshape(1, 16, -1), null);
            sum.narrow(3, x0, 32).add_(model.ForwardDecoder(model.ForwardEncoder(inputs, cut), inputs, cut));
            count.narrow(3, x0, 32).add_(ones(1, 1, 32, 32));
            if (x0 == 16) perWindowPatches = model.ImageFeaturesOf(inputs, patches: true, pixels: false).Patches;
        }
        var probabilities = nn.functional.softmax(model.Refine(sum.div(count), whole, new ImageFeatures(null, imageFeatures.Pixels)), 1);
        var expectedLabel = probabilities.argmax(1).flatten().data<long>().ToArray();
        var expectedConfidence = probabilities.max(1).values.flatten().data<float>().ToArray();
        int predicted = 0;
        for (int i = 0; i < 48 * 32; i++)
        {
            if (masked.Label.Values[i] != 255) continue;
            predicted++;
            Assert.AreEqual(expectedLabel[i], (long)result.Completed.Values[i], $"pixel {i}");
            Assert.AreEqual(expectedConfidence[i], result.Confidence[i], 1e-4f, $"pixel {i}");
        }
        Assert.IsTrue(predicted > 300, $"{predicted} predicted pixels");
        // The check can tell the two ways apart: the ResNet18 over the window alone sees zero padding at its left border.
        Assert.IsTrue(perWindowPatches!.sub(grid.narrow(2, 2, 4).reshape(1, 16, -1)).abs().max().item<float>() > 1e-3,
            "a window's own features differ from the cut ones");
    }

    [TestMethod]
    public void FineTuningTrainsTheStride16StageAloneAndOnlyWhileOn()
    {
        var config = LmaeConfig.FromOptions(ModelTestData.TinyOptions()) with { ImageFeatures = ImageFeatureInputs.EncoderTokens };
        using var engine = LabelCompletionEngine.Create(config, 3, CPU);
        var model = engine.Network;
        model.train();
        var samples = Enumerable.Range(0, 2).Select(i => ModelTests.RandomSample(32, 32, config, new Random(i), 0.5)).ToList();
        using var scope = NewDisposeScope();
        using var inputs = WindowBatch.ToInputs(samples, config, CPU);
        var backbone = model.named_parameters().Where(p => p.name.Contains("_backbone.", StringComparison.Ordinal)).ToList();
        // Stage 2 (stride 16) is blocks 4 and 5 (stages of 2, 2, 2 blocks before it).
        bool InLastStage(string name) => name.Contains("_blocks.4.", StringComparison.Ordinal) || name.Contains("_blocks.5.", StringComparison.Ordinal);
        Assert.IsTrue(backbone.Count(p => InLastStage(p.name)) >= 6, string.Join(", ", backbone.Select(p => p.name)));
        using (model.FineTuneImageEncoder(true))
        {
            model.ForwardLoss(inputs, WindowBatch.Targets(samples, config, CPU), null);
            foreach (var (name, parameter) in backbone)
            {
                bool trained = parameter.grad is not null && parameter.grad.abs().sum().item<float>() > 0;
                Assert.AreEqual(InLastStage(name), trained, $"{name}: trained only in the stride-16 stage");
                Assert.AreEqual(InLastStage(name), parameter.requires_grad, name);
            }
            var handles = backbone.Select(p => p.parameter.Handle).ToHashSet();
            Assert.AreEqual(backbone.Count(p => InLastStage(p.name)), model.TrainableParameters().Count(t => handles.Contains(t.Handle)), "the optimizer sees the stage");
        }
        Assert.IsTrue(backbone.All(p => !p.parameter.requires_grad), "frozen again once the handle is disposed");

        // The stage run on its own gives the same output as the whole forward.
        using var guard = no_grad();
        using var resnet = ResNet18Backbone.Load(stages: 3);
        var all = resnet.Forward(inputs.Rgb, 3);
        Assert.IsTrue(resnet.ForwardStage(all[1], 2).allclose(all[2], 1e-5, 1e-5));
    }

    [TestMethod]
    public void FineTuningOptionIsBoundedAndNeedsPatchFeatures()
    {
        var options = ModelTestData.TinyOptions();
        options.ImageFeatures = ImageFeatureInputs.All;
        foreach (double bad in new[] { -0.1, 10.5, double.NaN })
        {
            options.ImageEncoderLearningRateScale = bad;
            var e = Assert.ThrowsExactly<ArgumentOutOfRangeException>(options.Validate);
            StringAssert.Contains(e.Message, "ImageEncoderLearningRateScale");
        }
        options.ImageEncoderLearningRateScale = 0.1;
        options.Validate();
        options.ImageFeatures = ImageFeatureInputs.PixelRefinement;
        var refinementOnly = Assert.ThrowsExactly<ArgumentOutOfRangeException>(options.Validate);
        StringAssert.Contains(refinementOnly.Message, "stride-16");
    }

    [TestMethod]
    public void TrainingWithAnEncoderScaleChangesOnlyTheStride16StageOfTheSavedResNet()
    {
        var options = ModelTestData.TinyOptions();
        options.ImageFeatures = ImageFeatureInputs.EncoderTokens;
        options.Epochs = 1;
        options.ImageEncoderLearningRateScale = 1;
        var train = ModelTestData.Scenes(4, 32, 32, 5);
        using var engine = LabelCompletionEngine.Train(train, null, options, 1, CPU, null, CancellationToken.None);
        using var reference = ResNet18Backbone.Load(stages: 3);
        var expected = reference.state_dict();
        var actual = BackboneWeights(engine);
        int changed = 0;
        foreach (var (name, tensor) in expected)
        {
            bool lastStage = name.StartsWith("_blocks.4.", StringComparison.Ordinal) || name.StartsWith("_blocks.5.", StringComparison.Ordinal);
            bool same = actual[name].allclose(tensor, 0, 0);
            if (!lastStage) Assert.IsTrue(same, $"{name} stays as read");
            else if (!same) changed++;
        }
        Assert.IsTrue(changed >= 6, $"{changed} tensors of the stride-16 stage changed");
        Assert.IsTrue(engine.Network.ImageEncoderParameters().All(p => !p.requires_grad), "frozen after training");
    }

    [TestMethod]
    public void TheSavedWeightsHoldTheResNet()
    {
        var config = LmaeConfig.FromOptions(ModelTestData.TinyOptions()) with { ImageFeatures = ImageFeatureInputs.EncoderTokens };
        using var engine = LabelCompletionEngine.Create(config, 3, CPU);
        using var stream = new MemoryStream();
        using (var writer = new BinaryWriter(stream, System.Text.Encoding.UTF8, leaveOpen: true)) engine.SaveWeights(writer);
        stream.Position = 0;
        using var reader = new BinaryReader(stream);
        using var loaded = LabelCompletionEngine.Load(config, reader, CPU);
        using var reference = ResNet18Backbone.Load(stages: 3);
        var expected = reference.state_dict();
        var actual = BackboneWeights(loaded);
        Assert.AreEqual(expected.Count, actual.Count);
        foreach (var (name, tensor) in expected)
            Assert.IsTrue(actual[name].allclose(tensor, 0, 0), $"{name} is saved with the model");
    }

    /// <summary>The ResNet18's tensors in <paramref name="engine"/>'s network, by their names inside the ResNet18.</summary>
    private static Dictionary<string, Tensor> BackboneWeights(LabelCompletionEngine engine)
        => engine.Network.state_dict().Where(kv => kv.Key.Contains("_backbone.", StringComparison.Ordinal))
            .ToDictionary(kv => kv.Key[(kv.Key.IndexOf("_backbone.", StringComparison.Ordinal) + "_backbone.".Length)..], kv => kv.Value);

    [TestMethod]
    public void ImageFeaturesNeedAPowerOfTwoPatch()
    {
        var options = ModelTestData.TinyOptions();
        options.ImageFeatures = ImageFeatureInputs.All;
        options.PatchSize = 12;
        options.TrainingSize = 48;
        var e = Assert.ThrowsExactly<ArgumentOutOfRangeException>(options.Validate);
        StringAssert.Contains(e.Message, "ImageFeatures");
        StringAssert.Contains(e.Message, "power of two");
        options.ImageFeatures = ImageFeatureInputs.None;
        options.Validate();
        options.ImageFeatures = (ImageFeatureInputs)8;
        options.PatchSize = 8;
        e = Assert.ThrowsExactly<ArgumentOutOfRangeException>(options.Validate);
        StringAssert.Contains(e.Message, "not a combination");
    }
}
