using Microsoft.ML.LabelCompletion.Model;

namespace Microsoft.ML.LabelCompletion.Cli.Tests;

/// <summary>The progress display takes the estimator's <see cref="TrainingProgress"/> records; the curves come from its epoch records.</summary>
[TestClass]
public sealed class TrainingMonitorTests
{
    private static TrainingProgress Step(int epoch, int epochs, int step, int steps, double loss, double imagesPerSecond) =>
        new(epoch, epochs, step, steps, loss, imagesPerSecond, 1e-3, null, null, EndOfEpoch: false);

    private static TrainingProgress EpochEnd(int epoch, int epochs, double loss, double imagesPerSecond, double learningRate,
        double? validationLoss = null, double? validationPaMiou = null) =>
        new(epoch, epochs, 5, 5, loss, imagesPerSecond, learningRate, validationLoss, validationPaMiou, EndOfEpoch: true);

    [TestMethod]
    public void StepAndEpochRecords_BecomeLinesAndCurves()
    {
        using var output = new StringWriter();
        IProgress<TrainingProgress> monitor = new TrainingMonitor(new CliConsole(output, TextWriter.Null, Interactive: false)) { PlainStepInterval = TimeSpan.Zero };
        monitor.Report(Step(1, 3, 2, 5, 1.2345, 7.5));
        monitor.Report(EpochEnd(1, 3, 1.1, 8.0, 1e-4));
        monitor.Report(EpochEnd(2, 3, 0.95, 8.2, 8e-5, 1.0234, 41.25));

        var epochs = ((TrainingMonitor)monitor).Epochs;
        Assert.HasCount(2, epochs);
        Assert.AreEqual(1, epochs[0].Epoch);
        Assert.AreEqual(1.1, epochs[0].TrainLoss);
        Assert.IsNull(epochs[0].ValidationLoss);
        Assert.IsNull(epochs[0].ValidationPaMiou);
        Assert.AreEqual(1e-4, epochs[0].LearningRate);
        Assert.AreEqual(2, epochs[1].Epoch);
        Assert.AreEqual(8e-5, epochs[1].LearningRate);
        Assert.AreEqual(1.0234, epochs[1].ValidationLoss);
        Assert.AreEqual(41.25, epochs[1].ValidationPaMiou);
        Assert.IsTrue(epochs[1].Seconds >= epochs[0].Seconds);
        string[] lines = output.ToString().Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.HasCount(3, lines, output.ToString());
        StringAssert.StartsWith(lines[0], "epoch 1/3  step 2/5  loss 1.2345  7.5 img/s  left ");
        StringAssert.StartsWith(lines[1], "epoch 1/3 done  loss 1.1000  lr 0.0001  8.0 img/s  00:");
        StringAssert.StartsWith(lines[2], "epoch 2/3 done  loss 0.9500  val loss 1.0234  val PA-mIoU 41.25  lr 8E-05  8.2 img/s  00:");
        Assert.IsFalse(output.ToString().Contains('\r'), "plain output has no carriage returns: " + output);
    }

    [TestMethod]
    public void InteractiveDisplay_RewritesOneLine()
    {
        using var output = new StringWriter();
        var monitor = new TrainingMonitor(new CliConsole(output, TextWriter.Null, Interactive: true));
        monitor.Report(Step(1, 1, 1, 2, 2, 1.0));
        monitor.Report(Step(1, 1, 2, 2, 1.5, 1.0));
        monitor.Finish();
        string text = output.ToString();
        Assert.AreEqual(4, text.Count(c => c == '\r'), "two in-place updates and one clear (two carriage returns): " + text);
        Assert.IsFalse(text.Contains('\n'), text);
    }

    [TestMethod]
    public void CurvesCsv_HasOneRowPerEpochAndEmptyMissingValues()
    {
        string csv = Commands.TrainCommand.CurvesCsv([new EpochRecord(1, 0.5, null, null, 1e-4, 3.5), new EpochRecord(2, 0.25, 0.75, 40.5, 8e-5, 6.5)]);
        var lines = csv.TrimEnd('\n').Split('\n');
        Assert.AreEqual("epoch,train_loss,val_loss,val_pa_miou,lr,seconds", lines[0]);
        Assert.AreEqual("1,0.5,,,0.0001,3.5", lines[1]);
        Assert.AreEqual("2,0.25,0.75,40.5,8E-05,6.5", lines[2]);
        Assert.HasCount(3, lines);
    }
}
