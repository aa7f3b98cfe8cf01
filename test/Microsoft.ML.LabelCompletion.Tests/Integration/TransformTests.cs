using Microsoft.ML.Data;
using Microsoft.ML.LabelCompletion.Data;

namespace Microsoft.ML.LabelCompletion.Tests.Integration;

[TestClass]
public sealed class TransformTests
{
    /// <summary>PredictionEngine output class.</summary>
    public sealed class Completion
    {
        public byte[] CompletedLabel { get; set; } = [];
        public float[] Confidence { get; set; } = [];
        public bool[] CompletionMask { get; set; } = [];
    }

    [TestMethod]
    public void LoadImagesThenCompleteLabels_FitTransform_FillsUnknownAndKeepsKnownPixels()
    {
        var data = IntegrationFixture.Data;
        var ml = new MLContext(seed: 2);
        var pipeline = ml.Transforms.LoadImages("Image", imageFolder: null, inputColumnName: "ImagePath")
            .Append(ml.Transforms.CompleteLabels(SyntheticSegmentationData.TinyOptions()));
        var model = pipeline.Fit(data.PathData(ml));
        var output = model.Transform(data.PathData(ml));

        Assert.AreEqual(new VectorDataViewType(NumberDataViewType.Byte), output.Schema["CompletedLabel"].Type);
        Assert.AreEqual(new VectorDataViewType(NumberDataViewType.Single), output.Schema["Confidence"].Type);
        Assert.AreEqual(new VectorDataViewType(BooleanDataViewType.Instance), output.Schema["CompletionMask"].Type);
        Assert.IsNotNull(output.Schema.GetColumnOrNull("ImagePath"), "input columns pass through");

        var rows = IntegrationFixture.ReadOutputs(output);
        Assert.AreEqual(data.Rows.Count, rows.Count);
        for (int r = 0; r < rows.Count; r++)
        {
            var sample = data.Rows[r];
            var (completed, confidence, mask) = rows[r];
            int pixels = sample.Width * sample.Height;
            Assert.AreEqual(pixels, completed.Length, $"row {r} size");
            Assert.AreEqual(pixels, confidence.Length);
            Assert.AreEqual(pixels, mask.Length);
            for (int i = 0; i < pixels; i++)
            {
                byte input = sample.Label[i];
                if (input == SyntheticSegmentationData.Unknown)
                {
                    Assert.IsTrue(completed[i] < SyntheticSegmentationData.Classes, $"row {r} pixel {i}: unknown pixel not filled ({completed[i]})");
                    Assert.IsTrue(mask[i], $"row {r} pixel {i}: unknown pixel outside the completion mask");
                }
                else if (!mask[i])
                {
                    Assert.AreEqual(input, completed[i], $"row {r} pixel {i}: known pixel changed");
                    Assert.AreEqual(1f, confidence[i]);
                }
                Assert.IsTrue(confidence[i] >= 0 && confidence[i] <= 1, $"confidence {confidence[i]}");
            }
        }
    }

    [TestMethod]
    public void Transform_IsLazyAndReadsRowsInBatches()
    {
        var data = IntegrationFixture.Data;
        var ml = IntegrationFixture.Context;
        int yielded = 0;
        IEnumerable<PathRow> Rows()
        {
            foreach (var r in data.Rows)
            {
                yielded++;
                yield return new PathRow { ImagePath = r.ImagePath, Label = r.Label };
            }
        }
        var input = SyntheticSegmentationData.ImageData(ml, Rows());
        var output = IntegrationFixture.Model.Transform(input);
        Assert.AreEqual(0, yielded, "Transform must not read the data");

        using (var cursor = output.GetRowCursor(new[] { output.Schema["CompletedLabel"] }))
        {
            var getter = cursor.GetGetter<VBuffer<byte>>(output.Schema["CompletedLabel"]);
            VBuffer<byte> value = default;
            Assert.IsTrue(cursor.MoveNext());
            getter(ref value);
            // The main cursor is on row 0, the look-ahead cursor has read one batch (InferenceBatchSize = 3).
            Assert.AreEqual(1 + 3, yielded);
        }

        // The batched data view and the one-row path (PredictionEngine) give the same labels.
        var batched = IntegrationFixture.ReadOutputs(IntegrationFixture.Model.Transform(data.ImageData(ml)));
        var pathData = data.PathData(ml);
        var chain = ml.Transforms.LoadImages("Image", null, "ImagePath").Fit(pathData).Append(IntegrationFixture.Model);
        // Not disposed: ML.NET's PredictionEngine owns its transformer and would dispose the shared model with it.
        var engine = ml.Model.CreatePredictionEngine<PathRow, Completion>(chain);
        for (int r = 0; r < data.Rows.Count; r++)
        {
            var single = engine.Predict(new PathRow { ImagePath = data.Rows[r].ImagePath, Label = data.Rows[r].Label });
            CollectionAssert.AreEqual(batched[r].Completed, single.CompletedLabel, $"row {r}");
            CollectionAssert.AreEqual(batched[r].Mask, single.CompletionMask, $"row {r}");
            for (int i = 0; i < single.Confidence.Length; i++)
                Assert.AreEqual(batched[r].Confidence[i], single.Confidence[i], 1e-4f, $"row {r} pixel {i}");
        }
    }

    [TestMethod]
    public void CompleteOneImage_MatchesTransformOfThatRow()
    {
        var data = IntegrationFixture.Data;
        var model = IntegrationFixture.Model;
        var sample = data.Rows[0];
        var result = model.Complete(ReadRgb(sample.ImagePath, sample.Width, sample.Height), new LabelMap(sample.Width, sample.Height, sample.Label));
        var viaTransform = IntegrationFixture.ReadOutputs(model.Transform(data.ImageData(IntegrationFixture.Context)))[0];
        CollectionAssert.AreEqual(viaTransform.Completed, result.Completed.Values);
        CollectionAssert.AreEqual(viaTransform.Mask, result.CompletionMask);
        Assert.AreEqual(SyntheticSegmentationData.Classes, model.NumberOfClasses);
        Assert.AreEqual(8, model.Configuration.PatchSize, "Tiny preset patch size");
        Assert.AreEqual(3, model.Options.InferenceBatchSize);
    }

    [TestMethod]
    public void CompleteSeveralImages_MatchesCompletingEachAndNamesABadRow()
    {
        var data = IntegrationFixture.Data;
        var model = IntegrationFixture.Model;
        var rows = data.Rows.Take(4)
            .Select(sample => (Image: ReadRgb(sample.ImagePath, sample.Width, sample.Height), Label: new LabelMap(sample.Width, sample.Height, sample.Label)))
            .ToList();
        Assert.IsTrue(rows.Any(r => r.Label.Values.Contains(SyntheticSegmentationData.Unknown)), "the rows have pixels to complete");
        var together = model.Complete(rows);
        Assert.AreEqual(rows.Count, together.Count);
        for (int r = 0; r < rows.Count; r++)
        {
            var alone = model.Complete(rows[r].Image, rows[r].Label);
            CollectionAssert.AreEqual(alone.Completed.Values, together[r].Completed.Values, $"row {r}");
            CollectionAssert.AreEqual(alone.CompletionMask, together[r].CompletionMask, $"row {r}");
            for (int i = 0; i < alone.Confidence.Length; i++)
                Assert.AreEqual(alone.Confidence[i], together[r].Confidence[i], 1e-5f, $"row {r} pixel {i}");
        }
        Assert.AreEqual(0, model.Complete(new List<(RgbImage, LabelMap)>()).Count);

        var broken = rows.ToList();
        broken[2] = (broken[2].Image, new LabelMap(broken[2].Label.Width - 1, broken[2].Label.Height, new byte[(broken[2].Label.Width - 1) * broken[2].Label.Height]));
        var error = Assert.ThrowsExactly<ArgumentException>(() => model.Complete(broken));
        StringAssert.Contains(error.Message, "row 2");
        StringAssert.Contains(error.Message, "but the image is");
    }

    /// <summary>The image file's pixels as interleaved RGB (MLImage decodes to BGRA or RGBA).</summary>
    private static RgbImage ReadRgb(string path, int width, int height)
    {
        using var image = MLImage.CreateFromFile(path);
        var rgb = new byte[width * height * 3];
        var pixels = image.Pixels;
        bool bgra = image.PixelFormat == MLPixelFormat.Bgra32;
        for (int i = 0; i < width * height; i++)
        {
            rgb[3 * i] = pixels[4 * i + (bgra ? 2 : 0)];
            rgb[3 * i + 1] = pixels[4 * i + 1];
            rgb[3 * i + 2] = pixels[4 * i + (bgra ? 0 : 2)];
        }
        return new RgbImage(width, height, rgb);
    }

    [TestMethod]
    public void BadRows_FailNamingTheRowAndTheProblem()
    {
        var data = IntegrationFixture.Data;
        var ml = IntegrationFixture.Context;
        var rows = data.Rows.Select(r => new PathRow { ImagePath = r.ImagePath, Label = r.Label }).ToList();
        rows[1].Label = rows[1].Label.Take(rows[1].Label.Length - 3).ToArray();
        var error = Assert.ThrowsExactly<InvalidDataException>(() => IntegrationFixture.ReadOutputs(IntegrationFixture.Model.Transform(SyntheticSegmentationData.ImageData(ml, rows))));
        StringAssert.Contains(error.Message, "row 1");
        StringAssert.Contains(error.Message, "1021 values");

        rows = data.Rows.Select(r => new PathRow { ImagePath = r.ImagePath, Label = (byte[])r.Label.Clone() }).ToList();
        rows[2].Label[5] = 7;
        error = Assert.ThrowsExactly<InvalidDataException>(() => IntegrationFixture.ReadOutputs(IntegrationFixture.Model.Transform(SyntheticSegmentationData.ImageData(ml, rows))));
        StringAssert.Contains(error.Message, "row 2");
        StringAssert.Contains(error.Message, "value 7");
    }
}
