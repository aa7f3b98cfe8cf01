// The training set-up of the kill-and-resume test, compiled into this helper and linked into the test project so both
// sides train exactly the same run.
using Microsoft.ML.LabelCompletion;
using Microsoft.ML.LabelCompletion.Model;
using Microsoft.ML.LabelCompletion.Synthetic;

/// <summary>The training set-up shared with the tests that compare against this process.</summary>
internal static class TrainingRunner
{
    public const int Seed = 11;

    public static LabelCompletionOptions Options(string? checkpoints, bool resume) => new()
    {
        NumberOfClasses = SyntheticScenes.NumberOfClasses,
        ModelSize = LabelCompletionModelSize.Tiny,
        TrainingSize = 32,
        BatchSize = 2,
        Epochs = 3,
        LearningRate = 1e-3,
        LearningRatePatience = 0, // the scheduler cuts the rate after any epoch without improvement: its state matters
        NumberOfThreads = 1,
        ClassWeighting = ClassWeighting.MedianFrequency,
        CheckpointDirectory = checkpoints,
        CheckpointEverySteps = 2,
        ResumeFromCheckpoint = resume,
    };

    public static List<SegmentationExample> Scenes() =>
        SyntheticScenes.Generate(12, 32, 32, 300).Select((s, i) => new SegmentationExample(s.Image, s.Label, $"scene {300 + i}")).ToList();
}
