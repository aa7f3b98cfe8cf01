// The small segmentation network the downstream sample trains on each label set: the ImageNet ResNet18 body
// (Microsoft.ML.LabelCompletion.Model.ResNet18Backbone), kept frozen, with a light decoder in TorchSharp. Because the body
// is frozen and the only augmentation is a horizontal flip, its features are computed once per image and per flip
// (FeatureCache) and every label set trains a fresh decoder on the same cached features.
using System.Diagnostics;
using Microsoft.ML.LabelCompletion.Data;
using Microsoft.ML.LabelCompletion.Evaluation;
using Microsoft.ML.LabelCompletion.Model;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace LabelCompletion.Downstream;

/// <summary>
/// The features of the frozen ResNet18 body for a list of images, at strides 8, 16 and 32 (128, 256 and 512 channels),
/// computed once. Images are ImageNet-normalised and padded on the right and bottom to multiples of 32 (the padding is
/// zero after normalisation, i.e. the ImageNet mean colour). With <c>withFlips</c> the features of each image's
/// horizontal mirror are kept too, so training can flip without running the body again.
/// </summary>
public sealed class FeatureCache : IDisposable
{
    private readonly Tensor[][] _features;        // [image][3]: stride 8, 16, 32; each [1, C, h, w]
    private readonly Tensor[][]? _flipped;

    private FeatureCache(Tensor[][] features, Tensor[][]? flipped, int[] widths, int[] heights)
    {
        _features = features;
        _flipped = flipped;
        Widths = widths;
        Heights = heights;
    }

    /// <summary>Number of images.</summary>
    public int Count => _features.Length;

    /// <summary>Each image's width in pixels (before padding).</summary>
    public IReadOnlyList<int> Widths { get; }

    /// <summary>Each image's height in pixels (before padding).</summary>
    public IReadOnlyList<int> Heights { get; }

    /// <summary><c>true</c> when the mirrored images' features are kept.</summary>
    public bool HasFlips => _flipped is not null;

    /// <summary>The stride 8, 16 and 32 features of image <paramref name="index"/> (or of its mirror), each <c>[1, C, h, w]</c>; owned by the cache.</summary>
    public Tensor[] Get(int index, bool flipped = false)
    {
        if (!flipped) return _features[index];
        return _flipped?[index] ?? throw new InvalidOperationException("The cache was built without the mirrored images' features.");
    }

    /// <summary>Runs <paramref name="backbone"/> (in eval mode, without gradients) over <paramref name="images"/>.</summary>
    /// <param name="backbone">A ResNet18 body with 4 stages.</param>
    /// <param name="images">The images; their sizes may differ.</param>
    /// <param name="withFlips">Also keep the features of each image's horizontal mirror.</param>
    /// <param name="progress">Called with the number of images done, or null.</param>
    public static FeatureCache Compute(ResNet18Backbone backbone, IReadOnlyList<RgbImage> images, bool withFlips, Action<int>? progress = null)
    {
        ArgumentNullException.ThrowIfNull(backbone);
        ArgumentNullException.ThrowIfNull(images);
        if (backbone.Stages != 4) throw new ArgumentException($"The decoder reads stages 2 to 4; this backbone has {backbone.Stages}.", nameof(backbone));
        backbone.eval();
        var features = new Tensor[images.Count][];
        var flipped = withFlips ? new Tensor[images.Count][] : null;
        try
        {
            using var noGrad = no_grad();
            for (int i = 0; i < images.Count; i++)
            {
                using var scope = NewDisposeScope();
                var input = ToPaddedTensor(images[i]);
                features[i] = Keep(backbone.forward(input));
                if (flipped is not null) flipped[i] = Keep(backbone.forward(ToPaddedTensor(images[i], mirror: true)));
                progress?.Invoke(i + 1);
            }
        }
        catch
        {
            foreach (var set in features.Concat(flipped ?? []))
                if (set is not null) foreach (var t in set) t.Dispose();
            throw;
        }
        return new FeatureCache(features, flipped, images.Select(x => x.Width).ToArray(), images.Select(x => x.Height).ToArray());
    }

    /// <summary>
    /// The image as an ImageNet-normalised <c>[1, 3, H', W']</c> tensor, H' and W' rounded up to multiples of 32 with the
    /// padding on the bottom and right; <paramref name="mirror"/> flips it left-right before padding.
    /// </summary>
    public static Tensor ToPaddedTensor(RgbImage image, bool mirror = false)
    {
        using var scope = NewDisposeScope();
        var input = ResNet18Backbone.Input(image);
        if (mirror) input = input.flip(3);
        long w = image.Width, h = image.Height;
        // Zero padding is the ImageNet mean colour after normalisation.
        return nn.functional.pad(input, [0, (w + 31) / 32 * 32 - w, 0, (h + 31) / 32 * 32 - h]).MoveToOuterDisposeScope();
    }

    /// <summary>Keeps stages 2 to 4 (strides 8, 16, 32) beyond the current dispose scope and drops the stride-4 output.</summary>
    private static Tensor[] Keep(Tensor[] stages)
    {
        var kept = new[] { stages[1], stages[2], stages[3] };
        foreach (var t in kept) t.MoveToOuterDisposeScope();
        return kept;
    }

    /// <summary>Releases the cached tensors.</summary>
    public void Dispose()
    {
        foreach (var set in _features.Concat(_flipped ?? [])) foreach (var t in set) t.Dispose();
    }
}

/// <summary>
/// The decoder: 1x1 projections of the stride 8, 16 and 32 features to <c>D</c> channels, bilinear upsampling of the
/// coarser two to stride 8 and a sum, ReLU, a 3x3 convolution with ReLU, and a 1x1 classifier. Returns logits at stride 8;
/// <see cref="Segmenter.Logits"/> upsamples them bilinearly to full resolution.
/// </summary>
public sealed class SegmentationDecoder : nn.Module<Tensor, Tensor, Tensor, Tensor>
{
    // TorchSharp turns numbers into Scalars implicitly (Tensor.add passes a hidden alpha = 1); such a temporary can be
    // finalized by the GC while libtorch still reads it. The sample adds with this rooted Scalar instead.
    private static readonly Scalar One = 1.0f.ToScalar();

    private readonly Conv2d _project8, _project16, _project32, _mix, _classify;

    /// <summary>Creates the decoder with <paramref name="width"/> channels for <paramref name="numberOfClasses"/> classes.</summary>
    public SegmentationDecoder(int numberOfClasses, int width = 64) : base(nameof(SegmentationDecoder))
    {
        _project8 = nn.Conv2d(ResNet18Backbone.StageChannels[1], width, 1);
        _project16 = nn.Conv2d(ResNet18Backbone.StageChannels[2], width, 1);
        _project32 = nn.Conv2d(ResNet18Backbone.StageChannels[3], width, 1);
        _mix = nn.Conv2d(width, width, 3, padding: 1);
        _classify = nn.Conv2d(width, numberOfClasses, 1);
        RegisterComponents();
    }

    /// <summary>Logits <c>[B, C, h8, w8]</c> at stride 8 from the three feature maps.</summary>
    public override Tensor forward(Tensor stride8, Tensor stride16, Tensor stride32)
    {
        using var scope = NewDisposeScope();
        long[] size = [stride8.shape[2], stride8.shape[3]];
        var x = _project8.forward(stride8)
            .add(nn.functional.interpolate(_project16.forward(stride16), size, mode: InterpolationMode.Bilinear, align_corners: false), One)
            .add(nn.functional.interpolate(_project32.forward(stride32), size, mode: InterpolationMode.Bilinear, align_corners: false), One)
            .relu();
        x = _mix.forward(x).relu();
        return _classify.forward(x).MoveToOuterDisposeScope();
    }
}

/// <summary>Settings of one segmenter training run.</summary>
public sealed record SegmenterOptions
{
    /// <summary>Passes over the training images. Default 40.</summary>
    public int Epochs { get; init; } = 40;

    /// <summary>Wall-clock budget: no epoch starts after it (the running one finishes). Null: the epochs alone decide. Default null.</summary>
    public TimeSpan? TimeLimit { get; init; }

    /// <summary>Images per Adam step. Default 8.</summary>
    public int BatchSize { get; init; } = 8;

    /// <summary>Adam learning rate. Default 1e-3.</summary>
    public double LearningRate { get; init; } = 1e-3;

    /// <summary>Decoder width <c>D</c>. Default 64.</summary>
    public int DecoderWidth { get; init; } = 64;

    /// <summary>Seed of the decoder's initial weights, the image order and the flips. Default 1.</summary>
    public int Seed { get; init; } = 1;

    /// <summary>Flip each training image left-right with probability 0.5 (needs a cache with flips). Default true.</summary>
    public bool Flip { get; init; } = true;
}

/// <summary>What one training run did.</summary>
/// <param name="Epochs">Whole epochs completed.</param>
/// <param name="Elapsed">Training time.</param>
/// <param name="FinalLoss">Mean loss of the last epoch (over the steps that had known pixels).</param>
public sealed record SegmenterTrainingResult(int Epochs, TimeSpan Elapsed, double FinalLoss);

/// <summary>
/// Trains a <see cref="SegmentationDecoder"/> on cached backbone features with cross-entropy at full resolution, where
/// pixels holding the unknown label are ignored, and predicts label maps.
/// </summary>
public sealed class Segmenter : IDisposable
{
    private readonly SegmentationDecoder _decoder;

    /// <summary>Creates an untrained segmenter; the decoder's weights come from TorchSharp's generator seeded with <paramref name="seed"/>.</summary>
    public Segmenter(int numberOfClasses, byte unknownLabel, int decoderWidth = 64, int seed = 1)
    {
        if (unknownLabel < numberOfClasses)
            throw new ArgumentOutOfRangeException(nameof(unknownLabel), unknownLabel, $"The unknown value must not be a class (0..{numberOfClasses - 1}).");
        NumberOfClasses = numberOfClasses;
        UnknownLabel = unknownLabel;
        random.manual_seed(seed);
        _decoder = new SegmentationDecoder(numberOfClasses, decoderWidth);
    }

    /// <summary>Number of classes.</summary>
    public int NumberOfClasses { get; }

    /// <summary>The label value that the loss ignores.</summary>
    public byte UnknownLabel { get; }

    /// <summary>
    /// Mean cross-entropy of full-resolution <paramref name="logits"/> <c>[B, C, H, W]</c> against <paramref name="labels"/>
    /// <c>[B, H, W]</c> (int64) over the pixels whose label is not <paramref name="unknownLabel"/>; null when every pixel is unknown.
    /// </summary>
    public static Tensor? Loss(Tensor logits, Tensor labels, byte unknownLabel)
    {
        using (var unknown = ((long)unknownLabel).ToScalar())
        using (var isKnown = labels.ne(unknown))
        using (var known = isKnown.any())
            if (!known.item<bool>()) return null;
        return nn.functional.cross_entropy(logits, labels, ignore_index: unknownLabel);
    }

    /// <summary>Full-resolution logits <c>[B, C, H, W]</c> (H, W: the images' unpadded size) for the given features.</summary>
    public Tensor Logits(Tensor stride8, Tensor stride16, Tensor stride32, int height, int width)
    {
        using var scope = NewDisposeScope();
        var coarse = _decoder.forward(stride8, stride16, stride32);
        long[] padded = [stride8.shape[2] * 8, stride8.shape[3] * 8];
        var full = nn.functional.interpolate(coarse, padded, mode: InterpolationMode.Bilinear, align_corners: false);
        return full[.., .., ..height, ..width].MoveToOuterDisposeScope();
    }

    /// <summary>
    /// Trains on <paramref name="labels"/> (one map per cached image, same size; <see cref="UnknownLabel"/> pixels are ignored).
    /// Images are grouped into batches of equal size in a seeded order; an image is mirrored with its label when
    /// <see cref="SegmenterOptions.Flip"/> draws it.
    /// </summary>
    /// <param name="features">The training images' cached features.</param>
    /// <param name="labels">The label set to learn, in the cache's order.</param>
    /// <param name="options">Epochs, time limit, batch size, learning rate and seed.</param>
    /// <param name="epochDone">Called after each epoch with (epoch, mean loss), or null.</param>
    public SegmenterTrainingResult Train(FeatureCache features, IReadOnlyList<LabelMap> labels, SegmenterOptions options, Action<int, double>? epochDone = null)
    {
        ArgumentNullException.ThrowIfNull(features);
        ArgumentNullException.ThrowIfNull(labels);
        ArgumentNullException.ThrowIfNull(options);
        if (labels.Count != features.Count)
            throw new ArgumentException($"{labels.Count} label maps were given for {features.Count} images.", nameof(labels));
        for (int i = 0; i < labels.Count; i++)
        {
            if (labels[i].Width != features.Widths[i] || labels[i].Height != features.Heights[i])
                throw new ArgumentException($"Image {i}: the label map is {labels[i].Width}x{labels[i].Height} but the image is {features.Widths[i]}x{features.Heights[i]}.", nameof(labels));
            labels[i].Validate(NumberOfClasses, UnknownLabel, $"training label {i}");
        }
        if (options.Flip && !features.HasFlips) throw new ArgumentException("Flips need a feature cache computed with flips.", nameof(options));
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(options.Epochs);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(options.BatchSize);

        // Batches hold images of one size (CamVid: all; other sets: grouped), in an order drawn per epoch.
        var groups = Enumerable.Range(0, features.Count).GroupBy(i => (features.Widths[i], features.Heights[i])).Select(g => g.ToArray()).ToArray();
        var rng = new Random(options.Seed);
        var optimizer = optim.Adam(_decoder.parameters(), options.LearningRate);
        _decoder.train();
        var clock = Stopwatch.StartNew();
        int epochsDone = 0;
        double lastLoss = double.NaN;
        try
        {
            for (int epoch = 1; epoch <= options.Epochs; epoch++)
            {
                if (options.TimeLimit is TimeSpan limit && clock.Elapsed >= limit) break;
                var batches = new List<int[]>();
                foreach (var group in groups)
                {
                    var order = group.ToArray();
                    rng.Shuffle(order);
                    batches.AddRange(order.Chunk(options.BatchSize));
                }
                rng.Shuffle(System.Runtime.InteropServices.CollectionsMarshal.AsSpan(batches));
                double sum = 0;
                int steps = 0;
                foreach (var batch in batches)
                {
                    var flips = batch.Select(_ => options.Flip && rng.Next(2) == 1).ToArray();
                    using var scope = NewDisposeScope();
                    int h = features.Heights[batch[0]], w = features.Widths[batch[0]];
                    var parts = Enumerable.Range(0, 3).Select(s => cat(batch.Select((i, k) => features.Get(i, flips[k])[s]).ToArray(), 0)).ToArray();
                    var target = LabelTensor(batch.Select((i, k) => flips[k] ? Mirror(labels[i]) : labels[i]).ToArray());
                    var logits = Logits(parts[0], parts[1], parts[2], h, w);
                    var loss = Loss(logits, target, UnknownLabel);
                    if (loss is null) continue;
                    optimizer.zero_grad();
                    loss.backward();
                    optimizer.step();
                    sum += loss.item<float>();
                    steps++;
                }
                epochsDone = epoch;
                lastLoss = steps == 0 ? double.NaN : sum / steps;
                epochDone?.Invoke(epoch, lastLoss);
            }
        }
        finally
        {
            optimizer.Dispose();
            _decoder.eval();
        }
        return new SegmenterTrainingResult(epochsDone, clock.Elapsed, lastLoss);
    }

    /// <summary>The predicted label map of cached image <paramref name="index"/> (eval mode, no gradients).</summary>
    public LabelMap Predict(FeatureCache features, int index)
    {
        ArgumentNullException.ThrowIfNull(features);
        _decoder.eval();
        using var noGrad = no_grad();
        using var scope = NewDisposeScope();
        var f = features.Get(index);
        int h = features.Heights[index], w = features.Widths[index];
        var classes = Logits(f[0], f[1], f[2], h, w).argmax(1).to(ScalarType.Byte).contiguous();
        return new LabelMap(w, h, classes.data<byte>().ToArray());
    }

    /// <summary>
    /// Full-image scores on cached test images: one confusion matrix over every pixel whose truth is known (unknown / void
    /// pixels of the truth are not counted).
    /// </summary>
    public SegmentationConfusionMatrix Evaluate(FeatureCache features, IReadOnlyList<LabelMap> truths)
    {
        ArgumentNullException.ThrowIfNull(truths);
        if (truths.Count != features.Count) throw new ArgumentException($"{truths.Count} truths were given for {features.Count} images.", nameof(truths));
        var matrix = new SegmentationConfusionMatrix(NumberOfClasses);
        for (int i = 0; i < truths.Count; i++) matrix.Add(truths[i], Predict(features, i), null, UnknownLabel);
        return matrix;
    }

    /// <summary>Stacks label maps of one size into an int64 tensor <c>[B, H, W]</c>.</summary>
    public static Tensor LabelTensor(IReadOnlyList<LabelMap> labels)
    {
        int h = labels[0].Height, w = labels[0].Width;
        var values = new long[labels.Count * h * w];
        for (int b = 0; b < labels.Count; b++)
        {
            var v = labels[b].Values;
            for (int i = 0; i < v.Length; i++) values[b * h * w + i] = v[i];
        }
        return tensor(values, [labels.Count, h, w]);
    }

    /// <summary>The label map mirrored left-right.</summary>
    public static LabelMap Mirror(LabelMap label)
    {
        int w = label.Width, h = label.Height;
        var values = new byte[label.Values.Length];
        for (int y = 0; y < h; y++)
            for (int x = 0; x < w; x++) values[y * w + x] = label.Values[y * w + (w - 1 - x)];
        return new LabelMap(w, h, values);
    }

    /// <summary>Releases the decoder's weights.</summary>
    public void Dispose() => _decoder.Dispose();
}
