using SkiaSharp;

namespace Microsoft.ML.LabelCompletion.Tests.Integration;

/// <summary>A row with an image file path and its (incomplete) label map, as a user feeds <c>LoadImages</c>.</summary>
public sealed class PathRow
{
    /// <summary>The PNG file.</summary>
    public string ImagePath { get; set; } = "";

    /// <summary>The label map, row-major.</summary>
    public byte[] Label { get; set; } = [];
}

/// <summary>
/// A tiny synthetic segmentation set written to a temporary folder: images with a textured background (class 0), a blue
/// rectangle (class 1) and a green disc (class 2); labels with some 8x8 patches and a few single pixels unknown (255).
/// </summary>
public sealed class SyntheticSegmentationData : IDisposable
{
    public const int Classes = 3;
    public const byte Unknown = 255;

    public SyntheticSegmentationData(int count, int seed, int width = 32, int height = 32)
    {
        Directory = Path.Combine(Path.GetTempPath(), "lc-it-" + Guid.NewGuid().ToString("N"));
        System.IO.Directory.CreateDirectory(Directory);
        var random = new Random(seed);
        for (int n = 0; n < count; n++)
        {
            int w = n == count - 1 ? width + 8 : width; // one image of another size
            int h = height;
            var truth = new byte[w * h];
            using var bitmap = new SKBitmap(w, h, SKColorType.Rgba8888, SKAlphaType.Premul);
            int rx = random.Next(0, w / 2), ry = random.Next(0, h / 2), rw = random.Next(6, w / 2), rh = random.Next(6, h / 2);
            int cx = random.Next(8, w - 8), cy = random.Next(8, h - 8), radius = random.Next(4, 8);
            for (int y = 0; y < h; y++)
                for (int x = 0; x < w; x++)
                {
                    byte cls = 0;
                    if (x >= rx && x < rx + rw && y >= ry && y < ry + rh) cls = 1;
                    if ((x - cx) * (x - cx) + (y - cy) * (y - cy) <= radius * radius) cls = 2;
                    truth[y * w + x] = cls;
                    int noise = random.Next(-20, 21);
                    var colour = cls switch
                    {
                        1 => new SKColor(Clamp(30 + noise), Clamp(40 + noise), Clamp(200 + noise)),
                        2 => new SKColor(Clamp(40 + noise), Clamp(190 + noise), Clamp(50 + noise)),
                        _ => new SKColor(Clamp(150 + noise + (x % 4) * 10), Clamp(90 + noise), Clamp(60 + noise)),
                    };
                    bitmap.SetPixel(x, y, colour);
                }
            var label = (byte[])truth.Clone();
            for (int py = 0; py < h / 8; py++)
                for (int px = 0; px < w / 8; px++)
                    if (random.NextDouble() < 0.3)
                        for (int y = py * 8; y < py * 8 + 8; y++)
                            for (int x = px * 8; x < px * 8 + 8; x++) label[y * w + x] = Unknown;
            for (int k = 0; k < 5; k++) label[random.Next(label.Length)] = Unknown;

            string imagePath = Path.Combine(Directory, $"image{n}.png");
            using (var data = bitmap.Encode(SKEncodedImageFormat.Png, 100))
            using (var file = File.Create(imagePath))
                data.SaveTo(file);
            string labelPath = Path.Combine(Directory, $"label{n}.bin");
            File.WriteAllBytes(labelPath, label);
            Rows.Add(new Sample(imagePath, labelPath, w, h, truth, label));
        }
        ManifestPath = Path.Combine(Directory, "manifest.tsv");
        File.WriteAllLines(ManifestPath, Rows.Select(r => $"{r.ImagePath}\t{r.LabelPath}"));
    }

    /// <summary>One image: file paths, size, complete and incomplete labels.</summary>
    public sealed record Sample(string ImagePath, string LabelPath, int Width, int Height, byte[] Truth, byte[] Label);

    public string Directory { get; }

    public string ManifestPath { get; }

    public List<Sample> Rows { get; } = new();

    /// <summary>Rows of image paths and labels (for a pipeline that starts with <c>LoadImages</c>).</summary>
    public IDataView PathData(MLContext ml) => ml.Data.LoadFromEnumerable(Rows.Select(r => new PathRow { ImagePath = r.ImagePath, Label = r.Label }));

    /// <summary>Rows of decoded images (<c>LoadImages</c> applied) and labels.</summary>
    public IDataView ImageData(MLContext ml) => ImageData(ml, Rows.Select(r => new PathRow { ImagePath = r.ImagePath, Label = r.Label }));

    /// <summary>Decodes the images of <paramref name="rows"/> with <c>LoadImages</c> (lazily, as ML.NET does).</summary>
    public static IDataView ImageData(MLContext ml, IEnumerable<PathRow> rows)
    {
        var paths = ml.Data.LoadFromEnumerable(rows);
        return ml.Transforms.LoadImages("Image", imageFolder: null, inputColumnName: "ImagePath").Fit(paths).Transform(paths);
    }

    /// <summary>The Tiny options the tests train with (1 epoch, 32-pixel crops).</summary>
    public static LabelCompletionOptions TinyOptions(int epochs = 1) => new()
    {
        NumberOfClasses = Classes,
        UnknownLabel = Unknown,
        ModelSize = LabelCompletionModelSize.Tiny,
        Epochs = epochs,
        BatchSize = 2,
        TrainingSize = 32,
        LearningRate = 1e-3,
        InferenceBatchSize = 3,
        NumberOfThreads = 1,
        // The ImageNet ResNet18 adds 11 MB to every saved model: the tests of the image features build their own.
        ImageFeatures = ImageFeatureInputs.None,
    };

    public void Dispose()
    {
        try { System.IO.Directory.Delete(Directory, recursive: true); }
        catch (IOException) { }
    }

    private static byte Clamp(int v) => (byte)Math.Clamp(v, 0, 255);
}
