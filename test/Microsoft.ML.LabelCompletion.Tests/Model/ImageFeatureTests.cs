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
        var actual = loaded.Network.state_dict().Where(kv => kv.Key.Contains("_backbone.", StringComparison.Ordinal))
            .ToDictionary(kv => kv.Key[(kv.Key.IndexOf("_backbone.", StringComparison.Ordinal) + "_backbone.".Length)..], kv => kv.Value);
        Assert.AreEqual(expected.Count, actual.Count);
        foreach (var (name, tensor) in expected)
            Assert.IsTrue(actual[name].allclose(tensor, 0, 0), $"{name} is saved with the model");
    }

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
