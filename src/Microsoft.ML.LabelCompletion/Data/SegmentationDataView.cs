using Microsoft.ML.Data;
using Microsoft.ML.Transforms.Image;

namespace Microsoft.ML.LabelCompletion.Data;

/// <summary>
/// A streaming <see cref="IDataView"/> over a <see cref="SegmentationDataset"/>: a file is decoded only when a cursor is on
/// its row and a getter of an image, label or size column asks (once per row), so data sets larger than memory stream.
/// Columns: <c>Image</c> (<see cref="MLImage"/>, BGRA32), <c>Label</c> (variable-length vector of <see cref="byte"/>,
/// row-major height x width, class ids or the unknown value; each call of the image getter returns a new image that the
/// caller owns and should dispose), <c>Width</c> and <c>Height</c> (<see cref="int"/>),
/// <c>ImagePath</c> and <c>LabelPath</c> (text). Rows are in the data set's order; it cannot shuffle.
/// </summary>
public sealed class SegmentationDataView : IDataView
{
    /// <summary>Name of the image column.</summary>
    public const string ImageColumnName = "Image";

    /// <summary>Name of the label column.</summary>
    public const string LabelColumnName = "Label";

    /// <summary>Name of the width column.</summary>
    public const string WidthColumnName = "Width";

    /// <summary>Name of the height column.</summary>
    public const string HeightColumnName = "Height";

    /// <summary>Name of the image path column.</summary>
    public const string ImagePathColumnName = "ImagePath";

    /// <summary>Name of the label path column.</summary>
    public const string LabelPathColumnName = "LabelPath";

    private const int ImageCol = 0, LabelCol = 1, WidthCol = 2, HeightCol = 3, ImagePathCol = 4, LabelPathCol = 5;

    /// <summary>Creates the view over a data set.</summary>
    /// <param name="dataset">The data set.</param>
    public SegmentationDataView(SegmentationDataset dataset)
    {
        Dataset = dataset ?? throw new ArgumentNullException(nameof(dataset));
        var builder = new DataViewSchema.Builder();
        builder.AddColumn(ImageColumnName, new ImageDataViewType());
        builder.AddColumn(LabelColumnName, new VectorDataViewType(NumberDataViewType.Byte));
        builder.AddColumn(WidthColumnName, NumberDataViewType.Int32);
        builder.AddColumn(HeightColumnName, NumberDataViewType.Int32);
        builder.AddColumn(ImagePathColumnName, TextDataViewType.Instance);
        builder.AddColumn(LabelPathColumnName, TextDataViewType.Instance);
        Schema = builder.ToSchema();
    }

    /// <summary>The data set behind the view (pairs, label mapping, bad rows).</summary>
    public SegmentationDataset Dataset { get; }

    /// <summary>Rows left out as bad so far (with <see cref="SegmentationDataOptions.SkipBadRows"/> on), with reasons.</summary>
    public IReadOnlyList<SegmentationBadRow> BadRows => Dataset.BadRows;

    /// <summary>Number of rows left out as bad so far.</summary>
    public int BadRowCount => Dataset.BadRowCount;

    /// <inheritdoc/>
    public bool CanShuffle => false;

    /// <inheritdoc/>
    public DataViewSchema Schema { get; }

    /// <summary>The number of rows; null while skipped bad rows may still be found (skipping on and not every row read yet).</summary>
    public long? GetRowCount() => Dataset.KnownGoodRowCount;

    /// <inheritdoc/>
    public DataViewRowCursor GetRowCursor(IEnumerable<DataViewSchema.Column> columnsNeeded, Random? rand = null)
    {
        ArgumentNullException.ThrowIfNull(columnsNeeded);
        var active = new bool[Schema.Count];
        foreach (var column in columnsNeeded)
        {
            if (column.Index < 0 || column.Index >= active.Length || Schema[column.Index].Name != column.Name || !Schema[column.Index].Type.Equals(column.Type))
                throw new ArgumentException($"Column '{column.Name}' is not a column of this view.", nameof(columnsNeeded));
            active[column.Index] = true;
        }
        return new Cursor(this, active);
    }

    /// <inheritdoc/>
    public DataViewRowCursor[] GetRowCursorSet(IEnumerable<DataViewSchema.Column> columnsNeeded, int n, Random? rand = null) =>
        [GetRowCursor(columnsNeeded, rand)];

    private sealed class Cursor : DataViewRowCursor
    {
        private readonly SegmentationDataView _parent;
        private readonly SegmentationDataset _dataset;
        private readonly bool[] _active;
        private readonly bool _needsDecode;
        private int _index = -1;
        private long _position = -1;
        private SegmentationSample? _sample;
        private int _sampleIndex = -1;
        private bool _done;

        public Cursor(SegmentationDataView parent, bool[] active)
        {
            _parent = parent;
            _dataset = parent.Dataset;
            _active = active;
            _needsDecode = active[ImageCol] || active[LabelCol] || active[WidthCol] || active[HeightCol];
        }

        public override DataViewSchema Schema => _parent.Schema;

        public override long Position => _position;

        public override long Batch => 0;

        public override bool IsColumnActive(DataViewSchema.Column column) => _active[column.Index];

        public override bool MoveNext()
        {
            if (_done)
                return false;
            while (++_index < _dataset.Count)
            {
                _sample = null;
                _sampleIndex = -1;
                if (_dataset.Options.SkipBadRows)
                {
                    // Every cursor must see the same rows, so with skipping on a row is decoded (once per data set, unless
                    // asked for again) to learn whether it is bad, even by a cursor that only wants the paths.
                    if (_dataset.IsKnownBad(_index))
                        continue;
                    if (!_needsDecode && _dataset.IsKnownGood(_index))
                    {
                        _position++;
                        return true;
                    }
                    var sample = _dataset.ReadOrSkip(_index);
                    if (sample == null)
                        continue;
                    if (_needsDecode)
                    {
                        _sample = sample;
                        _sampleIndex = _index;
                    }
                }
                _position++;
                return true;
            }
            _done = true;
            _sample = null;
            return false;
        }

        public override ValueGetter<DataViewRowId> GetIdGetter() => (ref DataViewRowId value) =>
        {
            EnsureOnRow();
            value = new DataViewRowId((ulong)_index, 0);
        };

        public override ValueGetter<TValue> GetGetter<TValue>(DataViewSchema.Column column)
        {
            if (column.Index < 0 || column.Index >= _active.Length)
                throw new ArgumentOutOfRangeException(nameof(column), $"Column '{column.Name}' is not a column of this view.");
            if (!_active[column.Index])
                throw new InvalidOperationException($"Column '{column.Name}' was not requested when the cursor was made.");
            Delegate getter = column.Index switch
            {
                ImageCol => (ValueGetter<MLImage>)GetImage,
                LabelCol => (ValueGetter<VBuffer<byte>>)GetLabel,
                WidthCol => (ValueGetter<int>)((ref int v) => v = Current().Image.Width),
                HeightCol => (ValueGetter<int>)((ref int v) => v = Current().Image.Height),
                ImagePathCol => (ValueGetter<ReadOnlyMemory<char>>)((ref ReadOnlyMemory<char> v) => v = CurrentPair().ImagePath.AsMemory()),
                _ => (ValueGetter<ReadOnlyMemory<char>>)((ref ReadOnlyMemory<char> v) => v = CurrentPair().LabelPath.AsMemory()),
            };
            return getter as ValueGetter<TValue>
                ?? throw new InvalidOperationException(
                    $"Column '{column.Name}' is of type {column.Type}; a getter of {typeof(TValue).Name} was asked for.");
        }

        protected override void Dispose(bool disposing)
        {
            _sample = null;
            _done = true;
            base.Dispose(disposing);
        }

        private void GetImage(ref MLImage value)
        {
            // A new image per call, owned by the caller: the previous value is not disposed here, because callers such as
            // GetColumn hand earlier values out while the cursor moves on.
            value = Current().Image.ToMLImage();
        }

        private void GetLabel(ref VBuffer<byte> value)
        {
            var label = Current().Label;
            var editor = VBufferEditor.Create(ref value, label.Values.Length);
            label.Values.CopyTo(editor.Values);
            value = editor.Commit();
        }

        private void EnsureOnRow()
        {
            if (_position < 0 || _done)
                throw new InvalidOperationException("The cursor is not on a row.");
        }

        private SegmentationPair CurrentPair()
        {
            EnsureOnRow();
            return _dataset.Pairs[_index];
        }

        private SegmentationSample Current()
        {
            EnsureOnRow();
            if (_sampleIndex != _index || _sample == null)
            {
                _sample = _dataset.Read(_index);
                _sampleIndex = _index;
            }
            return _sample;
        }
    }
}
