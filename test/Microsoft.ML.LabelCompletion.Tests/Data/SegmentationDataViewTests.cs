using Microsoft.ML.Data;
using Microsoft.ML.LabelCompletion.Data;
using Microsoft.ML.Transforms.Image;

namespace Microsoft.ML.LabelCompletion.Tests.Data;

[TestClass]
public sealed class SegmentationDataViewTests
{
    private const int W = 12, H = 8;

    private static string MakeCamVid(TempFolder tmp, int count)
    {
        for (int i = 0; i < count; i++)
        {
            DataTestFiles.WriteRgbPng(tmp.File("val", $"v{i}.png"), DataTestFiles.MakeImage(W + i, H, i));
            DataTestFiles.WriteGrayLabel(tmp.File("valannot", $"v{i}.png"), DataTestFiles.MakeLabel(W + i, H, i, 1, 2, 11));
        }
        return tmp.Path;
    }

    [TestMethod]
    public void SchemaColumnsAndValuesMatchTheDataset()
    {
        using var tmp = new TempFolder();
        var ml = new MLContext(seed: 1);
        SegmentationDataView view = ml.Data.LoadSegmentationPairs(MakeCamVid(tmp, 3), SegmentationDataFormat.CamVid, "val");
        var s = view.Schema;
        Assert.AreEqual(6, s.Count);
        Assert.IsInstanceOfType<ImageDataViewType>(s["Image"].Type);
        Assert.AreEqual(typeof(MLImage), s["Image"].Type.RawType);
        var labelType = (VectorDataViewType)s["Label"].Type;
        Assert.AreEqual(NumberDataViewType.Byte, labelType.ItemType);
        Assert.IsFalse(labelType.IsKnownSize);
        Assert.AreEqual(NumberDataViewType.Int32, s["Width"].Type);
        Assert.AreEqual(NumberDataViewType.Int32, s["Height"].Type);
        Assert.AreEqual(TextDataViewType.Instance, s["ImagePath"].Type);
        Assert.AreEqual(TextDataViewType.Instance, s["LabelPath"].Type);
        Assert.AreEqual(3L, view.GetRowCount());
        Assert.IsFalse(view.CanShuffle);

        using var cursor = view.GetRowCursor(s);
        var imageGetter = cursor.GetGetter<MLImage>(s["Image"]);
        var labelGetter = cursor.GetGetter<VBuffer<byte>>(s["Label"]);
        var widthGetter = cursor.GetGetter<int>(s["Width"]);
        var heightGetter = cursor.GetGetter<int>(s["Height"]);
        var pathGetter = cursor.GetGetter<ReadOnlyMemory<char>>(s["ImagePath"]);
        var labelPathGetter = cursor.GetGetter<ReadOnlyMemory<char>>(s["LabelPath"]);
        var idGetter = cursor.GetIdGetter();
        MLImage image = null!;
        VBuffer<byte> label = default;
        int rows = 0;
        while (cursor.MoveNext())
        {
            var expected = view.Dataset.Read(rows);
            imageGetter(ref image);
            labelGetter(ref label);
            int width = 0, height = 0;
            widthGetter(ref width);
            heightGetter(ref height);
            ReadOnlyMemory<char> path = default, labelPath = default;
            pathGetter(ref path);
            labelPathGetter(ref labelPath);
            DataViewRowId id = default;
            idGetter(ref id);

            Assert.AreEqual(rows, cursor.Position);
            Assert.AreEqual((ulong)rows, id.Low);
            Assert.AreEqual(W + rows, width);
            Assert.AreEqual(H, height);
            Assert.AreEqual(MLPixelFormat.Bgra32, image.PixelFormat);
            Assert.AreEqual(width, image.Width);
            CollectionAssert.AreEqual(expected.Image.Pixels, image.ToRgbImage().Pixels);
            image.Dispose();
            CollectionAssert.AreEqual(expected.Label.Values, label.DenseValues().ToArray());
            Assert.IsFalse(label.DenseValues().Contains((byte)11), "void is remapped");
            Assert.AreEqual(expected.ImagePath, path.ToString());
            Assert.AreEqual(expected.LabelPath, labelPath.ToString());
            rows++;
        }
        Assert.AreEqual(3, rows);
        Assert.ThrowsExactly<InvalidOperationException>(() => cursor.GetGetter<int>(s["Label"]));
    }

    [TestMethod]
    public void CursorsStreamAndDecodeOnlyWhenAGetterAsks()
    {
        using var tmp = new TempFolder();
        var view = new MLContext().Data.LoadSegmentationPairs(MakeCamVid(tmp, 3), SegmentationDataFormat.CamVid, "val");
        // Corrupt row 1 after listing: a cursor that only reads paths never decodes it, nor does one that skips its getters.
        File.WriteAllBytes(view.Dataset.Pairs[1].ImagePath, [1, 2, 3]);
        var s = view.Schema;
        using (var paths = view.GetRowCursor([s["ImagePath"]]))
        {
            int n = 0;
            while (paths.MoveNext())
                n++;
            Assert.AreEqual(3, n);
            Assert.IsFalse(paths.IsColumnActive(s["Image"]));
            Assert.ThrowsExactly<InvalidOperationException>(() => paths.GetGetter<MLImage>(s["Image"]));
        }
        using (var cursor = view.GetRowCursor(s))
        {
            var width = cursor.GetGetter<int>(s["Width"]);
            Assert.IsTrue(cursor.MoveNext());
            int w = 0;
            width(ref w);
            Assert.IsTrue(cursor.MoveNext()); // row 1: not decoded because no getter is called
            Assert.IsTrue(cursor.MoveNext());
            width(ref w);
            Assert.AreEqual(W + 2, w);
        }
        using (var cursor = view.GetRowCursor(s))
        {
            var width = cursor.GetGetter<int>(s["Width"]);
            cursor.MoveNext();
            cursor.MoveNext();
            int w = 0;
            var ex = Assert.ThrowsExactly<InvalidDataException>(() => width(ref w));
            StringAssert.Contains(ex.Message, view.Dataset.Pairs[1].ImagePath);
        }
    }

    [TestMethod]
    public void SkippingBadRowsGivesEveryCursorTheSameRowsAndReportsThem()
    {
        using var tmp = new TempFolder();
        var view = new MLContext().Data.LoadSegmentationPairs(new SegmentationDataOptions
        {
            Root = MakeCamVid(tmp, 4), Format = SegmentationDataFormat.CamVid, Split = "val", SkipBadRows = true,
        });
        File.WriteAllBytes(view.Dataset.Pairs[2].LabelPath, [137, 80, 78, 71]);
        Assert.IsNull(view.GetRowCount(), "unknown until every row was read");
        var s = view.Schema;
        var seen = new List<string>();
        using (var cursor = view.GetRowCursor([s["LabelPath"]]))
        {
            var getter = cursor.GetGetter<ReadOnlyMemory<char>>(s["LabelPath"]);
            ReadOnlyMemory<char> p = default;
            while (cursor.MoveNext())
            {
                getter(ref p);
                seen.Add(p.ToString());
            }
        }
        Assert.AreEqual(3, seen.Count);
        Assert.IsFalse(seen.Contains(view.Dataset.Pairs[2].LabelPath));
        Assert.AreEqual(3L, view.GetRowCount());
        Assert.AreEqual(1, view.BadRowCount);
        StringAssert.Contains(view.BadRows[0].Reason, view.Dataset.Pairs[2].LabelPath);

        using var full = view.GetRowCursor(s);
        int rows = 0;
        while (full.MoveNext())
            rows++;
        Assert.AreEqual(3, rows);
        Assert.AreEqual(1, view.BadRowCount);
    }

    [TestMethod]
    public void WorksInAnMLNetPipeline()
    {
        using var tmp = new TempFolder();
        var ml = new MLContext(seed: 1);
        var view = ml.Data.LoadSegmentationPairs(MakeCamVid(tmp, 2), SegmentationDataFormat.CamVid, "val");
        // An ML.NET image transform consumes the Image column.
        var pipeline = ml.Transforms.ResizeImages("Small", 4, 3, "Image");
        var output = pipeline.Fit(view).Transform(view);
        var widths = output.GetColumn<int>("Width").ToArray();
        CollectionAssert.AreEqual(new[] { W, W + 1 }, widths);
        // ML.NET's resizer disposes the previous image in its buffer, so look at each one while the cursor is on its row.
        using (var cursor = output.GetRowCursor([output.Schema["Small"]]))
        {
            var getter = cursor.GetGetter<MLImage>(output.Schema["Small"]);
            MLImage small = null!;
            int rows = 0;
            while (cursor.MoveNext())
            {
                getter(ref small);
                Assert.AreEqual(4, small.Width);
                Assert.AreEqual(3, small.Height);
                rows++;
            }
            Assert.AreEqual(2, rows);
        }
        var labels = output.GetColumn<byte[]>("Label").ToArray();
        Assert.AreEqual(W * H, labels[0].Length);
    }
}
