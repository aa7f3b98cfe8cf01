using System.Reflection;
using Microsoft.ML;
using Microsoft.ML.Data;
using Microsoft.ML.LabelCompletion;
using Microsoft.ML.LabelCompletion.Data;
using Microsoft.ML.LabelCompletion.Internal;
using Microsoft.ML.LabelCompletion.Model;
using Microsoft.ML.Runtime;

[assembly: LoadableClass(typeof(LabelCompletionTransformer), null, typeof(SignatureLoadModel),
    LabelCompletionTransformer.UserName, LabelCompletionTransformer.LoaderSignature)]

[assembly: LoadableClass(typeof(IRowMapper), typeof(LabelCompletionTransformer), null, typeof(SignatureLoadRowMapper),
    LabelCompletionTransformer.UserName, LabelCompletionTransformer.LoaderSignature)]

namespace Microsoft.ML.LabelCompletion;

/// <summary>
/// A trained Label Mask AutoEncoder (L-MAE) that completes partially annotated label maps: made by
/// <see cref="LabelCompletionEstimator.Fit(IDataView)"/> or loaded with <c>mlContext.Model.Load</c>.
/// </summary>
/// <remarks>
/// <para>
/// Input: the image column (<see cref="MLImage"/>) and the label column (vector of <see cref="byte"/>, row-major,
/// one value per image pixel: a class index <c>0..C-1</c> or <see cref="LabelCompletionOptions.UnknownLabel"/>).
/// Output, appended to the input columns: the completed label map (vector of <see cref="byte"/>), the per-pixel confidence
/// (vector of <see cref="float"/>) and the completion mask (vector of <see cref="bool"/>), all in the same row-major layout.
/// </para>
/// <para>
/// <see cref="Transform(IDataView)"/> is lazy: rows are read and completed only when a cursor asks for an output column,
/// <see cref="LabelCompletionOptions.InferenceBatchSize"/> rows at a time, never the whole data set at once. Patches are
/// masked by the Mask Selector chosen in <see cref="LabelCompletionOptions.MaskSelector"/>; the <c>Random</c> selector is
/// seeded by <see cref="LabelCompletionOptions.MaskSeed"/> and the row's position, so it is reproducible per row. A masked
/// patch is hidden from every input the network reads (label, label prior, directional planes) and all its pixels take the
/// network's prediction, as unknown pixels do; the completion mask marks exactly those pixels. With the <c>Background</c>
/// or <c>Random</c> selector on a complete label this re-predicts known labels, so <c>Evaluate(Transform(data))</c>
/// measures the model.
/// </para>
/// <para>
/// <c>mlContext.Model.Save</c> stores the network configuration, every option and the weights inside the standard ML.NET
/// zip (entry <c>LmaeWeights</c>, checked with SHA-256 on load); <c>mlContext.Model.Load</c> restores a transformer whose
/// output is bit-identical on the same device. The network runs on the device selected by <c>MLContext.GpuDeviceId</c>
/// and <c>MLContext.FallbackToCpu</c> of the context that trained or loaded it.
/// </para>
/// </remarks>
public sealed class LabelCompletionTransformer : RowToRowTransformerBase, ITransformer, IDisposable
{
    internal const string UserName = "Label Completion (L-MAE) Transform";
    internal const string LoaderSignature = "LabelCompletionXf";
    internal const string ModelSignature = "LBLCOMPL";
    internal const string WeightsEntryName = "LmaeWeights";

    /// <summary>Version of the saved layout (the <c>Binary format</c> below); bump it, and keep reading the old ones, when it changes.</summary>
    internal const int FormatVersion = 3;

    private const int HashLength = 32;

    private readonly LabelCompletionEngine _engine;
    private readonly LabelCompletionOptions _options;
    private readonly bool _ownsEngine;
    private readonly DataViewSchema.DetachedColumn[] _outputColumns;
    private bool _disposed;

    internal LabelCompletionTransformer(IHostEnvironment env, LabelCompletionEngine engine, LabelCompletionOptions options, bool ownsEngine)
        : base(Contracts.CheckRef(env, nameof(env)).Register(nameof(LabelCompletionTransformer)))
    {
        Host.CheckValue(engine, nameof(engine));
        Host.CheckValue(options, nameof(options));
        if (options.NumberOfClasses != engine.Config.NumberOfClasses)
            throw Host.ExceptParam(nameof(options),
                $"Label completion: the options say {options.NumberOfClasses} classes but the model was trained for {engine.Config.NumberOfClasses}.");
        if (options.UnknownLabel != engine.Config.UnknownLabel)
            throw Host.ExceptParam(nameof(options),
                $"Label completion: the options' unknown label is {options.UnknownLabel} but the model was trained with {engine.Config.UnknownLabel}.");
        _engine = engine;
        _options = LabelCompletionEstimator.CopyOptions(options);
        _options.ValidationSet = null;
        _ownsEngine = ownsEngine;
        _outputColumns = new[]
        {
            new DataViewSchema.DetachedColumn(_options.OutputColumnName, new VectorDataViewType(NumberDataViewType.Byte)),
            new DataViewSchema.DetachedColumn(_options.ConfidenceColumnName, new VectorDataViewType(NumberDataViewType.Single)),
            new DataViewSchema.DetachedColumn(_options.CompletionMaskColumnName, new VectorDataViewType(BooleanDataViewType.Instance)),
        };
    }

    /// <summary>
    /// The options the model was trained with and the inference options <see cref="Transform(IDataView)"/> uses (a copy;
    /// <see cref="LabelCompletionOptions.ValidationSet"/> is not kept). After loading, the cancellation token is none.
    /// </summary>
    public LabelCompletionOptions Options => LabelCompletionEstimator.CopyOptions(_options);

    /// <summary>Number of real classes <c>C</c> the model completes.</summary>
    public int NumberOfClasses => _engine.Config.NumberOfClasses;

    /// <summary>The resolved network configuration (what is saved with the weights to rebuild the network).</summary>
    public LmaeConfig Configuration => _engine.Config;

    /// <summary>The TorchSharp device the network runs on, as text (<c>cpu</c> or <c>cuda:N</c>).</summary>
    public string Device => _engine.Device.ToString();

    internal LabelCompletionEngine Engine => _engine;

    /// <summary>
    /// The version of this library that saved the model this transformer was loaded from; null for a model trained in this
    /// process or loaded from a file of format version 1 (which did not record it).
    /// </summary>
    public string? SavedByLibraryVersion { get; private init; }

    /// <summary>Class names, one per class, when the options gave them (<see cref="LabelCompletionOptions.ClassNames"/>); else null.</summary>
    public IReadOnlyList<string>? ClassNames => _options.ClassNames is { } names ? Array.AsReadOnly(names) : null;

    /// <summary>
    /// Completes the label maps of <paramref name="input"/> lazily (see the class remarks); the output has the input's columns
    /// and the completed label, confidence and completion mask columns.
    /// </summary>
    /// <param name="input">Data with the image and label columns named in <see cref="Options"/>.</param>
    /// <returns>A data view computed on demand, batching rows internally.</returns>
    public new IDataView Transform(IDataView input)
    {
        Host.CheckValue(input, nameof(input));
        ThrowIfDisposed();
        var (image, label) = SegmentationColumns.Check(Host, input.Schema, _options.ImageColumnName, _options.LabelColumnName);
        return new CompletedDataView(this, input, image, label);
    }

    IDataView ITransformer.Transform(IDataView input) => Transform(input);

    /// <summary>
    /// Completes one label map (the same computation as <see cref="Transform(IDataView)"/> for a single row at position 0).
    /// </summary>
    /// <param name="image">The RGB image.</param>
    /// <param name="label">Its label map (same size), unknown pixels holding <see cref="LabelCompletionOptions.UnknownLabel"/>.</param>
    /// <returns>The completed label map, the per-pixel confidence and the completion mask.</returns>
    public CompletionResult Complete(RgbImage image, LabelMap label)
    {
        ArgumentNullException.ThrowIfNull(image);
        ArgumentNullException.ThrowIfNull(label);
        ThrowIfDisposed();
        return CompleteBatch([Checked(image, label, "image", "label", nameof(label))], [0])[0];
    }

    /// <summary>
    /// Completes several label maps in one call, as <see cref="Transform(IDataView)"/> does for rows at positions 0, 1, …:
    /// the windows of all of them share the network's forwards (8 windows each, sorted by how many patches they see), a
    /// little faster than one <see cref="Complete(RgbImage, LabelMap)"/> call per image (16 synthetic 480x360
    /// images in calls of 8 on the 2-core development VM: 299-323 against 327-345 ms per image in four alternating rounds).
    /// Each result equals that image's single-image completion up to float rounding (the window logits are summed in
    /// another order).
    /// </summary>
    /// <param name="rows">The images and their label maps (same size each; unknown pixels holding
    /// <see cref="LabelCompletionOptions.UnknownLabel"/>). A row that is not valid is named by its index in the error.</param>
    /// <returns>One result per row, in order.</returns>
    public IReadOnlyList<CompletionResult> Complete(IReadOnlyList<(RgbImage Image, LabelMap Label)> rows)
    {
        ArgumentNullException.ThrowIfNull(rows);
        ThrowIfDisposed();
        if (rows.Count == 0) return [];
        var batch = rows.Select((row, i) =>
        {
            if (row.Image is null || row.Label is null)
                throw new ArgumentException($"Row {i}: the image and the label map must not be null.", nameof(rows));
            return Checked(row.Image, row.Label, $"row {i}: image", $"row {i}: label", nameof(rows));
        }).ToArray();
        return CompleteBatch(batch, Enumerable.Range(0, rows.Count).Select(i => (long)i).ToArray());
    }

    /// <summary>Validates one image and its label map (sizes, class values) and pairs them for the engine.</summary>
    private SegmentationExample Checked(RgbImage image, LabelMap label, string imageSource, string labelSource, string parameter)
    {
        image.Validate(imageSource);
        if (label.Width != image.Width || label.Height != image.Height)
            throw new ArgumentException($"{labelSource}: the label map is {label.Width}x{label.Height} but the image is {image.Width}x{image.Height}.", parameter);
        label.Validate(NumberOfClasses, _options.UnknownLabel, labelSource);
        return new SegmentationExample(image, label, imageSource);
    }

    /// <summary>Releases the network's tensors (shared networks are released by the transformer that trained or loaded them).</summary>
    public void Dispose()
    {
        if (_disposed) return;
        _disposed = true;
        if (_ownsEngine) _engine.Dispose();
    }

    /// <summary>The same network with other inference settings (used by the estimator built on a trained model).</summary>
    internal LabelCompletionTransformer WithOptions(IHostEnvironment env, LabelCompletionOptions options)
        => new LabelCompletionTransformer(env, _engine, options, ownsEngine: false);

    private void ThrowIfDisposed() => ObjectDisposedException.ThrowIf(_disposed, this);

    /// <summary>Chooses each row's patch mask with the configured Mask Selector and runs the network on the batch.</summary>
    private IReadOnlyList<CompletionResult> CompleteBatch(IReadOnlyList<SegmentationExample> batch, IReadOnlyList<long> positions)
    {
        ThrowIfDisposed();
        int patch = _engine.Config.PatchSize;
        var masks = new bool[batch.Count][];
        for (int i = 0; i < batch.Count; i++)
        {
            var label = batch[i].Label;
            masks[i] = _options.MaskSelector switch
            {
                MaskSelectorMode.Unknown => MaskSelector.Unknown(label, patch, _options.UnknownLabel),
                MaskSelectorMode.Background => MaskSelector.Background(label, patch, _options.BackgroundClass, _options.InferenceMaskRatio),
                MaskSelectorMode.Random => RandomMask(label, patch, positions[i]),
                _ => throw new InvalidOperationException($"Unknown mask selector {_options.MaskSelector}."),
            };
        }
        var results = _engine.Complete(batch, masks, _options.CancellationToken, precision: _options.Precision);
        if (results.Count != batch.Count)
            throw new InvalidOperationException($"The network returned {results.Count} results for {batch.Count} images.");
        for (int i = 0; i < results.Count; i++)
        {
            int pixels = batch[i].Label.Values.Length;
            if (results[i].Completed.Values.Length != pixels || results[i].Confidence.Length != pixels || results[i].CompletionMask.Length != pixels)
                throw new InvalidOperationException($"{batch[i].Source}: the network returned outputs of the wrong size.");
        }
        return results;
    }

    private bool[] RandomMask(LabelMap label, int patch, long position)
    {
        var (rows, columns) = MaskSelector.Grid(label.Width, label.Height, patch);
        return MaskSelector.RandomForEvaluation(rows * columns, _options.InferenceMaskRatio, _options.MaskSeed, position);
    }

    private static Delegate MakeOutputGetter(int outputIndex, Func<CompletionResult> current)
        => outputIndex switch
        {
            0 => (ValueGetter<VBuffer<byte>>)((ref VBuffer<byte> dst) => Fill(current().Completed.Values, ref dst)),
            1 => (ValueGetter<VBuffer<float>>)((ref VBuffer<float> dst) => Fill(current().Confidence, ref dst)),
            2 => (ValueGetter<VBuffer<bool>>)((ref VBuffer<bool> dst) => Fill(current().CompletionMask, ref dst)),
            _ => throw new ArgumentOutOfRangeException(nameof(outputIndex)),
        };

    private static void Fill<T>(T[] values, ref VBuffer<T> dst)
    {
        var editor = VBufferEditor.Create(ref dst, values.Length);
        values.AsSpan().CopyTo(editor.Values);
        dst = editor.Commit();
    }

    // ------------------------------------------------------------------ persistence

    private static VersionInfo GetVersionInfo()
        => new VersionInfo(
            modelSignature: ModelSignature,
            verWrittenCur: 0x00010003, // 0x00010001 initial: LmaeConfig, options, SHA-256 checked weights.
                                       // 0x00010002 adds library version, class names, palette and the checkpoint options.
                                       // 0x00010003 adds the precision (FP32 or bf16 autocast).
            verReadableCur: 0x00010003,
            verWeCanReadBack: 0x00010001,
            loaderSignature: LoaderSignature,
            loaderAssemblyName: typeof(LabelCompletionTransformer).Assembly.FullName);

    /// <summary>Writes the model into an ML.NET model context (called by <c>mlContext.Model.Save</c>).</summary>
    protected override void SaveModel(ModelSaveContext ctx)
    {
        Host.CheckValue(ctx, nameof(ctx));
        ThrowIfDisposed();
        ctx.CheckAtModel();
        ctx.SetVersionInfo(GetVersionInfo());

        // *** Binary format ***
        // int: format version (FormatVersion)
        // LmaeConfig:
        //   int: number of classes C; byte: unknown label; int: patch size; int: training size;
        //   int: encoder width, depth, heads; int: decoder width, depth, heads; int: MLP ratio; int: activation;
        //   bool: image patch supplement; int: label prior mode; float: window overlap; int: pixel refinement channels;
        //   (format version 2 and later) bool: directional prior
        // int: string id of the image, label, output, confidence and completion-mask column names (5 ids)
        // inference options:
        //   int: mask selector; float: inference mask ratio; byte: background class; int: mask seed; int: inference batch size
        // training options (as given, for provenance and Options after loading):
        //   int: model size; 7 x (bool has value, int value): patch size, encoder width, depth, heads, decoder width, depth, heads;
        //   int: MLP ratio; int: activation; bool: image patch supplement; int: label prior; float: mask ratio; int: epochs;
        //   int: batch size; double: learning rate; double: weight decay; int: training size; int: class weighting;
        //   int: loss region; bool: augment; int: LR patience; double: LR factor; double: LR threshold;
        //   int: early-stopping patience; (bool, int): seed; (bool, int): number of threads; float: window overlap;
        //   int: pixel refinement channels; (format version 2 and later) bool: directional prior; (bool, long): training time
        //   limit in ticks
        // binary stream "LmaeWeights": the network's weights (LabelCompletionEngine.SaveWeights, TorchSharp state dict)
        // long: byte length of the weights stream
        // byte[32]: SHA-256 of the weights stream
        // format version 2 and later:
        //   string: version of the library that saved the model
        //   int: number of class names (-1: none), then that many strings
        //   int: palette length in bytes (-1: none; else 3 x C: R, G, B per class), then those bytes
        //   (bool, string): checkpoint directory; int: checkpoint every steps; bool: resume from checkpoint
        //   (format version 3 and later) int: precision
        //   byte[32]: SHA-256 of the settings (ContentHash: the configuration, every option and the weights' SHA-256), so a
        //             changed byte anywhere in the settings fails the load instead of silently changing the model's behaviour
        var w = ctx.Writer;
        w.Write(FormatVersion);

        var c = _engine.Config;
        w.Write(c.NumberOfClasses);
        w.Write(c.UnknownLabel);
        w.Write(c.PatchSize);
        w.Write(c.TrainingSize);
        w.Write(c.EncoderDimension);
        w.Write(c.EncoderDepth);
        w.Write(c.EncoderHeads);
        w.Write(c.DecoderDimension);
        w.Write(c.DecoderDepth);
        w.Write(c.DecoderHeads);
        w.Write(c.MlpRatio);
        w.Write((int)c.Activation);
        w.Write(c.UseImagePatchSupplement);
        w.Write((int)c.LabelPrior);
        w.Write(c.WindowOverlap);
        w.Write(c.RefinementChannels);
        w.Write(c.DirectionalPrior);

        var o = _options;
        ctx.SaveNonEmptyString(o.ImageColumnName);
        ctx.SaveNonEmptyString(o.LabelColumnName);
        ctx.SaveNonEmptyString(o.OutputColumnName);
        ctx.SaveNonEmptyString(o.ConfidenceColumnName);
        ctx.SaveNonEmptyString(o.CompletionMaskColumnName);

        w.Write((int)o.MaskSelector);
        w.Write(o.InferenceMaskRatio);
        w.Write(o.BackgroundClass);
        w.Write(o.MaskSeed);
        w.Write(o.InferenceBatchSize);

        w.Write((int)o.ModelSize);
        WriteNullable(w, o.PatchSize);
        WriteNullable(w, o.EncoderEmbeddingDimension);
        WriteNullable(w, o.EncoderDepth);
        WriteNullable(w, o.EncoderHeads);
        WriteNullable(w, o.DecoderEmbeddingDimension);
        WriteNullable(w, o.DecoderDepth);
        WriteNullable(w, o.DecoderHeads);
        w.Write(o.MlpRatio);
        w.Write((int)o.Activation);
        w.Write(o.UseImagePatchSupplement);
        w.Write((int)o.LabelPrior);
        w.Write(o.MaskRatio);
        w.Write(o.Epochs);
        w.Write(o.BatchSize);
        w.Write(o.LearningRate);
        w.Write(o.WeightDecay);
        w.Write(o.TrainingSize);
        w.Write((int)o.ClassWeighting);
        w.Write((int)o.LossRegion);
        w.Write(o.Augment);
        w.Write(o.LearningRatePatience);
        w.Write(o.LearningRateFactor);
        w.Write(o.LearningRateThreshold);
        w.Write(o.EarlyStoppingPatience);
        WriteNullable(w, o.Seed);
        WriteNullable(w, o.NumberOfThreads);
        w.Write(o.WindowOverlap);
        w.Write(o.PixelRefinementChannels);
        w.Write(o.DirectionalPrior);
        w.Write(o.TrainingTimeLimit.HasValue);
        w.Write(o.TrainingTimeLimit?.Ticks ?? 0L);

        byte[]? hash = null;
        long length = 0;
        ctx.SaveBinaryStream(WeightsEntryName, writer =>
        {
            using var hashing = new HashingStream(writer.BaseStream, writing: true);
            using (var hashingWriter = new BinaryWriter(hashing, System.Text.Encoding.UTF8, leaveOpen: true))
            {
                _engine.SaveWeights(hashingWriter);
                hashingWriter.Flush();
            }
            length = hashing.BytesHashed;
            hash = hashing.Finish();
        });
        Host.Check(hash is not null && hash.Length == HashLength, "The weights stream was not written.");
        w.Write(length);
        w.Write(hash!);

        w.Write(LibraryInfo.Version);
        w.Write(o.ClassNames?.Length ?? -1);
        foreach (var name in o.ClassNames ?? []) w.Write(name);
        w.Write(o.Palette?.Length ?? -1);
        if (o.Palette is not null) w.Write(o.Palette);
        w.Write(o.CheckpointDirectory is not null);
        w.Write(o.CheckpointDirectory ?? "");
        w.Write(o.CheckpointEverySteps);
        w.Write(o.ResumeFromCheckpoint);
        w.Write((int)o.Precision);
        w.Write(ContentHash(c, o, hash!));
    }

    /// <summary>
    /// SHA-256 of what the model's behaviour depends on besides the weights' bytes: the configuration, every public option
    /// (except the validation set and the cancellation token, which are never saved) and the weights' own SHA-256.
    /// </summary>
    private static byte[] ContentHash(LmaeConfig config, LabelCompletionOptions options, byte[] weightsHash)
    {
        var text = new System.Text.StringBuilder();
        text.Append(config).Append('\n');
        foreach (var field in typeof(LabelCompletionOptions).GetFields(BindingFlags.Public | BindingFlags.Instance).OrderBy(f => f.Name, StringComparer.Ordinal))
        {
            if (field.Name is nameof(LabelCompletionOptions.ValidationSet) or nameof(LabelCompletionOptions.CancellationToken)) continue;
            // Added in format 3: left out at FP32 so that the hashes of format-2 models (all FP32) still match.
            if (field.Name == nameof(LabelCompletionOptions.Precision) && options.Precision == LabelCompletionPrecision.Float32) continue;
            object? value = field.GetValue(options);
            string shown = value switch
            {
                null => "null",
                string[] names => "[" + string.Join(",", names.Select(n => n.Length + ":" + n)) + "]",
                byte[] bytes => Convert.ToHexString(bytes),
                float f => BitConverter.SingleToInt32Bits(f).ToString(System.Globalization.CultureInfo.InvariantCulture),
                double d => BitConverter.DoubleToInt64Bits(d).ToString(System.Globalization.CultureInfo.InvariantCulture),
                IFormattable formattable => formattable.ToString(null, System.Globalization.CultureInfo.InvariantCulture),
                _ => value.ToString() ?? "",
            };
            text.Append(field.Name).Append('=').Append(shown).Append('\n');
        }
        text.Append(Convert.ToHexString(weightsHash));
        return System.Security.Cryptography.SHA256.HashData(System.Text.Encoding.UTF8.GetBytes(text.ToString()));
    }

    /// <summary>Reads a model written by <see cref="SaveModel"/> (the <see cref="SignatureLoadModel"/> factory).</summary>
    private static LabelCompletionTransformer Create(IHostEnvironment env, ModelLoadContext ctx)
    {
        Contracts.CheckValue(env, nameof(env));
        var host = env.Register(nameof(LabelCompletionTransformer));
        host.CheckValue(ctx, nameof(ctx));
        ctx.CheckAtModel(GetVersionInfo());

        // *** Binary format ***
        // (see SaveModel)
        var r = ctx.Reader;
        int format = r.ReadInt32();
        if (format > FormatVersion)
            throw host.ExceptDecode($"Label completion model: format version {format} was written by a newer version of this library (this one, {LibraryInfo.Version}, reads versions 1 to {FormatVersion}); update Microsoft.ML.LabelCompletion.");
        if (format < 1)
            throw host.ExceptDecode($"Label completion model: format version {format} is not valid; the model data is corrupted.");

        var config = new LmaeConfig(
            NumberOfClasses: r.ReadInt32(),
            UnknownLabel: r.ReadByte(),
            PatchSize: r.ReadInt32(),
            TrainingSize: r.ReadInt32(),
            EncoderDimension: r.ReadInt32(),
            EncoderDepth: r.ReadInt32(),
            EncoderHeads: r.ReadInt32(),
            DecoderDimension: r.ReadInt32(),
            DecoderDepth: r.ReadInt32(),
            DecoderHeads: r.ReadInt32(),
            MlpRatio: r.ReadInt32(),
            Activation: ReadEnum<TransformerActivation>(host, r),
            UseImagePatchSupplement: r.ReadBoolean(),
            LabelPrior: ReadEnum<LabelPriorMode>(host, r),
            WindowOverlap: r.ReadSingle(),
            RefinementChannels: r.ReadInt32(),
            DirectionalPrior: format >= 2 && r.ReadBoolean());
        host.CheckDecode(config.NumberOfClasses > 0 && config.NumberOfClasses <= 256, "Label completion model: the class count is out of range.");
        host.CheckDecode(config.PatchSize > 0 && config.TrainingSize > 0, "Label completion model: the patch or training size is not positive.");

        var o = new LabelCompletionOptions
        {
            NumberOfClasses = config.NumberOfClasses,
            UnknownLabel = config.UnknownLabel,
            ImageColumnName = ctx.LoadNonEmptyString(),
            LabelColumnName = ctx.LoadNonEmptyString(),
            OutputColumnName = ctx.LoadNonEmptyString(),
            ConfidenceColumnName = ctx.LoadNonEmptyString(),
            CompletionMaskColumnName = ctx.LoadNonEmptyString(),
            MaskSelector = ReadEnum<MaskSelectorMode>(host, r),
            InferenceMaskRatio = r.ReadSingle(),
            BackgroundClass = r.ReadByte(),
            MaskSeed = r.ReadInt32(),
            InferenceBatchSize = r.ReadInt32(),
            ModelSize = ReadEnum<LabelCompletionModelSize>(host, r),
            PatchSize = ReadNullable(r),
            EncoderEmbeddingDimension = ReadNullable(r),
            EncoderDepth = ReadNullable(r),
            EncoderHeads = ReadNullable(r),
            DecoderEmbeddingDimension = ReadNullable(r),
            DecoderDepth = ReadNullable(r),
            DecoderHeads = ReadNullable(r),
            MlpRatio = r.ReadInt32(),
            Activation = ReadEnum<TransformerActivation>(host, r),
            UseImagePatchSupplement = r.ReadBoolean(),
            LabelPrior = ReadEnum<LabelPriorMode>(host, r),
            MaskRatio = r.ReadSingle(),
            Epochs = r.ReadInt32(),
            BatchSize = r.ReadInt32(),
            LearningRate = r.ReadDouble(),
            WeightDecay = r.ReadDouble(),
            TrainingSize = r.ReadInt32(),
            ClassWeighting = ReadEnum<ClassWeighting>(host, r),
            LossRegion = ReadEnum<LossRegion>(host, r),
            Augment = r.ReadBoolean(),
            LearningRatePatience = r.ReadInt32(),
            LearningRateFactor = r.ReadDouble(),
            LearningRateThreshold = r.ReadDouble(),
            EarlyStoppingPatience = r.ReadInt32(),
            Seed = ReadNullable(r),
            NumberOfThreads = ReadNullable(r),
            WindowOverlap = r.ReadSingle(),
            PixelRefinementChannels = r.ReadInt32(),
            DirectionalPrior = format >= 2 && r.ReadBoolean(),
            TrainingTimeLimit = format >= 2 ? ReadTimeSpan(r) : null,
        };
        host.CheckDecode(o.InferenceBatchSize > 0, "Label completion model: the inference batch size is not positive.");

        var device = TorchDeviceSelector.Select(env, null);
        LabelCompletionEngine? engine = null;
        byte[]? actualHash = null;
        long actualLength = 0;
        Exception? readError = null;
        bool found = ctx.TryLoadBinaryStream(WeightsEntryName, reader =>
        {
            using var hashing = new HashingStream(reader.BaseStream, writing: false);
            try
            {
                using var hashingReader = new BinaryReader(hashing, System.Text.Encoding.UTF8, leaveOpen: true);
                engine = LabelCompletionEngine.Load(config, hashingReader, device);
            }
            catch (Exception e) when (e is not OutOfMemoryException)
            {
                readError = e;
            }
            actualHash = hashing.Finish();
            actualLength = hashing.BytesHashed;
        });
        if (!found)
            throw host.ExceptDecode($"Label completion model: the model has no '{WeightsEntryName}' entry; the file is incomplete or was not written by this library.");

        long expectedLength = r.ReadInt64();
        byte[] expectedHash = r.ReadBytes(HashLength);
        if (expectedHash.Length != HashLength || actualLength != expectedLength || !expectedHash.AsSpan().SequenceEqual(actualHash))
        {
            engine?.Dispose();
            throw host.ExceptDecode(
                $"Label completion model: the '{WeightsEntryName}' entry is corrupted ({actualLength} bytes whose SHA-256 does not match the {expectedLength} bytes that were saved).");
        }
        if (readError is not null || engine is null)
            throw host.ExceptDecode($"Label completion model: the '{WeightsEntryName}' entry could not be read: {readError?.Message}");

        string? savedBy = null;
        o.Precision = LabelCompletionPrecision.Float32; // what models before format 3 computed in (format 3 records it)
        try
        {
            if (format >= 2)
            {
                savedBy = r.ReadString();
                int names = r.ReadInt32();
                host.CheckDecode(names == -1 || names == config.NumberOfClasses,
                    $"Label completion model: {names} class names for {config.NumberOfClasses} classes.");
                if (names >= 0)
                {
                    o.ClassNames = new string[names];
                    for (int i = 0; i < names; i++) o.ClassNames[i] = r.ReadString();
                }
                int palette = r.ReadInt32();
                host.CheckDecode(palette == -1 || palette == 3 * config.NumberOfClasses,
                    $"Label completion model: a palette of {palette} bytes for {config.NumberOfClasses} classes.");
                if (palette >= 0) o.Palette = r.ReadBytes(palette);
                host.CheckDecode(o.Palette is null || o.Palette.Length == palette, "Label completion model: the palette is truncated.");
                bool hasDirectory = r.ReadBoolean();
                string directory = r.ReadString();
                o.CheckpointDirectory = hasDirectory ? directory : null;
                o.CheckpointEverySteps = r.ReadInt32();
                o.ResumeFromCheckpoint = r.ReadBoolean();
                if (format >= 3) o.Precision = ReadEnum<LabelCompletionPrecision>(host, r);
                byte[] savedHash = r.ReadBytes(HashLength);
                host.CheckDecode(savedHash.AsSpan().SequenceEqual(ContentHash(config, o, expectedHash)),
                    "Label completion model: the model's settings are corrupted (their SHA-256 does not match what was saved).");
            }
        }
        catch
        {
            engine.Dispose();
            throw;
        }

        return new LabelCompletionTransformer(env, engine, o, ownsEngine: true) { SavedByLibraryVersion = savedBy };
    }

    /// <summary>The <see cref="SignatureLoadRowMapper"/> factory: the per-row mapper of a saved model.</summary>
    private static IRowMapper Create(IHostEnvironment env, ModelLoadContext ctx, DataViewSchema inputSchema)
        => Create(env, ctx).MakeRowMapper(inputSchema);

    private static void WriteNullable(BinaryWriter w, int? value)
    {
        w.Write(value.HasValue);
        w.Write(value ?? 0);
    }

    private static TimeSpan? ReadTimeSpan(BinaryReader reader)
    {
        bool has = reader.ReadBoolean();
        long ticks = reader.ReadInt64();
        return has ? TimeSpan.FromTicks(ticks) : null;
    }

    private static int? ReadNullable(BinaryReader r)
    {
        bool has = r.ReadBoolean();
        int value = r.ReadInt32();
        return has ? value : null;
    }

    private static TEnum ReadEnum<TEnum>(IHost host, BinaryReader r) where TEnum : struct, Enum
    {
        int value = r.ReadInt32();
        var e = (TEnum)Enum.ToObject(typeof(TEnum), value);
        host.CheckDecode(Enum.IsDefined(e), $"Label completion model: {value} is not a valid {typeof(TEnum).Name}.");
        return e;
    }

    // ------------------------------------------------------------------ row mapper (PredictionEngine, GetRowToRowMapper)

    /// <summary>Makes the per-row mapper (used by <c>PredictionEngine</c> and <c>GetRowToRowMapper</c>).</summary>
    protected override IRowMapper MakeRowMapper(DataViewSchema schema) => new Mapper(this, schema);

    /// <summary>Completes one row at a time: the path of <c>PredictionEngine</c>, where rows arrive one by one.</summary>
    private sealed class Mapper : MapperBase
    {
        private readonly LabelCompletionTransformer _parent;
        private readonly DataViewSchema.Column _image;
        private readonly DataViewSchema.Column _label;

        public Mapper(LabelCompletionTransformer parent, DataViewSchema inputSchema)
            : base(parent.Host.Register(nameof(Mapper)), inputSchema, parent)
        {
            _parent = parent;
            (_image, _label) = SegmentationColumns.Check(Host, inputSchema, parent._options.ImageColumnName, parent._options.LabelColumnName);
        }

        protected override DataViewSchema.DetachedColumn[] GetOutputColumnsCore() => _parent._outputColumns;

        public override Delegate[] CreateGetters(DataViewRow input, Func<int, bool> activeOutput, out Action? disposer)
        {
            // One completion per row, shared by the three output getters.
            var current = CurrentRowCompletion(input);
            var getters = new Delegate[_parent._outputColumns.Length];
            for (int i = 0; i < getters.Length; i++)
                if (activeOutput(i)) getters[i] = MakeOutputGetter(i, current);
            disposer = null;
            return getters;
        }

        protected override Delegate MakeGetter(DataViewRow input, int iinfo, Func<int, bool> activeOutput, out Action? disposer)
        {
            disposer = null;
            return MakeOutputGetter(iinfo, CurrentRowCompletion(input));
        }

        private Func<CompletionResult> CurrentRowCompletion(DataViewRow input)
        {
            var reader = new SegmentationColumns.RowReader(input, _image, _label, _parent.NumberOfClasses, _parent._options.UnknownLabel, "input");
            long cachedPosition = -1;
            CompletionResult? cached = null;
            return () =>
            {
                long position = input.Position;
                if (cached is null || position != cachedPosition)
                {
                    var example = reader.Read(position);
                    cached = _parent.CompleteBatch(new[] { example }, new[] { position })[0];
                    cachedPosition = position;
                }
                return cached;
            };
        }

        protected override Func<int, bool> GetDependenciesCore(Func<int, bool> activeOutput)
        {
            bool any = Enumerable.Range(0, _parent._outputColumns.Length).Any(activeOutput);
            return column => any && (column == _image.Index || column == _label.Index);
        }

        protected override void SaveModel(ModelSaveContext ctx) => _parent.SaveModel(ctx);
    }

    // ------------------------------------------------------------------ batched, lazy data view (Transform)

    /// <summary>
    /// The output of <see cref="Transform(IDataView)"/>: the input's columns followed by the three output columns. Each cursor
    /// runs a second, look-ahead cursor over the input's image and label columns, in step with the first, to complete
    /// <see cref="LabelCompletionOptions.InferenceBatchSize"/> rows at once (the pattern of ML.NET's batching data views).
    /// </summary>
    private sealed class CompletedDataView : IDataView
    {
        private readonly LabelCompletionTransformer _parent;
        private readonly IDataView _input;
        private readonly DataViewSchema.Column _image;
        private readonly DataViewSchema.Column _label;

        public CompletedDataView(LabelCompletionTransformer parent, IDataView input, DataViewSchema.Column image, DataViewSchema.Column label)
        {
            _parent = parent;
            _input = input;
            _image = image;
            _label = label;
            var builder = new DataViewSchema.Builder();
            builder.AddColumns(input.Schema);
            foreach (var column in parent._outputColumns)
                builder.AddColumn(column.Name, column.Type, column.Annotations);
            Schema = builder.ToSchema();
        }

        public bool CanShuffle => false;

        public DataViewSchema Schema { get; }

        public long? GetRowCount() => _input.GetRowCount();

        public DataViewRowCursor GetRowCursor(IEnumerable<DataViewSchema.Column> columnsNeeded, Random? rand = null)
        {
            var active = new bool[Schema.Count];
            foreach (var column in columnsNeeded)
            {
                if (column.Index < 0 || column.Index >= Schema.Count || Schema[column.Index].Name != column.Name)
                    throw new ArgumentException($"Column '{column.Name}' does not belong to this data view's schema.", nameof(columnsNeeded));
                active[column.Index] = true;
            }
            int inputCount = _input.Schema.Count;
            var inputColumns = _input.Schema.Where(c => active[c.Index]);
            // Shuffling is not offered (CanShuffle is false): the look-ahead cursor must see the rows in the same order.
            var cursor = _input.GetRowCursor(inputColumns);
            return new Cursor(this, cursor, active, inputCount);
        }

        public DataViewRowCursor[] GetRowCursorSet(IEnumerable<DataViewSchema.Column> columnsNeeded, int n, Random? rand = null)
            => new[] { GetRowCursor(columnsNeeded, rand) };

        private sealed class Cursor : DataViewRowCursor
        {
            private readonly CompletedDataView _view;
            private readonly DataViewRowCursor _input;
            private readonly bool[] _active;
            private readonly int _inputCount;
            private readonly Delegate?[] _outputGetters;
            private DataViewRowCursor? _lookAhead;
            private SegmentationColumns.RowReader? _reader;
            private IReadOnlyList<CompletionResult> _batch = Array.Empty<CompletionResult>();
            private long _batchStart = -1;
            private bool _disposed;

            public Cursor(CompletedDataView view, DataViewRowCursor input, bool[] active, int inputCount)
            {
                _view = view;
                _input = input;
                _active = active;
                _inputCount = inputCount;
                _outputGetters = new Delegate?[active.Length - inputCount];
                for (int i = 0; i < _outputGetters.Length; i++)
                    if (active[inputCount + i]) _outputGetters[i] = MakeOutputGetter(i, Current);
            }

            public override DataViewSchema Schema => _view.Schema;

            public override long Position => _input.Position;

            public override long Batch => _input.Batch;

            public override ValueGetter<DataViewRowId> GetIdGetter() => _input.GetIdGetter();

            public override bool IsColumnActive(DataViewSchema.Column column) => _active[column.Index];

            public override ValueGetter<TValue> GetGetter<TValue>(DataViewSchema.Column column)
            {
                if (column.Index < 0 || column.Index >= _active.Length || !_active[column.Index])
                    throw new InvalidOperationException($"Column '{column.Name}' is not active in this cursor.");
                if (column.Index < _inputCount)
                    return _input.GetGetter<TValue>(_input.Schema[column.Index]);
                var getter = _outputGetters[column.Index - _inputCount]!;
                return getter as ValueGetter<TValue>
                    ?? throw new InvalidOperationException(
                        $"Column '{column.Name}' holds {getter.GetType().GetGenericArguments()[0]}, not {typeof(TValue)}.");
            }

            public override bool MoveNext() => !_disposed && _input.MoveNext();

            /// <summary>The completion of the row the cursor is on, computing the batch that starts there when needed.</summary>
            private CompletionResult Current()
            {
                long position = _input.Position;
                if (position < 0)
                    throw new InvalidOperationException("The cursor is not on a row.");
                if (position < _batchStart || position >= _batchStart + _batch.Count)
                    CompleteBatchAt(position);
                return _batch[(int)(position - _batchStart)];
            }

            private void CompleteBatchAt(long position)
            {
                var parent = _view._parent;
                if (_lookAhead is null)
                {
                    _lookAhead = _view._input.GetRowCursor(new[] { _view._image, _view._label });
                    _reader = new SegmentationColumns.RowReader(_lookAhead, _view._image, _view._label,
                        parent.NumberOfClasses, parent._options.UnknownLabel, "input");
                }
                while (_lookAhead.Position < position)
                {
                    if (!_lookAhead.MoveNext())
                        throw new InvalidOperationException(
                            $"The input data ended at row {_lookAhead.Position} on a second cursor while the first is at row {position}: it must yield the same rows to every cursor.");
                }
                if (_lookAhead.Position != position)
                    throw new InvalidOperationException($"Internal error: the look-ahead cursor is at row {_lookAhead.Position}, past row {position}.");
                CheckSameRow();

                int size = parent._options.InferenceBatchSize;
                var examples = new List<SegmentationExample>(size);
                var positions = new List<long>(size);
                do
                {
                    examples.Add(_reader!.Read(_lookAhead.Position));
                    positions.Add(_lookAhead.Position);
                }
                while (examples.Count < size && _lookAhead.MoveNext());

                _batch = parent.CompleteBatch(examples, positions);
                _batchStart = position;
            }

            private void CheckSameRow()
            {
                DataViewRowId main = default, ahead = default;
                _input.GetIdGetter()(ref main);
                _lookAhead!.GetIdGetter()(ref ahead);
                if (!main.Equals(ahead))
                    throw new InvalidOperationException(
                        $"The input data yields different rows to two cursors (row {_input.Position}): label completion needs a data view that enumerates deterministically.");
            }

            protected override void Dispose(bool disposing)
            {
                if (_disposed) return;
                if (disposing)
                {
                    _input.Dispose();
                    _lookAhead?.Dispose();
                }
                _disposed = true;
                base.Dispose(disposing);
            }
        }
    }
}
