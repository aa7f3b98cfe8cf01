namespace Microsoft.ML.LabelCompletion;

/// <summary>
/// The label check of one image (<see cref="LabelErrorTransformer.Check(Data.RgbImage, Data.LabelMap)"/>): per pixel,
/// row-major in the image's size, and for the whole image.
/// </summary>
/// <param name="Width">Width in pixels.</param>
/// <param name="Height">Height in pixels.</param>
/// <param name="LabelQuality">The out-of-sample probability the model gives the class of the given label (cleanlab's
/// self-confidence); NaN where the given label is unknown.</param>
/// <param name="SuspectedError">True where the given label is known, the model's class differs from it, and the model's
/// probability of its class is at least <see cref="LabelErrorOptions.ConfidenceThreshold"/>; never at an unknown pixel.</param>
/// <param name="PredictedLabel">The model's out-of-sample class per pixel.</param>
/// <param name="PredictedConfidence">The model's probability of that class.</param>
/// <param name="ImageQualityScore">Softmin of the known pixels' label quality with <see cref="LabelErrorOptions.Temperature"/>
/// (cleanlab's <c>get_label_quality_scores</c>): low means likely errors; 1 for a label without known pixels.</param>
/// <param name="NumberOfClasses">Number of classes <c>C</c>.</param>
/// <param name="Confusion">Among the suspected pixels, how many have given class <c>g</c> and predicted class <c>p</c>:
/// entry <c>g·C + p</c>.</param>
public sealed record LabelErrorReport(int Width, int Height, float[] LabelQuality, bool[] SuspectedError, byte[] PredictedLabel,
    float[] PredictedConfidence, float ImageQualityScore, int NumberOfClasses, long[] Confusion)
{
    /// <summary>Number of suspected pixels.</summary>
    public int SuspectedPixelCount => SuspectedError.Count(s => s);

    /// <summary>Number of pixels whose given label is known.</summary>
    public int KnownPixelCount => LabelQuality.Count(q => !float.IsNaN(q));

    /// <summary>
    /// The (given, predicted, count) triples of suspected pixels summed over <paramref name="reports"/>, most frequent first
    /// (cleanlab's <c>common_label_issues</c>); pairs with no pixel are left out.
    /// </summary>
    /// <param name="reports">Checks of images with the same class count.</param>
    public static IReadOnlyList<(int Given, int Predicted, long Count)> CommonIssues(IEnumerable<LabelErrorReport> reports)
    {
        ArgumentNullException.ThrowIfNull(reports);
        long[]? sum = null;
        int classes = 0;
        foreach (var report in reports)
        {
            if (sum is null)
            {
                classes = report.NumberOfClasses;
                sum = new long[classes * classes];
            }
            else if (report.NumberOfClasses != classes)
                throw new ArgumentException($"The reports count {classes} and {report.NumberOfClasses} classes; they cannot be summed.", nameof(reports));
            for (int i = 0; i < sum.Length; i++) sum[i] += report.Confusion[i];
        }
        if (sum is null) return [];
        return Enumerable.Range(0, sum.Length).Where(i => sum[i] > 0)
            .Select(i => (Given: i / classes, Predicted: i % classes, Count: sum[i]))
            .OrderByDescending(t => t.Count).ThenBy(t => t.Given).ThenBy(t => t.Predicted).ToArray();
    }
}
