
namespace Microsoft.ML.LabelCompletion.ModelLoader;

/// <summary>A row with an image file path and its label map (the input of a model that starts with a decoded image).</summary>
public sealed class ImageRow
{
    /// <summary>The image file, decoded by the helper with <c>LoadImages</c> into the column "Image".</summary>
    public string ImagePath { get; set; } = "";

    /// <summary>The label map, row-major.</summary>
    public byte[] Label { get; set; } = [];
}

/// <summary>A row with an image file path and its label map.</summary>
public sealed class PathRow
{
    /// <summary>The image file.</summary>
    public string ImagePath { get; set; } = "";

    /// <summary>The label map, row-major.</summary>
    public byte[] RawLabel { get; set; } = [];
}
