using Microsoft.ML.LabelCompletion.Data;
using Microsoft.ML.LabelCompletion.Evaluation;
using Microsoft.ML.LabelCompletion.Model;

namespace Microsoft.ML.LabelCompletion.Tests.Integration;

/// <summary>
/// Hidden means hidden, whatever the Mask Selector: a masked patch's labels reach none of the network's inputs, every pixel
/// of it takes the network's prediction, and <c>Evaluate(Transform(data))</c> with the <c>Random</c> selector measures the
/// model exactly as the fixed protocol does.
/// </summary>
[TestClass]
public sealed class HiddenPatchTests
{
    private static LabelCompletionTransformer WithSelector(LabelCompletionTransformer trained, MaskSelectorMode selector, float ratio = 0.5f)
    {
        var options = trained.Options;
        options.MaskSelector = selector;
        options.InferenceMaskRatio = ratio;
        options.MaskSeed = 0;
        var ml = IntegrationFixture.Context;
        return ml.Transforms.CompleteLabels(options, trained).Fit(IntegrationFixture.Data.ImageData(ml));
    }

    private static (RgbImage Image, LabelMap Truth)[] Scenes()
        => IntegrationFixture.Data.Rows
            .Select(r => (SegmentationFiles.ReadImage(r.ImagePath), new LabelMap(r.Width, r.Height, (byte[])r.Truth.Clone())))
            .ToArray();

    private static void AssertSame(CompletionResult expected, CompletionResult actual, string what)
    {
        CollectionAssert.AreEqual(expected.Completed.Values, actual.Completed.Values, $"{what}: completed labels differ");
        CollectionAssert.AreEqual(expected.Confidence, actual.Confidence, $"{what}: confidences differ");
        CollectionAssert.AreEqual(expected.CompletionMask, actual.CompletionMask, $"{what}: completion masks differ");
    }

    [TestMethod]
    public void HiddenPatchesDoNotSeeTheirLabels()
    {
        // The Random selector's mask depends on the image size and the row only: two labels that differ only inside the
        // hidden patches must give the same completion everywhere.
        var model = WithSelector(IntegrationFixture.Model, MaskSelectorMode.Random);
        int p = model.Configuration.PatchSize;
        foreach (var (image, truth) in Scenes())
        {
            var (rows, columns) = MaskSelector.Grid(truth.Width, truth.Height, p);
            var pixelMask = MaskSelector.ToPixelMask(MaskSelector.RandomForEvaluation(rows * columns, 0.5, 0, 0), truth.Width, truth.Height, p);
            var relabelled = (byte[])truth.Values.Clone();
            for (int i = 0; i < relabelled.Length; i++)
                if (pixelMask[i]) relabelled[i] = (byte)((relabelled[i] + 1) % SyntheticSegmentationData.Classes);

            var original = model.Complete(image, truth);
            var changed = model.Complete(image, new LabelMap(truth.Width, truth.Height, relabelled));
            AssertSame(original, changed, "labels that differ only in hidden patches");
            CollectionAssert.AreEqual(pixelMask, original.CompletionMask, "the completion mask is the hidden pixels of a complete label");
            for (int i = 0; i < pixelMask.Length; i++)
                if (!pixelMask[i]) Assert.AreEqual(truth.Values[i], original.Completed.Values[i], $"visible pixel {i} changed");
        }
    }

    [TestMethod]
    public void BackgroundSelectorRepredictsTheHiddenPatchesOfAWrongLabel()
    {
        // A deliberately wrong label: everything is background (class 0). The Background selector hides the top half of the
        // patches (all tie: the first ones by index); its completion must be the network's prediction there, i.e. what the
        // Unknown selector gives for the same label with those patches unknown.
        var background = WithSelector(IntegrationFixture.Model, MaskSelectorMode.Background);
        var unknown = WithSelector(IntegrationFixture.Model, MaskSelectorMode.Unknown);
        int p = background.Configuration.PatchSize;
        foreach (var (image, truth) in Scenes())
        {
            var wrong = new LabelMap(truth.Width, truth.Height, new byte[truth.Values.Length]);
            var patchMask = MaskSelector.Background(wrong, p, 0, 0.5);
            var hidden = MaskSelector.Apply(wrong, patchMask, p, SyntheticSegmentationData.Unknown);
            var viaBackground = background.Complete(image, wrong);
            AssertSame(unknown.Complete(image, hidden), viaBackground, "Background selector vs the same patches unknown");
            CollectionAssert.AreEqual(MaskSelector.ToPixelMask(patchMask, truth.Width, truth.Height, p), viaBackground.CompletionMask);
        }
    }

    [TestMethod]
    public void RandomSelectorTransformMatchesTheProtocol()
    {
        // A p = 16 model (the protocol's patch) barely trained: Evaluate(Transform(data)) with the Random selector at seed 0
        // must count the same pixels with the same completions as EvaluationProtocol.CompleteAndEvaluate on the same masks.
        var ml = new MLContext(seed: 1);
        var data = IntegrationFixture.Data;
        var truthRows = data.Rows.Select(r => new PathRow { ImagePath = r.ImagePath, Label = r.Truth }).ToList();
        var options = SyntheticSegmentationData.TinyOptions();
        options.PatchSize = 16;
        options.MaskSelector = MaskSelectorMode.Random;
        options.InferenceMaskRatio = 0.5f;
        options.MaskSeed = 0;
        using var model = ml.Transforms.CompleteLabels(options).Fit(SyntheticSegmentationData.ImageData(ml, truthRows));

        var viaTransform = ml.LabelCompletion().Evaluate(model.Transform(SyntheticSegmentationData.ImageData(ml, truthRows)),
            SyntheticSegmentationData.Classes, unknownLabel: SyntheticSegmentationData.Unknown);

        using var completer = WithSelector(model, MaskSelectorMode.Unknown);
        var protocol = new EvaluationProtocol(SyntheticSegmentationData.Classes, 0.5, SyntheticSegmentationData.Unknown);
        var viaProtocol = protocol.CompleteAndEvaluate(Scenes(),
            batch => completer.Complete(batch.Select(b => (b.Image, b.Masked)).ToArray()).Select(r => r.Completed).ToArray(),
            batchSize: options.InferenceBatchSize);

        Assert.IsTrue(viaTransform.PredictAreaPixelCount > 0, "the Random selector hid no pixel");
        Assert.AreEqual(viaProtocol.PredictAreaPixelCount, viaTransform.PredictAreaPixelCount, "PA pixels");
        Assert.AreEqual(viaProtocol.PredictAreaMeanIntersectionOverUnion, viaTransform.PredictAreaMeanIntersectionOverUnion, "PA-mIoU");
        Assert.AreEqual(viaProtocol.MeanIntersectionOverUnion, viaTransform.MeanIntersectionOverUnion, "mIoU");
        Assert.IsTrue(viaTransform.PredictAreaMeanIntersectionOverUnion < 99, $"an untrained model scored PA-mIoU {viaTransform.PredictAreaMeanIntersectionOverUnion:F2}");
    }
}
