using System.Globalization;
using System.Reflection;
using Microsoft.ML.Data;
using Microsoft.ML.LabelCompletion.Evaluation;
using Microsoft.ML.LabelCompletion.Internal;
using Microsoft.ML.LabelCompletion.Model;
using Microsoft.ML.Runtime;

namespace Microsoft.ML.LabelCompletion;

/// <summary>
/// Trains a Label Mask AutoEncoder (L-MAE) that completes partially annotated segmentation labels; made by
/// <see cref="LabelCompletionTransformsCatalog.CompleteLabels(TransformsCatalog, LabelCompletionOptions)"/>.
/// </summary>
/// <remarks>
/// <para>
/// Input columns: <see cref="LabelCompletionSettings.ImageColumnName"/>, an image (<see cref="MLImage"/>, as made by
/// <c>mlContext.Transforms.LoadImages</c> or the segmentation loader), and <see cref="LabelCompletionSettings.LabelColumnName"/>,
/// a vector of <see cref="byte"/> with one value per image pixel, row-major (height x width), holding a class index
/// <c>0..C-1</c> or <see cref="LabelCompletionSettings.UnknownLabel"/>. Output columns: see <see cref="LabelCompletionTransformer"/>.
/// </para>
/// <para>
/// <see cref="Fit(IDataView)"/> streams the training data once per epoch (it is never loaded whole), trains on the device
/// chosen by <c>MLContext.GpuDeviceId</c> / <c>MLContext.FallbackToCpu</c>, seeds from <see cref="LabelCompletionSettings.Seed"/>
/// or else the <c>MLContext</c>'s seed (0 when it has none), reports progress as <see cref="TrainingProgress"/> records to
/// <see cref="LabelCompletionOptions.Progress"/>, through ML.NET's progress channel and to <c>MLContext.Log</c> (per step at
/// trace level; per epoch loss, images/s, learning rate and validation metrics at info level; numbers in invariant culture),
/// and stops before the next step when <see cref="LabelCompletionOptions.CancellationToken"/> is cancelled. With
/// <see cref="LabelCompletionSettings.CheckpointDirectory"/> it writes checkpoints (also on cancellation) and, with
/// <see cref="LabelCompletionSettings.ResumeFromCheckpoint"/>, continues from the latest valid one.
/// </para>
/// </remarks>
public sealed class LabelCompletionEstimator : IEstimator<LabelCompletionTransformer>
{
    private readonly IHostEnvironment _env;
    private readonly IHost _host;
    private readonly LabelCompletionOptions _options;
    private readonly LabelCompletionTransformer? _trainedModel;

    internal LabelCompletionEstimator(IHostEnvironment env, LabelCompletionOptions options, LabelCompletionTransformer? trainedModel = null)
    {
        Contracts.CheckValue(env, nameof(env));
        _env = env;
        _host = env.Register(nameof(LabelCompletionEstimator));
        _host.CheckValue(options, nameof(options));
        _options = options.Clone();
        Validate(_host, _options);
        _trainedModel = trainedModel;
    }

    /// <summary>The options this estimator trains with (a copy).</summary>
    public LabelCompletionOptions Options => _options.Clone();

    /// <summary>
    /// Trains the L-MAE on <paramref name="input"/> (or, for an estimator built on a trained model, returns that model with
    /// this estimator's inference options without training).
    /// </summary>
    /// <param name="input">Training data with the image and label columns.</param>
    /// <returns>The trained transformer.</returns>
    /// <exception cref="OperationCanceledException">Training was cancelled.</exception>
    /// <exception cref="InvalidOperationException">A GPU was requested, none is usable and <c>MLContext.FallbackToCpu</c> is false.</exception>
    public LabelCompletionTransformer Fit(IDataView input)
    {
        _host.CheckValue(input, nameof(input));
        var (image, label) = SegmentationColumns.Check(_host, input.Schema, _options.ImageColumnName, _options.LabelColumnName);
        if (_trainedModel is not null)
        {
            CheckCompatible(_trainedModel);
            return _trainedModel.WithOptions(_env, _options);
        }

        DataViewSchema.Column? validationImage = null, validationLabel = null;
        if (_options.ValidationSet is { } validationSet)
            (validationImage, validationLabel) = SegmentationColumns.Check(_host, validationSet.Schema, _options.ImageColumnName, _options.LabelColumnName);

        const string activity = "Training label completion (L-MAE)";
        using var ch = _host.Start(activity);
        using var pch = _host.StartProgressChannel(activity);
        _host.CheckAlive();

        var device = TorchDeviceSelector.Select(_env, ch);
        int seed = _options.Seed ?? (_env as IHostEnvironmentInternal)?.Seed ?? 0;
        var config = LmaeConfig.FromOptions(_options);
        ch.Info($"Training L-MAE for {_options.NumberOfClasses} classes on {device}: {_options.Epochs} epochs, batch {_options.BatchSize}, "
            + $"patch {config.PatchSize}, encoder {config.EncoderDimension}x{config.EncoderDepth}, decoder {config.DecoderDimension}x{config.DecoderDepth}, seed {seed}.");

        TrainingProgress? latest = null;
        pch.SetHeader(new ProgressHeader(new[] { "Loss", "Images/s", "Learning rate" }, new[] { "epoch", "step" }), entry =>
        {
            var p = Volatile.Read(ref latest);
            if (p is null) return;
            entry.SetProgress(0, p.Epoch - 1, p.Epochs);
            if (p.StepsPerEpoch is int steps) entry.SetProgress(1, p.Step, steps);
            else entry.SetProgress(1, p.Step);
            entry.SetMetric(0, p.Loss);
            entry.SetMetric(1, p.ImagesPerSecond);
            entry.SetMetric(2, p.LearningRate);
        });

        using var cancellation = CancellationTokenSource.CreateLinkedTokenSource(_options.CancellationToken);
        var cancelable = _host as ICancelable;
        void Report(TrainingProgress p)
        {
            Volatile.Write(ref latest, p);
            var invariant = CultureInfo.InvariantCulture;
            if (p.EndOfEpoch)
            {
                string validation = p.ValidationLoss is double vl ? string.Create(invariant, $", validation loss {vl:G5}") : "";
                if (p.ValidationPaMiou is double pa) validation += string.Create(invariant, $", validation PA-mIoU {pa:F2}");
                ch.Info(string.Create(invariant,
                    $"Epoch {p.Epoch}/{p.Epochs}: loss {p.Loss:G5}, {p.ImagesPerSecond:F1} images/s, learning rate {p.LearningRate:G3}{validation}."));
                pch.Checkpoint(p.Loss, p.ValidationLoss, p.ValidationPaMiou, p.Epoch);
            }
            else
            {
                string steps = p.StepsPerEpoch is int s ? $"/{s}" : "";
                ch.Trace(string.Create(invariant, $"Epoch {p.Epoch}/{p.Epochs}, step {p.Step}{steps}: loss {p.Loss:G5}, {p.ImagesPerSecond:F1} images/s."));
            }
            _options.Progress?.Report(p);
            // ML.NET's own cancellation (the environment's CancelExecution) stops training before the next step too.
            if (cancelable?.IsCanceled == true) cancellation.Cancel();
        }

        var train = ReadExamples(input, image, label, "training data");
        var validationExamples = _options.ValidationSet is { } v ? ReadExamples(v, validationImage!.Value, validationLabel!.Value, "validation data") : null;
        var engine = LabelCompletionEngine.Train(train, validationExamples, _options, seed, device, Report, cancellation.Token,
            validationScore: crops => SegmentationConfusionMatrix.MeanIntersectionOverUnionOf(crops, _options.NumberOfClasses, _options.UnknownLabel));
        try
        {
            foreach (var rejected in engine.RejectedCheckpoints) ch.Warning($"Skipped an invalid checkpoint: {rejected}");
            if (engine.ResumedFrom is { } from) ch.Info($"Resumed training from {from}.");
            ch.Info("Training done.");
            return new LabelCompletionTransformer(_env, engine, _options, ownsEngine: true);
        }
        catch
        {
            engine.Dispose();
            throw;
        }
    }

    /// <summary>
    /// The schema after the transform: the input's columns and the completed label (vector of Byte), confidence (vector of Single)
    /// and completion mask (vector of Boolean) columns. Checks that the image and label columns exist with the right types and,
    /// for an estimator built on a trained model, that the options agree with the model.
    /// </summary>
    /// <param name="inputSchema">The shape of the input.</param>
    /// <returns>The shape of the output.</returns>
    public SchemaShape GetOutputSchema(SchemaShape inputSchema)
    {
        _host.CheckValue(inputSchema, nameof(inputSchema));
        SegmentationColumns.Check(_host, inputSchema, _options.ImageColumnName, _options.LabelColumnName);
        if (_trainedModel is not null)
            CheckCompatible(_trainedModel);
        var columns = inputSchema.ToDictionary(c => c.Name);
        columns[_options.OutputColumnName] = new SchemaShape.Column(_options.OutputColumnName, SchemaShape.Column.VectorKind.VariableVector,
            NumberDataViewType.Byte, false);
        columns[_options.ConfidenceColumnName] = new SchemaShape.Column(_options.ConfidenceColumnName, SchemaShape.Column.VectorKind.VariableVector,
            NumberDataViewType.Single, false);
        columns[_options.CompletionMaskColumnName] = new SchemaShape.Column(_options.CompletionMaskColumnName, SchemaShape.Column.VectorKind.VariableVector,
            BooleanDataViewType.Instance, false);
        return new SchemaShape(columns.Values);
    }

    private void CheckCompatible(LabelCompletionTransformer model)
    {
        if (_options.NumberOfClasses != model.NumberOfClasses)
            throw _host.ExceptParam(nameof(LabelCompletionOptions.NumberOfClasses),
                $"Label completion: the options say {_options.NumberOfClasses} classes but the trained model completes {model.NumberOfClasses}; "
                + "use the model's class count.");
        if (_options.UnknownLabel != model.Configuration.UnknownLabel)
            throw _host.ExceptParam(nameof(LabelCompletionOptions.UnknownLabel),
                $"Label completion: the options' unknown label is {_options.UnknownLabel} but the trained model uses {model.Configuration.UnknownLabel}.");
    }

    private static IEnumerable<SegmentationExample> ReadExamples(IDataView data, DataViewSchema.Column image, DataViewSchema.Column label, string name,
        int numberOfClasses, byte unknownLabel)
    {
        using var cursor = data.GetRowCursor(new[] { image, label });
        var reader = new SegmentationColumns.RowReader(cursor, image, label, numberOfClasses, unknownLabel, name);
        while (cursor.MoveNext())
            yield return reader.Read(cursor.Position);
    }

    private IEnumerable<SegmentationExample> ReadExamples(IDataView data, DataViewSchema.Column image, DataViewSchema.Column label, string name)
        => ReadExamples(data, image, label, name, _options.NumberOfClasses, _options.UnknownLabel);

    /// <summary>Checks every option against its bounds (<see cref="LabelCompletionSettings.Validate"/>, the check model loading uses too).</summary>
    /// <exception cref="ArgumentOutOfRangeException">An option is out of its bounds; the error names it.</exception>
    internal static void Validate(IExceptionContext ectx, LabelCompletionOptions o)
    {
        ectx.CheckValue(o, nameof(o));
        o.Validate();
    }
}
