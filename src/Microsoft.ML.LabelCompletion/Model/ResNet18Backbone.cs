using Microsoft.ML.LabelCompletion.Data;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Microsoft.ML.LabelCompletion.Model;

/// <summary>
/// The ImageNet-trained ResNet18 body shipped by the NuGet package <c>Microsoft.ML.DnnImageFeaturizer.ResNet18</c>
/// (<c>DnnImageModels/ResNet18Onnx/ResNet18.onnx</c>, a CNTK export) as a TorchSharp module: the stem (7x7 convolution,
/// max pooling) and up to four stages of basic blocks (2, 2, 2 and 3 in this export: 22 convolutions), returning each stage's output: stride 4 (64 channels),
/// 8 (128), 16 (256) and 32 (512). Batch normalisation is folded into the convolutions when the weights are read (the
/// module computes the network's inference form); the convolutions keep the export's asymmetric padding, so the outputs
/// equal ONNX Runtime's on the same graph (a test compares them).
/// </summary>
/// <remarks>
/// Input: images in the ImageNet convention (RGB on 0..1, minus the mean 0.485, 0.456, 0.406, divided by the standard
/// deviation 0.229, 0.224, 0.225), <c>[B, 3, H, W]</c>, as <see cref="Input"/> makes them from an <see cref="RgbImage"/>. The module converts them
/// to the export's input (BGR on 0..255 minus the per-channel mean of the package's mean image,
/// <c>ResNetPrepOnnx/ResNetPreprocess.onnx</c>) itself. Parameters are frozen (<c>requires_grad</c> false) unless
/// <see cref="SetTrainable"/> is called. Height and width must be multiples of the last stage's stride (the export's
/// stride-2 layers halve even sizes only); pad the image first.
/// </remarks>
public sealed class ResNet18Backbone : nn.Module<Tensor, Tensor[]>
{
    /// <summary>Output channels of the stem and the four stages' outputs.</summary>
    public static readonly int[] StageChannels = [64, 128, 256, 512];

    /// <summary>Basic blocks of the four stages in the exported graph.</summary>
    public static readonly int[] StageBlocks = [2, 2, 2, 3];

    /// <summary>Output strides of the four stages.</summary>
    public static readonly int[] StageStrides = [4, 8, 16, 32];

    /// <summary>The ONNX file's path inside an application's output folder (the package copies it there).</summary>
    public static readonly string RelativeModelPath = Path.Combine("DnnImageModels", "ResNet18Onnx", "ResNet18.onnx");

    /// <summary>The preprocessing graph's path inside an application's output folder (holds the mean image).</summary>
    public static readonly string RelativePreprocessPath = Path.Combine("DnnImageModels", "ResNetPrepOnnx", "ResNetPreprocess.onnx");

    private readonly Conv2d _stem;
    private readonly ModuleList<BasicBlock> _blocks;
    private readonly Tensor _inputScale;   // [1, 3, 1, 1]: ImageNet std · 255
    private readonly Tensor _inputShift;   // [1, 3, 1, 1]: ImageNet mean · 255 − the export's mean, RGB order
    private readonly int _stages;

    /// <summary>
    /// The architecture with <paramref name="stages"/> stages (1-4) and zero weights; <see cref="Load"/> builds it with the
    /// package's weights, and a model's saved state dictionary restores them.
    /// </summary>
    public ResNet18Backbone(int stages = 4) : base(nameof(ResNet18Backbone))
    {
        if (stages is < 1 or > 4) throw new ArgumentOutOfRangeException(nameof(stages), stages, "ResNet18 has 1 to 4 stages.");
        _stages = stages;
        // The layers' random initialisation is overwritten with zeros below; the host's random sequence stays as it was.
        using (var hostState = random.get_rng_state())
        {
            try
            {
                _stem = nn.Conv2d(3, 64, 7, stride: 2);
                var blocks = new List<BasicBlock>();
                int input = 64;
                for (int s = 0; s < stages; s++)
                {
                    int output = StageChannels[s];
                    for (int b = 0; b < StageBlocks[s]; b++) blocks.Add(new BasicBlock(b == 0 ? input : output, output, stride: s > 0 && b == 0 ? 2 : 1));
                    input = output;
                }
                _blocks = nn.ModuleList(blocks.ToArray());
            }
            finally
            {
                random.set_rng_state(hostState);
            }
        }
        _inputScale = zeros(1, 3, 1, 1);
        _inputShift = zeros(1, 3, 1, 1);
        register_buffer("input_scale", _inputScale);
        register_buffer("input_shift", _inputShift);
        RegisterComponents();
        SetTrainable(false);
        using var guard = no_grad();
        foreach (var p in parameters()) p.zero_();
    }

    /// <summary>Number of stages the module computes.</summary>
    public int Stages => _stages;

    /// <summary>
    /// The default location of the ONNX file: <see cref="RelativeModelPath"/> under the application's base directory (where
    /// the build logic of this library copies it when the application downloads the package
    /// <c>Microsoft.ML.DnnImageFeaturizer.ResNet18</c> 0.24.0), else the package's folder in the NuGet global packages
    /// folder (<c>NUGET_PACKAGES</c>, or <c>.nuget/packages</c> in the user's home) if it is there; the first path when
    /// neither exists.
    /// </summary>
    public static string DefaultModelPath
    {
        get
        {
            string local = Path.Combine(AppContext.BaseDirectory, RelativeModelPath);
            if (File.Exists(local)) return local;
            string packages = Environment.GetEnvironmentVariable("NUGET_PACKAGES") is { Length: > 0 } root ? root
                : Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".nuget", "packages");
            string cached = Path.Combine(packages, "microsoft.ml.dnnimagefeaturizer.resnet18", "0.24.0", "tools", RelativeModelPath);
            return File.Exists(cached) ? cached : local;
        }
    }

    /// <summary>
    /// Builds the backbone with <paramref name="stages"/> stages and the weights of <paramref name="modelPath"/> (default
    /// <see cref="DefaultModelPath"/>), the input mean of <paramref name="preprocessPath"/> (default: the
    /// <c>ResNetPrepOnnx</c> folder beside the model's folder).
    /// </summary>
    /// <exception cref="FileNotFoundException">A file is missing (the message says which package provides it).</exception>
    /// <exception cref="InvalidDataException">A file is not the ResNet18 graph this module reads (the message says what differs).</exception>
    public static ResNet18Backbone Load(string? modelPath = null, string? preprocessPath = null, int stages = 4)
    {
        var backbone = new ResNet18Backbone(stages);
        try
        {
            backbone.LoadWeights(modelPath, preprocessPath);
        }
        catch
        {
            backbone.Dispose();
            throw;
        }
        return backbone;
    }

    /// <summary>
    /// Reads the weights of <paramref name="modelPath"/> (default <see cref="DefaultModelPath"/>) and the input mean of
    /// <paramref name="preprocessPath"/> into this module (see <see cref="Load"/>).
    /// </summary>
    /// <exception cref="FileNotFoundException">A file is missing (the message says which package provides it).</exception>
    /// <exception cref="InvalidDataException">A file is not the ResNet18 graph this module reads (the message says what differs).</exception>
    public void LoadWeights(string? modelPath = null, string? preprocessPath = null)
    {
        modelPath ??= DefaultModelPath;
        preprocessPath ??= Path.Combine(Path.GetDirectoryName(Path.GetDirectoryName(Path.GetFullPath(modelPath)))!, "ResNetPrepOnnx", "ResNetPreprocess.onnx");
        foreach (var file in new[] { modelPath, preprocessPath })
            if (!File.Exists(file))
                throw new FileNotFoundException($"'{file}' does not exist: the ImageNet ResNet18 of the image features comes from the NuGet "
                    + "package Microsoft.ML.DnnImageFeaturizer.ResNet18 0.24.0; add <PackageDownload Include=\"Microsoft.ML.DnnImageFeaturizer.ResNet18\" "
                    + "Version=\"[0.24.0]\" /> to the project (its DnnImageModels folder is then copied into the output folder), "
                    + "or train with LabelCompletionOptions.ImageFeatures = ImageFeatureInputs.None.", file);
        ReadWeights(OnnxGraph.Read(modelPath), OnnxGraph.Read(preprocessPath), modelPath);
    }

    /// <summary>
    /// <paramref name="image"/> as this module's input: ImageNet-normalised float <c>[1, 3, H, W]</c>, the same values the L-MAE
    /// reads (Stack Fusion's image part). Pad it to a multiple of the last stage's stride before <see cref="forward"/>.
    /// </summary>
    public static Tensor Input(RgbImage image)
    {
        ArgumentNullException.ThrowIfNull(image);
        image.Validate();
        using var bytes = tensor(image.Pixels, [1, image.Height, image.Width, 3]);
        return WindowBatch.NormalizedRgb(bytes);
    }

    /// <summary>
    /// Freezes (<c>false</c>, the default) or unfreezes the weights of stage <paramref name="firstStage"/> (0-3) and the
    /// stages after it; the stem's with stage 0.
    /// </summary>
    public void SetTrainable(bool trainable, int firstStage = 0)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(firstStage);
        ArgumentOutOfRangeException.ThrowIfGreaterThanOrEqual(firstStage, _stages);
        if (firstStage == 0)
            foreach (var p in _stem.parameters()) p.requires_grad = trainable;
        foreach (var block in _blocks.Skip(StageBlocks.Take(firstStage).Sum()))
            foreach (var p in block.parameters()) p.requires_grad = trainable;
    }

    /// <summary>
    /// Stage <paramref name="stage"/> (1-3) alone over <paramref name="previous"/>, the output of the stage before it: the
    /// same tensor as <see cref="Forward"/>'s output <paramref name="stage"/>. Lets a caller compute the frozen stages without
    /// gradients and a trained one with them.
    /// </summary>
    public Tensor ForwardStage(Tensor previous, int stage)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(stage, 1);
        ArgumentOutOfRangeException.ThrowIfGreaterThanOrEqual(stage, _stages);
        if (previous.dim() != 4 || previous.shape[1] != StageChannels[stage - 1])
            throw new ArgumentException($"Stage {stage} takes [B, {StageChannels[stage - 1]}, H, W]; this input is [{string.Join(", ", previous.shape)}].", nameof(previous));
        using var scope = NewDisposeScope();
        var x = previous;
        foreach (var block in _blocks.Skip(StageBlocks.Take(stage).Sum()).Take(StageBlocks[stage])) x = block.forward(x);
        return x.MoveToOuterDisposeScope();
    }

    /// <summary>
    /// The stage outputs for ImageNet-normalised RGB <paramref name="rgb"/> <c>[B, 3, H, W]</c>: <see cref="Stages"/> tensors
    /// <c>[B, StageChannels[s], H / StageStrides[s], W / StageStrides[s]]</c>.
    /// </summary>
    /// <exception cref="ArgumentException">The image is not <c>[B, 3, H, W]</c> with <c>H</c> and <c>W</c> multiples of the last stage's stride.</exception>
    public override Tensor[] forward(Tensor rgb) => Forward(rgb, _stages);

    /// <summary>As <see cref="forward"/>, computing only the first <paramref name="stages"/> stages (at most <see cref="Stages"/>).</summary>
    /// <exception cref="ArgumentException">The image is not <c>[B, 3, H, W]</c> with <c>H</c> and <c>W</c> multiples of the last computed stage's stride.</exception>
    public Tensor[] Forward(Tensor rgb, int stages)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(stages, 1);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(stages, _stages);
        int stride = StageStrides[stages - 1];
        if (rgb.dim() != 4 || rgb.shape[1] != 3 || rgb.shape[2] % stride != 0 || rgb.shape[3] % stride != 0)
            throw new ArgumentException($"ResNet18 with {stages} stages takes [B, 3, H, W] images with H and W multiples of {stride}; "
                + $"this one is [{string.Join(", ", rgb.shape)}].", nameof(rgb));
        using var scope = NewDisposeScope();
        var x = rgb.mul(_inputScale).add_(_inputShift, TorchScalars.One);
        // Stem: 7x7/2 convolution padded (3 before, 2 after), ReLU, 3x3/2 max pooling padded (1 before, 0 after): after the
        // ReLU every value is >= 0, so zero padding equals the export's -inf padding of the pooling.
        x = Autocast.ToFloat32(Conv(x, _stem.weight!, _stem.bias, stride: 2, before: 3, after: 2)).relu_();
        x = nn.functional.max_pool2d(nn.functional.pad(x, [1, 0, 1, 0]), 3, 2);
        var outputs = new Tensor[stages];
        int block = 0;
        for (int s = 0; s < stages; s++)
        {
            for (int b = 0; b < StageBlocks[s]; b++) x = _blocks[block++].forward(x);
            outputs[s] = x;
        }
        foreach (var o in outputs) o.MoveToOuterDisposeScope();
        return outputs;
    }

    /// <summary>A convolution with the export's padding: <paramref name="before"/> rows/columns before, <paramref name="after"/> after.</summary>
    internal static Tensor Conv(Tensor x, Tensor weight, Tensor? bias, long stride, long before, long after)
    {
        if (before == after) return Autocast.Conv2d(x, weight, bias, before, 1, stride);
        using var padded = nn.functional.pad(x, [before, after, before, after]);
        return Autocast.Conv2d(padded, weight, bias, 0, 1, stride);
    }

    /// <summary>Fills the weights from the ResNet18 graph: convolutions and their batch normalisations in graph order.</summary>
    private void ReadWeights(OnnxGraph graph, OnnxGraph preprocess, string path)
    {
        // Every Conv is followed by its BatchNormalization; the 1x1 convolutions are the stages' shortcuts.
        var convolutions = new List<(OnnxGraph.Node Conv, OnnxGraph.Node Norm)>();
        var byInput = graph.Nodes.Where(n => n.Operator == "BatchNormalization").ToDictionary(n => n.Inputs[0], StringComparer.Ordinal);
        foreach (var node in graph.Nodes.Where(n => n.Operator == "Conv"))
        {
            if (!byInput.TryGetValue(node.Outputs[0], out var norm))
                throw new InvalidDataException($"{path}: convolution {node.Name} is not followed by a batch normalisation; not the ResNet18 graph.");
            convolutions.Add((node, norm));
        }
        if (convolutions.Count != 22)
            throw new InvalidDataException($"{path}: {convolutions.Count} convolutions; the ResNet18 graph has 22.");
        using var guard = no_grad();
        int next = 0, index = 0;
        Fold(graph, convolutions[next++], _stem.weight!, _stem.bias!, path, rgbInput: true);
        for (int s = 0; s < _stages; s++)
        {
            for (int b = 0; b < StageBlocks[s]; b++)
            {
                var block = _blocks[index++];
                // Stage 2-4's first block: the shortcut's 1x1 convolution comes first in the graph.
                if (block.Shortcut is { } shortcut) Fold(graph, convolutions[next++], shortcut.weight!, shortcut.bias!, path);
                Fold(graph, convolutions[next++], block.First.weight!, block.First.bias!, path);
                Fold(graph, convolutions[next++], block.Second.weight!, block.Second.bias!, path);
            }
        }
        // The export's input is BGR 0..255 minus a mean image; the module takes ImageNet-normalised RGB.
        var mean = preprocess.Initializers.Values.FirstOrDefault(t => t.Shape.Length == 4 && t.Shape[1] == 3)
            ?? throw new InvalidDataException("ResNetPreprocess.onnx: no [1, 3, H, W] mean image.");
        long plane = mean.Shape[2] * mean.Shape[3];
        for (int c = 0; c < 3; c++)
        {
            // Channel c of RGB is channel 2 - c of the export's BGR.
            double exportMean = 0;
            for (long i = 0; i < plane; i++) exportMean += mean.Values[(2 - c) * plane + i];
            exportMean /= plane;
            _inputScale[0, c, 0, 0] = StackFusion.ImageNetStd[c] * 255f;
            _inputShift[0, c, 0, 0] = (float)(StackFusion.ImageNetMean[c] * 255 - exportMean);
        }
    }

    /// <summary>
    /// Writes convolution · batch normalisation (inference form) into <paramref name="weight"/> and <paramref name="bias"/>:
    /// <c>w' = w · γ / √(σ² + ε)</c>, <c>b' = β − μ · γ / √(σ² + ε)</c>. The stem's input channels are reordered from the
    /// export's BGR to RGB.
    /// </summary>
    private static void Fold(OnnxGraph graph, (OnnxGraph.Node Conv, OnnxGraph.Node Norm) pair, Tensor weight, Tensor bias, string path, bool rgbInput = false)
    {
        var (conv, norm) = pair;
        var w = Initializer(graph, conv, 1, path);
        if (!w.Shape.SequenceEqual(weight.shape))
            throw new InvalidDataException($"{path}: convolution {conv.Name} has weights [{string.Join(", ", w.Shape)}], expected [{string.Join(", ", weight.shape)}]; not the ResNet18 graph.");
        var gamma = Initializer(graph, norm, 1, path).Values;
        var beta = Initializer(graph, norm, 2, path).Values;
        var mu = Initializer(graph, norm, 3, path).Values;
        var variance = Initializer(graph, norm, 4, path).Values;
        float epsilon = norm.Floats.TryGetValue("epsilon", out var e) ? e : 1e-5f;
        int outputs = (int)w.Shape[0];
        if (new[] { gamma, beta, mu, variance }.Any(v => v.Length != outputs))
            throw new InvalidDataException($"{path}: batch normalisation {norm.Name} does not have {outputs} channels.");
        long perOutput = w.Values.Length / outputs;
        var folded = new float[w.Values.Length];
        var shift = new float[outputs];
        for (int o = 0; o < outputs; o++)
        {
            float scale = gamma[o] / MathF.Sqrt(variance[o] + epsilon);
            for (long i = 0; i < perOutput; i++) folded[o * perOutput + i] = w.Values[o * perOutput + i] * scale;
            shift[o] = beta[o] - mu[o] * scale;
        }
        using var source = tensor(folded, w.Shape);
        using var ordered = rgbInput ? source.flip(1) : source.alias();
        weight.copy_(ordered);
        using var b = tensor(shift);
        bias.copy_(b);
    }

    private static OnnxGraph.Initializer Initializer(OnnxGraph graph, OnnxGraph.Node node, int input, string path)
        => node.Inputs.Count > input && graph.Initializers.TryGetValue(node.Inputs[input], out var t) ? t
            : throw new InvalidDataException($"{path}: input {input} of {node.Operator} {node.Name} is not a stored tensor.");

    /// <summary>ResNet's basic block: two 3x3 convolutions, a shortcut (1x1 convolution when the shape changes), ReLU.</summary>
    private sealed class BasicBlock : nn.Module<Tensor, Tensor>
    {
        private readonly long _stride;

        public BasicBlock(int input, int output, int stride) : base(nameof(BasicBlock))
        {
            _stride = stride;
            First = nn.Conv2d(input, output, 3, stride: stride);
            Second = nn.Conv2d(output, output, 3);
            Shortcut = stride != 1 || input != output ? nn.Conv2d(input, output, 1, stride: stride) : null;
            RegisterComponents();
        }

        public Conv2d First { get; }

        public Conv2d Second { get; }

        public Conv2d? Shortcut { get; }

        public override Tensor forward(Tensor x)
        {
            using var scope = NewDisposeScope();
            // Stride 2: padded 1 before and 0 after, as exported.
            var y = Autocast.ToFloat32(Conv(x, First.weight!, First.bias, _stride, before: 1, after: _stride == 1 ? 1 : 0)).relu_();
            y = Autocast.ToFloat32(Conv(y, Second.weight!, Second.bias, 1, 1, 1));
            var identity = Shortcut is null ? x : Autocast.ToFloat32(Conv(x, Shortcut.weight!, Shortcut.bias, _stride, 0, 0));
            return y.add_(identity, TorchScalars.One).relu_().MoveToOuterDisposeScope();
        }
    }
}
