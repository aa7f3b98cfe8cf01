using Microsoft.ML.Data;
using Microsoft.ML.LabelCompletion.Data;
using Microsoft.ML.LabelCompletion.Model;
using Microsoft.ML.LabelCompletion.Evaluation;

namespace Microsoft.ML.LabelCompletion.Tests.Evaluation;

[TestClass]
public sealed class LabelCompletionCatalogTests
{
    private const byte U = 255;

    public sealed class Row
    {
        public byte[] Label { get; set; } = [];
        public byte[] CompletedLabel { get; set; } = [];
        public bool[] CompletionMask { get; set; } = [];
    }

    public sealed class FloatRow
    {
        public float[] Label { get; set; } = [];
        public byte[] CompletedLabel { get; set; } = [];
        public bool[] CompletionMask { get; set; } = [];
    }

    /// <summary>Rows of different sizes: the three columns are variable-length vectors, declared in a schema definition.</summary>
    private static IDataView Load(MLContext ml, IEnumerable<Row> rows)
    {
        var schema = SchemaDefinition.Create(typeof(Row));
        schema[nameof(Row.Label)].ColumnType = new VectorDataViewType(NumberDataViewType.Byte);
        schema[nameof(Row.CompletedLabel)].ColumnType = new VectorDataViewType(NumberDataViewType.Byte);
        schema[nameof(Row.CompletionMask)].ColumnType = new VectorDataViewType(BooleanDataViewType.Instance);
        return ml.Data.LoadFromEnumerable(rows, schema);
    }

    private static (List<Row> Rows, LabelCompletionMetrics Direct) NearestKnownSplit()
    {
        var protocol = new EvaluationProtocol(5, 0.5);
        var rows = new List<Row>();
        var items = new List<(LabelMap, LabelMap, bool[])>();
        for (int i = 0; i < 4; i++)
        {
            var truth = EvaluationProtocolTests.Scene(50 + 13 * i, 40 + 5 * i, 5, 100 + i);
            var (masked, pixelMask) = protocol.Mask(i, truth);
            var completed = NearestKnownFill.Fill(masked, U);
            rows.Add(new Row { Label = truth.Values, CompletedLabel = completed.Values, CompletionMask = pixelMask });
            items.Add((truth, completed, pixelMask));
        }
        return (rows, protocol.Evaluate(items));
    }

    [TestMethod]
    public void EvaluateOverDataViewMatchesTheDirectComputation()
    {
        var ml = new MLContext(seed: 1);
        var (rows, direct) = NearestKnownSplit();
        var data = Load(ml, rows);
        Assert.AreEqual(0, ((VectorDataViewType)data.Schema["Label"].Type).Size, "the test must exercise variable-length vectors");

        var metrics = ml.LabelCompletion().Evaluate(data, numberOfClasses: 5);
        CollectionAssert.AreEqual(direct.PredictAreaConfusionMatrix.ToArray(), metrics.PredictAreaConfusionMatrix.ToArray());
        CollectionAssert.AreEqual(direct.ConfusionMatrix.ToArray(), metrics.ConfusionMatrix.ToArray());
        Assert.AreEqual(direct.PredictAreaMeanIntersectionOverUnion, metrics.PredictAreaMeanIntersectionOverUnion, 1e-12);
        Assert.AreEqual(direct.MeanIntersectionOverUnion, metrics.MeanIntersectionOverUnion, 1e-12);
        Assert.AreEqual(direct.PredictAreaPixelAccuracy, metrics.PredictAreaPixelAccuracy, 1e-12);
        Assert.AreEqual(direct.PixelCount, metrics.PixelCount);
        Assert.IsTrue(metrics.PredictAreaPixelCount > 0 && metrics.PredictAreaPixelCount < metrics.PixelCount);
        Assert.IsTrue(metrics.PredictAreaMeanIntersectionOverUnion is > 0 and < 100);
    }

    [TestMethod]
    public void EvaluateUsesTheGivenColumnNamesAndTheMaskAsPredictArea()
    {
        var ml = new MLContext(seed: 1);
        byte[] truth = [0, 0, 1, 1, 1, U];
        byte[] prediction = [0, 1, 1, 0, 1, 0];
        bool[] mask = [true, true, false, false, true, true];
        var data = ml.Data.LoadFromEnumerable(new[] { new Row { Label = truth, CompletedLabel = prediction, CompletionMask = mask } }, Fixed(6));
        data = ml.Transforms.CopyColumns("Truth", "Label")
            .Append(ml.Transforms.CopyColumns("Output", "CompletedLabel"))
            .Append(ml.Transforms.CopyColumns("Holes", "CompletionMask"))
            .Append(ml.Transforms.DropColumns("Label", "CompletedLabel", "CompletionMask"))
            .Fit(data).Transform(data);
        var m = ml.LabelCompletion().Evaluate(data, 2, labelColumnName: "Truth", completedColumnName: "Output", completionMaskColumnName: "Holes", classNames: ["a", "b"]);
        Assert.AreEqual(3L, m.PredictAreaPixelCount);
        Assert.AreEqual(5L, m.PixelCount);
        Assert.AreEqual(50.0, m.PredictAreaMeanIntersectionOverUnion, 1e-9);
        Assert.AreEqual(60.0, m.PixelAccuracy, 1e-9);
        Assert.AreEqual("b", m.ClassNames![1]);
    }

    [TestMethod]
    public void MissingOrMistypedColumnsAreNamed()
    {
        var ml = new MLContext(seed: 1);
        var (rows, _) = NearestKnownSplit();
        var data = Load(ml, rows);
        var missing = Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => ml.LabelCompletion().Evaluate(data, 5, completedColumnName: "Nope"));
        StringAssert.Contains(missing.Message, "'Nope'");
        Assert.AreEqual("completedColumnName", missing.ParamName);

        var floats = ml.Data.LoadFromEnumerable(new[] { new FloatRow { Label = [0f], CompletedLabel = [0], CompletionMask = [true] } });
        var mistyped = Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => ml.LabelCompletion().Evaluate(floats, 5));
        StringAssert.Contains(mistyped.Message, "'Label'");
        StringAssert.Contains(mistyped.Message, "Byte");

        var maskAsLabel = Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => ml.LabelCompletion().Evaluate(data, 5, completionMaskColumnName: "Label"));
        StringAssert.Contains(maskAsLabel.Message, "completion mask column 'Label'");
    }

    [TestMethod]
    public void RowLengthMismatchNamesTheRow()
    {
        var ml = new MLContext(seed: 1);
        var rows = new[]
        {
            new Row { Label = [0, 1], CompletedLabel = [0, 1], CompletionMask = [true, false] },
            new Row { Label = [0, 1, 1], CompletedLabel = [0, 1], CompletionMask = [true, false, true] },
        };
        var e = Assert.ThrowsExactly<InvalidOperationException>(() => ml.LabelCompletion().Evaluate(Load(ml, rows), 2));
        StringAssert.Contains(e.Message, "Row 1");
        StringAssert.Contains(e.Message, "'CompletedLabel' has 2");

        var badValue = new[] { new Row { Label = [0, 9], CompletedLabel = [0, 1], CompletionMask = [true, true] } };
        var v = Assert.ThrowsExactly<InvalidOperationException>(() => ml.LabelCompletion().Evaluate(Load(ml, badValue), 2));
        StringAssert.Contains(v.Message, "Row 0, column 'Label'");
        StringAssert.Contains(v.Message, "value 9");
    }

    private static SchemaDefinition Fixed(int size)
    {
        var schema = SchemaDefinition.Create(typeof(Row));
        schema[nameof(Row.Label)].ColumnType = new VectorDataViewType(NumberDataViewType.Byte, size);
        schema[nameof(Row.CompletedLabel)].ColumnType = new VectorDataViewType(NumberDataViewType.Byte, size);
        schema[nameof(Row.CompletionMask)].ColumnType = new VectorDataViewType(BooleanDataViewType.Instance, size);
        return schema;
    }
}
