using Microsoft.ML.Data;

namespace Microsoft.ML.LabelCompletion.Tests.Integration;

[TestClass]
public sealed class SchemaTests
{
    private sealed class FloatLabelRow
    {
        public string ImagePath { get; set; } = "";
        [VectorType]
        public float[] Label { get; set; } = [];
    }

    /// <summary>The shape of a schema (ML.NET keeps <c>SchemaShape.Create</c> internal; estimator chains call it the same way).</summary>
    private static SchemaShape Shape(DataViewSchema schema)
        => (SchemaShape)typeof(SchemaShape).GetMethod("Create", System.Reflection.BindingFlags.Static | System.Reflection.BindingFlags.Public | System.Reflection.BindingFlags.NonPublic)!
            .Invoke(null, new object[] { schema })!;

    [TestMethod]
    public void MissingImageColumn_IsReportedClearly()
    {
        var ml = new MLContext(seed: 1);
        var data = IntegrationFixture.Data.PathData(ml); // ImagePath but no Image column
        var estimator = ml.Transforms.CompleteLabels(SyntheticSegmentationData.TinyOptions());
        var error = Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => estimator.GetOutputSchema(Shape(data.Schema)));
        StringAssert.Contains(error.Message, "no image column 'Image'");
        error = Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => estimator.Fit(data));
        StringAssert.Contains(error.Message, "no image column 'Image'");
        error = Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => IntegrationFixture.Model.GetOutputSchema(data.Schema));
        StringAssert.Contains(error.Message, "no image column 'Image'");
        Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => IntegrationFixture.Model.Transform(data));
    }

    [TestMethod]
    public void WrongLabelType_IsReportedClearly()
    {
        var ml = new MLContext(seed: 1);
        var rows = IntegrationFixture.Data.Rows.Select(r => new FloatLabelRow { ImagePath = r.ImagePath, Label = r.Label.Select(b => (float)b).ToArray() });
        var data = ml.Transforms.LoadImages("Image", null, "ImagePath").Fit(ml.Data.LoadFromEnumerable(rows)).Transform(ml.Data.LoadFromEnumerable(rows));
        var estimator = ml.Transforms.CompleteLabels(SyntheticSegmentationData.TinyOptions());
        var error = Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => estimator.GetOutputSchema(Shape(data.Schema)));
        StringAssert.Contains(error.Message, "label column 'Label' has type Vector<Single>");
        StringAssert.Contains(error.Message, "vector of Byte");
    }

    [TestMethod]
    public void ClassCountMismatchWithTrainedModel_IsReportedClearly()
    {
        var ml = IntegrationFixture.Context;
        var data = IntegrationFixture.Data.ImageData(ml);
        var options = SyntheticSegmentationData.TinyOptions();
        options.NumberOfClasses = 5;
        var estimator = ml.Transforms.CompleteLabels(options, IntegrationFixture.Model);
        var error = Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => estimator.GetOutputSchema(Shape(data.Schema)));
        StringAssert.Contains(error.Message, "5 classes");
        StringAssert.Contains(error.Message, "completes 3");
        Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => estimator.Fit(data));
    }

    [TestMethod]
    public void EstimatorOnTrainedModel_ChangesInferenceSettingsWithoutTraining()
    {
        var ml = IntegrationFixture.Context;
        var data = IntegrationFixture.Data.ImageData(ml);
        var options = SyntheticSegmentationData.TinyOptions();
        options.MaskSelector = LabelCompletion.Model.MaskSelectorMode.Random;
        options.InferenceMaskRatio = 0.5f;
        options.OutputColumnName = "Evaluated";
        var estimator = ml.Transforms.CompleteLabels(options, IntegrationFixture.Model);
        var shape = estimator.GetOutputSchema(Shape(data.Schema));
        Assert.IsTrue(shape.Any(c => c.Name == "Evaluated"));
        var model = estimator.Fit(data);
        Assert.AreSame(IntegrationFixture.Model.Configuration, model.Configuration);
        var rows = IntegrationFixture.ReadOutputs(model.Transform(data), completed: "Evaluated");
        // Random selector: the evaluation protocol's floor(L * 0.5) of the 16 patches of row 0 (32x32, patch 8, seed 0, row 0),
        // plus pixels that were unknown in the input (they are completed too).
        var sample = IntegrationFixture.Data.Rows[0];
        var patches = LabelCompletion.Model.MaskSelector.ToPixelMask(
            LabelCompletion.Model.MaskSelector.RandomForEvaluation(16, 0.5, 0, 0), sample.Width, sample.Height, 8);
        Assert.AreEqual(8 * 64, patches.Count(m => m));
        for (int i = 0; i < patches.Length; i++)
            Assert.AreEqual(patches[i] || sample.Label[i] == SyntheticSegmentationData.Unknown, rows[0].Mask[i], $"pixel {i}");
    }

    [TestMethod]
    public void InvalidOptions_AreRejectedWhenTheEstimatorIsCreated()
    {
        var ml = new MLContext();
        var options = SyntheticSegmentationData.TinyOptions();
        options.UnknownLabel = 1;
        var error = Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => ml.Transforms.CompleteLabels(options));
        StringAssert.Contains(error.Message, "UnknownLabel");
        options = SyntheticSegmentationData.TinyOptions();
        options.ConfidenceColumnName = options.OutputColumnName;
        Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => ml.Transforms.CompleteLabels(options));
    }
}
