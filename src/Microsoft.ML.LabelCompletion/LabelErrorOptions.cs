namespace Microsoft.ML.LabelCompletion;

/// <summary>
/// Settings of label-error finding (<c>mlContext.Transforms.FindLabelErrors(trainedModel, options)</c>): columns, folds and
/// the suspected-error rule. Every field has a documented default.
/// </summary>
public sealed class LabelErrorOptions
{
    /// <summary>Input image column (<see cref="Microsoft.ML.Data.MLImage"/>). Default <c>Image</c>.</summary>
    public string ImageColumnName = "Image";

    /// <summary>Input column with the given label map: vector of Byte, row-major, one value per pixel. Default <c>Label</c>.</summary>
    public string LabelColumnName = "Label";

    /// <summary>Output: per-pixel label quality, the out-of-sample probability of the given class (vector of Single; NaN
    /// where the given label is unknown). Default <c>LabelQuality</c>.</summary>
    public string LabelQualityColumnName = "LabelQuality";

    /// <summary>Output: per-pixel suspected error (vector of Boolean; never true at an unknown pixel). Default <c>SuspectedError</c>.</summary>
    public string SuspectedErrorColumnName = "SuspectedError";

    /// <summary>Output: the image's label quality score, softmin of its pixels' quality (Single; low = likely errors).
    /// Default <c>ImageQualityScore</c>.</summary>
    public string ImageQualityScoreColumnName = "ImageQualityScore";

    /// <summary>Output: the model's out-of-sample class per pixel (vector of Byte). Default <c>PredictedLabel</c>.</summary>
    public string PredictedLabelColumnName = "PredictedLabel";

    /// <summary>
    /// Number of folds <c>K</c> of the patch grid (<see cref="Model.PatchFolds"/>): each fold is hidden once and re-predicted
    /// from the rest, so a check costs about <c>K</c> completions per image. At least 2. Default 4 (no two hidden patches
    /// touch, so each is predicted from all its neighbours).
    /// </summary>
    public int NumberOfFolds = 4;

    /// <summary>
    /// A known pixel is a suspected error when the model's class differs from the given one with a probability of at least
    /// this value. In (0, 1]. Default 0.5.
    /// </summary>
    public float ConfidenceThreshold = 0.5f;

    /// <summary>Temperature of the softmin that pools pixel quality into the image score (cleanlab's default). Positive. Default 0.1.</summary>
    public float Temperature = 0.1f;

    /// <summary>Stops a running check before its next group of windows. Default none.</summary>
    public CancellationToken CancellationToken;

    internal LabelErrorOptions Clone() => (LabelErrorOptions)MemberwiseClone();
}
