using Microsoft.ML.LabelCompletion.Data;

namespace Microsoft.ML.LabelCompletion.Model;

/// <summary>
/// Finds likely label errors with a trained L-MAE and no other model: the patch grid is split into <see cref="PatchFolds"/>,
/// each fold is hidden once and re-predicted from everything else (<see cref="LabelMaskAutoEncoder.PredictHidden"/>), so each
/// pixel's prediction is out-of-sample; then cleanlab's segmentation scores are computed from those predictions
/// (<see cref="Score"/>).
/// </summary>
internal static class LabelErrorFinder
{
    /// <summary>
    /// Checks the labels of <paramref name="batch"/>: one network call over the batch's images, each once per fold (so the
    /// cost is about <paramref name="folds"/> completions per image).
    /// </summary>
    /// <param name="model">The trained network.</param>
    /// <param name="batch">Images and their given labels.</param>
    /// <param name="folds">Number of folds <c>K</c> (at least 2).</param>
    /// <param name="confidenceThreshold">Smallest probability of the model's class for a disagreement to be suspected.</param>
    /// <param name="temperature">Softmin temperature of the image score.</param>
    /// <param name="precision">Arithmetic of the forwards.</param>
    /// <param name="cancellationToken">Stops before the next group of windows.</param>
    public static IReadOnlyList<LabelErrorReport> Find(LabelMaskAutoEncoder model, IReadOnlyList<SegmentationExample> batch, int folds,
        float confidenceThreshold, float temperature, LabelCompletionPrecision precision = LabelCompletionPrecision.Float32,
        CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(batch);
        int p = model.Config.PatchSize;
        var examples = new List<SegmentationExample>(batch.Count * folds);
        var masks = new List<bool[]>(batch.Count * folds);
        var foldOf = new int[batch.Count][];
        for (int i = 0; i < batch.Count; i++)
        {
            var (rows, columns) = MaskSelector.Grid(batch[i].Image.Width, batch[i].Image.Height, p);
            foldOf[i] = PatchFolds.Assign(rows, columns, folds);
            foreach (var mask in PatchFolds.Masks(rows, columns, folds))
            {
                examples.Add(batch[i]);
                masks.Add(mask);
            }
        }
        var predictions = model.PredictHidden(examples, masks, precision, cancellationToken);
        var reports = new LabelErrorReport[batch.Count];
        for (int i = 0; i < batch.Count; i++)
        {
            var label = batch[i].Label;
            int w = label.Width, h = label.Height, columns = (w + p - 1) / p;
            var quality = new float[w * h];
            var predicted = new byte[w * h];
            var confidence = new float[w * h];
            for (int y = 0; y < h; y++)
            {
                for (int x = 0; x < w; x++)
                {
                    int j = y * w + x;
                    var fold = predictions[i * folds + foldOf[i][y / p * columns + x / p]];
                    quality[j] = fold.GivenClassProbability[j];
                    predicted[j] = fold.PredictedClass[j];
                    confidence[j] = fold.PredictedProbability[j];
                }
            }
            reports[i] = Score(label, model.Config.UnknownLabel, model.Config.NumberOfClasses, quality, predicted, confidence, confidenceThreshold, temperature);
        }
        return reports;
    }

    /// <summary>
    /// The scores of one image from out-of-sample predictions: the label quality is <paramref name="givenClassProbability"/>
    /// (NaN at unknown pixels); a known pixel is suspected when <paramref name="predicted"/> differs from its given class
    /// and <paramref name="predictedProbability"/> is at least <paramref name="confidenceThreshold"/>; the image score is
    /// <see cref="Softmin"/> of the known pixels' quality; the confusion counts (given, predicted) over suspected pixels.
    /// </summary>
    public static LabelErrorReport Score(LabelMap given, byte unknownLabel, int numberOfClasses, float[] givenClassProbability, byte[] predicted,
        float[] predictedProbability, float confidenceThreshold, float temperature)
    {
        ArgumentNullException.ThrowIfNull(given);
        int n = given.Values.Length;
        if (givenClassProbability.Length != n || predicted.Length != n || predictedProbability.Length != n)
            throw new ArgumentException($"The predictions do not cover the {given.Width}x{given.Height} label.");
        var quality = new float[n];
        var suspected = new bool[n];
        var confusion = new long[numberOfClasses * numberOfClasses];
        for (int i = 0; i < n; i++)
        {
            byte label = given.Values[i];
            if (label == unknownLabel)
            {
                quality[i] = float.NaN;
                continue;
            }
            quality[i] = givenClassProbability[i];
            if (predicted[i] != label && predictedProbability[i] >= confidenceThreshold)
            {
                suspected[i] = true;
                confusion[label * numberOfClasses + predicted[i]]++;
            }
        }
        return new LabelErrorReport(given.Width, given.Height, quality, suspected, predicted, predictedProbability,
            Softmin(quality, temperature), numberOfClasses, confusion);
    }

    /// <summary>
    /// cleanlab's softmin pooling of pixel scores <c>s</c> (NaN entries left out):
    /// <c>Σ sᵢ·exp((1 − sᵢ)/T) / Σ exp((1 − sⱼ)/T)</c>, a weighted mean dominated by the lowest scores; 1 when no score is
    /// left.
    /// </summary>
    /// <param name="scores">Pixel scores in 0..1; NaN = no score.</param>
    /// <param name="temperature">Temperature <c>T</c> (cleanlab's default 0.1); smaller is closer to the minimum.</param>
    public static float Softmin(ReadOnlySpan<float> scores, float temperature)
    {
        if (!(temperature > 0)) throw new ArgumentOutOfRangeException(nameof(temperature), temperature, "The temperature must be positive.");
        double lowest = double.PositiveInfinity;
        foreach (float s in scores)
            if (!float.IsNaN(s) && s < lowest) lowest = s;
        if (double.IsPositiveInfinity(lowest)) return 1f;
        // exp((1 - s)/T) shifted by its largest exponent, (1 - lowest)/T, so that no term overflows.
        double weighted = 0, total = 0;
        foreach (float s in scores)
        {
            if (float.IsNaN(s)) continue;
            double weight = Math.Exp((lowest - s) / temperature);
            weighted += weight * s;
            total += weight;
        }
        return (float)(weighted / total);
    }

    /// <summary>
    /// The NearestKnown-disagreement baseline on the same folds: each fold's patches are hidden and filled from the known
    /// pixels around them (<see cref="NearestKnownFill"/>); a known pixel is flagged when the fill disagrees with its given
    /// label. Returns the flags and the fill's class per pixel.
    /// </summary>
    /// <param name="given">The given label.</param>
    /// <param name="unknownLabel">The unknown value.</param>
    /// <param name="patchSize">Patch size of the folds' grid.</param>
    /// <param name="folds">Number of folds.</param>
    public static (bool[] Flagged, byte[] Filled) NearestKnownDisagreement(LabelMap given, byte unknownLabel, int patchSize, int folds)
    {
        ArgumentNullException.ThrowIfNull(given);
        int w = given.Width, h = given.Height, n = w * h;
        var (rows, columns) = MaskSelector.Grid(w, h, patchSize);
        var foldOf = PatchFolds.Assign(rows, columns, folds);
        var masks = PatchFolds.Masks(rows, columns, folds);
        var fills = masks.Select(mask => NearestKnownFill.Fill(MaskSelector.Apply(given, mask, patchSize, unknownLabel), unknownLabel).Values).ToArray();
        var flagged = new bool[n];
        var filled = new byte[n];
        for (int y = 0; y < h; y++)
        {
            for (int x = 0; x < w; x++)
            {
                int i = y * w + x;
                filled[i] = fills[foldOf[y / patchSize * columns + x / patchSize]][i];
                flagged[i] = given.Values[i] != unknownLabel && filled[i] != unknownLabel && filled[i] != given.Values[i];
            }
        }
        return (flagged, filled);
    }
}
