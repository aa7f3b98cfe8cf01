using System.Text;
using System.Text.Json;

namespace Microsoft.ML.LabelCompletion.Cli.Commands;

/// <summary>
/// The settings that decide what a <c>complete</c> or <c>evaluate</c> run writes (model hash, selector, precision, device, a
/// digest of the input list, ...), as ordered <c>key=value</c> entries: recorded beside the outputs, and compared with a later
/// run's so that outputs of different runs never mix. The shard is recorded too but not compared: shards of one run differ
/// only in it.
/// </summary>
internal sealed class RunSettings
{
    /// <summary>The key of the shard entry, which <see cref="Differences"/> leaves out.</summary>
    public const string ShardKey = "shard";

    private readonly List<KeyValuePair<string, string>> _entries = [];

    /// <summary>The entries in order.</summary>
    public IReadOnlyList<KeyValuePair<string, string>> Entries => _entries;

    /// <summary>Appends an entry (keys are unique).</summary>
    public RunSettings Add(string key, string value)
    {
        if (key.Length == 0 || key.Contains('=', StringComparison.Ordinal) || _entries.Any(e => e.Key == key))
            throw new ArgumentException($"'{key}' is not a new settings key.", nameof(key));
        _entries.Add(new(key, value.ReplaceLineEndings(" ")));
        return this;
    }

    /// <summary>The value of <paramref name="key"/>, or null.</summary>
    public string? this[string key] => _entries.FirstOrDefault(e => e.Key == key).Value;

    /// <summary>
    /// What differs between these settings (this run) and <paramref name="recorded"/> (those of outputs on disk), shard left out:
    /// e.g. <c>precision is Float32 there and BFloat16 here</c>; empty when nothing does.
    /// </summary>
    /// <param name="recorded">The settings to compare with.</param>
    /// <param name="there">Names where <paramref name="recorded"/> come from in the message.</param>
    /// <param name="here">Names where these settings come from in the message.</param>
    public IReadOnlyList<string> Differences(RunSettings recorded, string there = "there", string here = "here")
    {
        var differences = new List<string>();
        foreach (string key in _entries.Select(e => e.Key).Concat(recorded._entries.Select(e => e.Key)).Distinct())
        {
            if (key == ShardKey) continue;
            string? mine = this[key], theirs = recorded[key];
            if (mine != theirs) differences.Add($"{key} is {theirs ?? "not recorded"} {there} and {mine ?? "not set"} {here}");
        }
        return differences;
    }

    /// <summary>One <c>key=value</c> line per entry, after a first line naming the command.</summary>
    public string ToText(string header)
    {
        var text = new StringBuilder(header).Append('\n');
        foreach (var (key, value) in _entries) text.Append(key).Append('=').Append(value).Append('\n');
        return text.ToString();
    }

    /// <summary>Reads <see cref="ToText"/>'s form; null when the first line is not <paramref name="header"/>.</summary>
    public static RunSettings? Parse(string text, string header)
    {
        var lines = text.Split('\n');
        if (lines.Length == 0 || lines[0].TrimEnd('\r') != header) return null;
        var settings = new RunSettings();
        foreach (string raw in lines.Skip(1))
        {
            string line = raw.TrimEnd('\r');
            int equals = line.IndexOf('=', StringComparison.Ordinal);
            if (equals <= 0) continue;
            string key = line[..equals];
            if (settings[key] is null) settings.Add(key, line[(equals + 1)..]);
        }
        return settings;
    }

    /// <summary>Writes the entries as one JSON object of strings.</summary>
    public void WriteJson(Utf8JsonWriter json)
    {
        json.WriteStartObject();
        foreach (var (key, value) in _entries) json.WriteString(key, value);
        json.WriteEndObject();
    }

    /// <summary>Reads an object written by <see cref="WriteJson"/>.</summary>
    /// <exception cref="InvalidDataException">It is not an object of strings.</exception>
    public static RunSettings ReadJson(JsonElement element, string source)
    {
        if (element.ValueKind != JsonValueKind.Object) throw new InvalidDataException($"{source}: 'settings' must be a JSON object.");
        var settings = new RunSettings();
        foreach (var property in element.EnumerateObject())
        {
            if (property.Value.ValueKind != JsonValueKind.String)
                throw new InvalidDataException($"{source}: settings.{property.Name} must be a string.");
            if (settings[property.Name] is not null) throw new InvalidDataException($"{source}: settings.{property.Name} appears twice.");
            settings.Add(property.Name, property.Value.GetString()!);
        }
        return settings;
    }

    /// <summary>SHA-256 of a file, lowercase hex.</summary>
    public static string FileSha256(string path)
    {
        using var stream = File.OpenRead(path);
        return Convert.ToHexString(System.Security.Cryptography.SHA256.HashData(stream)).ToLowerInvariant();
    }
}
