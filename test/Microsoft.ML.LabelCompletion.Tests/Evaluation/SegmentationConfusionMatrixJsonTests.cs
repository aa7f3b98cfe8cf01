using System.Text.Json;
using Microsoft.ML.LabelCompletion.Evaluation;

namespace Microsoft.ML.LabelCompletion.Tests.Evaluation;

/// <summary><see cref="SegmentationConfusionMatrixJson"/>: exact round trips, and parts merged into the whole.</summary>
[TestClass]
public sealed class SegmentationConfusionMatrixJsonTests
{
    private const byte U = 255;

    private static string Json(SegmentationConfusionMatrix matrix)
    {
        using var stream = new MemoryStream();
        using (var writer = new Utf8JsonWriter(stream)) SegmentationConfusionMatrixJson.Write(writer, matrix);
        return System.Text.Encoding.UTF8.GetString(stream.ToArray());
    }

    private static SegmentationConfusionMatrix Read(string json)
    {
        using var document = JsonDocument.Parse(json);
        return SegmentationConfusionMatrixJson.Read(document.RootElement, "test.json");
    }

    private static void AssertEqual(SegmentationConfusionMatrix expected, SegmentationConfusionMatrix actual)
    {
        Assert.AreEqual(expected.NumberOfClasses, actual.NumberOfClasses);
        Assert.AreEqual(expected.TotalCount, actual.TotalCount);
        CollectionAssert.AreEqual(expected.ToArray(), actual.ToArray());
        for (int t = 0; t < expected.NumberOfClasses; t++) Assert.AreEqual(expected.UnpredictedCount(t), actual.UnpredictedCount(t), $"unpredicted {t}");
    }

    [TestMethod]
    public void WriteThenRead_GivesTheSameCounts_IncludingUnpredictedAndHugeOnes()
    {
        var matrix = new SegmentationConfusionMatrix(3);
        matrix.Add([0, 1, 2, 2, 1, U, 0], [0, 2, 2, U, 1, 0, 1], [], U);
        matrix.Add(1, 0, 5_000_000_000_000L); // more than an int holds
        var read = Read(Json(matrix));
        AssertEqual(matrix, read);
        Assert.AreEqual(1L, read.UnpredictedCount(2));
        Assert.IsFalse(read.IsReadOnly, "a read matrix can be merged into");
        Assert.AreEqual(Json(matrix), Json(read));
    }

    [TestMethod]
    public void PartsWrittenAndReadBack_MergeIntoTheMatrixOfTheWhole()
    {
        var random = new Random(4);
        var truth = new byte[3000];
        var prediction = new byte[3000];
        for (int i = 0; i < truth.Length; i++)
        {
            truth[i] = (byte)(random.Next(6) == 0 ? U : random.Next(4));
            prediction[i] = (byte)(random.Next(9) == 0 ? U : random.Next(4));
        }
        var whole = new SegmentationConfusionMatrix(4);
        whole.Add(truth, prediction, [], U);
        var merged = new SegmentationConfusionMatrix(4);
        foreach (var (start, length) in new[] { (0, 1000), (1000, 999), (1999, 1001) })
        {
            var part = new SegmentationConfusionMatrix(4);
            part.Add(truth.AsSpan(start, length), prediction.AsSpan(start, length), [], U);
            merged.Merge(Read(Json(part)));
        }
        AssertEqual(whole, merged);
        Assert.AreEqual(whole.MeanIntersectionOverUnion, merged.MeanIntersectionOverUnion);
    }

    [TestMethod]
    public void Read_RefusesDamagedMatrices_NamingTheField()
    {
        var matrix = new SegmentationConfusionMatrix(2);
        matrix.Add([0, 1, 1], [0, 1, U], [], U);
        string good = Json(matrix);
        Assert.AreEqual(3L, Read(good).TotalCount);
        foreach (var (json, expected) in new[]
        {
            (good.Replace("\"total\":3", "\"total\":4", StringComparison.Ordinal), "total is 4 but the counts add up to 3"),
            (good.Replace("[1,0]", "[1,-1]", StringComparison.Ordinal), "counts[0][1] must be a non-negative integer"),
            (good.Replace("[1,0]", "[1,0.5]", StringComparison.Ordinal), "counts[0][1] must be a non-negative integer"),
            (good.Replace("[1,0]", "[1]", StringComparison.Ordinal), "counts[0] must be an array of 2 entries"),
            (good.Replace("\"classes\":2", "\"classes\":0", StringComparison.Ordinal), "classes must be 1..255"),
            (good.Replace("\"unpredicted\"", "\"other\"", StringComparison.Ordinal), "the field 'unpredicted' is missing"),
            ("[]", "must be a JSON object"),
        })
        {
            var e = Assert.ThrowsExactly<InvalidDataException>(() => Read(json), json);
            StringAssert.StartsWith(e.Message, "test.json: ");
            StringAssert.Contains(e.Message, expected);
        }
    }
}
