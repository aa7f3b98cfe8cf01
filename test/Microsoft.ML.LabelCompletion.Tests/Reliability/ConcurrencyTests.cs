using Microsoft.ML.Data;
using Microsoft.ML.LabelCompletion.Tests.Integration;

namespace Microsoft.ML.LabelCompletion.Tests.Reliability;

/// <summary>One fitted model used from 8 threads at once gives what it gives on one thread.</summary>
[TestClass]
public sealed class ConcurrencyTests
{
    private const int Threads = 8;

    [TestMethod]
    [Timeout(120_000)]
    public void EightThreads_CursorsAndPredictionEngines_GiveTheSingleThreadOutputs()
    {
        using var data = new SyntheticSegmentationData(count: 5, seed: 21);
        var ml = new MLContext(seed: 1);
        var options = SyntheticSegmentationData.TinyOptions();
        options.InferenceBatchSize = 2;
        using var model = ModelFileTests.NewModel(ml, options);
        var images = data.ImageData(ml);

        // IDataView cursors: every thread transforms the same input view with the same transformer.
        var expected = IntegrationFixture.ReadOutputs(model.Transform(images));
        var cursorResults = RunOnThreads(_ => IntegrationFixture.ReadOutputs(model.Transform(images)));

        // Prediction-engine style: one engine per thread over one chain (the engines must not own the shared model).
        var paths = ml.Data.LoadFromEnumerable(data.Rows.Select(r => new PathRow { ImagePath = r.ImagePath, Label = r.Label }));
        var chain = ml.Transforms.LoadImages("Image", imageFolder: null, inputColumnName: "ImagePath").Fit(paths).Append(model);
        List<Output> Predict()
        {
            using var engine = ml.Model.CreatePredictionEngine<PathRow, Output>(chain, new PredictionEngineOptions { OwnsTransformer = false });
            return data.Rows.Select(r => engine.Predict(new PathRow { ImagePath = r.ImagePath, Label = r.Label })).ToList();
        }
        var expectedPredictions = Predict();
        var predictionResults = RunOnThreads(_ => Predict());

        // The public single-image method.
        var examples = data.Rows.Select(r => (Image: LabelCompletion.Data.SegmentationFiles.ReadImage(r.ImagePath), Label: new LabelCompletion.Data.LabelMap(r.Width, r.Height, r.Label))).ToList();
        var expectedSingles = examples.Select(e => model.Complete(e.Image, e.Label)).ToList();
        var singleResults = RunOnThreads(_ => examples.Select(e => model.Complete(e.Image, e.Label)).ToList());

        for (int t = 0; t < Threads; t++)
        {
            Assert.AreEqual(expected.Count, cursorResults[t].Count);
            for (int row = 0; row < expected.Count; row++)
            {
                CollectionAssert.AreEqual(expected[row].Completed, cursorResults[t][row].Completed, $"thread {t}, row {row}: labels");
                CollectionAssert.AreEqual(expected[row].Confidence, cursorResults[t][row].Confidence, $"thread {t}, row {row}: confidences");
                CollectionAssert.AreEqual(expected[row].Mask, cursorResults[t][row].Mask, $"thread {t}, row {row}: masks");
                CollectionAssert.AreEqual(expectedPredictions[row].CompletedLabel, predictionResults[t][row].CompletedLabel, $"engine {t}, row {row}");
                CollectionAssert.AreEqual(expectedPredictions[row].Confidence, predictionResults[t][row].Confidence, $"engine {t}, row {row}");
                CollectionAssert.AreEqual(expectedPredictions[row].CompletionMask, predictionResults[t][row].CompletionMask, $"engine {t}, row {row}");
                CollectionAssert.AreEqual(expectedSingles[row].Completed.Values, singleResults[t][row].Completed.Values, $"Complete {t}, row {row}");
                CollectionAssert.AreEqual(expectedSingles[row].Confidence, singleResults[t][row].Confidence, $"Complete {t}, row {row}");
            }
        }
        // The per-row path and the batched path agree on the labels (DESIGN: confidences within 1e-4).
        for (int row = 0; row < expected.Count; row++)
            CollectionAssert.AreEqual(expected[row].Completed, expectedPredictions[row].CompletedLabel, $"row {row}");
        Assert.IsTrue(expected.Any(r => r.Mask.Any(m => m)), "some pixels were completed");
    }

    /// <summary>Runs <paramref name="work"/> on 8 threads released together; each thread repeats it twice, the last result is kept.</summary>
    private static List<T> RunOnThreads<T>(Func<int, T> work)
    {
        var results = new T[Threads];
        var errors = new Exception?[Threads];
        using var start = new Barrier(Threads);
        var threads = Enumerable.Range(0, Threads).Select(t => new Thread(() =>
        {
            try
            {
                start.SignalAndWait();
                results[t] = work(t);
                results[t] = work(t);
            }
            catch (Exception e)
            {
                errors[t] = e;
            }
        })).ToList();
        threads.ForEach(t => t.Start());
        threads.ForEach(t => t.Join());
        if (errors.FirstOrDefault(e => e is not null) is { } error) throw new AssertFailedException("a thread failed: " + error, error);
        return results.ToList();
    }

    /// <summary>The model's three outputs, for <c>PredictionEngine</c>.</summary>
    public sealed class Output
    {
        public byte[] CompletedLabel { get; set; } = [];
        public float[] Confidence { get; set; } = [];
        public bool[] CompletionMask { get; set; } = [];
    }
}
