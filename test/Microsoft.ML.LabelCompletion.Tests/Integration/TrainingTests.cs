using Microsoft.ML.LabelCompletion.Internal;
using Microsoft.ML.Runtime;
using TorchSharp;

namespace Microsoft.ML.LabelCompletion.Tests.Integration;

[TestClass]
public sealed class TrainingTests
{
    [TestMethod]
    public void Fit_ReportsProgressThroughMLContextLog()
    {
        var ml = new MLContext(seed: 3);
        var messages = new List<string>();
        ml.Log += (_, e) => { lock (messages) messages.Add(e.Message); };
        var data = IntegrationFixture.Data;
        ml.Transforms.CompleteLabels(SyntheticSegmentationData.TinyOptions(epochs: 2)).Fit(data.ImageData(ml)).Dispose();
        lock (messages)
        {
            Assert.IsTrue(messages.Any(m => m.Contains("Epoch 1/2: loss") && m.Contains("images/s")), string.Join("\n", messages.TakeLast(20)));
            Assert.IsTrue(messages.Any(m => m.Contains("Epoch 2/2: loss")));
            Assert.IsTrue(messages.Any(m => m.Contains("Epoch 1/2, step 1")), "per-step trace messages");
        }
    }

    [TestMethod]
    public void Fit_StopsWithinOneStepOfCancellation()
    {
        var ml = new MLContext(seed: 3);
        using var cancellation = new CancellationTokenSource();
        int stepsAfterCancel = -1;
        ml.Log += (_, e) =>
        {
            if (!e.Message.Contains(", step ")) return;
            if (cancellation.IsCancellationRequested) Interlocked.Increment(ref stepsAfterCancel);
            else { cancellation.Cancel(); stepsAfterCancel = 0; }
        };
        var options = SyntheticSegmentationData.TinyOptions(epochs: 1000);
        options.CancellationToken = cancellation.Token;
        var started = DateTime.UtcNow;
        Assert.Throws<OperationCanceledException>(() => ml.Transforms.CompleteLabels(options).Fit(IntegrationFixture.Data.ImageData(ml)));
        Assert.AreEqual(0, stepsAfterCancel, "steps trained after the cancellation");
        Assert.IsTrue(DateTime.UtcNow - started < TimeSpan.FromSeconds(30));
    }

    [TestMethod]
    public void Fit_IsReproducibleFromTheMLContextSeed()
    {
        var data = IntegrationFixture.Data;
        List<(byte[] Completed, float[] Confidence, bool[] Mask)> Run(int seed)
        {
            var ml = new MLContext(seed: seed);
            using var model = ml.Transforms.CompleteLabels(SyntheticSegmentationData.TinyOptions()).Fit(data.ImageData(ml));
            return IntegrationFixture.ReadOutputs(model.Transform(data.ImageData(ml)));
        }
        var a = Run(4);
        var b = Run(4);
        for (int r = 0; r < a.Count; r++)
            CollectionAssert.AreEqual(a[r].Confidence, b[r].Confidence, $"row {r}");
        var c = Run(5);
        Assert.IsTrue(Enumerable.Range(0, a.Count).Any(r => !a[r].Confidence.SequenceEqual(c[r].Confidence)), "another seed trains another model");
    }

    [TestMethod]
    public void Device_IsCpuWithoutGpuId_AndGpuIdWithoutCudaFailsWhenFallbackIsOff()
    {
        var ml = new MLContext(seed: 1);
        Assert.AreEqual(DeviceType.CPU, TorchDeviceSelector.Select(ml, null).type);

        ml.GpuDeviceId = 0;
        ml.FallbackToCpu = false;
        if (torch.cuda.is_available())
        {
            Assert.AreEqual(new torch.Device(DeviceType.CUDA, 0).ToString(), TorchDeviceSelector.Select(ml, null).ToString());
        }
        else
        {
            var error = Assert.ThrowsExactly<InvalidOperationException>(
                () => ml.Transforms.CompleteLabels(SyntheticSegmentationData.TinyOptions()).Fit(IntegrationFixture.Data.ImageData(ml)));
            StringAssert.Contains(error.Message, "GpuDeviceId is 0");
            StringAssert.Contains(error.Message, "FallbackToCpu");
            ml.FallbackToCpu = true;
            Assert.AreEqual(DeviceType.CPU, TorchDeviceSelector.Select(ml, null).type);
        }
    }

    [TestMethod]
    public void DeviceSelection_UsesTheRequestedCudaDevice()
    {
        // The decision returns the CUDA index to use, or null for the CPU.
        Assert.AreEqual(1, TorchDeviceSelector.Decide(1, false, () => true, () => 2, null));
        Assert.IsNull(TorchDeviceSelector.Decide(null, false, () => true, () => 2, null));
        var error = Assert.ThrowsExactly<InvalidOperationException>(() => TorchDeviceSelector.Decide(2, false, () => true, () => 2, null));
        StringAssert.Contains(error.Message, "only 2 CUDA device");
        Assert.IsNull(TorchDeviceSelector.Decide(2, true, () => true, () => 2, null));
        Assert.IsNull(TorchDeviceSelector.Decide(0, true, () => false, () => 0, null));
    }
}
