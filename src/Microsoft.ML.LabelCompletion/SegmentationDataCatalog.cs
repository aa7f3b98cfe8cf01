using Microsoft.ML.LabelCompletion.Data;

namespace Microsoft.ML;

/// <summary>Loading image/label pairs of semantic-segmentation data sets as an <see cref="IDataView"/>.</summary>
public static class SegmentationDataCatalog
{
    /// <summary>
    /// Loads the image/label pairs of one split of a segmentation data set as a streaming <see cref="IDataView"/> with columns
    /// <c>Image</c>, <c>Label</c>, <c>Width</c>, <c>Height</c>, <c>ImagePath</c>, <c>LabelPath</c> (see <see cref="SegmentationDataView"/>).
    /// </summary>
    /// <param name="catalog">The data operations catalog (<c>mlContext.Data</c>).</param>
    /// <param name="root">The data set's root folder.</param>
    /// <param name="format">Its layout.</param>
    /// <param name="split">The split (<c>train</c>, <c>val</c>, <c>test</c>).</param>
    /// <param name="numberOfClasses">Number of real classes; null takes the format's own (required for generic formats).</param>
    /// <param name="unknownLabel">The label value of pixels of unknown class.</param>
    /// <returns>The view; <see cref="SegmentationDataView.Dataset"/> gives the pairs and the decoded samples.</returns>
    public static SegmentationDataView LoadSegmentationPairs(this DataOperationsCatalog catalog, string root,
        SegmentationDataFormat format = SegmentationDataFormat.CamVid, string split = "train", int? numberOfClasses = null, byte unknownLabel = 255)
        => LoadSegmentationPairs(catalog, new SegmentationDataOptions
        {
            Root = root,
            Format = format,
            Split = split,
            NumberOfClasses = numberOfClasses,
            UnknownLabel = unknownLabel,
        });

    /// <summary>
    /// Loads the image/label pairs described by <paramref name="options"/> as a streaming <see cref="IDataView"/> with columns
    /// <c>Image</c>, <c>Label</c>, <c>Width</c>, <c>Height</c>, <c>ImagePath</c>, <c>LabelPath</c> (see <see cref="SegmentationDataView"/>).
    /// Listing problems are reported here; decoding problems when rows are read. With
    /// <see cref="SegmentationDataOptions.SkipBadRows"/> on, bad rows are left out and listed in <see cref="SegmentationDataView.BadRows"/>.
    /// </summary>
    /// <param name="catalog">The data operations catalog (<c>mlContext.Data</c>).</param>
    /// <param name="options">Where and what to read.</param>
    /// <returns>The view; <see cref="SegmentationDataView.Dataset"/> gives the pairs and the decoded samples.</returns>
    public static SegmentationDataView LoadSegmentationPairs(this DataOperationsCatalog catalog, SegmentationDataOptions options)
    {
        ArgumentNullException.ThrowIfNull(catalog);
        return new SegmentationDataView(SegmentationDataset.Open(options));
    }
}
