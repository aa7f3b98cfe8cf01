// The consumer program of test/PackageConsumer/run.sh: an application that uses the Microsoft.ML.LabelCompletion package
// as a NuGet user would, from a project outside the repository. run.sh copies this file into that project.
//
//   train DIR  writes tiny synthetic image/label PNG pairs under DIR, then LoadSegmentationPairs -> CompleteLabels (Tiny,
//              1 epoch) -> Fit -> Transform -> Evaluate -> Model.Save (DIR/model.zip); writes the SHA-256 of the
//              transformed outputs to DIR/outputs.sha256.
//   load DIR   in a second process: Model.Load(DIR/model.zip) with a fresh MLContext, Transform of the same rows; the
//              outputs' SHA-256 must equal the first process's.
// Exit code 0 on success; anything else (an exception, a mismatch) exits non-zero with the reason on standard error.
using System.Security.Cryptography;
using Microsoft.ML;
using Microsoft.ML.Data;
using Microsoft.ML.LabelCompletion;
using Microsoft.ML.LabelCompletion.Data;
using Microsoft.ML.LabelCompletion.Model;

if (args.Length != 2 || (args[0] != "train" && args[0] != "load"))
{
    Console.Error.WriteLine("usage: consumer train|load DIR");
    return 2;
}
string dir = Path.GetFullPath(args[1]);
string modelPath = Path.Combine(dir, "model.zip"), hashPath = Path.Combine(dir, "outputs.sha256");
const int classes = 3;

try
{
    var ml = new MLContext(seed: 1);
    if (args[0] == "train")
    {
        // Six 48x40 scenes with complete labels, as palette PNGs in the class colours: a background (0), a rectangle (1)
        // and a disc (2), each class its own colour with some noise.
        byte[] palette = [90, 140, 60, 200, 60, 50, 40, 70, 190, .. new byte[253 * 3]];
        var random = new Random(100);
        for (int i = 0; i < 6; i++)
        {
            const int w = 48, h = 40;
            var rgb = new byte[w * h * 3];
            var values = new byte[w * h];
            int rx = random.Next(0, 24), ry = random.Next(0, 20), cx = random.Next(8, 40), cy = random.Next(8, 32), r = random.Next(4, 8);
            for (int y = 0; y < h; y++)
                for (int x = 0; x < w; x++)
                {
                    byte c = (byte)((x - cx) * (x - cx) + (y - cy) * (y - cy) <= r * r ? 2 : x >= rx && x < rx + 16 && y >= ry && y < ry + 12 ? 1 : 0);
                    values[y * w + x] = c;
                    for (int k = 0; k < 3; k++) rgb[(y * w + x) * 3 + k] = (byte)Math.Clamp(palette[3 * c + k] + random.Next(-20, 21), 0, 255);
                }
            SegmentationFiles.WriteImage(Path.Combine(dir, "data", "images", $"scene{i}.png"), new RgbImage(w, h, rgb));
            SegmentationFiles.WritePaletteLabel(Path.Combine(dir, "data", "labels", $"scene{i}.png"), new LabelMap(w, h, values), palette);
        }
        var data = Load(ml);
        var options = new LabelCompletionOptions
        {
            NumberOfClasses = classes,
            ModelSize = LabelCompletionModelSize.Tiny,
            Epochs = 1,
            BatchSize = 2,
            TrainingSize = 32,
            NumberOfThreads = 1,
            // Complete random patches of the complete labels, so that Evaluate has a predicted area to score.
            MaskSelector = MaskSelectorMode.Random,
            InferenceMaskRatio = 0.5f,
            // The ImageNet ResNet18's ONNX files come from a package this consumer does not download (README.md, Install).
            ImageFeatures = ImageFeatureInputs.None,
        };
        using var model = ml.Transforms.CompleteLabels(options).Fit(data);
        var completed = model.Transform(data);
        var metrics = ml.LabelCompletion().Evaluate(completed, classes);
        if (metrics.PredictAreaPixelCount == 0 || double.IsNaN(metrics.MeanIntersectionOverUnion))
            throw new InvalidOperationException($"Evaluate scored nothing: {metrics.PredictAreaPixelCount} completed pixels, mIoU {metrics.MeanIntersectionOverUnion}.");
        ml.Model.Save(model, data.Schema, modelPath);
        string hash = OutputsHash(completed);
        File.WriteAllText(hashPath, hash);
        Console.WriteLine($"trained, evaluated (PA-mIoU {metrics.PredictAreaMeanIntersectionOverUnion:F3} over {metrics.PredictAreaPixelCount} pixels, " +
                          $"mIoU {metrics.MeanIntersectionOverUnion:F3}), saved {modelPath} ({new FileInfo(modelPath).Length} bytes); outputs {hash}");
    }
    else
    {
        ITransformer loaded = ml.Model.Load(modelPath, out _);
        if (loaded is not LabelCompletionTransformer)
            throw new InvalidOperationException($"Model.Load returned {loaded.GetType().FullName}, not LabelCompletionTransformer.");
        string hash = OutputsHash(loaded.Transform(Load(ml)));
        string expected = File.ReadAllText(hashPath).Trim();
        if (hash != expected)
            throw new InvalidOperationException($"the loaded model's outputs differ from the saving process's: {hash} vs {expected}.");
        Console.WriteLine($"loaded {loaded.GetType().FullName} in a second process; outputs {hash} match");
        (loaded as IDisposable)?.Dispose();
    }
    return 0;
}
catch (Exception e)
{
    Console.Error.WriteLine($"{args[0]} failed: {e}");
    return 1;
}

SegmentationDataView Load(MLContext ml) => ml.Data.LoadSegmentationPairs(new SegmentationDataOptions
{
    Root = Path.Combine(dir, "data"), Format = SegmentationDataFormat.Folders, NumberOfClasses = classes,
});

// SHA-256 over every row's CompletedLabel bytes, Confidence floats and CompletionMask flags, in row order.
static string OutputsHash(IDataView data)
{
    var columns = new[] { data.Schema["CompletedLabel"], data.Schema["Confidence"], data.Schema["CompletionMask"] };
    using var cursor = data.GetRowCursor(columns);
    var getCompleted = cursor.GetGetter<VBuffer<byte>>(columns[0]);
    var getConfidence = cursor.GetGetter<VBuffer<float>>(columns[1]);
    var getMask = cursor.GetGetter<VBuffer<bool>>(columns[2]);
    VBuffer<byte> completed = default;
    VBuffer<float> confidence = default;
    VBuffer<bool> mask = default;
    using var sha = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
    int rows = 0, masked = 0;
    while (cursor.MoveNext())
    {
        getCompleted(ref completed);
        getConfidence(ref confidence);
        getMask(ref mask);
        sha.AppendData(completed.DenseValues().ToArray());
        foreach (float f in confidence.DenseValues()) sha.AppendData(BitConverter.GetBytes(f));
        foreach (bool m in mask.DenseValues()) { sha.AppendData(new[] { m ? (byte)1 : (byte)0 }); if (m) masked++; }
        rows++;
    }
    if (rows == 0 || masked == 0) throw new InvalidOperationException($"the transform gave {rows} rows with {masked} completed pixels.");
    return $"{rows} rows, {masked} completed pixels, sha256 {Convert.ToHexString(sha.GetHashAndReset())}";
}
