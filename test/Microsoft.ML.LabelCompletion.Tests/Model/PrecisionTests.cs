using Microsoft.ML.LabelCompletion.Model;
using static TorchSharp.torch;

namespace Microsoft.ML.LabelCompletion.Tests.Model;

/// <summary>bf16 autocast (<see cref="LabelCompletionPrecision.BFloat16"/>): really bf16, close to FP32, FP32 where it must be.</summary>
[TestClass]
public sealed class PrecisionTests
{
    [TestMethod]
    public void BFloat16Autocast_IsCloseToFloat32_ButNotIdentical_AndKeepsFloat32LogitsAndGradients()
    {
        var config = LmaeConfig.FromOptions(ModelTestData.TinyOptions()) with { RefinementChannels = 8, DirectionalPrior = true };
        random.manual_seed(5);
        using var model = new LabelMaskAutoEncoder(config);
        using (no_grad())
        {
            // The refinement's output layer starts at zero; give it weights so that its bf16 convolutions count.
            foreach (var (name, parameter) in model.named_parameters())
                if (name.Contains("_refinement._output", StringComparison.Ordinal)) nn.init.normal_(parameter, 0, 0.1);
        }
        var samples = Enumerable.Range(0, 3).Select(i => ModelTests.RandomSample(48, 32, config, new Random(i), 0.5)).ToList();
        using var inputs = WindowBatch.ToInputs(samples, config, CPU);
        using var targets = WindowBatch.Targets(samples, config, CPU);

        Tensor Run(LabelCompletionPrecision precision, out Dictionary<string, Tensor> gradients)
        {
            model.train();
            foreach (var p in model.parameters()) p.grad?.zero_();
            Tensor logits;
            using (Autocast.Enter(precision, CPU))
            {
                logits = model.forward(inputs);
                using var loss = LmaeLoss.Compute(logits, targets, null);
                loss.backward();
            }
            gradients = model.named_parameters().Where(p => p.parameter.requires_grad).ToDictionary(p => p.name, p => p.parameter.grad!.clone());
            return logits.detach();
        }

        using var fp32 = Run(LabelCompletionPrecision.Float32, out var fp32Gradients);
        using var bf16 = Run(LabelCompletionPrecision.BFloat16, out var bf16Gradients);
        Assert.AreEqual(ScalarType.Float32, fp32.dtype);
        Assert.AreEqual(ScalarType.Float32, bf16.dtype, "the logits leave the autocast scope in FP32");
        float scale = fp32.abs().max().item<float>();
        float difference = bf16.sub(fp32).abs().max().item<float>();
        Assert.IsTrue(difference > 0, "bf16 must really compute in bf16 (identical logits mean it did not)");
        Assert.IsTrue(difference < 0.05f * scale, $"bf16 logits differ by {difference} at a scale of {scale}");
        double agreement = bf16.argmax(1).eq(fp32.argmax(1)).to(ScalarType.Float32).mean().item<float>();
        Assert.IsTrue(agreement > 0.97, $"argmax agreement {agreement:P2}");

        foreach (var (name, g32) in fp32Gradients)
        {
            var g16 = bf16Gradients[name];
            Assert.AreEqual(ScalarType.Float32, g16.dtype, $"{name}: the master weights get FP32 gradients");
            Assert.IsTrue(g16.isfinite().all().item<bool>(), $"{name}: gradient not finite");
            double norm32 = g32.norm().item<float>(), error = g16.sub(g32).norm().item<float>();
            Assert.IsTrue(error <= 0.1 * norm32 + 1e-6, $"{name}: bf16 gradient is off by {error} (norm {norm32})");
        }
        foreach (var g in fp32Gradients.Values.Concat(bf16Gradients.Values)) g.Dispose();
        Assert.IsNull(Autocast.LowPrecision, "the scope is left");
    }

    [TestMethod]
    public void AutocastScope_NestsRestoresAndIsPerThread()
    {
        Assert.IsNull(Autocast.LowPrecision);
        using (Autocast.Enter(LabelCompletionPrecision.BFloat16, CPU))
        {
            Assert.AreEqual(ScalarType.BFloat16, Autocast.LowPrecision);
            ScalarType? onOtherThread = ScalarType.Int8;
            var thread = new Thread(() => onOtherThread = Autocast.LowPrecision);
            thread.Start();
            thread.Join();
            Assert.IsNull(onOtherThread, "another thread is not in the scope");
            using (Autocast.Enter(LabelCompletionPrecision.Float32, CPU)) Assert.IsNull(Autocast.LowPrecision);
            using (Autocast.Enter(LabelCompletionPrecision.Auto, CPU))
                Assert.AreEqual(Autocast.CpuHasNativeBFloat16 ? ScalarType.BFloat16 : null, Autocast.LowPrecision, "Auto follows the CPU");
            Assert.AreEqual(ScalarType.BFloat16, Autocast.LowPrecision, "leaving the inner scope restores bf16");
        }
        Assert.IsNull(Autocast.LowPrecision);
    }

    [TestMethod]
    public void AutoPrecision_IsBFloat16ExactlyOnCpusThatReportNativeBFloat16()
    {
        Assert.AreEqual(LabelCompletionPrecision.Float32, new LabelCompletionOptions().Precision, "the default");
        bool native = File.Exists("/proc/cpuinfo") && File.ReadLines("/proc/cpuinfo")
            .Where(l => l.StartsWith("flags", StringComparison.Ordinal)).Take(1)
            .Any(l => l.Split(' ', '\t', ':').Any(f => f is "avx512_bf16" or "amx_bf16"));
        Assert.AreEqual(native, Autocast.CpuHasNativeBFloat16);
        Assert.AreEqual(native ? LabelCompletionPrecision.BFloat16 : LabelCompletionPrecision.Float32,
            Autocast.Resolve(LabelCompletionPrecision.Auto, CPU));
        Assert.AreEqual(LabelCompletionPrecision.Float32, Autocast.Resolve(LabelCompletionPrecision.Float32, CPU));
        Assert.AreEqual(LabelCompletionPrecision.BFloat16, Autocast.Resolve(LabelCompletionPrecision.BFloat16, CPU));
    }

    [TestMethod]
    public void BFloat16Training_LearnsAndCompletesLikeItsOwnFloat32Inference()
    {
        var options = ModelTestData.TinyOptions();
        options.Epochs = 8;
        options.Precision = LabelCompletionPrecision.BFloat16;
        var train = ModelTestData.Scenes(32, 40, 40, 300);
        var losses = new List<double>();
        using var engine = LabelCompletionEngine.Train(train, null, options, 4, CPU,
            p => { if (p.EndOfEpoch) losses.Add(p.Loss); }, CancellationToken.None);
        Assert.HasCount(8, losses);
        Assert.IsTrue(losses.All(double.IsFinite));
        Assert.IsTrue(losses[^1] < 0.8 * losses[0], "bf16 training lowers the loss: " + string.Join(", ", losses.Select(l => l.ToString("F3"))));

        var test = ModelTestData.Scenes(4, 40, 40, 900);
        var (rows, columns) = MaskSelector.Grid(40, 40, 8);
        var masks = test.Select((_, i) => MaskSelector.RandomForEvaluation(rows * columns, 0.5, 0, i)).ToList();
        var masked = test.Select((t, i) => t with { Label = MaskSelector.Apply(t.Label, masks[i], 8, 255) }).ToList();
        var inBf16 = engine.Complete(masked, masks, precision: LabelCompletionPrecision.BFloat16);
        var inFp32 = engine.Complete(masked, masks, precision: LabelCompletionPrecision.Float32);
        long same = 0, all = 0;
        for (int i = 0; i < test.Count; i++)
            for (int p = 0; p < inBf16[i].Completed.Values.Length; p++, all++)
                if (inBf16[i].Completed.Values[p] == inFp32[i].Completed.Values[p]) same++;
        Assert.IsTrue(same > 0.97 * all, $"bf16 and FP32 completions agree on {same} of {all} pixels");
    }
}
