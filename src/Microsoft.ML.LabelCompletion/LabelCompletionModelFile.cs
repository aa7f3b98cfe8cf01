using System.IO.Compression;
using System.Reflection;
using System.Text.Json;
using Microsoft.ML.LabelCompletion.Internal;
using Microsoft.ML.LabelCompletion.Model;

namespace Microsoft.ML.LabelCompletion;

/// <summary>
/// The layout of a saved label-completion model inside the ML.NET model zip, its one settings serializer and its caps.
/// </summary>
/// <remarks>
/// <para>Entries written by <see cref="LabelCompletionTransformer"/> (in the transformer's folder of the zip):</para>
/// <code>
/// Model.key      ML.NET's header (signature LBLCOMPL, version 0x00010004), then: int format version (4);
///                long byte length of LmaeSettings; byte[32] SHA-256 of LmaeSettings
/// LmaeSettings   UTF-8 JSON, this class's serializer: { "Format": 4, "SavedBy": library version,
///                "Weights": { "Bytes": length, "Sha256": hex }, "Settings": { every field of LabelCompletionSettings } }
///                (network fields explicit, enums by name)
/// LmaeWeights    the network's weights (TorchSharp state dict, LabelCompletionEngine.SaveWeights)
/// </code>
/// <para>
/// Loading checks, in this order and before any tensor exists: the format version; the settings entry's size (from the
/// zip's directory, before it is extracted) against the header and <see cref="MaxSettingsBytes"/>; its SHA-256; the JSON;
/// every field's bounds (<see cref="LabelCompletionSettings.Validate"/>); the weights entry's size against the settings,
/// <see cref="MaxWeightsBytes"/> and the smallest size the described network can have
/// (<see cref="LmaeConfig.MinimumWeightBytes"/>); the weights' SHA-256. Only then is the network built and its weights read
/// (and hashed again as they are read).
/// </para>
/// </remarks>
internal static class LabelCompletionModelFile
{
    /// <summary>
    /// The layout version written by this library. Format 4 (the same layout, before <see cref="LabelCompletionSettings.ImageFeatures"/>
    /// existed) is read with image features off; formats 1-3, hand-written binary, are refused.
    /// </summary>
    public const int FormatVersion = 5;

    /// <summary>The oldest format read: 4.</summary>
    public const int OldestFormatVersion = 4;

    /// <summary>Zip entry of the settings (JSON).</summary>
    public const string SettingsEntryName = "LmaeSettings";

    /// <summary>Zip entry of the weights.</summary>
    public const string WeightsEntryName = "LmaeWeights";

    /// <summary>Cap of the settings entry: 1 MiB (a model with 255 class names of 1024 characters stays far below).</summary>
    public const long MaxSettingsBytes = 1L << 20;

    /// <summary>Cap of the weights entry and of any entry of a model zip opened through the catalog or the CLI: 2 GiB (the Paper network takes about 1 GB).</summary>
    public const long MaxWeightsBytes = 2L << 30;

    /// <summary>Length of a SHA-256.</summary>
    public const int HashLength = 32;

    /// <summary>What the settings entry holds.</summary>
    internal sealed record SavedSettings(int Format, string SavedBy, SavedWeights Weights, LabelCompletionOptions Settings);

    /// <summary>Length and SHA-256 (hex) of the weights entry.</summary>
    internal sealed record SavedWeights(long Bytes, string Sha256);

    /// <summary>The settings entry for <paramref name="settings"/> and the weights' length and hash.</summary>
    public static byte[] Serialize(LabelCompletionOptions settings, long weightsBytes, byte[] weightsHash)
        => JsonSerializer.SerializeToUtf8Bytes(
            new SavedSettings(FormatVersion, LibraryInfo.Version, new SavedWeights(weightsBytes, Convert.ToHexString(weightsHash)), settings), LabelCompletionSettings.Json);

    /// <summary>Parses a settings entry (whose SHA-256 was checked) and validates every field.</summary>
    /// <exception cref="InvalidDataException">The JSON is not a settings record, or a field is out of its bounds.</exception>
    public static SavedSettings Parse(byte[] json, int headerFormat = FormatVersion)
    {
        SavedSettings? saved;
        try
        {
            saved = JsonSerializer.Deserialize<SavedSettings>(json, LabelCompletionSettings.Json);
        }
        catch (JsonException e)
        {
            string field = FieldOfPath(e.Path);
            throw Error($"the '{SettingsEntryName}' entry is not valid at {field}: {e.Message}", field, e);
        }
        if (saved is null) throw Error($"the '{SettingsEntryName}' entry is empty (null).", SettingsEntryName);
        if (saved.Format != headerFormat)
            throw Error($"the '{SettingsEntryName}' entry says format {saved.Format}, its header {headerFormat}.", nameof(SavedSettings.Format));
        // Format 4 has no ImageFeatures field: its networks have no image features, whatever today's default.
        if (saved.Format == 4) saved.Settings.ImageFeatures = ImageFeatureInputs.None;
        if (saved.SavedBy.Length > LabelCompletionSettings.MaxNameLength)
            throw Error($"the library version in '{SettingsEntryName}' has {saved.SavedBy.Length} characters.", nameof(SavedSettings.SavedBy));
        try
        {
            saved.Settings.Validate();
        }
        catch (ArgumentOutOfRangeException e)
        {
            throw Error($"the settings are out of bounds: {e.Message.Split(" (Parameter", 2)[0]}", e.ParamName, e);
        }
        return saved;
    }

    /// <summary>"Settings.EncoderDepth" from a JSON path such as <c>$.Settings.EncoderDepth</c>: the field at fault.</summary>
    private static string FieldOfPath(string? path)
    {
        if (string.IsNullOrEmpty(path)) return SettingsEntryName;
        string field = path.StartsWith("$.", StringComparison.Ordinal) ? path[2..] : path.TrimStart('$');
        return field.StartsWith("Settings.", StringComparison.Ordinal) ? field["Settings.".Length..] : field.Length > 0 ? field : SettingsEntryName;
    }

    /// <summary>
    /// Checks a model zip before ML.NET opens it: a readable zip whose entries each declare at most <see cref="MaxWeightsBytes"/>
    /// (.NET never inflates an entry past its declared size, so this caps what extraction can write).
    /// </summary>
    /// <exception cref="InvalidDataException">The file is not a readable zip, or an entry is too large.</exception>
    public static void CheckArchive(string path)
    {
        try
        {
            using var stream = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read);
            using var archive = new ZipArchive(stream, ZipArchiveMode.Read);
            foreach (var entry in archive.Entries)
            {
                if (entry.Length > MaxWeightsBytes)
                    throw WithFacts(new InvalidDataException(
                        $"{path}: the zip entry '{entry.FullName}' declares {entry.Length} bytes, more than the {MaxWeightsBytes} bytes a model entry may hold."),
                        path, entry.FullName);
            }
        }
        catch (InvalidDataException e) when (!e.Data.Contains(FileKey))
        {
            throw WithFacts(new InvalidDataException($"{path}: not a readable zip file; it is truncated or corrupted ({e.Message})", e), path, null);
        }
    }

    /// <summary>
    /// The size that the zip's directory declares for an entry of the repository, read before the entry is opened (ML.NET
    /// extracts an entry to a temporary file when it is opened); null when the zip has no such entry.
    /// </summary>
    public static long? DeclaredLength(RepositoryReader repository, string? directory, string name)
    {
        var field = typeof(RepositoryReader).GetField("_entries", BindingFlags.NonPublic | BindingFlags.Instance)
            ?? throw new InvalidOperationException("ML.NET's RepositoryReader has no '_entries' field: the pinned Microsoft.ML version changed.");
        var entries = (Dictionary<string, ZipArchiveEntry>)field.GetValue(repository)!;
        string path = Path.Combine(directory ?? "", name).Replace('/', Path.DirectorySeparatorChar).Replace('\\', Path.DirectorySeparatorChar);
        if (entries.TryGetValue(path, out var entry) || entries.TryGetValue(path.Replace("/", "\\", StringComparison.Ordinal), out entry))
            return entry.Length;
        return null;
    }

    /// <summary>Key of <see cref="Exception.Data"/> that names the zip entry or settings field at fault in a load error.</summary>
    public const string FieldKey = "LabelCompletion.Field";

    /// <summary>Key of <see cref="Exception.Data"/> that names the model file of a load error (when known).</summary>
    public const string FileKey = "LabelCompletion.File";

    /// <summary>
    /// A load error in this library's words: an <see cref="InvalidDataException"/> whose message names the entry or field,
    /// also in <see cref="Exception.Data"/>[<see cref="FieldKey"/>] (the catalog's <c>LoadModel</c> adds the file's path).
    /// </summary>
    public static InvalidDataException Error(string message, string? field, Exception? inner = null)
        => WithFacts(new InvalidDataException($"{LoadErrorPrefix} {message}", inner), null, field);

    /// <summary>The error with its file and field recorded in <see cref="Exception.Data"/>.</summary>
    public static InvalidDataException WithFacts(InvalidDataException error, string? path, string? field)
    {
        if (path is not null) error.Data[FileKey] = path;
        if (field is not null) error.Data[FieldKey] = field;
        return error;
    }

    /// <summary>Whether <paramref name="e"/> is a load error made by <see cref="Error"/>.</summary>
    public static bool IsLoadError(Exception e) => e is InvalidDataException && e.Message.StartsWith(LoadErrorPrefix, StringComparison.Ordinal);

    /// <summary>How every load error of this library starts.</summary>
    public const string LoadErrorPrefix = "Label completion model:";
}
