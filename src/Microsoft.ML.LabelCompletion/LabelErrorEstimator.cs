using Microsoft.ML.Data;
using Microsoft.ML.LabelCompletion.Internal;
using Microsoft.ML.Runtime;

namespace Microsoft.ML.LabelCompletion;

/// <summary>
/// Finds likely label errors with a trained L-MAE; made by
/// <see cref="LabelCompletionTransformsCatalog.FindLabelErrors(TransformsCatalog, LabelCompletionTransformer, LabelErrorOptions?)"/>.
/// <see cref="Fit(IDataView)"/> trains nothing: it checks the columns and returns a <see cref="LabelErrorTransformer"/> that
/// shares the trained model's network.
/// </summary>
public sealed class LabelErrorEstimator : IEstimator<LabelErrorTransformer>
{
    private readonly IHostEnvironment _env;
    private readonly IHost _host;
    private readonly LabelCompletionTransformer _model;
    private readonly LabelErrorOptions _options;

    internal LabelErrorEstimator(IHostEnvironment env, LabelCompletionTransformer model, LabelErrorOptions? options)
    {
        Contracts.CheckValue(env, nameof(env));
        _env = env;
        _host = env.Register(nameof(LabelErrorEstimator));
        _host.CheckValue(model, nameof(model));
        _model = model;
        _options = (options ?? new LabelErrorOptions()).Clone();
        Validate(_host, _options);
    }

    /// <summary>Returns the transformer (no training); checks that <paramref name="input"/> has the image and label columns.</summary>
    /// <param name="input">Data with the image and label columns.</param>
    public LabelErrorTransformer Fit(IDataView input)
    {
        _host.CheckValue(input, nameof(input));
        SegmentationColumns.Check(_host, input.Schema, _options.ImageColumnName, _options.LabelColumnName);
        return new LabelErrorTransformer(_env, _model, _options);
    }

    /// <summary>The input's columns plus LabelQuality (vector of Single), SuspectedError (vector of Boolean),
    /// ImageQualityScore (Single) and PredictedLabel (vector of Byte), under the names of the options.</summary>
    /// <param name="inputSchema">The shape of the input.</param>
    public SchemaShape GetOutputSchema(SchemaShape inputSchema)
    {
        _host.CheckValue(inputSchema, nameof(inputSchema));
        SegmentationColumns.Check(_host, inputSchema, _options.ImageColumnName, _options.LabelColumnName);
        var columns = inputSchema.ToDictionary(c => c.Name);
        void Add(string name, SchemaShape.Column.VectorKind kind, DataViewType type)
            => columns[name] = new SchemaShape.Column(name, kind, type, false);
        Add(_options.LabelQualityColumnName, SchemaShape.Column.VectorKind.VariableVector, NumberDataViewType.Single);
        Add(_options.SuspectedErrorColumnName, SchemaShape.Column.VectorKind.VariableVector, BooleanDataViewType.Instance);
        Add(_options.ImageQualityScoreColumnName, SchemaShape.Column.VectorKind.Scalar, NumberDataViewType.Single);
        Add(_options.PredictedLabelColumnName, SchemaShape.Column.VectorKind.VariableVector, NumberDataViewType.Byte);
        return new SchemaShape(columns.Values);
    }

    internal static void Validate(IExceptionContext ectx, LabelErrorOptions o)
    {
        void Require(bool condition, string field, string message)
        {
            if (!condition) throw ectx.ExceptParam(field, $"LabelErrorOptions.{field}: {message}");
        }

        Require(o.NumberOfFolds >= 2, nameof(o.NumberOfFolds), $"must be at least 2 (one fold would hide the whole label); it is {o.NumberOfFolds}.");
        Require(o.ConfidenceThreshold > 0 && o.ConfidenceThreshold <= 1, nameof(o.ConfidenceThreshold), $"must be in (0, 1]; it is {o.ConfidenceThreshold}.");
        Require(o.Temperature > 0 && float.IsFinite(o.Temperature), nameof(o.Temperature), $"must be positive; it is {o.Temperature}.");
        var names = new[]
        {
            (nameof(o.ImageColumnName), o.ImageColumnName), (nameof(o.LabelColumnName), o.LabelColumnName),
            (nameof(o.LabelQualityColumnName), o.LabelQualityColumnName), (nameof(o.SuspectedErrorColumnName), o.SuspectedErrorColumnName),
            (nameof(o.ImageQualityScoreColumnName), o.ImageQualityScoreColumnName), (nameof(o.PredictedLabelColumnName), o.PredictedLabelColumnName),
        };
        foreach (var (field, value) in names) Require(!string.IsNullOrWhiteSpace(value), field, "a column name is required.");
        var outputs = names.Skip(2).Select(n => n.Item2).ToArray();
        Require(outputs.Distinct(StringComparer.Ordinal).Count() == outputs.Length, nameof(o.LabelQualityColumnName),
            $"the four output columns need distinct names ({string.Join(", ", outputs.Select(n => $"'{n}'"))}).");
    }
}
