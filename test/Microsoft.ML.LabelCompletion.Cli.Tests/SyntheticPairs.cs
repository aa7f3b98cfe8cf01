using Microsoft.ML.LabelCompletion.Data;
using Microsoft.ML.LabelCompletion.Synthetic;

namespace Microsoft.ML.LabelCompletion.Cli.Tests;

/// <summary>
/// A small <c>pairs</c> data set of synthetic scenes in a temporary folder: <c>{split}/images/*.png</c> (RGB) and
/// <c>{split}/labels/*.png</c> (palette PNGs in the scenes' class colours), plus <c>classes.txt</c>. Labels of the <c>holes</c>
/// split have 8x8 blocks set to unknown (255, which has a palette entry).
/// </summary>
public sealed class SyntheticPairs : IDisposable
{
    public const int Size = 40;

    public SyntheticPairs(int seed, params (string Split, int Count, bool Holes)[] splits)
    {
        Root = Path.Combine(Path.GetTempPath(), "lmae-cli-tests-" + Guid.NewGuid().ToString("N"));
        var palette = new byte[256 * 3];
        for (int c = 0; c < SyntheticScenes.NumberOfClasses; c++) SyntheticScenes.ClassColors[c].CopyTo(palette, 3 * c);
        palette[3 * 255] = palette[3 * 255 + 1] = palette[3 * 255 + 2] = 255;
        int next = seed;
        foreach (var (split, count, holes) in splits)
        {
            var random = new Random(next);
            for (int i = 0; i < count; i++)
            {
                var (image, label) = SyntheticScenes.Generate(Size, Size, next++);
                if (holes)
                {
                    for (int k = 0; k < 4; k++)
                    {
                        int x0 = random.Next(0, Size - 8), y0 = random.Next(0, Size - 8);
                        for (int y = y0; y < y0 + 8; y++)
                            for (int x = x0; x < x0 + 8; x++) label.Values[y * Size + x] = 255;
                    }
                }
                SegmentationFiles.WriteImage(Path.Combine(Root, split, "images", $"scene{i:D2}.png"), image);
                SegmentationFiles.WritePaletteLabel(Path.Combine(Root, split, "labels", $"scene{i:D2}.png"), label, palette);
            }
        }
        File.WriteAllLines(Path.Combine(Root, "classes.txt"), SyntheticScenes.ClassNames);
    }

    /// <summary>The data set's root folder.</summary>
    public string Root { get; }

    /// <summary>A fresh empty folder under the root for outputs.</summary>
    public string NewFolder(string name)
    {
        string folder = Path.Combine(Root, "out-" + name);
        Directory.CreateDirectory(folder);
        return folder;
    }

    public void Dispose()
    {
        if (Directory.Exists(Root)) Directory.Delete(Root, recursive: true);
    }
}
