using Microsoft.ML.LabelCompletion.Data;
using Microsoft.ML.LabelCompletion.Model;
using Microsoft.ML.LabelCompletion.Synthetic;

namespace Microsoft.ML.LabelCompletion.Tests.Model;

internal static class ModelTestData
{
    public static LabelCompletionOptions TinyOptions(int classes = 6) => new()
    {
        NumberOfClasses = classes,
        ModelSize = LabelCompletionModelSize.Tiny,
        TrainingSize = 32,
        BatchSize = 4,
        Epochs = 1,
        LearningRate = 1e-3,
        NumberOfThreads = 2,
        ClassWeighting = ClassWeighting.None,
        // The ImageNet ResNet18 adds 11 MB to every saved model: the tests of the image features ask for it.
        ImageFeatures = ImageFeatureInputs.None,
    };

    public static List<SegmentationExample> Scenes(int count, int width, int height, int seed) =>
        SyntheticScenes.Generate(count, width, height, seed)
            .Select((s, i) => new SegmentationExample(s.Image, s.Label, $"scene {seed + i}"))
            .ToList();
}
