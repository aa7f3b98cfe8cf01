using System.Globalization;
using Microsoft.ML.LabelCompletion.Model;
using Microsoft.ML.Runtime;

namespace Microsoft.ML.LabelCompletion.Tests.Integration;

/// <summary><see cref="LabelCompletionOptions.Progress"/>: what an ML.NET user receives while <c>Fit</c> trains.</summary>
[TestClass]
public sealed class TrainingProgressTests
{
    /// <summary>Keeps every record in order, on the thread that reports it.</summary>
    private sealed class Recorder : IProgress<TrainingProgress>
    {
        public List<TrainingProgress> Records { get; } = new();

        public void Report(TrainingProgress value) => Records.Add(value);
    }

    [TestMethod]
    public void UserProgress_GetsEveryStepAndOneEndOfEpochRecordPerEpoch()
    {
        using var data = new SyntheticSegmentationData(count: 5, seed: 4);
        var ml = new MLContext(seed: 1);
        var epochLog = new List<string>();
        ml.Log += (_, e) =>
        {
            if (e.Kind == ChannelMessageKind.Info && e.RawMessage.StartsWith("Epoch ", StringComparison.Ordinal))
                lock (epochLog) epochLog.Add(e.RawMessage);
        };
        var recorder = new Recorder();
        var options = SyntheticSegmentationData.TinyOptions(epochs: 3); // batch 2: steps of 2, 2 and 1 images
        options.ValidationSet = data.ImageData(ml);
        options.Progress = recorder;

        var caller = CultureInfo.CurrentCulture;
        try
        {
            CultureInfo.CurrentCulture = CultureInfo.GetCultureInfo("de-DE"); // the log's numbers stay invariant
            using var model = ml.Transforms.CompleteLabels(options).Fit(data.ImageData(ml));
        }
        finally
        {
            CultureInfo.CurrentCulture = caller;
        }

        const int Steps = 3;
        var records = recorder.Records;
        Assert.HasCount(3 * (Steps + 1), records, "each step, then the epoch's summary");
        var epochs = records.Where(r => r.EndOfEpoch).ToList();
        Assert.HasCount(3, epochs);
        Assert.HasCount(3, epochLog);
        for (int e = 0; e < 3; e++)
        {
            var steps = records.Skip(e * (Steps + 1)).Take(Steps).ToList();
            var end = records[e * (Steps + 1) + Steps];
            Assert.IsTrue(end.EndOfEpoch, $"record {e * (Steps + 1) + Steps} closes epoch {e + 1}");
            CollectionAssert.AreEqual(new[] { 1, 2, 3 }, steps.Select(s => s.Step).ToArray());
            Assert.IsTrue(steps.All(s => !s.EndOfEpoch && s.Epoch == e + 1 && s.Epochs == 3 && s.StepsPerEpoch == Steps
                && s.ValidationLoss is null && s.ValidationPaMiou is null && double.IsFinite(s.Loss) && s.Loss > 0));

            Assert.AreEqual(e + 1, end.Epoch);
            Assert.AreEqual(3, end.Epochs);
            Assert.AreEqual(Steps, end.Step);
            Assert.AreEqual(Steps, end.StepsPerEpoch);
            // The epoch's loss is the image-weighted mean of its steps' losses (the last step has one image).
            double mean = (2 * steps[0].Loss + 2 * steps[1].Loss + steps[2].Loss) / 5;
            Assert.AreEqual(mean, end.Loss, 1e-6 * mean, $"epoch {e + 1}");
            Assert.IsTrue(end.ImagesPerSecond > 0);
            Assert.AreEqual(options.LearningRate, end.LearningRate, 1e-12, "no plateau within three epochs");
            Assert.IsNotNull(end.ValidationLoss);
            Assert.IsTrue(double.IsFinite(end.ValidationLoss.Value) && end.ValidationLoss > 0);
            Assert.IsNotNull(end.ValidationPaMiou);
            Assert.IsTrue(end.ValidationPaMiou is >= 0 and <= 100, $"{end.ValidationPaMiou}");

            // MLContext.Log says the same, in the invariant culture.
            string expected = string.Create(CultureInfo.InvariantCulture,
                $"Epoch {e + 1}/3: loss {end.Loss:G5}, {end.ImagesPerSecond:F1} images/s, learning rate {end.LearningRate:G3}, "
                + $"validation loss {end.ValidationLoss:G5}, validation PA-mIoU {end.ValidationPaMiou:F2}.");
            Assert.AreEqual(expected, epochLog[e]);
        }
    }
}
