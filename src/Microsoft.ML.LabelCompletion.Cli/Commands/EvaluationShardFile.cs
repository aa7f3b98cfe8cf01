using System.Globalization;
using System.Text.Json;
using Microsoft.ML.LabelCompletion.Data;
using Microsoft.ML.LabelCompletion.Evaluation;

namespace Microsoft.ML.LabelCompletion.Cli.Commands;

/// <summary>The two confusion matrices (predict area and every known pixel) of one method at one ratio, over one shard.</summary>
internal sealed record ShardMatrices(double Ratio, string Method, SegmentationConfusionMatrix PredictArea, SegmentationConfusionMatrix Global);

/// <summary>
/// What <c>lmae evaluate</c> writes for one shard of a split (the whole split is shard 0/1): the settings the counts depend
/// on, the images of the shard, and per ratio and method the exact confusion matrices
/// (<see cref="SegmentationConfusionMatrixJson"/>). It is rewritten after every ratio, so a restarted shard goes on from
/// the first ratio it has not finished; <c>lmae evaluate --merge</c> adds up the matrices of all shards into those of one run.
/// </summary>
internal sealed class EvaluationShardFile
{
    /// <summary>Value of the file's <c>format</c> field.</summary>
    public const string FormatName = "lmae-evaluate-confusion-matrices";

    /// <summary>Version of the file's layout.</summary>
    public const int Version = 1;

    /// <summary>The file pattern of shard files (what <c>--merge</c> reads from a folder).</summary>
    public const string ShardPattern = "confusion-matrices.shard-*-of-*.json";

    /// <summary>The compared settings (model hash, data list, ratios, methods, batch, precision, device, ...).</summary>
    public required RunSettings Settings { get; init; }

    /// <summary>The model file as given to the run (reported in <c>metrics.json</c>; not compared between shards).</summary>
    public required string ModelPath { get; init; }

    /// <summary>The data set's root folder (reported in <c>metrics.json</c>; not compared between shards).</summary>
    public required string DataRoot { get; init; }

    /// <summary>Class names, one per class.</summary>
    public required IReadOnlyList<string> ClassNames { get; init; }

    /// <summary>Which shard of the split this is.</summary>
    public required DataShard Shard { get; init; }

    /// <summary>0-based position in the split of the shard's first image.</summary>
    public required int First { get; init; }

    /// <summary>Number of images of the shard.</summary>
    public required int Images { get; init; }

    /// <summary>
    /// The images the shard completed: <see cref="CompletedFirst"/> .. + <see cref="CompletedImages"/> - 1, its own and, at its
    /// edges, those that share a batch with them in a whole-split run (only its own are counted).
    /// </summary>
    public required int CompletedFirst { get; init; }

    /// <summary>Number of images the shard completed (see <see cref="CompletedFirst"/>).</summary>
    public required int CompletedImages { get; init; }

    /// <summary>The matrices finished so far, in ratio then method order.</summary>
    public List<ShardMatrices> Results { get; init; } = [];

    /// <summary>The file name of <paramref name="shard"/>: <c>confusion-matrices.json</c>, or <c>confusion-matrices.shard-i-of-n.json</c>.</summary>
    public static string FileName(DataShard shard) =>
        shard.Count == 1 ? "confusion-matrices.json" : $"confusion-matrices.shard-{shard.Index}-of-{shard.Count}.json";

    /// <summary>The ratios of the settings.</summary>
    public IReadOnlyList<double> Ratios => ParseList(Settings["ratios"]).Select(r => double.Parse(r, CultureInfo.InvariantCulture)).ToArray();

    /// <summary>The methods of the settings.</summary>
    public IReadOnlyList<string> Methods => ParseList(Settings["methods"]);

    /// <summary>Whether every ratio and method of the settings has its matrices.</summary>
    public bool IsComplete => Ratios.All(r => Methods.All(m => Find(r, m) is not null));

    /// <summary>The matrices of <paramref name="method"/> at <paramref name="ratio"/>, or null.</summary>
    public ShardMatrices? Find(double ratio, string method) => Results.FirstOrDefault(r => r.Ratio.Equals(ratio) && r.Method == method);

    /// <summary>Writes the file atomically.</summary>
    public void Write(string path) => SegmentationFiles.WriteAtomically(path, stream =>
    {
        using var json = new Utf8JsonWriter(stream, new JsonWriterOptions { Indented = true });
        json.WriteStartObject();
        json.WriteString("format", FormatName);
        json.WriteNumber("version", Version);
        json.WriteString("model", ModelPath);
        json.WriteString("data_root", DataRoot);
        json.WritePropertyName("settings");
        Settings.WriteJson(json);
        json.WriteStartArray("classes");
        foreach (string name in ClassNames) json.WriteStringValue(name);
        json.WriteEndArray();
        json.WriteStartObject("shard");
        json.WriteNumber("index", Shard.Index);
        json.WriteNumber("count", Shard.Count);
        json.WriteNumber("first", First);
        json.WriteNumber("images", Images);
        json.WriteNumber("completed_first", CompletedFirst);
        json.WriteNumber("completed_images", CompletedImages);
        json.WriteEndObject();
        json.WriteStartArray("results");
        foreach (var result in Results)
        {
            json.WriteStartObject();
            json.WriteNumber("ratio", result.Ratio);
            json.WriteString("method", result.Method);
            json.WritePropertyName("predict_area");
            SegmentationConfusionMatrixJson.Write(json, result.PredictArea);
            json.WritePropertyName("global");
            SegmentationConfusionMatrixJson.Write(json, result.Global);
            json.WriteEndObject();
        }
        json.WriteEndArray();
        json.WriteEndObject();
    });

    /// <summary>Reads a file written by <see cref="Write"/>.</summary>
    /// <exception cref="InvalidDataException">It is not such a file, or a field is missing or wrong; the message names the file and the field.</exception>
    public static EvaluationShardFile Read(string path)
    {
        JsonDocument document;
        try
        {
            document = JsonDocument.Parse(File.ReadAllBytes(path));
        }
        catch (JsonException e)
        {
            throw new InvalidDataException($"{path} is not JSON: {e.Message}", e);
        }
        using (document)
        {
            var root = document.RootElement;
            JsonElement Field(JsonElement parent, string name, JsonValueKind kind, string where) =>
                parent.ValueKind == JsonValueKind.Object && parent.TryGetProperty(name, out var value) && value.ValueKind == kind
                    ? value : throw new InvalidDataException($"{path}: {where}{name} is missing or not a JSON {kind.ToString().ToLowerInvariant()}.");
            int Integer(JsonElement parent, string name, string where) =>
                Field(parent, name, JsonValueKind.Number, where).TryGetInt32(out int value) && value >= 0
                    ? value : throw new InvalidDataException($"{path}: {where}{name} must be a non-negative integer.");

            if (Field(root, "format", JsonValueKind.String, "").GetString() != FormatName)
                throw new InvalidDataException($"{path} is not a file of confusion matrices written by 'lmae evaluate' (its format is not '{FormatName}').");
            int version = Integer(root, "version", "");
            if (version != Version) throw new InvalidDataException($"{path} has layout version {version}; this lmae reads version {Version}.");
            var settings = RunSettings.ReadJson(Field(root, "settings", JsonValueKind.Object, ""), path);
            foreach (string key in new[] { "images", "ratios", "methods" })
                if (settings[key] is null) throw new InvalidDataException($"{path}: settings.{key} is missing.");
            var classes = Field(root, "classes", JsonValueKind.Array, "").EnumerateArray()
                .Select(c => c.ValueKind == JsonValueKind.String ? c.GetString()! : throw new InvalidDataException($"{path}: classes must be strings.")).ToArray();
            var shard = Field(root, "shard", JsonValueKind.Object, "");
            int index = Integer(shard, "index", "shard."), count = Integer(shard, "count", "shard.");
            if (count < 1 || index >= count) throw new InvalidDataException($"{path}: shard {index}/{count} is not a shard.");
            var file = new EvaluationShardFile
            {
                Settings = settings,
                ModelPath = Field(root, "model", JsonValueKind.String, "").GetString()!,
                DataRoot = Field(root, "data_root", JsonValueKind.String, "").GetString()!,
                ClassNames = classes,
                Shard = new DataShard(index, count),
                First = Integer(shard, "first", "shard."),
                Images = Integer(shard, "images", "shard."),
                CompletedFirst = Integer(shard, "completed_first", "shard."),
                CompletedImages = Integer(shard, "completed_images", "shard."),
            };
            int r = 0;
            foreach (var result in Field(root, "results", JsonValueKind.Array, "").EnumerateArray())
            {
                string where = $"results[{r++}].";
                double ratio = Field(result, "ratio", JsonValueKind.Number, where).GetDouble();
                string method = Field(result, "method", JsonValueKind.String, where).GetString()!;
                var predictArea = SegmentationConfusionMatrixJson.Read(Field(result, "predict_area", JsonValueKind.Object, where), $"{path}: {where}predict_area");
                var global = SegmentationConfusionMatrixJson.Read(Field(result, "global", JsonValueKind.Object, where), $"{path}: {where}global");
                if (predictArea.NumberOfClasses != classes.Length || global.NumberOfClasses != classes.Length)
                    throw new InvalidDataException($"{path}: {where}: the matrices are not of the file's {classes.Length} classes.");
                if (file.Find(ratio, method) is not null) throw new InvalidDataException($"{path}: {method} at ratio {ratio} appears twice.");
                file.Results.Add(new ShardMatrices(ratio, method, predictArea, global));
            }
            return file;
        }
    }

    /// <summary>A list written as one settings value: comma-separated.</summary>
    public static string List(IEnumerable<string> items) => string.Join(",", items);

    private static string[] ParseList(string? text) => string.IsNullOrEmpty(text) ? [] : text.Split(',');
}
