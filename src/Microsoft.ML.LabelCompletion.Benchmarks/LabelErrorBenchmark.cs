using System.Diagnostics;
using Microsoft.ML.LabelCompletion.Data;
using Microsoft.ML.LabelCompletion.Model;

namespace Microsoft.ML.LabelCompletion.Benchmarks;

/// <summary>
/// Measures label-error finding on labels with known errors: the clean labels are corrupted by
/// <see cref="LabelErrorGenerator"/>, then L-MAE (<see cref="LabelErrorTransformer"/>), the NearestKnown-disagreement
/// baseline on the same folds (<see cref="LabelErrorFinder.NearestKnownDisagreement"/>) and a seeded random ranking each
/// score every known pixel and every image. Reported per method: pixel-level precision and recall of its flags
/// (L-MAE: suspected pixels; NearestKnown: disagreements; random: as many random flags as L-MAE raises), pixel-level
/// AUPRC of its pixel score (L-MAE: 1 − label quality; NearestKnown: its 0/1 flag; random: uniform), image-level AUROC of
/// its image ranking against "the image got errors" (L-MAE: 1 − image quality score; NearestKnown: share of known pixels
/// flagged; random: uniform), and seconds per image.
/// </summary>
public static class LabelErrorBenchmark
{
    /// <summary>Runs the measurement; one record per method (<c>LMAE</c>, <c>NearestKnown</c>, <c>Random</c>), and a first
    /// record describing the corruption.</summary>
    /// <param name="model">The trained model.</param>
    /// <param name="data">Images with their clean labels.</param>
    /// <param name="generator">Rates and seed of the errors.</param>
    /// <param name="check">Folds and the suspected-error rule.</param>
    /// <param name="batch">Images per network call.</param>
    /// <param name="progress">Receives a line now and then; may be null.</param>
    public static IReadOnlyList<BenchmarkRecord> Run(LabelCompletionTransformer model, IReadOnlyList<(RgbImage Image, LabelMap Label)> data,
        LabelErrorGeneratorOptions generator, LabelErrorOptions check, int batch = 1, Action<string>? progress = null)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(data);
        if (data.Count == 0) throw new ArgumentException("No images to measure on.", nameof(data));
        byte unknown = model.Configuration.UnknownLabel;
        int classes = model.NumberOfClasses, patch = model.Configuration.PatchSize;
        var corrupted = LabelErrorGenerator.Corrupt(data.Select(d => d.Label).ToArray(), classes, unknown, generator);

        var checker = new LabelErrorTransformer(new MLContext(seed: 0), model, check);
        int n = data.Count;
        var lmaeScore = new float[n][];
        var lmaeFlags = new bool[n][];
        var lmaeImage = new double[n];
        var clock = Stopwatch.StartNew();
        for (int start = 0; start < n; start += batch)
        {
            int count = Math.Min(batch, n - start);
            var reports = checker.Check(Enumerable.Range(start, count).Select(i => (data[i].Image, corrupted[i].Label)).ToArray());
            for (int k = 0; k < count; k++)
            {
                var r = reports[k];
                lmaeScore[start + k] = r.LabelQuality.Select(q => 1 - q).ToArray();
                lmaeFlags[start + k] = r.SuspectedError;
                lmaeImage[start + k] = 1 - r.ImageQualityScore;
            }
            if ((start + count) % 10 == 0 || start + count == n) progress?.Invoke($"L-MAE check: {start + count}/{n} images, {clock.Elapsed.TotalSeconds / (start + count):F2} s per image");
        }
        double lmaeSeconds = clock.Elapsed.TotalSeconds / n;

        clock.Restart();
        var nkFlags = new bool[n][];
        var nkImage = new double[n];
        for (int i = 0; i < n; i++)
        {
            var label = corrupted[i].Label;
            nkFlags[i] = LabelErrorFinder.NearestKnownDisagreement(label, unknown, patch, check.NumberOfFolds).Flagged;
            int known = label.Values.Count(v => v != unknown);
            nkImage[i] = known == 0 ? 0 : (double)nkFlags[i].Count(f => f) / known;
        }
        double nkSeconds = clock.Elapsed.TotalSeconds / n;

        // Known pixels of the corrupted labels, with the ground truth "this pixel's label was changed".
        var truth = new List<bool>();
        var lmaeAll = new List<float>();
        var lmaeFlagAll = new List<bool>();
        var nkAll = new List<float>();
        var nkFlagAll = new List<bool>();
        for (int i = 0; i < n; i++)
        {
            var values = corrupted[i].Label.Values;
            for (int p = 0; p < values.Length; p++)
            {
                if (values[p] == unknown) continue;
                truth.Add(corrupted[i].Changed[p]);
                lmaeAll.Add(lmaeScore[i][p]);
                lmaeFlagAll.Add(lmaeFlags[i][p]);
                nkAll.Add(nkFlags[i][p] ? 1f : 0f);
                nkFlagAll.Add(nkFlags[i][p]);
            }
        }
        var t = truth.ToArray();
        var imageTruth = corrupted.Select(c => c.HasErrors).ToArray();
        var random = new Random(generator.Seed + 1);
        double lmaeRate = lmaeFlagAll.Count(f => f) / (double)Math.Max(1, t.Length);
        var randomScore = new float[t.Length];
        var randomFlags = new bool[t.Length];
        for (int i = 0; i < t.Length; i++)
        {
            randomScore[i] = random.NextSingle();
            randomFlags[i] = random.NextDouble() < lmaeRate;
        }
        var randomImage = Enumerable.Range(0, n).Select(_ => random.NextDouble()).ToArray();

        var kinds = corrupted.SelectMany(c => c.Errors).GroupBy(e => e.Kind).ToDictionary(g => g.Key, g => g.Count());
        var records = new List<BenchmarkRecord>
        {
            new BenchmarkRecord("label_errors_data")
                .Add("images", n).Add("corrupted_images", imageTruth.Count(x => x)).Add("known_pixels", t.Length)
                .Add("error_pixels", t.Count(x => x)).Add("error_pixel_share", t.Count(x => x) / (double)Math.Max(1, t.Length))
                .Add("objects", corrupted.Sum(c => c.EligibleObjects))
                .Add("relabel", kinds.GetValueOrDefault(LabelErrorKind.Relabel)).Add("erase", kinds.GetValueOrDefault(LabelErrorKind.Erase))
                .Add("boundary_shift", kinds.GetValueOrDefault(LabelErrorKind.BoundaryShift)).Add("missed_small", kinds.GetValueOrDefault(LabelErrorKind.MissedSmall))
                .Add("seed", generator.Seed).Add("image_rate", generator.ImageRate).Add("relabel_rate", generator.RelabelRate)
                .Add("erase_rate", generator.EraseRate).Add("shift_rate", generator.ShiftRate).Add("miss_small_rate", generator.MissSmallRate),
            Record("LMAE", t, lmaeFlagAll.ToArray(), lmaeAll.ToArray(), imageTruth, lmaeImage, lmaeSeconds, check),
            Record("NearestKnown", t, nkFlagAll.ToArray(), nkAll.ToArray(), imageTruth, nkImage, nkSeconds, check),
            Record("Random", t, randomFlags, randomScore, imageTruth, randomImage, 0, check),
        };
        return records;
    }

    private static BenchmarkRecord Record(string method, bool[] truth, bool[] flags, float[] score, bool[] imageTruth, double[] imageScore,
        double secondsPerImage, LabelErrorOptions check)
    {
        long tp = 0, fp = 0, fn = 0;
        for (int i = 0; i < truth.Length; i++)
        {
            if (flags[i] && truth[i]) tp++;
            else if (flags[i]) fp++;
            else if (truth[i]) fn++;
        }
        return new BenchmarkRecord("label_errors").Add("method", method)
            .Add("pixel_precision", tp / (double)Math.Max(1, tp + fp)).Add("pixel_recall", tp / (double)Math.Max(1, tp + fn))
            .Add("pixel_auprc", AveragePrecision(score, truth)).Add("image_auroc", Auroc(imageScore, imageTruth))
            .Add("flagged_pixels", tp + fp).Add("seconds_per_image", secondsPerImage)
            .Add("folds", check.NumberOfFolds).Add("threshold", (double)check.ConfidenceThreshold);
    }

    /// <summary>
    /// Average precision (area under the precision-recall curve, as scikit-learn's <c>average_precision_score</c>): scores
    /// sorted from high to low, tied scores taken as one step; the positives' share when no score separates them. 0 when
    /// there are no positives.
    /// </summary>
    public static double AveragePrecision(float[] score, bool[] positive)
    {
        ArgumentNullException.ThrowIfNull(score);
        ArgumentNullException.ThrowIfNull(positive);
        if (score.Length != positive.Length) throw new ArgumentException("One label per score is needed.");
        long positives = positive.LongCount(p => p);
        if (positives == 0) return 0;
        var order = Enumerable.Range(0, score.Length).ToArray();
        var keys = score.Select(s => float.IsNaN(s) ? float.PositiveInfinity : -s).ToArray(); // NaN last
        Array.Sort(keys, order);
        double ap = 0, previousRecall = 0;
        long tp = 0, seen = 0;
        for (int i = 0; i < order.Length;)
        {
            int j = i;
            while (j < order.Length && keys[j] == keys[i])
            {
                if (positive[order[j]]) tp++;
                j++;
            }
            seen += j - i;
            double recall = tp / (double)positives;
            ap += (recall - previousRecall) * (tp / (double)seen);
            previousRecall = recall;
            i = j;
        }
        return ap;
    }

    /// <summary>Area under the ROC curve (Mann-Whitney U with tied scores counted half); 0.5 when one class is missing.</summary>
    public static double Auroc(double[] score, bool[] positive)
    {
        ArgumentNullException.ThrowIfNull(score);
        ArgumentNullException.ThrowIfNull(positive);
        if (score.Length != positive.Length) throw new ArgumentException("One label per score is needed.");
        long pos = positive.LongCount(p => p), neg = positive.Length - pos;
        if (pos == 0 || neg == 0) return 0.5;
        var order = Enumerable.Range(0, score.Length).OrderBy(i => score[i]).ToArray();
        double rankSum = 0;
        for (int i = 0; i < order.Length;)
        {
            int j = i;
            while (j < order.Length && score[order[j]] == score[order[i]]) j++;
            double rank = (i + j + 1) / 2.0; // average of ranks i+1..j
            for (int k = i; k < j; k++)
                if (positive[order[k]]) rankSum += rank;
            i = j;
        }
        return (rankSum - pos * (pos + 1) / 2.0) / (pos * (double)neg);
    }
}
