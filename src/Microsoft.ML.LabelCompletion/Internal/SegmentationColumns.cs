using Microsoft.ML.Data;
using Microsoft.ML.LabelCompletion.Data;
using Microsoft.ML.LabelCompletion.Model;
using Microsoft.ML.Runtime;
using Microsoft.ML.Transforms.Image;

namespace Microsoft.ML.LabelCompletion.Internal;

/// <summary>
/// The input columns of the label-completion transform: schema checks with clear messages, and reading one row of a
/// cursor into a validated <see cref="SegmentationExample"/>.
/// </summary>
internal static class SegmentationColumns
{
    private const string ImageHint = "an image column (MLImage, as made by mlContext.Transforms.LoadImages or the segmentation loader)";
    private const string LabelHint = "a vector of Byte holding the label map row-major (height x width of the image), class indices 0..C-1 or the unknown value";

    /// <summary>Checks the image and label columns of a schema shape (estimator side).</summary>
    public static void Check(IExceptionContext ectx, SchemaShape inputSchema, string imageColumnName, string labelColumnName)
    {
        if (!inputSchema.TryFindColumn(imageColumnName, out var image))
            throw MissingColumn(ectx, "image", imageColumnName, ImageHint, nameof(LabelCompletionOptions.ImageColumnName));
        if (image.Kind != SchemaShape.Column.VectorKind.Scalar || image.ItemType is not ImageDataViewType)
            throw WrongType(ectx, "image", imageColumnName, ShapeDescription(image), ImageHint);

        if (!inputSchema.TryFindColumn(labelColumnName, out var label))
            throw MissingColumn(ectx, "label", labelColumnName, LabelHint, nameof(LabelCompletionOptions.LabelColumnName));
        if (label.Kind == SchemaShape.Column.VectorKind.Scalar || label.IsKey || label.ItemType != NumberDataViewType.Byte)
            throw WrongType(ectx, "label", labelColumnName, ShapeDescription(label), LabelHint);
    }

    /// <summary>Checks the image and label columns of a schema (transformer side) and returns them.</summary>
    public static (DataViewSchema.Column Image, DataViewSchema.Column Label) Check(IExceptionContext ectx, DataViewSchema inputSchema,
        string imageColumnName, string labelColumnName)
    {
        var image = inputSchema.GetColumnOrNull(imageColumnName)
            ?? throw MissingColumn(ectx, "image", imageColumnName, ImageHint, nameof(LabelCompletionOptions.ImageColumnName));
        if (image.Type is not ImageDataViewType)
            throw WrongType(ectx, "image", imageColumnName, TypeName(image.Type), ImageHint);

        var label = inputSchema.GetColumnOrNull(labelColumnName)
            ?? throw MissingColumn(ectx, "label", labelColumnName, LabelHint, nameof(LabelCompletionOptions.LabelColumnName));
        if (label.Type is not VectorDataViewType vector || vector.ItemType != NumberDataViewType.Byte)
            throw WrongType(ectx, "label", labelColumnName, TypeName(label.Type), LabelHint);
        return (image, label);
    }

    private static string TypeName(DataViewType type) => type.ToString() ?? type.GetType().Name;

    private static string ShapeDescription(SchemaShape.Column column)
        => column.Kind switch
        {
            SchemaShape.Column.VectorKind.Scalar => column.IsKey ? $"Key<{TypeName(column.ItemType)}>" : TypeName(column.ItemType),
            _ => $"Vector<{(column.IsKey ? $"Key<{TypeName(column.ItemType)}>" : TypeName(column.ItemType))}>",
        };

    private static Exception MissingColumn(IExceptionContext ectx, string role, string name, string hint, string optionName)
        => ectx.ExceptParam("inputSchema",
            $"Label completion: the input has no {role} column '{name}'. Expected {hint}; the column name is set by LabelCompletionOptions.{optionName}.");

    private static Exception WrongType(IExceptionContext ectx, string role, string name, string actual, string hint)
        => ectx.ExceptParam("inputSchema", $"Label completion: the {role} column '{name}' has type {actual}; expected {hint}.");

    /// <summary>Reads the image and label of the current row of a cursor, converts and validates them.</summary>
    public sealed class RowReader
    {
        private readonly ValueGetter<MLImage> _image;
        private readonly ValueGetter<VBuffer<byte>> _label;
        private readonly string _imageColumnName;
        private readonly string _labelColumnName;
        private readonly string _dataName;
        private readonly int _numberOfClasses;
        private readonly byte _unknownLabel;
        private MLImage _imageValue = null!;
        private VBuffer<byte> _labelValue;

        /// <summary>Binds the getters of <paramref name="row"/>; both columns must be active.</summary>
        public RowReader(DataViewRow row, DataViewSchema.Column image, DataViewSchema.Column label, int numberOfClasses, byte unknownLabel, string dataName)
        {
            _image = row.GetGetter<MLImage>(image);
            _label = row.GetGetter<VBuffer<byte>>(label);
            _imageColumnName = image.Name;
            _labelColumnName = label.Name;
            _numberOfClasses = numberOfClasses;
            _unknownLabel = unknownLabel;
            _dataName = dataName;
        }

        /// <summary>The example of the row at <paramref name="position"/> (the row the cursor is on).</summary>
        public SegmentationExample Read(long position)
        {
            string source = $"{_dataName} row {position}";
            _image(ref _imageValue);
            if (_imageValue is null)
                throw new InvalidDataException($"{source}: the image column '{_imageColumnName}' is empty (image missing or unreadable).");
            var rgb = ImageConversion.ToRgb(_imageValue, $"{source}, image column '{_imageColumnName}'");

            _label(ref _labelValue);
            int pixels = rgb.Width * rgb.Height;
            if (_labelValue.Length != pixels)
                throw new InvalidDataException(
                    $"{source}: the label column '{_labelColumnName}' holds {_labelValue.Length} values but the image is {rgb.Width}x{rgb.Height} ({pixels} pixels); "
                    + "the label map must have one value per pixel, row-major.");
            var values = new byte[pixels];
            _labelValue.CopyTo(values);
            var label = new LabelMap(rgb.Width, rgb.Height, values);
            label.Validate(_numberOfClasses, _unknownLabel, $"{source}, label column '{_labelColumnName}'");
            return new SegmentationExample(rgb, label, source);
        }
    }
}
