namespace Microsoft.ML.LabelCompletion.Data;

/// <summary>On-disk layouts of image/label pairs that <c>LoadSegmentationPairs</c> reads.</summary>
public enum SegmentationDataFormat
{
    /// <summary>
    /// CamVid as distributed with SegNet: <c>{split}/*.png</c> RGB images and <c>{split}annot/*.png</c> 8-bit grayscale
    /// class ids with the same file names; 11 classes, void 11 reads as unknown.
    /// </summary>
    CamVid = 0,

    /// <summary>
    /// Pascal VOC 2012: <c>ImageSets/Segmentation/{split}.txt</c> lists ids, images in <c>JPEGImages/{id}.jpg</c>, labels in
    /// <c>SegmentationClass/{id}.png</c> (palette PNG, the index is the class); 21 classes, 255 (boundary) reads as unknown.
    /// </summary>
    PascalVoc = 1,

    /// <summary>
    /// Cityscapes: <c>leftImg8bit/{split}/{city}/*_leftImg8bit.png</c> and <c>gtFine/{split}/{city}/*_gtFine_labelIds.png</c>;
    /// label ids map to the 19 train ids, every other id reads as unknown.
    /// </summary>
    Cityscapes = 2,

    /// <summary>
    /// A text file with one pair per line, <c>image label</c> (separated by a tab, or by white space when there is no tab),
    /// paths relative to the list file's folder; blank lines and lines starting with <c>#</c> are ignored.
    /// </summary>
    ListFile = 3,

    /// <summary>An image folder and a label folder whose files pair by name without extension (<c>a.jpg</c> with <c>a.png</c>).</summary>
    Folders = 4,
}

/// <summary>Which values a Cityscapes label is written with.</summary>
public enum CityscapesLabelOutput
{
    /// <summary>
    /// Label ids, like <c>*_gtFine_labelIds.png</c>: completed pixels get the label id of their train id, pixels that did not
    /// change keep their original label id.
    /// </summary>
    LabelIds = 0,

    /// <summary>Train ids 0..18 as 8-bit grayscale, unknown pixels as the unknown value (like <c>*_labelTrainIds.png</c>).</summary>
    TrainIds = 1,
}

/// <summary>Options of <c>LoadSegmentationPairs</c> and <see cref="SegmentationDataset.Open(SegmentationDataOptions)"/>.</summary>
public sealed class SegmentationDataOptions
{
    /// <summary>The data set's root folder (for <see cref="SegmentationDataFormat.ListFile"/>: defaults to the list file's folder). Paths outside it are rejected.</summary>
    public string Root = "";

    /// <summary>The on-disk layout. Default <see cref="SegmentationDataFormat.CamVid"/>.</summary>
    public SegmentationDataFormat Format = SegmentationDataFormat.CamVid;

    /// <summary>The split to read (<c>train</c>, <c>val</c>, <c>test</c>, ...). Default <c>"train"</c>.</summary>
    public string Split = "train";

    /// <summary>
    /// Number of real classes <c>C</c>. Null takes the format's own (CamVid 11, Pascal VOC 21, Cityscapes 19); required for
    /// <see cref="SegmentationDataFormat.ListFile"/> and <see cref="SegmentationDataFormat.Folders"/>.
    /// </summary>
    public int? NumberOfClasses;

    /// <summary>The label value that marks pixels of unknown class (not a class id). Default 255.</summary>
    public byte UnknownLabel = 255;

    /// <summary>
    /// When true, bad rows (missing or unreadable files, size mismatches, invalid label values) are left out and recorded in
    /// <see cref="SegmentationDataset.BadRows"/>; when false (default) the first bad row throws an exception that names the file.
    /// </summary>
    public bool SkipBadRows;

    /// <summary>
    /// <see cref="SegmentationDataFormat.ListFile"/>: the list file, absolute or relative to <see cref="Root"/>.
    /// Default <c>{Root}/{Split}.txt</c>.
    /// </summary>
    public string? ListFile;

    /// <summary><see cref="SegmentationDataFormat.Folders"/>: the image folder, absolute or relative to <see cref="Root"/>. Default <c>images</c>.</summary>
    public string? ImageFolder;

    /// <summary><see cref="SegmentationDataFormat.Folders"/>: the label folder, absolute or relative to <see cref="Root"/>. Default <c>labels</c>.</summary>
    public string? LabelFolder;

    /// <summary>
    /// Generic formats: raw label values mapped to a class id or to <see cref="UnknownLabel"/> (for example <c>{11: 255}</c>
    /// for a void value 11); other values read as themselves. Ignored by the named formats, which bring their own mapping.
    /// </summary>
    public IReadOnlyDictionary<int, byte>? LabelValueMap;

    /// <summary>
    /// Largest image or label accepted, in pixels (width x height), checked from the file's header before anything is
    /// decoded; a larger file is a bad row. Default <see cref="SegmentationFiles.DefaultMaxImagePixels"/> (89,478,485,
    /// Pillow's <c>MAX_IMAGE_PIXELS</c>).
    /// </summary>
    public long MaxImagePixels = SegmentationFiles.DefaultMaxImagePixels;

    /// <summary>
    /// What the readers do with an EXIF orientation tag. Default <see cref="ExifOrientationHandling.Apply"/>: images are turned
    /// to their displayed orientation (what the annotator saw) and labels must be stored upright.
    /// </summary>
    public ExifOrientationHandling ExifOrientation = ExifOrientationHandling.Apply;

    /// <summary>A shallow copy.</summary>
    public SegmentationDataOptions Clone() => (SegmentationDataOptions)MemberwiseClone();
}
