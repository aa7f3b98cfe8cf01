using System.Diagnostics;
using System.Globalization;

using Microsoft.ML.LabelCompletion.Data;

namespace Microsoft.ML.LabelCompletion.Benchmarks;

/// <summary>Loader throughput measured by <see cref="LoaderBenchmark.Run"/>.</summary>
/// <param name="Dataset">What was read (root and split).</param>
/// <param name="Images">Images per pass.</param>
/// <param name="Threads">Decoding threads.</param>
/// <param name="Passes">Timed passes (after one warm-up pass over a few images).</param>
/// <param name="ImagesPerSecond">Median over passes of images decoded per second, into ready-to-fuse arrays.</param>
/// <param name="MegapixelsPerSecond">The same in megapixels per second.</param>
/// <param name="ImageDecodeMs">Median milliseconds to decode one image (PNG/JPEG to RGB), single thread.</param>
/// <param name="LabelDecodeMs">Median milliseconds to decode and map one label PNG, single thread.</param>
/// <param name="NormaliseMs">Median milliseconds to turn one RGB image into ImageNet-normalised float CHW, single thread.</param>
public sealed record LoaderBenchmarkResult(string Dataset, int Images, int Threads, int Passes, double ImagesPerSecond, double MegapixelsPerSecond,
    double ImageDecodeMs, double LabelDecodeMs, double NormaliseMs)
{
    /// <summary>One JSON line, as the <c>lmae bench</c> command prints results.</summary>
    public string ToJson() => string.Create(CultureInfo.InvariantCulture,
        $"{{\"bench\":\"loader\",\"dataset\":\"{Escape(Dataset)}\",\"images\":{Images},\"threads\":{Threads},\"passes\":{Passes},\"images_per_s\":{ImagesPerSecond:F1},\"megapixels_per_s\":{MegapixelsPerSecond:F2},\"image_decode_ms\":{ImageDecodeMs:F3},\"label_decode_ms\":{LabelDecodeMs:F3},\"normalise_ms\":{NormaliseMs:F3}}}");

    private static string Escape(string s) => s.Replace("\\", "\\\\", StringComparison.Ordinal).Replace("\"", "\\\"", StringComparison.Ordinal);
}

/// <summary>
/// Measures how fast a <see cref="SegmentationDataset"/> is decoded into ready-to-fuse arrays: the RGB image as
/// ImageNet-normalised float CHW and the label map as class ids (what Stack Fusion consumes), with every check the loader
/// makes. Warms up first, then times whole passes and reports medians.
/// </summary>
public static class LoaderBenchmark
{
    private static readonly float[] s_mean = [0.485f, 0.456f, 0.406f];
    private static readonly float[] s_std = [0.229f, 0.224f, 0.225f];

    /// <summary>Runs the benchmark.</summary>
    /// <param name="dataset">The data set to read (every pair is read in each pass).</param>
    /// <param name="threads">Decoding threads (pairs are decoded in parallel, one per thread at a time).</param>
    /// <param name="passes">Timed passes; the median is reported.</param>
    /// <param name="maxImages">Read at most this many pairs per pass (null: all).</param>
    public static LoaderBenchmarkResult Run(SegmentationDataset dataset, int threads = 1, int passes = 3, int? maxImages = null)
    {
        ArgumentNullException.ThrowIfNull(dataset);
        if (threads < 1 || passes < 1)
            throw new ArgumentOutOfRangeException(threads < 1 ? nameof(threads) : nameof(passes), "Must be at least 1.");
        int n = Math.Min(dataset.Count, maxImages ?? int.MaxValue);

        // Warm-up: JIT, native library load, file cache.
        for (int i = 0; i < Math.Min(n, 8); i++)
            Consume(dataset, i);

        // Per-stage breakdown, single thread, on up to 32 pairs.
        var imageMs = new List<double>();
        var labelMs = new List<double>();
        var normMs = new List<double>();
        for (int i = 0; i < Math.Min(n, 32); i++)
        {
            var pair = dataset.Pairs[i];
            long t0 = Stopwatch.GetTimestamp();
            var image = SegmentationFiles.ReadImage(pair.ImagePath);
            long t1 = Stopwatch.GetTimestamp();
            SegmentationFiles.ReadLabel(pair.LabelPath, dataset.LabelMapping);
            long t2 = Stopwatch.GetTimestamp();
            NormalisedChw(image);
            long t3 = Stopwatch.GetTimestamp();
            imageMs.Add(Stopwatch.GetElapsedTime(t0, t1).TotalMilliseconds);
            labelMs.Add(Stopwatch.GetElapsedTime(t1, t2).TotalMilliseconds);
            normMs.Add(Stopwatch.GetElapsedTime(t2, t3).TotalMilliseconds);
        }

        var rates = new List<double>();
        var pixelRates = new List<double>();
        for (int p = 0; p < passes; p++)
        {
            long pixels = 0;
            var sw = Stopwatch.StartNew();
            Parallel.For(0, n, new ParallelOptions { MaxDegreeOfParallelism = threads }, i => Interlocked.Add(ref pixels, Consume(dataset, i)));
            sw.Stop();
            rates.Add(n / sw.Elapsed.TotalSeconds);
            pixelRates.Add(pixels / 1e6 / sw.Elapsed.TotalSeconds);
        }
        return new LoaderBenchmarkResult($"{dataset.Root} ({dataset.Options.Format}, {dataset.Options.Split})", n, threads, passes,
            Median(rates), Median(pixelRates), Median(imageMs), Median(labelMs), Median(normMs));
    }

    private static long Consume(SegmentationDataset dataset, int index)
    {
        var sample = dataset.Read(index);
        float[] chw = NormalisedChw(sample.Image);
        GC.KeepAlive(chw);
        return (long)sample.Image.Width * sample.Image.Height;
    }

    /// <summary>The RGB image as ImageNet-normalised float planes (C x H x W), the image half of the fuse map.</summary>
    private static float[] NormalisedChw(RgbImage image)
    {
        int n = image.Width * image.Height;
        var chw = new float[3 * n];
        var px = image.Pixels;
        for (int c = 0; c < 3; c++)
        {
            float scale = 1f / (255f * s_std[c]), shift = s_mean[c] / s_std[c];
            var plane = chw.AsSpan(c * n, n);
            for (int i = 0; i < n; i++)
                plane[i] = px[3 * i + c] * scale - shift;
        }
        return chw;
    }

    private static double Median(List<double> values)
    {
        if (values.Count == 0)
            return double.NaN;
        values.Sort();
        int m = values.Count / 2;
        return values.Count % 2 == 1 ? values[m] : (values[m - 1] + values[m]) / 2;
    }
}
