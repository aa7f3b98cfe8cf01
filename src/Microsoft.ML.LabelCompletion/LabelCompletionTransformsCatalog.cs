using Microsoft.ML.Data;
using Microsoft.ML.LabelCompletion;
using Microsoft.ML.Runtime;

namespace Microsoft.ML;

/// <summary>Catalog extensions that create the label-completion (L-MAE) estimator: <c>mlContext.Transforms.CompleteLabels(...)</c>.</summary>
public static class LabelCompletionTransformsCatalog
{
    /// <summary>
    /// Creates a <see cref="LabelCompletionEstimator"/> that trains an L-MAE to complete partially annotated label maps, with the
    /// <see cref="LabelCompletionOptions"/> defaults for everything not named here.
    /// </summary>
    /// <param name="catalog">The transforms catalog.</param>
    /// <param name="numberOfClasses">Number of real classes <c>C</c>; label values <c>0..C-1</c> are classes.</param>
    /// <param name="outputColumnName">Output column with the completed label map (vector of Byte).</param>
    /// <param name="imageColumnName">Input image column (<see cref="MLImage"/>).</param>
    /// <param name="labelColumnName">Input label column: vector of Byte, one value per pixel, row-major.</param>
    /// <param name="unknownLabel">The label value meaning "unknown".</param>
    /// <param name="modelSize">Size preset of the network.</param>
    /// <param name="epochs">Number of passes over the training data.</param>
    /// <returns>The estimator.</returns>
    public static LabelCompletionEstimator CompleteLabels(this TransformsCatalog catalog, int numberOfClasses,
        string outputColumnName = "CompletedLabel", string imageColumnName = "Image", string labelColumnName = "Label",
        byte unknownLabel = 255, LabelCompletionModelSize modelSize = LabelCompletionModelSize.Small, int epochs = 40)
        => CompleteLabels(catalog, new LabelCompletionOptions
        {
            NumberOfClasses = numberOfClasses,
            OutputColumnName = outputColumnName,
            ImageColumnName = imageColumnName,
            LabelColumnName = labelColumnName,
            UnknownLabel = unknownLabel,
            ModelSize = modelSize,
            Epochs = epochs,
        });

    /// <summary>Creates a <see cref="LabelCompletionEstimator"/> that trains an L-MAE with the given options.</summary>
    /// <param name="catalog">The transforms catalog.</param>
    /// <param name="options">Columns, network, training and inference settings (copied: later changes have no effect).</param>
    /// <returns>The estimator.</returns>
    public static LabelCompletionEstimator CompleteLabels(this TransformsCatalog catalog, LabelCompletionOptions options)
    {
        ArgumentNullException.ThrowIfNull(catalog);
        return new LabelCompletionEstimator(CatalogUtils.GetEnvironment(catalog), options);
    }

    /// <summary>
    /// Creates a <see cref="LabelCompletionEstimator"/> whose <c>Fit</c> does not train but returns <paramref name="trainedModel"/>'s
    /// network with the columns and inference settings of <paramref name="options"/> (for example another Mask Selector for
    /// evaluation). The class count and unknown label of <paramref name="options"/> must match the model's.
    /// </summary>
    /// <param name="catalog">The transforms catalog.</param>
    /// <param name="options">Columns and inference settings; training settings are ignored.</param>
    /// <param name="trainedModel">A trained or loaded model; its network is shared, not copied.</param>
    /// <returns>The estimator.</returns>
    public static LabelCompletionEstimator CompleteLabels(this TransformsCatalog catalog, LabelCompletionOptions options, LabelCompletionTransformer trainedModel)
    {
        ArgumentNullException.ThrowIfNull(catalog);
        ArgumentNullException.ThrowIfNull(trainedModel);
        return new LabelCompletionEstimator(CatalogUtils.GetEnvironment(catalog), options, trainedModel);
    }

    /// <summary>
    /// Creates a <see cref="LabelErrorEstimator"/> that finds likely label errors with <paramref name="trainedModel"/>: every
    /// patch hidden once over <see cref="LabelErrorOptions.NumberOfFolds"/> folds and re-predicted, per-pixel label quality
    /// and suspected errors, and a per-image quality score (see <see cref="LabelErrorTransformer"/>).
    /// </summary>
    /// <param name="catalog">The transforms catalog.</param>
    /// <param name="trainedModel">A trained or loaded model; its network is shared, not copied.</param>
    /// <param name="options">Columns, folds and the suspected-error rule; null for the defaults (copied: later changes have no effect).</param>
    /// <returns>The estimator.</returns>
    public static LabelErrorEstimator FindLabelErrors(this TransformsCatalog catalog, LabelCompletionTransformer trainedModel, LabelErrorOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(catalog);
        ArgumentNullException.ThrowIfNull(trainedModel);
        return new LabelErrorEstimator(CatalogUtils.GetEnvironment(catalog), trainedModel, options);
    }
}
