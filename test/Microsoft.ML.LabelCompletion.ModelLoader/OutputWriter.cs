using Microsoft.ML.Data;

namespace Microsoft.ML.LabelCompletion.ModelLoader;

/// <summary>
/// Writes the three output columns of every row to a file, so two processes' outputs can be compared byte for byte:
/// per row, int length, the completed bytes, the confidence floats (little-endian IEEE bits) and the completion mask bytes.
/// The test project compiles this same file to produce its in-process side.
/// </summary>
public static class OutputWriter
{
    /// <summary>Writes the outputs of <paramref name="data"/> to <paramref name="path"/>.</summary>
    public static void Write(IDataView data, string path, string completed = "CompletedLabel", string confidence = "Confidence", string mask = "CompletionMask")
    {
        using var stream = File.Create(path);
        using var writer = new BinaryWriter(stream);
        var columns = new[] { data.Schema[completed], data.Schema[confidence], data.Schema[mask] };
        using var cursor = data.GetRowCursor(columns);
        var getCompleted = cursor.GetGetter<VBuffer<byte>>(columns[0]);
        var getConfidence = cursor.GetGetter<VBuffer<float>>(columns[1]);
        var getMask = cursor.GetGetter<VBuffer<bool>>(columns[2]);
        VBuffer<byte> c = default;
        VBuffer<float> f = default;
        VBuffer<bool> m = default;
        while (cursor.MoveNext())
        {
            getCompleted(ref c);
            getConfidence(ref f);
            getMask(ref m);
            writer.Write(c.Length);
            foreach (var v in c.DenseValues()) writer.Write(v);
            foreach (var v in f.DenseValues()) writer.Write(v);
            foreach (var v in m.DenseValues()) writer.Write(v);
        }
    }
}
