using Microsoft.ML.Data;
using Microsoft.ML.LabelCompletion;
using Microsoft.ML.LabelCompletion.Data;
using Microsoft.ML.LabelCompletion.Evaluation;

namespace Microsoft.ML;

/// <summary>
/// Label-completion operations on an <see cref="MLContext"/>, reached through
/// <see cref="LabelCompletionMLContextExtensions.LabelCompletion(MLContext)"/>:
/// <c>mlContext.LabelCompletion().Evaluate(...)</c>.
/// </summary>
public sealed class LabelCompletionCatalog
{
    internal LabelCompletionCatalog(MLContext context)
    {
        Context = context;
    }

    /// <summary>The context this catalog belongs to.</summary>
    internal MLContext Context { get; }

    /// <summary>
    /// Loads a model saved with <c>mlContext.Model.Save</c>, as <c>mlContext.Model.Load(path, out inputSchema)</c> does, after
    /// checking that no zip entry declares more than 2 GiB (the size the zip's directory gives, before anything is
    /// extracted). When loading fails, the one error type is <see cref="InvalidDataException"/>: its message starts with the
    /// path and says what is wrong (not a zip or truncated, an entry too large, not an ML.NET model, written by a newer
    /// version, a model format this library does not read, a settings field out of its bounds, or content whose SHA-256
    /// does not match), and its <see cref="Exception.Data"/> holds the file under <c>"LabelCompletion.File"</c> and the zip
    /// entry or settings field at fault under <c>"LabelCompletion.Field"</c>.
    /// </summary>
    /// <remarks>
    /// Loading never runs code from the file: ML.NET instantiates only classes registered with <c>LoadableClass</c> in assemblies
    /// the application already references, and this library's loader reads a JSON settings record (bounded: see
    /// <see cref="LabelCompletionSettings"/>) and TorchSharp tensor data (names, shapes, raw bytes) whose shapes must match the
    /// network rebuilt from those settings, after both have passed their SHA-256 checks; no <c>BinaryFormatter</c> or other
    /// type-instantiating serializer is involved.
    /// </remarks>
    /// <param name="path">The model zip.</param>
    /// <param name="inputSchema">The input schema saved with the model.</param>
    /// <returns>The loaded transformer (any ML.NET model, not only label completion).</returns>
    /// <exception cref="FileNotFoundException">The file does not exist.</exception>
    /// <exception cref="InvalidDataException">The file is not a loadable model; the message starts with the path.</exception>
    public ITransformer LoadModel(string path, out DataViewSchema inputSchema)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(path);
        if (!File.Exists(path)) throw new FileNotFoundException($"{path}: the model file does not exist.", path);
        LabelCompletionModelFile.CheckArchive(path);
        try
        {
            return Context.Model.Load(path, out inputSchema);
        }
        catch (Exception e) when (e is not OutOfMemoryException)
        {
            var (problem, field) = ModelLoadProblem(e);
            throw LabelCompletionModelFile.WithFacts(new InvalidDataException($"{path}: {problem}", e), path, field);
        }
    }

    /// <summary>One sentence on why ML.NET could not load a model, from the exception chain, and the entry or field at fault.</summary>
    internal static (string Problem, string? Field) ModelLoadProblem(Exception error)
    {
        var chain = new List<Exception>();
        for (Exception? e = error; e is not null; e = e.InnerException) chain.Add(e);
        // Our own loader's messages say what is wrong in the words of this library.
        if (chain.FirstOrDefault(LabelCompletionModelFile.IsLoadError) is { } ours)
            return ("cannot load the label-completion model: " + ours.Message[LabelCompletionModelFile.LoadErrorPrefix.Length..].Trim(),
                ours.Data[LabelCompletionModelFile.FieldKey] as string);
        if (chain.FirstOrDefault(e => e is InvalidDataException && e.StackTrace?.Contains("System.IO.Compression", StringComparison.Ordinal) == true) is { } zip)
            return ($"not a readable zip file; it is truncated or corrupted ({zip.Message})", null);
        string all = string.Join(" | ", chain.Select(e => e.Message));
        if (all.Contains("too new", StringComparison.OrdinalIgnoreCase) || all.Contains("newer", StringComparison.OrdinalIgnoreCase))
            return ($"the model was saved by a newer version of its library and cannot be read by this one ({chain[^1].Message})", null);
        return ($"not a loadable ML.NET model ({chain[^1].Message})", null);
    }

    /// <summary>
    /// Evaluates completed labels against the ground truth (DESIGN.md §3): PA-mIoU over the pixels flagged in the
    /// completion-mask column whose ground truth is known, global mIoU over every pixel whose ground truth is known,
    /// pixel accuracy for both, per-class IoU and the confusion matrices, each accumulated over all rows.
    /// </summary>
    /// <param name="data">Rows with a ground-truth label column, a completed label column and a completion mask column.</param>
    /// <param name="numberOfClasses">Number of real classes <c>C</c>; label values <c>0..C-1</c> are classes.</param>
    /// <param name="labelColumnName">Ground-truth label: a vector of <see cref="byte"/>, one value per pixel (fixed or variable size).</param>
    /// <param name="completedColumnName">Completed label: a vector of <see cref="byte"/> as long as the label in every row.</param>
    /// <param name="completionMaskColumnName">Completion mask: a vector of <see cref="bool"/> as long as the label in every row,
    /// <c>true</c> where the pixel was completed (the PA region).</param>
    /// <param name="unknownLabel">The value that marks an unknown pixel; such ground-truth pixels never count.</param>
    /// <param name="classNames">Optional class names for the metrics, one per class.</param>
    /// <returns>The metrics of the whole data view.</returns>
    /// <exception cref="ArgumentOutOfRangeException">A column is missing or is not of the required type.</exception>
    /// <exception cref="InvalidOperationException">A row's vectors differ in length or hold a value that is neither a class nor unknown.</exception>
    public LabelCompletionMetrics Evaluate(IDataView data, int numberOfClasses,
        string labelColumnName = "Label", string completedColumnName = "CompletedLabel",
        string completionMaskColumnName = "CompletionMask", byte unknownLabel = 255, IReadOnlyList<string>? classNames = null)
    {
        ArgumentNullException.ThrowIfNull(data);
        ArgumentException.ThrowIfNullOrWhiteSpace(labelColumnName);
        ArgumentException.ThrowIfNullOrWhiteSpace(completedColumnName);
        ArgumentException.ThrowIfNullOrWhiteSpace(completionMaskColumnName);
        LabelMap.CheckClassCount(numberOfClasses, nameof(numberOfClasses));
        if (unknownLabel < numberOfClasses)
            throw new ArgumentOutOfRangeException(nameof(unknownLabel), unknownLabel, $"The unknown value must not be a class (0..{numberOfClasses - 1}).");
        if (classNames is not null && classNames.Count != numberOfClasses)
            throw new ArgumentException($"{classNames.Count} class names were given for {numberOfClasses} classes.", nameof(classNames));

        var labelColumn = FindVectorColumn(data.Schema, labelColumnName, NumberDataViewType.Byte, "label", nameof(labelColumnName));
        var completedColumn = FindVectorColumn(data.Schema, completedColumnName, NumberDataViewType.Byte, "completed label", nameof(completedColumnName));
        var maskColumn = FindVectorColumn(data.Schema, completionMaskColumnName, BooleanDataViewType.Instance, "completion mask", nameof(completionMaskColumnName));

        var counts = new LabelCompletionMetrics.Accumulator(numberOfClasses);
        byte[] truth = [], completed = [];
        bool[] mask = [];
        VBuffer<byte> truthBuffer = default, completedBuffer = default;
        VBuffer<bool> maskBuffer = default;

        using (var cursor = data.GetRowCursor(new[] { labelColumn, completedColumn, maskColumn }))
        {
            var getTruth = cursor.GetGetter<VBuffer<byte>>(labelColumn);
            var getCompleted = cursor.GetGetter<VBuffer<byte>>(completedColumn);
            var getMask = cursor.GetGetter<VBuffer<bool>>(maskColumn);
            long row = 0;
            while (cursor.MoveNext())
            {
                getTruth(ref truthBuffer);
                getCompleted(ref completedBuffer);
                getMask(ref maskBuffer);
                int length = truthBuffer.Length;
                if (completedBuffer.Length != length || maskBuffer.Length != length)
                    throw new InvalidOperationException(
                        $"Row {row}: column '{labelColumnName}' has {length} values, '{completedColumnName}' has {completedBuffer.Length} " +
                        $"and '{completionMaskColumnName}' has {maskBuffer.Length}; all three must describe the same pixels.");
                var truthValues = Dense(truthBuffer, ref truth);
                var completedValues = Dense(completedBuffer, ref completed);
                var maskValues = Dense(maskBuffer, ref mask);
                try
                {
                    counts.Add(truthValues, completedValues, maskValues, unknownLabel);
                }
                catch (ArgumentException e)
                {
                    string column = e.ParamName == "prediction" ? completedColumnName : labelColumnName;
                    throw new InvalidOperationException($"Row {row}, column '{column}': {StripParameter(e)}", e);
                }
                row++;
            }
        }
        return counts.ToMetrics(classNames);
    }

    private static DataViewSchema.Column FindVectorColumn(DataViewSchema schema, string name, DataViewType itemType, string role, string parameterName)
    {
        var column = schema.GetColumnOrNull(name)
            ?? throw new ArgumentOutOfRangeException(parameterName, name, $"The {role} column '{name}' was not found in the data.");
        if (column.Type is not VectorDataViewType vector || !vector.ItemType.Equals(itemType))
            throw new ArgumentOutOfRangeException(parameterName, name,
                $"The {role} column '{name}' must be a vector of {itemType.RawType.Name}, but it is {column.Type}.");
        return column;
    }

    private static ReadOnlySpan<T> Dense<T>(in VBuffer<T> buffer, ref T[] scratch)
    {
        if (buffer.IsDense) return buffer.GetValues();
        if (scratch.Length < buffer.Length) scratch = new T[buffer.Length];
        var dense = scratch.AsSpan(0, buffer.Length);
        buffer.CopyTo(dense);
        return dense;
    }

    private static string StripParameter(ArgumentException e)
    {
        string message = e.Message;
        int suffix = e.ParamName is null ? -1 : message.LastIndexOf(" (Parameter '", StringComparison.Ordinal);
        return suffix >= 0 ? message[..suffix] : message;
    }
}

/// <summary>Extension methods that attach <see cref="LabelCompletionCatalog"/> to <see cref="MLContext"/>.</summary>
public static class LabelCompletionMLContextExtensions
{
    /// <summary>The label-completion catalog of <paramref name="mlContext"/>: evaluation of completed labels.</summary>
    /// <param name="mlContext">The ML.NET context.</param>
    public static LabelCompletionCatalog LabelCompletion(this MLContext mlContext)
    {
        ArgumentNullException.ThrowIfNull(mlContext);
        return new LabelCompletionCatalog(mlContext);
    }
}
