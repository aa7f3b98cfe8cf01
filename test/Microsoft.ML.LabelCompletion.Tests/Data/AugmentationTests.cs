using Microsoft.ML.LabelCompletion.Data;

namespace Microsoft.ML.LabelCompletion.Tests.Data;

[TestClass]
public sealed class AugmentationTests
{
    private static readonly RgbImage s_image = DataTestFiles.MakeImage(48, 32, 1);
    private static readonly LabelMap s_label = DataTestFiles.MakeLabel(48, 32, 1, 0, 1, 2, 255);

    [TestMethod]
    public void SameSeedSameOutputOtherSeedOtherOutput()
    {
        var options = new SegmentationAugmentationOptions { CropWidth = 24, CropHeight = 16 };
        var a = SegmentationAugmentation.Apply(s_image, s_label, options, new Random(5));
        var b = SegmentationAugmentation.Apply(s_image, s_label, options, new Random(5));
        CollectionAssert.AreEqual(a.Image.Pixels, b.Image.Pixels);
        CollectionAssert.AreEqual(a.Label.Values, b.Label.Values);
        bool anyDifferent = false;
        for (int seed = 6; seed < 10 && !anyDifferent; seed++)
            anyDifferent = !a.Label.Values.SequenceEqual(SegmentationAugmentation.Apply(s_image, s_label, options, new Random(seed)).Label.Values);
        Assert.IsTrue(anyDifferent);
    }

    [TestMethod]
    public void OutputsHaveTheCropSizeAndOnlyExistingLabelValues()
    {
        var options = new SegmentationAugmentationOptions { CropWidth = 40, CropHeight = 40 };
        var rng = new Random(1);
        bool sawPadding = false;
        for (int i = 0; i < 30; i++)
        {
            var (image, label) = SegmentationAugmentation.Apply(s_image, s_label, options, rng);
            Assert.AreEqual(40, image.Width);
            Assert.AreEqual(40, label.Height);
            image.Validate();
            label.Validate(3, 255);
            Assert.IsTrue(label.Values.All(v => v is 0 or 1 or 2 or 255), "nearest neighbour never invents label values");
            sawPadding |= label.Values.Count(v => v == 255) > label.Values.Length / 2;
        }
        Assert.IsTrue(sawPadding, "scale 0.5 of a 48x32 image inside a 40x40 crop pads with unknown");
    }

    [TestMethod]
    public void IdentityFlipAndPaddingAreExact()
    {
        int w = s_image.Width, h = s_image.Height;
        var same = SegmentationAugmentation.Resample(s_image, s_label, w, h, 0, 0, false, w, h, 255);
        CollectionAssert.AreEqual(s_image.Pixels, same.Image.Pixels);
        CollectionAssert.AreEqual(s_label.Values, same.Label.Values);

        var flipped = SegmentationAugmentation.Resample(s_image, s_label, w, h, 0, 0, true, w, h, 255);
        for (int y = 0; y < h; y++)
        {
            for (int x = 0; x < w; x++)
            {
                Assert.AreEqual(s_label.Values[y * w + (w - 1 - x)], flipped.Label.Values[y * w + x]);
                Assert.AreEqual(s_image.Pixels[3 * (y * w + (w - 1 - x))], flipped.Image.Pixels[3 * (y * w + x)]);
            }
        }

        // Scaled image placed at (3, 2) inside a larger crop: zero image and unknown label around it.
        var padded = SegmentationAugmentation.Resample(s_image, s_label, w, h, -3, -2, false, w + 5, h + 4, 255);
        Assert.AreEqual(255, padded.Label.Values[0]);
        Assert.AreEqual(0, padded.Image.Pixels[0]);
        Assert.AreEqual(s_label.Values[0], padded.Label.Values[2 * (w + 5) + 3]);
        Assert.AreEqual(255, padded.Label.Values[^1]);

        // Doubling: each source label pixel becomes a 2x2 block; a constant image stays constant under bilinear.
        var doubled = SegmentationAugmentation.Resample(s_image, s_label, 2 * w, 2 * h, 0, 0, false, 2 * w, 2 * h, 255);
        for (int y = 0; y < 2 * h; y++)
        {
            for (int x = 0; x < 2 * w; x++)
                Assert.AreEqual(s_label.Values[y / 2 * w + x / 2], doubled.Label.Values[y * 2 * w + x]);
        }
        var flat = new RgbImage(w, h, Enumerable.Repeat((byte)77, w * h * 3).ToArray());
        Assert.IsTrue(SegmentationAugmentation.Resample(flat, s_label, 31, 19, 0, 0, false, 31, 19, 255).Image.Pixels.All(v => v == 77));
    }

    [TestMethod]
    public void RejectsMismatchedSizes() =>
        Assert.ThrowsExactly<ArgumentException>(() => SegmentationAugmentation.Apply(s_image, new LabelMap(2, 2, new byte[4]), new(), new Random(1)));
}
