using Microsoft.ML.Data;
using Microsoft.ML.LabelCompletion.Data;
using Microsoft.ML.LabelCompletion.Internal;
using Microsoft.ML.LabelCompletion.Model;
using Microsoft.ML.Runtime;

namespace Microsoft.ML.LabelCompletion;

/// <summary>
/// Finds likely label errors with a trained L-MAE, no other model needed: made by
/// <see cref="LabelCompletionTransformsCatalog.FindLabelErrors(TransformsCatalog, LabelCompletionTransformer, LabelErrorOptions?)"/>.
/// </summary>
/// <remarks>
/// <para>
/// Per image, the patch grid is split into <see cref="LabelErrorOptions.NumberOfFolds"/> folds (<see cref="PatchFolds"/>);
/// each fold is hidden from every input of the network (label, label prior, directional planes) and re-predicted from the
/// rest, so every pixel's prediction is made without its own label. From those out-of-sample predictions, as cleanlab's
/// segmentation module does from a separately trained model's: per-pixel label quality (probability of the given class),
/// per-pixel suspected error (the model's class differs from the given one with probability at least
/// <see cref="LabelErrorOptions.ConfidenceThreshold"/>; unknown pixels are never suspected), the image's quality score
/// (softmin of its pixels' quality, temperature <see cref="LabelErrorOptions.Temperature"/>) and the model's class per pixel.
/// <see cref="LabelErrorReport.CommonIssues"/> sums the (given, predicted) confusion of suspected pixels over images.
/// </para>
/// <para>
/// <c>Transform</c> is lazy and checks one row at a time (its folds share the network's forwards), at
/// about <see cref="LabelErrorOptions.NumberOfFolds"/> times the cost of completing it, in the trained model's precision.
/// This transformer is not saved: <c>mlContext.Model.Save</c> refuses it. Save the <see cref="LabelCompletionTransformer"/>
/// and build the check on the loaded model; the check has no state of its own besides its options.
/// </para>
/// </remarks>
public sealed class LabelErrorTransformer : RowToRowTransformerBase
{
    private readonly LabelCompletionTransformer _model;
    private readonly LabelErrorOptions _options;
    private readonly DataViewSchema.DetachedColumn[] _outputColumns;

    internal LabelErrorTransformer(IHostEnvironment env, LabelCompletionTransformer model, LabelErrorOptions options)
        : base(Contracts.CheckRef(env, nameof(env)).Register(nameof(LabelErrorTransformer)))
    {
        Host.CheckValue(model, nameof(model));
        _model = model;
        _options = options.Clone();
        LabelErrorEstimator.Validate(Host, _options);
        _outputColumns =
        [
            new(_options.LabelQualityColumnName, new VectorDataViewType(NumberDataViewType.Single)),
            new(_options.SuspectedErrorColumnName, new VectorDataViewType(BooleanDataViewType.Instance)),
            new(_options.ImageQualityScoreColumnName, NumberDataViewType.Single),
            new(_options.PredictedLabelColumnName, new VectorDataViewType(NumberDataViewType.Byte)),
        ];
    }

    /// <summary>The options of the check (a copy).</summary>
    public LabelErrorOptions Options => _options.Clone();

    /// <summary>Checks one image's given label (the same computation as <c>Transform</c> for one row).</summary>
    /// <param name="image">The RGB image.</param>
    /// <param name="label">Its given label map (same size), unknown pixels holding the model's unknown value.</param>
    public LabelErrorReport Check(RgbImage image, LabelMap label)
    {
        ArgumentNullException.ThrowIfNull(image);
        ArgumentNullException.ThrowIfNull(label);
        image.Validate("image");
        if (label.Width != image.Width || label.Height != image.Height)
            throw new ArgumentException($"label: the label map is {label.Width}x{label.Height} but the image is {image.Width}x{image.Height}.", nameof(label));
        label.Validate(_model.NumberOfClasses, _model.Configuration.UnknownLabel, "label");
        return Check([new SegmentationExample(image, label, "image")])[0];
    }

    /// <summary>Checks several images in one network call (all their folds share the forwards).</summary>
    /// <param name="rows">Images and their given label maps; a row that is not valid is named by its index in the error.</param>
    public IReadOnlyList<LabelErrorReport> Check(IReadOnlyList<(RgbImage Image, LabelMap Label)> rows)
    {
        ArgumentNullException.ThrowIfNull(rows);
        var batch = rows.Select((row, i) =>
        {
            if (row.Image is null || row.Label is null) throw new ArgumentException($"Row {i}: the image and the label map must not be null.", nameof(rows));
            row.Image.Validate($"row {i}: image");
            if (row.Label.Width != row.Image.Width || row.Label.Height != row.Image.Height)
                throw new ArgumentException($"Row {i}: the label map is {row.Label.Width}x{row.Label.Height} but the image is {row.Image.Width}x{row.Image.Height}.", nameof(rows));
            row.Label.Validate(_model.NumberOfClasses, _model.Configuration.UnknownLabel, $"row {i}: label");
            return new SegmentationExample(row.Image, row.Label, $"row {i}");
        }).ToArray();
        return Check(batch);
    }

    private IReadOnlyList<LabelErrorReport> Check(IReadOnlyList<SegmentationExample> batch)
        => LabelErrorFinder.Find(_model.Engine.Network, batch, _options.NumberOfFolds, _options.ConfidenceThreshold, _options.Temperature,
            _model.Options.Precision, _options.CancellationToken);

    /// <summary>Refuses: this transformer is not saved (see the remarks); save the trained <see cref="LabelCompletionTransformer"/> instead.</summary>
    protected override void SaveModel(ModelSaveContext ctx)
        => throw new NotSupportedException("The label-error check (LabelErrorTransformer) is not saved with mlContext.Model.Save: save the trained "
            + "LabelCompletionTransformer and build mlContext.Transforms.FindLabelErrors(model, options) on the loaded model.");

    /// <summary>Makes the per-row mapper.</summary>
    protected override IRowMapper MakeRowMapper(DataViewSchema schema) => new Mapper(this, schema);

    private sealed class Mapper : MapperBase
    {
        private readonly LabelErrorTransformer _parent;
        private readonly DataViewSchema.Column _image;
        private readonly DataViewSchema.Column _label;

        public Mapper(LabelErrorTransformer parent, DataViewSchema inputSchema)
            : base(parent.Host.Register(nameof(Mapper)), inputSchema, parent)
        {
            _parent = parent;
            (_image, _label) = SegmentationColumns.Check(Host, inputSchema, parent._options.ImageColumnName, parent._options.LabelColumnName);
        }

        protected override DataViewSchema.DetachedColumn[] GetOutputColumnsCore() => _parent._outputColumns;

        public override Delegate[] CreateGetters(DataViewRow input, Func<int, bool> activeOutput, out Action? disposer)
        {
            var current = CurrentReport(input); // one check per row, shared by the four getters
            var getters = new Delegate[_parent._outputColumns.Length];
            for (int i = 0; i < getters.Length; i++)
                if (activeOutput(i)) getters[i] = Getter(i, current);
            disposer = null;
            return getters;
        }

        protected override Delegate MakeGetter(DataViewRow input, int iinfo, Func<int, bool> activeOutput, out Action? disposer)
        {
            disposer = null;
            return Getter(iinfo, CurrentReport(input));
        }

        private static Delegate Getter(int index, Func<LabelErrorReport> current) => index switch
        {
            0 => (ValueGetter<VBuffer<float>>)((ref VBuffer<float> dst) => Fill(current().LabelQuality, ref dst)),
            1 => (ValueGetter<VBuffer<bool>>)((ref VBuffer<bool> dst) => Fill(current().SuspectedError, ref dst)),
            2 => (ValueGetter<float>)((ref float dst) => dst = current().ImageQualityScore),
            3 => (ValueGetter<VBuffer<byte>>)((ref VBuffer<byte> dst) => Fill(current().PredictedLabel, ref dst)),
            _ => throw new ArgumentOutOfRangeException(nameof(index)),
        };

        private Func<LabelErrorReport> CurrentReport(DataViewRow input)
        {
            var reader = new SegmentationColumns.RowReader(input, _image, _label, _parent._model.NumberOfClasses,
                _parent._model.Configuration.UnknownLabel, "input");
            long cachedPosition = -1;
            LabelErrorReport? cached = null;
            return () =>
            {
                long position = input.Position;
                if (cached is null || position != cachedPosition)
                {
                    cached = _parent.Check([reader.Read(position)])[0];
                    cachedPosition = position;
                }
                return cached;
            };
        }

        private static void Fill<T>(T[] values, ref VBuffer<T> dst)
        {
            var editor = VBufferEditor.Create(ref dst, values.Length);
            values.AsSpan().CopyTo(editor.Values);
            dst = editor.Commit();
        }

        protected override Func<int, bool> GetDependenciesCore(Func<int, bool> activeOutput)
        {
            bool any = Enumerable.Range(0, _parent._outputColumns.Length).Any(activeOutput);
            return column => any && (column == _image.Index || column == _label.Index);
        }

        protected override void SaveModel(ModelSaveContext ctx) => _parent.SaveModel(ctx);
    }
}
