using Microsoft.ML.LabelCompletion.Model;
using Microsoft.ML.OnnxRuntime;
using Microsoft.ML.OnnxRuntime.Tensors;
using TorchSharp;
using static TorchSharp.torch;

namespace Microsoft.ML.LabelCompletion.Tests.Model;

/// <summary>
/// The TorchSharp ResNet18 against ONNX Runtime on the package's own graphs: the same image through
/// <c>ResNetPreprocess.onnx</c> + <c>ResNet18.onnx</c> and through <see cref="ResNet18Backbone"/> gives the same stage outputs.
/// </summary>
[TestClass]
public sealed class ResNet18BackboneTests
{
    private static readonly string[] StageNodes = ["ReLU283_Output_0", "ReLU315_Output_0", "ReLU347_Output_0", "ReLU393_Output_0"];

    [TestMethod]
    public void StageOutputsEqualOnnxRuntimeOnThePackagesGraph()
    {
        Assert.IsTrue(File.Exists(ResNet18Backbone.DefaultModelPath), ResNet18Backbone.DefaultModelPath);
        const int h = 224, w = 224;
        var random = new Random(3);
        var rgb = new byte[h * w * 3];
        random.NextBytes(rgb);
        // Smooth the noise a little so the features are not all saturated by high frequencies.
        for (int i = 3; i < rgb.Length; i++) rgb[i] = (byte)((rgb[i] + rgb[i - 3]) / 2);

        // ONNX Runtime's input: BGR 0..255 minus the per-channel mean of the package's mean image (the backbone works at any
        // size, so it subtracts the mean image's channel averages, not the 224x224 image itself).
        var folder = Path.GetDirectoryName(Path.GetDirectoryName(ResNet18Backbone.DefaultModelPath))!;
        var meanImage = OnnxGraph.Read(Path.Combine(folder, "ResNetPrepOnnx", "ResNetPreprocess.onnx")).Initializers.Values.Single();
        int plane = (int)(meanImage.Shape[2] * meanImage.Shape[3]);
        var channelMean = Enumerable.Range(0, 3).Select(c => meanImage.Values.Skip(c * plane).Take(plane).Average()).ToArray();
        var preprocessed = new DenseTensor<float>([1, 3, h, w]);
        for (int y = 0; y < h; y++)
            for (int x = 0; x < w; x++)
                for (int c = 0; c < 3; c++) preprocessed[0, c, y, x] = rgb[(y * w + x) * 3 + (2 - c)] - channelMean[c];
        // The stage outputs are inner nodes: expose them as outputs of a rewritten copy of the graph.
        var modelPath = WithOutputs(ResNet18Backbone.DefaultModelPath, StageNodes);
        using var session = new InferenceSession(modelPath);
        using var results = session.Run([NamedOnnxValue.CreateFromTensor(session.InputMetadata.Keys.First(), preprocessed)], StageNodes);

        using var backbone = ResNet18Backbone.Load();
        using var scope = NewDisposeScope();
        var input = ResNet18Backbone.Input(new Microsoft.ML.LabelCompletion.Data.RgbImage(w, h, rgb));
        var stages = backbone.forward(input);
        for (int s = 0; s < 4; s++)
        {
            var expected = results.First(r => r.Name == StageNodes[s]).AsTensor<float>();
            var actual = stages[s].contiguous().data<float>().ToArray();
            CollectionAssert.AreEqual(expected.Dimensions.ToArray().Select(d => (long)d).ToArray(), stages[s].shape, $"stage {s + 1} shape");
            double maxDiff = 0, maxAbs = 0;
            int k = 0;
            foreach (var e in expected)
            {
                maxDiff = Math.Max(maxDiff, Math.Abs(e - actual[k++]));
                maxAbs = Math.Max(maxAbs, Math.Abs(e));
            }
            Assert.IsTrue(maxAbs > 0.1, $"stage {s + 1}: all outputs near zero");
            Assert.IsTrue(maxDiff <= 1e-3 * maxAbs + 1e-3, $"stage {s + 1}: max difference {maxDiff} (largest output {maxAbs})");
        }
    }

    [TestMethod]
    public void SizesThatAreNotMultiplesOfTheStrideAreRefused()
    {
        using var backbone = new ResNet18Backbone(stages: 3);
        using var image = zeros(1, 3, 40, 48);
        var e = Assert.ThrowsExactly<ArgumentException>(() => backbone.forward(image));
        StringAssert.Contains(e.Message, "multiples of 16");
    }

    [TestMethod]
    public void AFileThatIsNotTheResNet18IsRefusedNamingIt()
    {
        var folder = Directory.CreateTempSubdirectory("resnet-").FullName;
        try
        {
            var bad = Path.Combine(folder, "ResNet18.onnx");
            File.WriteAllBytes(bad, [0x3a, 0xff, 0xff, 0xff, 0x0f, 1, 2, 3]);
            var e = Assert.ThrowsExactly<InvalidDataException>(() => ResNet18Backbone.Load(bad, Path.Combine(
                Path.GetDirectoryName(Path.GetDirectoryName(ResNet18Backbone.DefaultModelPath))!, "ResNetPrepOnnx", "ResNetPreprocess.onnx")));
            StringAssert.Contains(e.Message, bad);
            var missing = Assert.ThrowsExactly<FileNotFoundException>(() => ResNet18Backbone.Load(Path.Combine(folder, "none.onnx")));
            StringAssert.Contains(missing.Message, "Microsoft.ML.DnnImageFeaturizer.ResNet18");
        }
        finally
        {
            Directory.Delete(folder, true);
        }
    }

    /// <summary>A copy of the ONNX model at <paramref name="path"/> whose graph also outputs <paramref name="nodes"/>.</summary>
    private static string WithOutputs(string path, IReadOnlyList<string> nodes)
    {
        // GraphProto field 12 = output (ValueInfoProto: field 1 = name). Appending fields to the graph message is valid
        // protobuf; the graph's length prefix inside ModelProto (field 7) is rewritten.
        var bytes = File.ReadAllBytes(path);
        int position = 0;
        var head = new List<byte>();
        byte[]? graph = null;
        var tail = new List<byte>();
        while (position < bytes.Length)
        {
            int start = position;
            long key = Varint(bytes, ref position);
            int wire = (int)(key & 7);
            int field = (int)(key >> 3);
            if (wire == 0) Varint(bytes, ref position);
            else if (wire == 2)
            {
                int length = (int)Varint(bytes, ref position);
                if (field == 7) graph = bytes[position..(position + length)];
                position += length;
            }
            else throw new InvalidDataException($"wire type {wire}");
            if (field != 7) (graph is null ? head : tail).AddRange(bytes[start..position]);
        }
        var extra = new List<byte>();
        foreach (var name in nodes)
        {
            var n = System.Text.Encoding.UTF8.GetBytes(name);
            var info = new List<byte> { 0x0a };
            info.AddRange(VarintBytes(n.Length));
            info.AddRange(n);
            extra.Add(0x62); // field 12, wire 2
            extra.AddRange(VarintBytes(info.Count));
            extra.AddRange(info);
        }
        var output = new List<byte>(head) { 0x3a };
        output.AddRange(VarintBytes(graph!.Length + extra.Count));
        output.AddRange(graph);
        output.AddRange(extra);
        output.AddRange(tail);
        var file = Path.Combine(Path.GetTempPath(), $"resnet18-stages-{Environment.ProcessId}.onnx");
        File.WriteAllBytes(file, output.ToArray());
        return file;
    }

    private static long Varint(byte[] bytes, ref int position)
    {
        long value = 0;
        for (int shift = 0; ; shift += 7)
        {
            byte b = bytes[position++];
            value |= (long)(b & 0x7F) << shift;
            if ((b & 0x80) == 0) return value;
        }
    }

    private static IEnumerable<byte> VarintBytes(long value)
    {
        do
        {
            byte b = (byte)(value & 0x7F);
            value >>= 7;
            yield return value == 0 ? b : (byte)(b | 0x80);
        } while (value != 0);
    }
}
