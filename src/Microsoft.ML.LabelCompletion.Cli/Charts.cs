using System.Globalization;
using Microsoft.ML.LabelCompletion.Data;
using SkiaSharp;

namespace Microsoft.ML.LabelCompletion.Cli;

/// <summary>A named series of values for a chart (NaN values are left out).</summary>
/// <param name="Name">Legend text.</param>
/// <param name="Values">One value per x position.</param>
internal sealed record ChartSeries(string Name, IReadOnlyList<double> Values);

/// <summary>Simple PNG charts drawn with SkiaSharp: line charts for training curves and grouped bar charts for per-class metrics.</summary>
internal static class Charts
{
    private static readonly SKColor[] s_colours =
    [
        new(31, 119, 180), new(255, 127, 14), new(44, 160, 44), new(214, 39, 40), new(148, 103, 189), new(140, 86, 75),
    ];

    private static readonly Lazy<SKTypeface> s_typeface = new(FindTypeface);

    /// <summary>
    /// Draws panels of line charts stacked vertically (one per entry of <paramref name="panels"/>), x = 1..n, and writes a PNG
    /// atomically.
    /// </summary>
    public static void WriteLineCharts(string path, string title, IReadOnlyList<(string YLabel, IReadOnlyList<ChartSeries> Series)> panels, string xLabel)
    {
        const int width = 900, panelHeight = 320, top = 50;
        int height = top + panels.Count * panelHeight;
        using var surface = SKSurface.Create(new SKImageInfo(width, height, SKColorType.Rgba8888, SKAlphaType.Premul));
        var canvas = surface.Canvas;
        canvas.Clear(SKColors.White);
        DrawText(canvas, title, width / 2f, 30, 20, SKTextAlign.Center, SKColors.Black);
        for (int p = 0; p < panels.Count; p++)
        {
            var (yLabel, series) = panels[p];
            var area = new SKRect(80, top + p * panelHeight + 20, width - 180, top + (p + 1) * panelHeight - 50);
            int n = series.Count == 0 ? 0 : series.Max(s => s.Values.Count);
            var finite = series.SelectMany(s => s.Values).Where(double.IsFinite).ToArray();
            if (n == 0 || finite.Length == 0)
            {
                DrawText(canvas, $"{yLabel}: no data", area.MidX, area.MidY, 16, SKTextAlign.Center, SKColors.Gray);
                continue;
            }
            double min = finite.Min(), max = finite.Max();
            if (max - min < 1e-12) { min -= 0.5; max += 0.5; }
            double pad = (max - min) * 0.05;
            min -= pad;
            max += pad;
            DrawAxes(canvas, area, min, max, yLabel);
            float X(int i) => n == 1 ? area.MidX : area.Left + area.Width * i / (n - 1);
            float Y(double v) => (float)(area.Bottom - (v - min) / (max - min) * area.Height);
            for (int i = 0; i < n; i++)
            {
                if (n <= 20 || i % (int)Math.Ceiling(n / 20.0) == 0 || i == n - 1)
                    DrawText(canvas, (i + 1).ToString(CultureInfo.InvariantCulture), X(i), area.Bottom + 18, 12, SKTextAlign.Center, SKColors.Black);
            }
            DrawText(canvas, xLabel, area.MidX, area.Bottom + 38, 13, SKTextAlign.Center, SKColors.Black);
            for (int s = 0; s < series.Count; s++)
            {
                using var paint = new SKPaint { Color = s_colours[s % s_colours.Length], StrokeWidth = 2.5f, IsAntialias = true, Style = SKPaintStyle.Stroke };
                using var path2 = new SKPath();
                bool pen = false;
                var values = series[s].Values;
                for (int i = 0; i < values.Count; i++)
                {
                    if (!double.IsFinite(values[i])) { pen = false; continue; }
                    if (pen) path2.LineTo(X(i), Y(values[i]));
                    else path2.MoveTo(X(i), Y(values[i]));
                    pen = true;
                    canvas.DrawCircle(X(i), Y(values[i]), 3.5f, paint);
                }
                canvas.DrawPath(path2, paint);
                DrawLegend(canvas, area.Right + 15, area.Top + 10 + s * 22, series[s].Name, paint.Color);
            }
        }
        Save(surface, path);
    }

    /// <summary>Draws a grouped bar chart: one group per category, one bar per series; values 0..100 (NaN bars are left out).</summary>
    public static void WriteBarChart(string path, string title, string yLabel, IReadOnlyList<string> categories, IReadOnlyList<ChartSeries> series)
    {
        int width = Math.Max(700, 140 + categories.Count * (24 * series.Count + 30)), height = 480;
        using var surface = SKSurface.Create(new SKImageInfo(width, height, SKColorType.Rgba8888, SKAlphaType.Premul));
        var canvas = surface.Canvas;
        canvas.Clear(SKColors.White);
        DrawText(canvas, title, width / 2f, 30, 18, SKTextAlign.Center, SKColors.Black);
        var area = new SKRect(70, 60, width - 30, height - 110);
        DrawAxes(canvas, area, 0, 100, yLabel);
        float group = area.Width / Math.Max(1, categories.Count);
        float bar = (group - 14) / Math.Max(1, series.Count);
        for (int c = 0; c < categories.Count; c++)
        {
            float x0 = area.Left + c * group + 7;
            for (int s = 0; s < series.Count; s++)
            {
                double v = c < series[s].Values.Count ? series[s].Values[c] : double.NaN;
                if (!double.IsFinite(v)) continue;
                float y = (float)(area.Bottom - Math.Clamp(v, 0, 100) / 100 * area.Height);
                using var paint = new SKPaint { Color = s_colours[s % s_colours.Length], Style = SKPaintStyle.Fill };
                canvas.DrawRect(new SKRect(x0 + s * bar, y, x0 + (s + 1) * bar - 1, area.Bottom), paint);
            }
            canvas.Save();
            canvas.Translate(area.Left + (c + 0.5f) * group, area.Bottom + 10);
            canvas.RotateDegrees(35);
            DrawText(canvas, categories[c], 0, 8, 12, SKTextAlign.Left, SKColors.Black);
            canvas.Restore();
        }
        for (int s = 0; s < series.Count; s++)
            DrawLegend(canvas, area.Left + 10 + s * 170, 48, series[s].Name, s_colours[s % s_colours.Length]);
        Save(surface, path);
    }

    private static void DrawAxes(SKCanvas canvas, SKRect area, double min, double max, string yLabel)
    {
        using var axis = new SKPaint { Color = SKColors.Black, StrokeWidth = 1.2f, IsAntialias = true, Style = SKPaintStyle.Stroke };
        using var grid = new SKPaint { Color = new SKColor(225, 225, 225), StrokeWidth = 1, Style = SKPaintStyle.Stroke };
        for (int t = 0; t <= 5; t++)
        {
            double v = min + (max - min) * t / 5;
            float y = area.Bottom - area.Height * t / 5;
            canvas.DrawLine(area.Left, y, area.Right, y, grid);
            DrawText(canvas, v.ToString(Math.Abs(max - min) >= 10 ? "F0" : Math.Abs(max - min) >= 1 ? "F1" : "G3", CultureInfo.InvariantCulture),
                area.Left - 6, y + 4, 12, SKTextAlign.Right, SKColors.Black);
        }
        canvas.DrawRect(area, axis);
        canvas.Save();
        canvas.Translate(area.Left - 55, area.MidY);
        canvas.RotateDegrees(-90);
        DrawText(canvas, yLabel, 0, 0, 13, SKTextAlign.Center, SKColors.Black);
        canvas.Restore();
    }

    private static void DrawLegend(SKCanvas canvas, float x, float y, string name, SKColor colour)
    {
        using var paint = new SKPaint { Color = colour, Style = SKPaintStyle.Fill };
        canvas.DrawRect(new SKRect(x, y - 10, x + 14, y + 2), paint);
        DrawText(canvas, name, x + 20, y, 13, SKTextAlign.Left, SKColors.Black);
    }

    private static void DrawText(SKCanvas canvas, string text, float x, float y, float size, SKTextAlign align, SKColor colour)
    {
        using var paint = new SKPaint { Color = colour, TextSize = size, IsAntialias = true, TextAlign = align, Typeface = s_typeface.Value };
        canvas.DrawText(text, x, y, paint);
    }

    private static void Save(SKSurface surface, string path)
    {
        using var image = surface.Snapshot();
        using var data = image.Encode(SKEncodedImageFormat.Png, 100);
        SegmentationFiles.WriteAtomically(path, s => data.SaveTo(s));
    }

    /// <summary>
    /// The default typeface, or (when the bundled Skia has no font configuration and the default has no glyphs) the first
    /// DejaVu/Liberation/any TrueType font under the usual font folders. Without any font, charts are drawn without text.
    /// </summary>
    private static SKTypeface FindTypeface()
    {
        var fallback = SKTypeface.Default;
        if (fallback.GlyphCount > 0) return fallback;
        string[] folders = ["/usr/share/fonts", "/usr/local/share/fonts", "/Library/Fonts", "/System/Library/Fonts",
            Environment.GetFolderPath(Environment.SpecialFolder.Fonts)];
        var files = folders.Where(f => f.Length > 0 && Directory.Exists(f))
            .SelectMany(f => Directory.EnumerateFiles(f, "*.ttf", SearchOption.AllDirectories))
            .OrderBy(f => Path.GetFileName(f).StartsWith("DejaVuSans.", StringComparison.Ordinal) ? 0
                : Path.GetFileName(f).StartsWith("LiberationSans-Regular", StringComparison.Ordinal) ? 1 : 2);
        foreach (string file in files)
        {
            var typeface = SKTypeface.FromFile(file);
            if (typeface is { GlyphCount: > 0 }) return typeface;
        }
        return fallback;
    }
}
