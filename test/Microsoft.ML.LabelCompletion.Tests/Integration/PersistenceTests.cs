using System.IO.Compression;
using System.Reflection;
using Microsoft.ML.LabelCompletion.ModelLoader;

namespace Microsoft.ML.LabelCompletion.Tests.Integration;

[TestClass]
public sealed class PersistenceTests
{
    [TestMethod]
    public void SavedModel_LoadsInAnotherProcess_WithBitIdenticalOutputs()
    {
        var ml = IntegrationFixture.Context;
        var data = IntegrationFixture.Data.ImageData(ml);
        string zip = IntegrationFixture.TempFile(".zip");
        ml.Model.Save(IntegrationFixture.Model, data.Schema, zip);

        string expected = IntegrationFixture.TempFile(".bin");
        OutputWriter.Write(IntegrationFixture.Model.Transform(data), expected);
        string actual = IntegrationFixture.TempFile(".bin");
        var (exit, stdout, stderr) = IntegrationFixture.RunModelLoader(zip, "images", actual);
        Assert.AreEqual(0, exit, stderr);
        StringAssert.Contains(stdout, "loaded Microsoft.ML.LabelCompletion.LabelCompletionTransformer");
        CollectionAssert.AreEqual(File.ReadAllBytes(expected), File.ReadAllBytes(actual), "outputs differ between the processes");
        Assert.IsTrue(new FileInfo(expected).Length > 6 * 1024, "the outputs were written");
    }

    [TestMethod]
    public void SavedModelWithImageFeatures_LoadsInAnotherProcess_WithBitIdenticalOutputs()
    {
        var ml = new MLContext(seed: 2);
        var data = IntegrationFixture.Data.ImageData(ml);
        var options = SyntheticSegmentationData.TinyOptions();
        options.ImageFeatures = ImageFeatureInputs.All;
        using var model = ml.Transforms.CompleteLabels(options).Fit(data);
        string zip = IntegrationFixture.TempFile(".zip");
        ml.Model.Save(model, data.Schema, zip);
        Assert.IsTrue(new FileInfo(zip).Length > 10 << 20, "the ResNet18's weights are saved with the model");

        string expected = IntegrationFixture.TempFile(".bin");
        OutputWriter.Write(model.Transform(data), expected);
        string actual = IntegrationFixture.TempFile(".bin");
        var (exit, _, stderr) = IntegrationFixture.RunModelLoader(zip, "images", actual);
        Assert.AreEqual(0, exit, stderr);
        CollectionAssert.AreEqual(File.ReadAllBytes(expected), File.ReadAllBytes(actual), "outputs differ between the processes");
    }

    [TestMethod]
    public void SavedChain_LoadImagesCopyCompleteCopy_LoadsInAnotherProcess_WithBitIdenticalOutputs()
    {
        var data = IntegrationFixture.Data;
        var ml = new MLContext(seed: 5);
        var rows = data.Rows.Select(r => new PathRowRaw { ImagePath = r.ImagePath, RawLabel = r.Label });
        var input = ml.Data.LoadFromEnumerable(rows);
        var options = SyntheticSegmentationData.TinyOptions();
        options.InferenceBatchSize = 4;
        var pipeline = ml.Transforms.LoadImages("Image", null, "ImagePath")
            .Append(ml.Transforms.CopyColumns("Label", "RawLabel"))
            .Append(ml.Transforms.CompleteLabels(options))
            .Append(ml.Transforms.CopyColumns("CompletedCopy", "CompletedLabel"));
        var model = pipeline.Fit(input);
        string zip = IntegrationFixture.TempFile(".zip");
        ml.Model.Save(model, input.Schema, zip);

        string expected = IntegrationFixture.TempFile(".bin");
        OutputWriter.Write(model.Transform(input), expected);
        string actual = IntegrationFixture.TempFile(".bin");
        var (exit, stdout, stderr) = IntegrationFixture.RunModelLoader(zip, "paths", actual);
        Assert.AreEqual(0, exit, stderr);
        StringAssert.Contains(stdout, "TransformerChain");
        CollectionAssert.AreEqual(File.ReadAllBytes(expected), File.ReadAllBytes(actual), "outputs differ between the processes");
    }

    [TestMethod]
    public void LoadedModel_IsOurs_HoldsItsEntries_AndKeepsEveryOption()
    {
        // Fails loudly if the ML.NET internals this library relies on (LoadableClass, VersionInfo, binary streams) move.
        var ml = IntegrationFixture.Context;
        var data = IntegrationFixture.Data.ImageData(ml);
        string zip = IntegrationFixture.TempFile(".zip");
        ml.Model.Save(IntegrationFixture.Model, data.Schema, zip);

        using (var archive = ZipFile.OpenRead(zip))
        {
            var names = archive.Entries.Select(e => e.FullName).ToList();
            Assert.IsTrue(names.Any(n => n.EndsWith(LabelCompletionTransformer.WeightsEntryName, StringComparison.Ordinal)),
                "no weights entry in " + string.Join(", ", names));
            var weights = archive.Entries.Single(e => e.FullName.EndsWith(LabelCompletionTransformer.WeightsEntryName, StringComparison.Ordinal));
            Assert.IsTrue(weights.Length > 100, $"weights entry has only {weights.Length} bytes");
        }

        var loaded = new MLContext(seed: 9).Model.Load(zip, out var schema);
        Assert.IsInstanceOfType<LabelCompletionTransformer>(loaded);
        Assert.IsNotNull(schema.GetColumnOrNull("Label"), "the input schema is saved too");
        var transformer = (LabelCompletionTransformer)loaded;
        Assert.AreEqual(IntegrationFixture.Model.Configuration, transformer.Configuration);

        // Every option survives the round trip: a new option that SaveModel does not write fails here.
        var original = IntegrationFixture.Model.Options;
        var restored = transformer.Options;
        foreach (var field in typeof(LabelCompletionOptions).GetFields(BindingFlags.Public | BindingFlags.Instance))
        {
            if (field.Name is nameof(LabelCompletionOptions.ValidationSet) or nameof(LabelCompletionOptions.CancellationToken)) continue;
            Assert.AreEqual(field.GetValue(original), field.GetValue(restored), $"option {field.Name} is not saved");
        }
    }

    [TestMethod]
    public void FlippedByteInWeights_FailsLoudly()
    {
        var ml = IntegrationFixture.Context;
        var data = IntegrationFixture.Data.ImageData(ml);
        string zip = IntegrationFixture.TempFile(".zip");
        ml.Model.Save(IntegrationFixture.Model, data.Schema, zip);
        using (var archive = ZipFile.Open(zip, ZipArchiveMode.Update))
        {
            var entry = archive.Entries.Single(e => e.FullName.EndsWith(LabelCompletionTransformer.WeightsEntryName, StringComparison.Ordinal));
            byte[] bytes;
            using (var stream = entry.Open())
            using (var copy = new MemoryStream())
            {
                stream.CopyTo(copy);
                bytes = copy.ToArray();
            }
            bytes[bytes.Length * 3 / 4] ^= 0x10; // inside the tensor data
            string name = entry.FullName;
            entry.Delete();
            using var replaced = archive.CreateEntry(name).Open();
            replaced.Write(bytes);
        }
        var error = Assert.Throws<Exception>(() => new MLContext().Model.Load(zip, out _));
        StringAssert.Contains(AllMessages(error), "corrupted");
    }

    [TestMethod]
    public void MissingWeightsEntry_AndTruncatedZip_GiveClearErrors()
    {
        var ml = IntegrationFixture.Context;
        var data = IntegrationFixture.Data.ImageData(ml);
        string zip = IntegrationFixture.TempFile(".zip");
        ml.Model.Save(IntegrationFixture.Model, data.Schema, zip);

        string truncated = IntegrationFixture.TempFile(".zip");
        var bytes = File.ReadAllBytes(zip);
        File.WriteAllBytes(truncated, bytes.AsSpan(0, bytes.Length / 2).ToArray());
        var error = Assert.Throws<Exception>(() => new MLContext().Model.Load(truncated, out _));
        Assert.IsInstanceOfType<InvalidDataException>(Innermost(error), AllMessages(error));

        using (var archive = ZipFile.Open(zip, ZipArchiveMode.Update))
            archive.Entries.Single(e => e.FullName.EndsWith(LabelCompletionTransformer.WeightsEntryName, StringComparison.Ordinal)).Delete();
        error = Assert.Throws<Exception>(() => new MLContext().Model.Load(zip, out _));
        StringAssert.Contains(AllMessages(error), $"no '{LabelCompletionTransformer.WeightsEntryName}' entry");
    }

    private static string AllMessages(Exception e)
    {
        var messages = new List<string>();
        for (Exception? x = e; x is not null; x = x.InnerException) messages.Add($"{x.GetType().Name}: {x.Message}");
        return string.Join(" | ", messages);
    }

    private static Exception Innermost(Exception e)
    {
        while (e.InnerException is not null) e = e.InnerException;
        return e;
    }

    /// <summary>Input of the chain test: image path and the raw label, copied to "Label" inside the chain.</summary>
    public sealed class PathRowRaw
    {
        public string ImagePath { get; set; } = "";
        public byte[] RawLabel { get; set; } = [];
    }
}
