using System.Reflection;
using Microsoft.ML.LabelCompletion.Model;
using static TorchSharp.torch;

namespace Microsoft.ML.LabelCompletion.Tests.Integration;

/// <summary>One place per option: the settings record is saved, copied, validated and fingerprinted from its fields alone.</summary>
[TestClass]
public sealed class SettingsTests
{
    private static FieldInfo[] SettingsFields => typeof(LabelCompletionSettings).GetFields(BindingFlags.Public | BindingFlags.Instance);

    [TestMethod]
    public void EverySettingsField_SetToAnotherValidValue_SurvivesSaveAndLoad()
    {
        var options = Changed(out var changed);
        Assert.AreEqual(SettingsFields.Length, changed.Count,
            "fields this test could not give another valid value: " + string.Join(", ", SettingsFields.Select(f => f.Name).Except(changed)));
        var ml = new MLContext(seed: 1);
        using var data = new SyntheticSegmentationData(count: 1, seed: 3);
        string zip = Path.Combine(data.Directory, "changed.zip");
        using (var model = new LabelCompletionTransformer(ml, LabelCompletionEngine.Create(LmaeConfig.FromOptions(options), 1, CPU), options, ownsEngine: true))
            ml.Model.Save(model, data.ImageData(ml).Schema, zip);
        using var loaded = (LabelCompletionTransformer)new MLContext().Model.Load(zip, out _);
        var restored = loaded.Options;
        foreach (var field in SettingsFields)
            Assert.AreEqual(Show(field.GetValue(options)), Show(field.GetValue(restored)), $"{field.Name} is not saved");
    }

    [TestMethod]
    public void RunFingerprint_HoldsExactlyTheFieldsThatChangeTraining()
    {
        var baseline = SyntheticSegmentationData.TinyOptions();
        var reference = baseline.RunFingerprint(1, LabelCompletionPrecision.Float32).ToList();
        var variant = Changed(out var changed);
        foreach (var field in SettingsFields.Where(f => changed.Contains(f.Name)))
        {
            var one = SyntheticSegmentationData.TinyOptions();
            field.SetValue(one, field.GetValue(variant));
            // Another class count or unknown value needs the fields that depend on it to stay valid.
            if (field.Name is nameof(LabelCompletionSettings.NumberOfClasses)) continue;
            try
            {
                one.Validate();
            }
            catch (ArgumentOutOfRangeException)
            {
                continue;
            }
            var lines = one.RunFingerprint(1, LabelCompletionPrecision.Float32).ToList();
            bool marked = field.IsDefined(typeof(NotInRunFingerprintAttribute));
            Assert.AreEqual(!marked, !lines.SequenceEqual(reference), $"{field.Name}: marked {marked}; differences {string.Join("; ", TrainingCheckpoint.Differences(reference, lines))}");
        }
        // The settings that change the weights training computes are in it.
        foreach (string name in new[]
        {
            "NumberOfClasses", "UnknownLabel", "PatchSize", "TrainingSize", "EncoderEmbeddingDimension", "EncoderDepth", "EncoderHeads",
            "DecoderEmbeddingDimension", "DecoderDepth", "DecoderHeads", "MlpRatio", "Activation", "UseImagePatchSupplement", "LabelPrior",
            "WindowOverlap", "PixelRefinementChannels", "DirectionalPrior", "BatchSize", "MaskRatio", "LearningRate", "WeightDecay",
            "ClassWeighting", "LossRegion", "Augment", "LearningRatePatience", "LearningRateFactor", "LearningRateThreshold", "EarlyStoppingPatience",
        })
            Assert.IsTrue(reference.Any(l => l.StartsWith(name + "=", StringComparison.Ordinal)), $"{name} is not in the run's fingerprint");
        Assert.IsFalse(baseline.RunFingerprint(2, LabelCompletionPrecision.Float32).SequenceEqual(reference), "the seed used");
        Assert.IsFalse(baseline.RunFingerprint(1, LabelCompletionPrecision.BFloat16).SequenceEqual(reference), "the precision used");
        // A preset and the same values given explicitly are the same run.
        var explicitValues = SyntheticSegmentationData.TinyOptions();
        LmaeConfig.FromOptions(explicitValues).ApplyTo(explicitValues);
        CollectionAssert.AreEqual(reference, explicitValues.RunFingerprint(1, LabelCompletionPrecision.Float32).ToList());
    }

    [TestMethod]
    public void ClassCount_TheSameBoundForOptionsNetworkAndFit()
    {
        // 255 classes (values 0..254, unknown 255): valid for the options, the network and training.
        var options = SyntheticSegmentationData.TinyOptions();
        options.NumberOfClasses = 255;
        options.Validate();
        Assert.AreEqual(255, LmaeConfig.FromOptions(options).NumberOfClasses);
        var ml = new MLContext(seed: 1);
        using var data = new SyntheticSegmentationData(count: 2, seed: 4);
        using (var model = ml.Transforms.CompleteLabels(options).Fit(data.ImageData(ml)))
            Assert.AreEqual(255, model.NumberOfClasses);

        // 256 and 0: refused by the one check, with the same message, wherever they come from.
        foreach (int classes in new[] { 0, 256 })
        {
            options.NumberOfClasses = classes;
            var direct = Assert.ThrowsExactly<ArgumentOutOfRangeException>(options.Validate);
            Assert.AreEqual(nameof(LabelCompletionSettings.NumberOfClasses), direct.ParamName);
            var estimator = Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => ml.Transforms.CompleteLabels(options));
            Assert.AreEqual(direct.Message, estimator.Message);
            var network = Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => LmaeConfig.FromOptions(options));
            Assert.AreEqual(direct.Message, network.Message);
        }
    }

    [TestMethod]
    public void Bounds_AreCheckedForEveryNetworkField_WithTheFieldNamed()
    {
        foreach (var (name, value) in new (string, object)[]
        {
            ("PatchSize", 0), ("PatchSize", 65), ("EncoderEmbeddingDimension", 4100), ("EncoderEmbeddingDimension", 66),
            ("EncoderDepth", -1), ("EncoderDepth", 65), ("EncoderHeads", 0), ("EncoderHeads", 3),
            ("DecoderEmbeddingDimension", 0), ("DecoderDepth", 65), ("DecoderHeads", 65), ("MlpRatio", 0), ("MlpRatio", 17),
            ("PixelRefinementChannels", -1), ("PixelRefinementChannels", 513), ("TrainingSize", 0), ("TrainingSize", 2049),
            ("TrainingSize", 520), ("WindowOverlap", 0.95f), ("BatchSize", 0), ("Epochs", 0), ("LearningRate", double.NaN),
            ("LearningRateFactor", 0.0), ("UnknownLabel", (byte)2), ("BackgroundClass", (byte)3), ("InferenceBatchSize", 4097),
            ("NumberOfThreads", 0), ("TrainingTimeLimit", TimeSpan.Zero), ("ImageColumnName", ""), ("Precision", (LabelCompletionPrecision)9),
        })
        {
            var options = SyntheticSegmentationData.TinyOptions();
            var field = typeof(LabelCompletionSettings).GetField(name)!;
            field.SetValue(options, value);
            var error = Assert.ThrowsExactly<ArgumentOutOfRangeException>(options.Validate, $"{name} = {value}");
            Assert.AreEqual(name, error.ParamName, error.Message);
            StringAssert.StartsWith(error.Message, $"LabelCompletionOptions.{name}: ");
        }
    }

    [TestMethod]
    public void MinimumWeightBytes_IsALowerBoundOfTheSavedWeights()
    {
        foreach (var (size, refinement, prior) in new[]
        {
            (LabelCompletionModelSize.Tiny, 0, LabelPriorMode.None), (LabelCompletionModelSize.Tiny, 32, LabelPriorMode.ImagePatchSupplementAndLogits),
            (LabelCompletionModelSize.Small, 32, LabelPriorMode.ImagePatchSupplement),
        })
        {
            var options = SyntheticSegmentationData.TinyOptions();
            options.ModelSize = size;
            options.PixelRefinementChannels = refinement;
            options.LabelPrior = prior;
            var config = LmaeConfig.FromOptions(options);
            using var engine = LabelCompletionEngine.Create(config, 1, CPU);
            using var stream = new MemoryStream();
            using (var writer = new BinaryWriter(stream, System.Text.Encoding.UTF8, leaveOpen: true)) engine.SaveWeights(writer);
            Assert.IsTrue(config.MinimumWeightBytes <= stream.Length, $"{size}: bound {config.MinimumWeightBytes} > {stream.Length} saved");
            Assert.IsTrue(config.MinimumWeightBytes >= stream.Length / 2, $"{size}: bound {config.MinimumWeightBytes} is far below {stream.Length}");
        }
    }

    /// <summary>Tiny options with every settings field moved to another value that passes validation (names in <paramref name="changed"/>).</summary>
    private static LabelCompletionOptions Changed(out List<string> changed)
    {
        var options = SyntheticSegmentationData.TinyOptions();
        changed = [];
        foreach (var field in SettingsFields)
        {
            object? original = field.GetValue(options);
            foreach (object? candidate in Candidates(field.FieldType, original, options.NumberOfClasses))
            {
                field.SetValue(options, candidate);
                try
                {
                    options.Validate();
                    changed.Add(field.Name);
                    break;
                }
                catch (ArgumentOutOfRangeException)
                {
                    field.SetValue(options, original);
                }
            }
        }
        return options;
    }

    private static IEnumerable<object?> Candidates(Type type, object? current, int classes)
    {
        var underlying = Nullable.GetUnderlyingType(type) ?? type;
        IEnumerable<object?> values = underlying switch
        {
            _ when underlying == typeof(int) => new object?[] { 16, 4, 2, 1, 3, 0, 7 },
            _ when underlying == typeof(byte) => new object?[] { (byte)1, (byte)254, (byte)2 },
            _ when underlying == typeof(bool) => new object?[] { current is bool b ? !b : true },
            _ when underlying == typeof(float) => new object?[] { 0.25f, 0.75f },
            _ when underlying == typeof(double) => new object?[] { 0.25, 0.5, 2e-3 },
            _ when underlying == typeof(string) => new object?[] { "Other" + current, "/tmp/other" },
            _ when underlying == typeof(TimeSpan) => new object?[] { TimeSpan.FromMinutes(7) },
            _ when underlying == typeof(string[]) => new object?[] { Enumerable.Range(0, classes).Select(c => $"class {c}").ToArray() },
            _ when underlying == typeof(byte[]) => new object?[] { Enumerable.Range(0, 3 * classes).Select(i => (byte)i).ToArray() },
            _ when underlying.IsEnum => Enum.GetValues(underlying).Cast<object?>(),
            _ => [],
        };
        return values.Where(v => !Equals(Show(v), Show(current)));
    }

    private static string Show(object? value) => value switch
    {
        null => "null",
        Array array => "[" + string.Join(",", array.Cast<object>()) + "]",
        _ => value.ToString()!,
    };
}
