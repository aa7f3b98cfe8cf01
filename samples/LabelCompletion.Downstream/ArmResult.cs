// One row of the downstream sample's results table, and the table as Markdown and CSV.
using System.Globalization;
using System.Text;
using Microsoft.ML.LabelCompletion.Evaluation;

namespace LabelCompletion.Downstream;

/// <summary>The test scores, training budget and training-label statistics of one arm.</summary>
/// <param name="Arm">Arm number, 1 to 5.</param>
/// <param name="Matrix">Confusion matrix over the test images' known pixels.</param>
/// <param name="Training">Epochs and time the segmenter trained.</param>
/// <param name="Labels">Statistics of the arm's training labels against the full labels.</param>
public sealed record ArmResult(int Arm, SegmentationConfusionMatrix Matrix, SegmenterTrainingResult Training, LabelSetStatistics Labels)
{
    /// <summary>The arms' names, by number.</summary>
    public static readonly IReadOnlyDictionary<int, string> Names = new Dictionary<int, string>
    {
        [1] = "full labels",
        [2] = "degraded, holes ignored",
        [3] = "NearestKnown fill",
        [4] = "L-MAE completion",
        [5] = "L-MAE, low confidence ignored",
    };

    /// <summary>The results as a Markdown document (setup paragraph, main table, per-class IoU table) and as CSV (one row per arm).</summary>
    public static (string Markdown, string Csv) Tables(IReadOnlyList<ArmResult> results, IReadOnlyList<string> classNames, string setup)
    {
        static string F(double v, string format = "F2") => double.IsNaN(v) ? "-" : v.ToString(format, CultureInfo.InvariantCulture);
        var md = new StringBuilder();
        md.AppendLine("# Downstream segmentation: full, degraded and completed training labels").AppendLine();
        md.AppendLine(setup).AppendLine();
        md.AppendLine("| arm | training labels | mIoU | pixel accuracy | epochs | training min | labelled training pixels | wrong (% of labelled non-void) | labelled on void |");
        md.AppendLine("|---|---|---|---|---|---|---|---|---|");
        foreach (var r in results)
            md.AppendLine($"| {r.Arm} | {Names[r.Arm]} | {F(r.Matrix.MeanIntersectionOverUnion)} | {F(r.Matrix.PixelAccuracy)} | {r.Training.Epochs} | "
                + $"{F(r.Training.Elapsed.TotalMinutes, "F1")} | {r.Labels.Labelled.ToString("N0", CultureInfo.InvariantCulture)} "
                + $"({F(100.0 * r.Labels.Labelled / r.Labels.Pixels, "F1")}%) | {r.Labels.Wrong.ToString("N0", CultureInfo.InvariantCulture)} "
                + $"({F(r.Labels.WrongPercent)}%) | {r.Labels.OnVoid.ToString("N0", CultureInfo.InvariantCulture)} |");
        md.AppendLine().AppendLine("Per-class IoU on the test split:").AppendLine();
        md.AppendLine("| arm | " + string.Join(" | ", classNames) + " |");
        md.AppendLine("|---|" + string.Concat(classNames.Select(_ => "---|")));
        foreach (var r in results)
            md.AppendLine($"| {r.Arm} | " + string.Join(" | ", Enumerable.Range(0, classNames.Count).Select(c => F(r.Matrix.IntersectionOverUnion(c)))) + " |");
        md.AppendLine().AppendLine("mIoU: mean over the classes present in the test truth or prediction. Labelled training pixels: pixels with a class "
            + "(the loss counts them); wrong: labelled pixels whose full label is another class; labelled on void: labelled pixels whose full "
            + "label is void (not scored).");

        var csv = new StringBuilder();
        csv.AppendLine("arm,labels,miou,pixel_accuracy,epochs,training_minutes,training_pixels,labelled_pixels,wrong_pixels,labelled_on_void,"
            + string.Join(",", classNames.Select(n => "iou_" + n.Replace(' ', '_').Replace(',', '_'))));
        foreach (var r in results)
            csv.AppendLine(string.Join(",", new[]
            {
                r.Arm.ToString(CultureInfo.InvariantCulture), $"\"{Names[r.Arm]}\"", F(r.Matrix.MeanIntersectionOverUnion, "F4"), F(r.Matrix.PixelAccuracy, "F4"),
                r.Training.Epochs.ToString(CultureInfo.InvariantCulture), F(r.Training.Elapsed.TotalMinutes, "F3"),
                r.Labels.Pixels.ToString(CultureInfo.InvariantCulture), r.Labels.Labelled.ToString(CultureInfo.InvariantCulture),
                r.Labels.Wrong.ToString(CultureInfo.InvariantCulture), r.Labels.OnVoid.ToString(CultureInfo.InvariantCulture),
            }.Concat(Enumerable.Range(0, classNames.Count).Select(c => F(r.Matrix.IntersectionOverUnion(c), "F4")))));
        return (md.ToString(), csv.ToString());
    }
}
