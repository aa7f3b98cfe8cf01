using Microsoft.ML.Data;
using Microsoft.ML.LabelCompletion.Data;
using Microsoft.ML.LabelCompletion.Model;
using Microsoft.ML.LabelCompletion.Tests.Integration;

namespace Microsoft.ML.LabelCompletion.Tests.LabelErrors;

/// <summary>Label-error finding: the folds, the out-of-sample predictions, the scores and the ML.NET surface.</summary>
[TestClass]
public sealed class LabelErrorFindingTests
{
    [TestMethod]
    [DataRow(1, 1, 2)]
    [DataRow(5, 7, 2)]
    [DataRow(6, 9, 3)]
    [DataRow(23, 30, 4)]
    [DataRow(8, 8, 5)]
    [DataRow(4, 13, 9)]
    public void FoldsHideEveryPatchExactlyOnce(int rows, int columns, int folds)
    {
        var masks = PatchFolds.Masks(rows, columns, folds);
        Assert.HasCount(folds, masks);
        for (int i = 0; i < rows * columns; i++)
            Assert.AreEqual(1, masks.Count(m => m[i]), $"patch {i} is hidden {masks.Count(m => m[i])} times over {folds} folds");
        if (rows * columns >= folds)
            foreach (var mask in masks) Assert.IsTrue(mask.Any(m => m), "every fold hides some patch");
        if (folds < 4) return;
        var fold = PatchFolds.Assign(rows, columns, folds);
        for (int r = 0; r < rows; r++)
            for (int c = 0; c < columns; c++)
                for (int dr = -1; dr <= 1; dr++)
                    for (int dc = -1; dc <= 1; dc++)
                    {
                        int rr = r + dr, cc = c + dc;
                        if ((dr == 0 && dc == 0) || rr < 0 || cc < 0 || rr >= rows || cc >= columns) continue;
                        Assert.AreNotEqual(fold[r * columns + c], fold[rr * columns + cc], $"patches ({r},{c}) and ({rr},{cc}) touch and share a fold");
                    }
    }

    [TestMethod]
    public void OneFoldIsRefused() => Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => PatchFolds.Assign(3, 3, 1));

    [TestMethod]
    public void SoftminMatchesAHandComputation()
    {
        float[] scores = [0.9f, 0.2f, float.NaN, 1.0f];
        double e1 = Math.Exp((1 - 0.9f) / 0.1), e8 = Math.Exp((1 - 0.2f) / 0.1), e0 = Math.Exp(0);
        double expected = (0.9f * e1 + 0.2f * e8 + 1.0 * e0) / (e1 + e8 + e0);
        Assert.AreEqual(expected, LabelErrorFinder.Softmin(scores, 0.1f), 1e-6);
        Assert.AreEqual(0.55, LabelErrorFinder.Softmin([0.5f, 0.6f], 1e6f), 1e-4, "a huge temperature gives the mean");
        Assert.AreEqual(0.1, LabelErrorFinder.Softmin([0.1f, 0.9f, 0.95f], 1e-3f), 1e-4, "a tiny temperature gives the minimum");
        Assert.AreEqual(1f, LabelErrorFinder.Softmin([float.NaN], 0.1f), "no known pixel: nothing to be wrong");
    }

    [TestMethod]
    public void ScoreFlagsConfidentDisagreementsOnlyAndNeverUnknownPixels()
    {
        const byte u = 255;
        var given = new LabelMap(5, 1, [0, 1, u, 2, 2]);
        float[] givenP = [0.9f, 0.1f, 0.3f, 0.4f, 0.05f];
        byte[] predicted = [0, 0, 1, 1, 0];
        float[] predictedP = [0.9f, 0.85f, 0.99f, 0.45f, 0.95f];
        var report = LabelErrorFinder.Score(given, u, 3, givenP, predicted, predictedP, confidenceThreshold: 0.5f, temperature: 0.1f);
        CollectionAssert.AreEqual(new[] { false, true, false, false, true }, report.SuspectedError,
            "agreeing pixel, confident disagreement, unknown pixel, unconfident disagreement, confident disagreement");
        Assert.IsTrue(float.IsNaN(report.LabelQuality[2]), "unknown pixels have no quality");
        Assert.AreEqual(0.1f, report.LabelQuality[1]);
        Assert.AreEqual(1, report.Confusion[1 * 3 + 0], "given 1, predicted 0");
        Assert.AreEqual(1, report.Confusion[2 * 3 + 0], "given 2, predicted 0");
        Assert.AreEqual(2, report.Confusion.Sum());
        Assert.AreEqual(4, report.KnownPixelCount);
        Assert.AreEqual(2, report.SuspectedPixelCount);
        Assert.AreEqual(LabelErrorFinder.Softmin([0.9f, 0.1f, 0.4f, 0.05f], 0.1f), report.ImageQualityScore);
        var issues = LabelErrorReport.CommonIssues([report, report]);
        CollectionAssert.AreEqual(new[] { (1, 0, 2L), (2, 0, 2L) }, issues.ToArray());
    }

    private static (RgbImage Image, LabelMap Label)[] Scenes() => IntegrationFixture.Data.Rows
        .Select(r => (SegmentationFiles.ReadImage(r.ImagePath), new LabelMap(r.Width, r.Height, (byte[])r.Label.Clone()))).ToArray();

    [TestMethod]
    public void APixelsPredictionDoesNotSeeItsOwnLabel()
    {
        // Out-of-sample: relabel every pixel of one patch; the check's prediction there (class and confidence) must not move,
        // while its label quality (the probability of the new given class) does follow the new label.
        var ml = IntegrationFixture.Context;
        var checker = ml.Transforms.FindLabelErrors(IntegrationFixture.Model).Fit(IntegrationFixture.Data.ImageData(ml));
        int p = IntegrationFixture.Model.Configuration.PatchSize;
        foreach (var (image, label) in Scenes().Take(3))
        {
            var before = checker.Check(image, label);
            foreach (var (px, py) in new[] { (0, 0), (p, p), (2 * p, p) })
            {
                var changed = (byte[])label.Values.Clone();
                var inside = new List<int>();
                for (int y = py; y < py + p && y < label.Height; y++)
                    for (int x = px; x < px + p && x < label.Width; x++)
                    {
                        int i = y * label.Width + x;
                        changed[i] = (byte)((label.Values[i] == SyntheticSegmentationData.Unknown ? 0 : label.Values[i] + 1) % SyntheticSegmentationData.Classes);
                        inside.Add(i);
                    }
                var after = checker.Check(image, new LabelMap(label.Width, label.Height, changed));
                bool anyOutsideMoved = false;
                for (int i = 0; i < changed.Length; i++)
                {
                    if (inside.Contains(i))
                    {
                        Assert.AreEqual(before.PredictedLabel[i], after.PredictedLabel[i], $"pixel {i}: the prediction saw its own label");
                        Assert.AreEqual(before.PredictedConfidence[i], after.PredictedConfidence[i], $"pixel {i}: the confidence saw its own label");
                    }
                    else anyOutsideMoved |= before.PredictedConfidence[i] != after.PredictedConfidence[i];
                }
                Assert.IsTrue(anyOutsideMoved, "the relabelled patch is an input of its neighbours' predictions");
            }
        }
    }

    [TestMethod]
    public void TransformAddsTheColumnsAndAgreesWithCheck()
    {
        var ml = IntegrationFixture.Context;
        var data = IntegrationFixture.Data.ImageData(ml);
        var estimator = ml.Transforms.FindLabelErrors(IntegrationFixture.Model, new LabelErrorOptions { NumberOfFolds = 2, ConfidenceThreshold = 0.3f });
        var shape = (SchemaShape)typeof(SchemaShape).GetMethod("Create", System.Reflection.BindingFlags.Static | System.Reflection.BindingFlags.Public | System.Reflection.BindingFlags.NonPublic)!
            .Invoke(null, [data.Schema])!;
        var names = estimator.GetOutputSchema(shape).Select(c => c.Name).ToArray();
        foreach (string name in new[] { "LabelQuality", "SuspectedError", "ImageQualityScore", "PredictedLabel" })
            CollectionAssert.Contains(names, name);
        var checker = estimator.Fit(data);
        var output = checker.Transform(data);
        Assert.AreEqual(new VectorDataViewType(NumberDataViewType.Single), output.Schema["LabelQuality"].Type);
        Assert.AreEqual(new VectorDataViewType(BooleanDataViewType.Instance), output.Schema["SuspectedError"].Type);
        Assert.AreEqual(NumberDataViewType.Single, output.Schema["ImageQualityScore"].Type);
        var quality = output.GetColumn<VBuffer<float>>("LabelQuality").Select(v => v.DenseValues().ToArray()).ToArray();
        var suspected = output.GetColumn<VBuffer<bool>>("SuspectedError").Select(v => v.DenseValues().ToArray()).ToArray();
        var score = output.GetColumn<float>("ImageQualityScore").ToArray();
        var scenes = Scenes();
        Assert.HasCount(scenes.Length, score);
        for (int r = 0; r < scenes.Length; r++)
        {
            var report = checker.Check(scenes[r].Image, scenes[r].Label);
            CollectionAssert.AreEqual(report.LabelQuality, quality[r], $"row {r}");
            CollectionAssert.AreEqual(report.SuspectedError, suspected[r], $"row {r}");
            Assert.AreEqual(report.ImageQualityScore, score[r], $"row {r}");
            for (int i = 0; i < suspected[r].Length; i++)
            {
                if (scenes[r].Label.Values[i] != SyntheticSegmentationData.Unknown) continue;
                Assert.IsFalse(suspected[r][i], $"row {r}: unknown pixel {i} is flagged");
                Assert.IsTrue(float.IsNaN(quality[r][i]), $"row {r}: unknown pixel {i} has a quality");
            }
        }
        Assert.ThrowsExactly<NotSupportedException>(() => ml.Model.Save(checker, data.Schema, new MemoryStream()));
    }

    [TestMethod]
    public void BadOptionsAreNamed()
    {
        var ml = IntegrationFixture.Context;
        var e = Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => ml.Transforms.FindLabelErrors(IntegrationFixture.Model, new LabelErrorOptions { NumberOfFolds = 1 }));
        StringAssert.Contains(e.Message, "NumberOfFolds");
        e = Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => ml.Transforms.FindLabelErrors(IntegrationFixture.Model, new LabelErrorOptions { ConfidenceThreshold = 0 }));
        StringAssert.Contains(e.Message, "ConfidenceThreshold");
    }
}
