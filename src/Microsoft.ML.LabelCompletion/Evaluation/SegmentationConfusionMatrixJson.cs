using System.Text.Json;
using Microsoft.ML.LabelCompletion.Data;

namespace Microsoft.ML.LabelCompletion.Evaluation;

/// <summary>
/// Writes and reads a <see cref="SegmentationConfusionMatrix"/> as JSON, exactly (every count is a 64-bit integer), so that
/// matrices computed on separate machines can be saved, read back and merged (<see cref="SegmentationConfusionMatrix.Merge"/>)
/// into the matrix a single pass gives:
/// <c>{"classes": C, "total": T, "counts": [[...C...] x C], "unpredicted": [...C...]}</c>, <c>counts[truth][prediction]</c>.
/// </summary>
public static class SegmentationConfusionMatrixJson
{
    /// <summary>Writes <paramref name="matrix"/> as one JSON object at the writer's position.</summary>
    /// <param name="writer">The JSON writer.</param>
    /// <param name="matrix">The matrix; not changed.</param>
    public static void Write(Utf8JsonWriter writer, SegmentationConfusionMatrix matrix)
    {
        ArgumentNullException.ThrowIfNull(writer);
        ArgumentNullException.ThrowIfNull(matrix);
        int classes = matrix.NumberOfClasses;
        writer.WriteStartObject();
        writer.WriteNumber("classes", classes);
        writer.WriteNumber("total", matrix.TotalCount);
        writer.WriteStartArray("counts");
        for (int t = 0; t < classes; t++)
        {
            writer.WriteStartArray();
            for (int p = 0; p < classes; p++) writer.WriteNumberValue(matrix[t, p]);
            writer.WriteEndArray();
        }
        writer.WriteEndArray();
        writer.WriteStartArray("unpredicted");
        for (int t = 0; t < classes; t++) writer.WriteNumberValue(matrix.UnpredictedCount(t));
        writer.WriteEndArray();
        writer.WriteEndObject();
    }

    /// <summary>Reads a matrix written by <see cref="Write"/>; a writable matrix.</summary>
    /// <param name="element">The JSON object.</param>
    /// <param name="source">Names the file and place of the object in error messages.</param>
    /// <exception cref="InvalidDataException">A field is missing, not a non-negative integer, of the wrong length, or the total
    /// disagrees with the counts; the message names <paramref name="source"/> and the field.</exception>
    public static SegmentationConfusionMatrix Read(JsonElement element, string source = "confusion matrix")
    {
        ArgumentNullException.ThrowIfNull(source);
        if (element.ValueKind != JsonValueKind.Object) throw new InvalidDataException($"{source}: a confusion matrix must be a JSON object.");
        long Integer(JsonElement value, string field)
        {
            if (value.ValueKind != JsonValueKind.Number || !value.TryGetInt64(out long number) || number < 0)
                throw new InvalidDataException($"{source}: {field} must be a non-negative integer, not {value.GetRawText()}.");
            return number;
        }
        JsonElement Field(string name) => element.TryGetProperty(name, out var value)
            ? value : throw new InvalidDataException($"{source}: the field '{name}' is missing.");
        JsonElement Array(JsonElement value, string field, int length)
        {
            if (value.ValueKind != JsonValueKind.Array || value.GetArrayLength() != length)
                throw new InvalidDataException($"{source}: {field} must be an array of {length} entries.");
            return value;
        }

        long classes = Integer(Field("classes"), "classes");
        if (classes < 1 || classes > LabelMap.MaxClasses) throw new InvalidDataException($"{source}: classes must be 1..{LabelMap.MaxClasses}, not {classes}.");
        int c = (int)classes;
        var matrix = new SegmentationConfusionMatrix(c);
        var rows = Array(Field("counts"), "counts", c);
        for (int t = 0; t < c; t++)
        {
            var row = Array(rows[t], $"counts[{t}]", c);
            for (int p = 0; p < c; p++) matrix.Add(t, p, Integer(row[p], $"counts[{t}][{p}]"));
        }
        var unpredicted = Array(Field("unpredicted"), "unpredicted", c);
        for (int t = 0; t < c; t++) matrix.AddUnpredicted(t, Integer(unpredicted[t], $"unpredicted[{t}]"));
        long total = Integer(Field("total"), "total");
        if (total != matrix.TotalCount)
            throw new InvalidDataException($"{source}: total is {total} but the counts add up to {matrix.TotalCount}.");
        return matrix;
    }
}
