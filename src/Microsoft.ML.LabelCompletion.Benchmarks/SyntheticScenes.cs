using Microsoft.ML.LabelCompletion.Data;

namespace Microsoft.ML.LabelCompletion.Synthetic;

/// <summary>
/// The embedded default data set: synthetic "scenes" whose label follows the colour. A sky/ground split (classes 0
/// and 1) is covered by rectangles, discs and thin vertical poles of the other classes; each class has its own
/// colour, jittered per object and per pixel, so the image alone decides the label and a good completion must
/// follow colour edges inside hidden patches (where a nearest-known-label fill guesses).
/// </summary>
public static class SyntheticScenes
{
    /// <summary>Class names of the generated scenes (index = class id).</summary>
    public static readonly string[] ClassNames = ["sky", "ground", "building", "tree", "car", "pole"];

    /// <summary>Display colour (R, G, B) of each class, also the centre of its image colour.</summary>
    public static readonly byte[][] ClassColors =
    [
        [110, 160, 230], [120, 110, 100], [180, 60, 50], [40, 150, 50], [230, 200, 40], [240, 240, 240],
    ];

    /// <summary>Number of classes of the generated scenes.</summary>
    public static int NumberOfClasses => ClassNames.Length;

    /// <summary>Generates one scene of <paramref name="width"/> x <paramref name="height"/> from <paramref name="seed"/> (same seed, same scene).</summary>
    public static (RgbImage Image, LabelMap Label) Generate(int width, int height, int seed)
    {
        var random = new Random(seed);
        var label = new byte[width * height];
        int horizon = height / 3 + random.Next(Math.Max(1, height / 3));
        for (int y = 0; y < height; y++)
            for (int x = 0; x < width; x++) label[y * width + x] = (byte)(y < horizon ? 0 : 1);

        int objects = 3 + random.Next(5);
        for (int o = 0; o < objects; o++)
        {
            int kind = random.Next(3);
            if (kind == 0) // building or car: rectangle
            {
                byte cls = (byte)(random.Next(2) == 0 ? 2 : 4);
                int w = width / 8 + random.Next(width / 3), h = height / 8 + random.Next(height / 3);
                int x0 = random.Next(width - w / 2), y0 = cls == 4 ? horizon + random.Next(Math.Max(1, height - horizon - h / 2)) : random.Next(height - h / 2);
                Paint(label, width, height, (x, y) => x >= x0 && x < x0 + w && y >= y0 && y < y0 + h, cls);
            }
            else if (kind == 1) // tree: disc
            {
                int r = Math.Max(3, width / 16 + random.Next(width / 8));
                int cx = random.Next(width), cy = random.Next(height);
                Paint(label, width, height, (x, y) => (x - cx) * (x - cx) + (y - cy) * (y - cy) <= r * r, 3);
            }
            else // pole: thin vertical bar
            {
                int w = 1 + random.Next(3), x0 = random.Next(width - w), y0 = random.Next(Math.Max(1, horizon)), y1 = horizon + random.Next(Math.Max(1, height - horizon));
                Paint(label, width, height, (x, y) => x >= x0 && x < x0 + w && y >= y0 && y <= y1, 5);
            }
        }

        var jitter = ClassColors.Select(_ => Enumerable.Range(0, 3).Select(_ => random.Next(-20, 21)).ToArray()).ToArray();
        var pixels = new byte[width * height * 3];
        for (int i = 0; i < label.Length; i++)
            for (int c = 0; c < 3; c++)
                pixels[3 * i + c] = (byte)Math.Clamp(ClassColors[label[i]][c] + jitter[label[i]][c] + random.Next(-12, 13), 0, 255);
        return (new RgbImage(width, height, pixels), new LabelMap(width, height, label));
    }

    /// <summary>A data set of <paramref name="count"/> scenes, scene i generated from <c>seed + i</c>.</summary>
    public static IEnumerable<(RgbImage Image, LabelMap Label)> Generate(int count, int width, int height, int seed)
    {
        for (int i = 0; i < count; i++) yield return Generate(width, height, seed + i);
    }

    private static void Paint(byte[] label, int width, int height, Func<int, int, bool> inside, byte cls)
    {
        for (int y = 0; y < height; y++)
            for (int x = 0; x < width; x++)
                if (inside(x, y)) label[y * width + x] = cls;
    }
}
