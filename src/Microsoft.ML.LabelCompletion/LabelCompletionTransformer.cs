using System.Security.Cryptography;
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
/// one value per image pixel: a class index <c>0..C-1</c> or <see cref="LabelCompletionSettings.UnknownLabel"/>).
/// Output, appended to the input columns: the completed label map (vector of <see cref="byte"/>), the per-pixel confidence
/// (vector of <see cref="float"/>) and the completion mask (vector of <see cref="bool"/>), all in the same row-major layout.
/// </para>
/// <para>
/// <see cref="Transform(IDataView)"/> is lazy: rows are read and completed only when a cursor asks for an output column,
/// <see cref="LabelCompletionSettings.InferenceBatchSize"/> rows at a time, never the whole data set at once. Patches are
/// masked by the Mask Selector chosen in <see cref="LabelCompletionSettings.MaskSelector"/>; the <c>Random</c> selector is
/// seeded by <see cref="LabelCompletionSettings.MaskSeed"/> and the row's position, so it is reproducible per row. A masked
/// patch is hidden from every input the network reads (label, label prior, directional planes) and all its pixels take the
/// network's prediction, as unknown pixels do; the completion mask marks exactly those pixels. With the <c>Background</c>
/// or <c>Random</c> selector on a complete label this re-predicts known labels, so <c>Evaluate(Transform(data))</c>
/// measures the model.
/// </para>
/// <para>
/// <c>mlContext.Model.Save</c> stores every option (<see cref="LabelCompletionSettings"/>, one JSON entry
/// <c>LmaeSettings</c>) and the weights (entry <c>LmaeWeights</c>) inside the standard ML.NET zip, each checked with SHA-256
/// on load; <c>mlContext.Model.Load</c> checks the settings' bounds and both hashes before it builds the network, and
/// restores a transformer whose output is bit-identical on the same device. A file that fails a check raises an
/// <see cref="InvalidDataException"/> naming the entry or settings field (inside ML.NET's own exception;
/// <c>mlContext.LabelCompletion().LoadModel</c> throws it directly, naming the file too). The network runs on the device
/// selected by <c>MLContext.GpuDeviceId</c> and <c>MLContext.FallbackToCpu</c> of the context that trained or loaded it.
/// </para>
/// </remarks>
public sealed class LabelCompletionTransformer : RowToRowTransformerBase, ITransformer, IDisposable
{
    internal const string UserName = "Label Completion (L-MAE) Transform";
    internal const string LoaderSignature = "LabelCompletionXf";
    internal const string ModelSignature = "LBLCOMPL";
    internal const string WeightsEntryName = LabelCompletionModelFile.WeightsEntryName;

    /// <summary>Version of the saved layout (<see cref="LabelCompletionModelFile"/>).</summary>
    internal const int FormatVersion = LabelCompletionModelFile.FormatVersion;

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
        _options = options.Clone();
        _options.ValidationSet = null;
        // The options describe the network this model holds (preset resolved): what is saved, and what Options returns.
        engine.Config.ApplyTo(_options);
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
    /// <see cref="LabelCompletionOptions.ValidationSet"/> is not kept). The network fields hold the network's explicit values
    /// (the <see cref="LabelCompletionSettings.ModelSize"/> preset resolved). After loading, the cancellation token is none.
    /// </summary>
    public LabelCompletionOptions Options => _options.Clone();

    /// <summary>Number of real classes <c>C</c> the model completes.</summary>
    public int NumberOfClasses => _engine.Config.NumberOfClasses;

    /// <summary>The resolved network configuration (what is saved with the weights to rebuild the network).</summary>
    internal LmaeConfig Configuration => _engine.Config;

    /// <summary>The TorchSharp device the network runs on, as text (<c>cpu</c> or <c>cuda:N</c>).</summary>
    public string Device => _engine.Device.ToString();

    internal LabelCompletionEngine Engine => _engine;

    /// <summary>The version of this library that saved the model this transformer was loaded from; null for a model trained in this process.</summary>
    public string? SavedByLibraryVersion { get; private init; }

    /// <summary>Class names, one per class, when the options gave them (<see cref="LabelCompletionSettings.ClassNames"/>); else null.</summary>
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
    /// <param name="label">Its label map (same size), unknown pixels holding <see cref="LabelCompletionSettings.UnknownLabel"/>.</param>
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
    /// the windows of all of them share the network's forwards (8 windows each, sorted by how many patches they see), which
    /// takes less time per image than one <see cref="Complete(RgbImage, LabelMap)"/> call per image (docs/decisions.md, Speed).
    /// Each result equals that image's single-image completion up to float rounding (the window logits are summed in
    /// another order).
    /// </summary>
    /// <param name="rows">The images and their label maps (same size each; unknown pixels holding
    /// <see cref="LabelCompletionSettings.UnknownLabel"/>). A row that is not valid is named by its index in the error.</param>
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
        // The Unknown selector masks a patch for its unknown pixels: its known pixels stay the user's labels.
        var results = _engine.Complete(batch, masks, _options.CancellationToken, precision: _options.Precision,
            keepKnownLabels: _options.MaskSelector == MaskSelectorMode.Unknown);
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
            verWrittenCur: 0x00010004, // 0x00010004: settings as one JSON entry (LabelCompletionModelFile); 1-3 were hand-written binary.
            verReadableCur: 0x00010004,
            verWeCanReadBack: 0x00010001, // older models reach Create, which refuses them with a message that says what to do
            loaderSignature: LoaderSignature,
            loaderAssemblyName: typeof(LabelCompletionTransformer).Assembly.FullName);

    /// <summary>Writes the model into an ML.NET model context (called by <c>mlContext.Model.Save</c>); layout: <see cref="LabelCompletionModelFile"/>.</summary>
    protected override void SaveModel(ModelSaveContext ctx)
    {
        Host.CheckValue(ctx, nameof(ctx));
        ThrowIfDisposed();
        ctx.CheckAtModel();
        ctx.SetVersionInfo(GetVersionInfo());

        byte[]? weightsHash = null;
        long weightsBytes = 0;
        ctx.SaveBinaryStream(WeightsEntryName, writer =>
        {
            using var hashing = new HashingStream(writer.BaseStream, writing: true);
            using (var hashingWriter = new BinaryWriter(hashing, System.Text.Encoding.UTF8, leaveOpen: true))
            {
                _engine.SaveWeights(hashingWriter);
                hashingWriter.Flush();
            }
            weightsBytes = hashing.BytesHashed;
            weightsHash = hashing.Finish();
        });
        Host.Check(weightsHash is not null && weightsHash.Length == LabelCompletionModelFile.HashLength, "The weights stream was not written.");

        byte[] settings = LabelCompletionModelFile.Serialize(_options, weightsBytes, weightsHash!);
        ctx.SaveBinaryStream(LabelCompletionModelFile.SettingsEntryName, writer => writer.Write(settings));

        ctx.Writer.Write(FormatVersion);
        ctx.Writer.Write((long)settings.Length);
        ctx.Writer.Write(SHA256.HashData(settings));
    }

    /// <summary>
    /// Reads a model written by <see cref="SaveModel"/> (the <see cref="SignatureLoadModel"/> factory): every check of
    /// <see cref="LabelCompletionModelFile"/> passes before the network is built.
    /// </summary>
    /// <exception cref="InvalidDataException">The model cannot be loaded; the message names the entry or field.</exception>
    private static LabelCompletionTransformer Create(IHostEnvironment env, ModelLoadContext ctx)
    {
        Contracts.CheckValue(env, nameof(env));
        var host = env.Register(nameof(LabelCompletionTransformer));
        host.CheckValue(ctx, nameof(ctx));
        ctx.CheckAtModel(GetVersionInfo());

        var r = ctx.Reader;
        int format = ReadHeader(() => r.ReadInt32());
        if (format > FormatVersion)
            throw LabelCompletionModelFile.Error($"format version {format} was written by a newer version of this library (this one, {LibraryInfo.Version}, reads format {FormatVersion}); update Microsoft.ML.LabelCompletion.", "Format");
        if (format >= 1 && format < LabelCompletionModelFile.OldestFormatVersion)
            throw LabelCompletionModelFile.Error($"model format {format} is not supported by this library (version {LibraryInfo.Version} reads formats {LabelCompletionModelFile.OldestFormatVersion}-{FormatVersion}); retrain the model with this library, or load it with the version that saved it.", "Format");
        if (format < LabelCompletionModelFile.OldestFormatVersion)
            throw LabelCompletionModelFile.Error($"format version {format} is not valid; the model data is corrupted.", "Format");
        long settingsBytes = ReadHeader(() => r.ReadInt64());
        byte[] settingsHash = ReadHeader(() => r.ReadBytes(LabelCompletionModelFile.HashLength));
        if (settingsHash.Length != LabelCompletionModelFile.HashLength)
            throw LabelCompletionModelFile.Error("the model header is truncated.", "Model.key");
        if (settingsBytes < 1 || settingsBytes > LabelCompletionModelFile.MaxSettingsBytes)
            throw LabelCompletionModelFile.Error($"the header gives the settings {settingsBytes} bytes (1 to {LabelCompletionModelFile.MaxSettingsBytes} allowed); the model data is corrupted.", LabelCompletionModelFile.SettingsEntryName);

        // The settings: size from the zip's directory before extraction, then the bytes, their SHA-256, the JSON, the bounds.
        CheckDeclaredLength(ctx, LabelCompletionModelFile.SettingsEntryName, settingsBytes);
        byte[]? settingsJson = null;
        ctx.TryLoadBinaryStream(LabelCompletionModelFile.SettingsEntryName, reader => settingsJson = reader.ReadBytes((int)settingsBytes));
        if (settingsJson is null || settingsJson.Length != settingsBytes)
            throw LabelCompletionModelFile.Error($"the '{LabelCompletionModelFile.SettingsEntryName}' entry is truncated ({settingsJson?.Length ?? 0} of {settingsBytes} bytes).", LabelCompletionModelFile.SettingsEntryName);
        if (!SHA256.HashData(settingsJson).AsSpan().SequenceEqual(settingsHash))
            throw LabelCompletionModelFile.Error($"the '{LabelCompletionModelFile.SettingsEntryName}' entry is corrupted (its SHA-256 does not match the model header).", LabelCompletionModelFile.SettingsEntryName);
        var saved = LabelCompletionModelFile.Parse(settingsJson, format);
        var config = LmaeConfig.Resolve(saved.Settings);

        // The weights: size against the settings, the cap and the network's smallest size; SHA-256 over the whole entry.
        long weightsBytes = saved.Weights.Bytes;
        const string weights = WeightsEntryName;
        if (weightsBytes < 1 || weightsBytes > LabelCompletionModelFile.MaxWeightsBytes)
            throw LabelCompletionModelFile.Error($"the settings give the weights {weightsBytes} bytes (1 to {LabelCompletionModelFile.MaxWeightsBytes} allowed).", "Weights.Bytes");
        if (weightsBytes < config.MinimumWeightBytes)
            throw LabelCompletionModelFile.Error($"the settings describe a network of at least {config.MinimumWeightBytes} bytes of weights (encoder {config.EncoderDimension}x{config.EncoderDepth}, decoder {config.DecoderDimension}x{config.DecoderDepth}) but the weights take {weightsBytes}.", "Weights.Bytes");
        byte[] expectedHash;
        try
        {
            expectedHash = Convert.FromHexString(saved.Weights.Sha256);
        }
        catch (FormatException)
        {
            expectedHash = [];
        }
        if (expectedHash.Length != LabelCompletionModelFile.HashLength)
            throw LabelCompletionModelFile.Error("the weights' SHA-256 in the settings is not 64 hexadecimal digits.", "Weights.Sha256");
        CheckDeclaredLength(ctx, weights, weightsBytes);
        byte[]? hashed = null;
        ctx.TryLoadBinaryStream(weights, reader =>
        {
            using var hashing = new HashingStream(reader.BaseStream, writing: false);
            hashed = hashing.Finish();
            if (hashing.BytesHashed != weightsBytes) hashed = [];
        });
        if (hashed is null || !hashed.AsSpan().SequenceEqual(expectedHash))
            throw LabelCompletionModelFile.Error($"the '{weights}' entry is corrupted (its SHA-256 does not match the {weightsBytes} bytes that were saved).", weights);

        // Only now: the network, its tensors and the weights read into them (hashed again as they are read).
        var device = TorchDeviceSelector.Select(env, null);
        LabelCompletionEngine? engine = null;
        byte[]? readHash = null;
        Exception? readError = null;
        ctx.TryLoadBinaryStream(weights, reader =>
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
            readHash = hashing.Finish();
        });
        if (readError is not null || engine is null || readHash is null || !readHash.AsSpan().SequenceEqual(expectedHash))
        {
            engine?.Dispose();
            throw LabelCompletionModelFile.Error(readError is null
                ? $"the '{weights}' entry changed while it was read."
                : $"the '{weights}' entry does not fit the network its settings describe: {readError.Message}", weights, readError);
        }
        try
        {
            return new LabelCompletionTransformer(env, engine, saved.Settings, ownsEngine: true) { SavedByLibraryVersion = saved.SavedBy };
        }
        catch
        {
            engine.Dispose();
            throw;
        }
    }

    /// <summary>Reads a field of the model header, turning a short header into the load error.</summary>
    private static T ReadHeader<T>(Func<T> read)
    {
        try
        {
            return read();
        }
        catch (EndOfStreamException e)
        {
            throw LabelCompletionModelFile.Error("the model header is truncated.", "Model.key", e);
        }
    }

    /// <summary>Checks the size the zip declares for an entry before the entry is opened (and extracted by ML.NET).</summary>
    private static void CheckDeclaredLength(ModelLoadContext ctx, string name, long expected)
    {
        long? declared = LabelCompletionModelFile.DeclaredLength(ctx.Repository, ctx.Directory, name);
        if (declared is null)
            throw LabelCompletionModelFile.Error($"the model has no '{name}' entry; the file is incomplete or was not written by this library.", name);
        if (declared != expected)
            throw LabelCompletionModelFile.Error($"the '{name}' entry declares {declared} bytes but the model records {expected}; the file was altered.", name);
    }

    /// <summary>The <see cref="SignatureLoadRowMapper"/> factory: the per-row mapper of a saved model.</summary>
    private static IRowMapper Create(IHostEnvironment env, ModelLoadContext ctx, DataViewSchema inputSchema)
        => Create(env, ctx).MakeRowMapper(inputSchema);

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
    /// <see cref="LabelCompletionSettings.InferenceBatchSize"/> rows at once (the pattern of ML.NET's batching data views).
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
