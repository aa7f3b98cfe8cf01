using Microsoft.ML.Data;
using Microsoft.ML.LabelCompletion.Data;

namespace Microsoft.ML.LabelCompletion.Cli;

/// <summary>Saving and loading L-MAE model zips with plain <c>mlContext.Model.Save/Load</c>, with errors a user can act on.</summary>
internal static class ModelFiles
{
    /// <summary>Loads <paramref name="path"/> and returns its label-completion transformer.</summary>
    /// <remarks>
    /// Loads through <c>mlContext.LabelCompletion().LoadModel</c>: entry sizes are capped before extraction, and the model's
    /// settings are bounded and its hashes checked before the network is built (LabelCompletionModelFile).
    /// </remarks>
    /// <exception cref="CliException">The file is missing, is not an ML.NET model zip, fails a check, or holds another kind of model.</exception>
    public static LabelCompletionTransformer Load(MLContext ml, string path)
    {
        if (string.IsNullOrWhiteSpace(path)) throw new CliException("--model is empty.");
        if (Directory.Exists(path)) throw new CliException($"the model '{path}' is a folder; give the model zip written by 'lmae train'.");
        if (!File.Exists(path)) throw new CliException($"the model file '{path}' does not exist.");
        ITransformer loaded;
        try
        {
            loaded = ml.LabelCompletion().LoadModel(path, out _);
        }
        catch (InvalidDataException e)
        {
            // The message starts with the path and names the entry or settings field at fault.
            throw new CliException($"'{path}' is not an L-MAE model zip: {DataSets.FirstLine(e.Message[(path.Length + 2)..])}", e);
        }
        switch (loaded)
        {
            case LabelCompletionTransformer model:
                return model;
            case TransformerChain<ITransformer> chain when chain.Count() == 1 && chain.LastTransformer is LabelCompletionTransformer only:
                return only;
            default:
                (loaded as IDisposable)?.Dispose();
                throw new CliException($"'{path}' is an ML.NET model but not an L-MAE label-completion model (it holds {Describe(loaded)}).");
        }
    }

    /// <summary>
    /// Saves <paramref name="model"/> to <paramref name="path"/> atomically and durably (a temporary file in the same folder,
    /// flushed to the disk, renamed, the folder flushed: <see cref="SegmentationFiles.WriteAtomically"/>), so the checkpoints
    /// may be deleted once it returns.
    /// </summary>
    public static void Save(MLContext ml, ITransformer model, DataViewSchema inputSchema, string path)
        => SegmentationFiles.WriteAtomically(path, stream => ml.Model.Save(model, inputSchema, stream));

    private static string Describe(ITransformer transformer) => transformer is TransformerChain<ITransformer> chain
        ? $"a chain of {string.Join(", ", chain.Select(t => t.GetType().Name))}"
        : transformer.GetType().Name;
}
