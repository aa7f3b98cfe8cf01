using Microsoft.ML.LabelCompletion.Data;

namespace Microsoft.ML.LabelCompletion.Tests.Data;

/// <summary>The loader on the real CamVid copy in ../shared/data/camvid (fails, naming the path, when it is absent).</summary>
[TestClass]
public sealed class CamVidTests
{
    [TestMethod]
    [DataRow("train", 367)]
    [DataRow("val", 101)]
    [DataRow("test", 117)]
    public void SplitsHaveTheDocumentedCountsSizesAndVoidRemapped(string split, int count)
    {
        string root = DataTestFiles.RequireCamVid();
        var view = new MLContext().Data.LoadSegmentationPairs(root, SegmentationDataFormat.CamVid, split);
        Assert.AreEqual((long)count, view.GetRowCount());
        var ds = view.Dataset;
        Assert.AreEqual(count, ds.Count);
        Assert.AreEqual(0, ds.BadRowCount);
        // The list files written beside the data agree with the folder pairing.
        var listed = SegmentationDataset.Open(new SegmentationDataOptions
        {
            Root = root, Format = SegmentationDataFormat.ListFile, Split = split, NumberOfClasses = 11, LabelValueMap = new Dictionary<int, byte> { [11] = 255 },
        });
        CollectionAssert.AreEquivalent(ds.Pairs.Select(p => p.LabelPath).ToArray(), listed.Pairs.Select(p => p.LabelPath).ToArray());

        // Decode a spread of samples (decoding all 585 pairs is the benchmark's job, not a unit test's).
        for (int i = 0; i < count; i += count / 4)
        {
            var sample = ds.Read(i);
            Assert.AreEqual(480, sample.Image.Width);
            Assert.AreEqual(360, sample.Image.Height);
            Assert.AreEqual(480 * 360, sample.Label.Values.Length);
            Assert.IsTrue(sample.Label.Values.All(v => v < 11 || v == 255), "only classes 0..10 and unknown");
            Assert.IsTrue(sample.Label.Values.Contains((byte)255), "every CamVid label has void pixels, now unknown");

            // Our PNG reader agrees with SkiaSharp's (libpng) on the grayscale label and on the RGB image.
            var skiaLabel = DataTestFiles.SkiaRgba(sample.LabelPath, out _, out _);
            var raw = Png.Read(sample.LabelPath);
            Assert.AreEqual(PngColorType.Grayscale, raw.ColorType);
            for (int p = 0; p < raw.Samples.Length; p++)
            {
                if (raw.Samples[p] != skiaLabel[4 * p])
                    Assert.Fail($"{sample.LabelPath} pixel {p}: ours {raw.Samples[p]}, Skia {skiaLabel[4 * p]}");
                Assert.AreEqual(raw.Samples[p] == 11 ? (byte)255 : raw.Samples[p], sample.Label.Values[p]);
            }
            var ourImage = Png.Read(sample.ImagePath);
            CollectionAssert.AreEqual(ourImage.Samples, sample.Image.Pixels);
        }
    }

    [TestMethod]
    public void ALabelWrittenBackUntouchedIsIdentical()
    {
        string root = DataTestFiles.RequireCamVid();
        var ds = SegmentationDataset.Open(new SegmentationDataOptions { Root = root, Format = SegmentationDataFormat.CamVid, Split = "val" });
        using var tmp = new TempFolder();
        var sample = ds.Read(3);
        string dest = Path.Combine(tmp.Path, ds.Pairs[3].RelativeLabelPath);
        ds.WriteCompletedLabel(3, sample.Label, dest);
        CollectionAssert.AreEqual(Png.Read(sample.LabelPath).Samples, Png.Read(dest).Samples);
        CollectionAssert.AreEqual(sample.Label.Values, SegmentationFiles.ReadLabel(dest, ds.LabelMapping).Values);
    }
}
