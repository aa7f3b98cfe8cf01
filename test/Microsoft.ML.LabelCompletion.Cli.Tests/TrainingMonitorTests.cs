namespace Microsoft.ML.LabelCompletion.Cli.Tests;

/// <summary>The progress display reads the estimator's log lines; the curves come from its epoch lines.</summary>
[TestClass]
public sealed class TrainingMonitorTests
{
    [TestMethod]
    public void EpochAndStepLines_AreParsed()
    {
        using var output = new StringWriter();
        var ml = new MLContext(seed: 0);
        using var monitor = new TrainingMonitor(ml, new CliConsole(output, TextWriter.Null, Interactive: false)) { PlainStepInterval = TimeSpan.Zero };
        Assert.IsTrue(monitor.Observe("Epoch 1/3, step 2/5: loss 1.2345, 7.5 images/s."));
        Assert.IsTrue(monitor.Observe("Epoch 1/3: loss 1.1, 8.0 images/s, learning rate 0.0001."));
        Assert.IsTrue(monitor.Observe("Epoch 2/3: loss 0.95, 8.2 images/s, learning rate 8E-05, validation loss 1.0234, validation PA-mIoU 41.25."));
        Assert.IsFalse(monitor.Observe("Training done."));

        var epochs = monitor.Epochs;
        Assert.HasCount(2, epochs);
        Assert.AreEqual(1, epochs[0].Epoch);
        Assert.AreEqual(1.1, epochs[0].TrainLoss, 1e-12);
        Assert.IsNull(epochs[0].ValidationLoss);
        Assert.AreEqual(1e-4, epochs[0].LearningRate, 1e-12);
        Assert.AreEqual(8e-5, epochs[1].LearningRate, 1e-12);
        Assert.AreEqual(1.0234, epochs[1].ValidationLoss!.Value, 1e-12);
        Assert.AreEqual(41.25, epochs[1].ValidationPaMiou!.Value, 1e-12);
        string text = output.ToString();
        Assert.IsTrue(text.Contains("epoch 1/3  step 2/5  loss 1.2345", StringComparison.Ordinal), text);
        Assert.IsTrue(text.Contains("left", StringComparison.Ordinal), text);
        Assert.IsFalse(text.Contains('\r'), "plain output has no carriage returns: " + text);
    }

    [TestMethod]
    public void InteractiveDisplay_RewritesOneLine()
    {
        using var output = new StringWriter();
        using var monitor = new TrainingMonitor(new MLContext(seed: 0), new CliConsole(output, TextWriter.Null, Interactive: true));
        monitor.Observe("Epoch 1/1, step 1/2: loss 2, 1.0 images/s.");
        monitor.Observe("Epoch 1/1, step 2/2: loss 1.5, 1.0 images/s.");
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
