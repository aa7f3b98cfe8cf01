using Microsoft.ML.LabelCompletion.Data;

namespace Microsoft.ML.LabelCompletion.Model;

/// <summary>
/// What <see cref="LabelMaskAutoEncoder.PredictHidden"/> returns for one image, per pixel, row-major in the image's own size.
/// </summary>
/// <param name="Width">Width in pixels.</param>
/// <param name="Height">Height in pixels.</param>
/// <param name="GivenClassProbability">The network's probability of the class the given label holds; NaN where the given label is unknown.</param>
/// <param name="PredictedClass">The network's most probable class.</param>
/// <param name="PredictedProbability">That class's probability.</param>
internal sealed record PixelPredictions(int Width, int Height, float[] GivenClassProbability, byte[] PredictedClass, float[] PredictedProbability)
{
    /// <summary>
    /// Reads the predictions of <paramref name="given"/>'s pixels from class probabilities <c>[C, paddedHeight, paddedWidth]</c>
    /// (row-major, the image in the top-left corner of the padded grid).
    /// </summary>
    internal static PixelPredictions Read(LabelMap given, int paddedWidth, int paddedHeight, ReadOnlySpan<float> probabilities, int classes, byte unknown)
    {
        int w = given.Width, h = given.Height, plane = paddedWidth * paddedHeight;
        if (probabilities.Length != classes * plane)
            throw new ArgumentException($"{probabilities.Length} probabilities do not make {classes} planes of {paddedWidth}x{paddedHeight}.", nameof(probabilities));
        var givenProbability = new float[w * h];
        var predicted = new byte[w * h];
        var predictedProbability = new float[w * h];
        for (int y = 0; y < h; y++)
        {
            for (int x = 0; x < w; x++)
            {
                int i = y * w + x, j = y * paddedWidth + x;
                int best = 0;
                float bestP = probabilities[j];
                for (int c = 1; c < classes; c++)
                {
                    float p = probabilities[c * plane + j];
                    if (p > bestP)
                    {
                        bestP = p;
                        best = c;
                    }
                }
                predicted[i] = (byte)best;
                predictedProbability[i] = bestP;
                byte label = given.Values[i];
                givenProbability[i] = label == unknown ? float.NaN : probabilities[label * plane + j];
            }
        }
        return new PixelPredictions(w, h, givenProbability, predicted, predictedProbability);
    }
}
