using System.IO.Compression;
using System.Text;
using Microsoft.ML.LabelCompletion.Model;
using Microsoft.ML.LabelCompletion.Tests.Integration;
using static TorchSharp.torch;

namespace Microsoft.ML.LabelCompletion.Tests.Reliability;

/// <summary>Damaged, foreign and too-new model files give clear errors; the zip records the model's metadata.</summary>
[TestClass]
public sealed class ModelFileTests
{
    private static readonly Lazy<(SyntheticSegmentationData Data, MLContext Ml, string Zip)> _saved = new(() =>
    {
        var data = new SyntheticSegmentationData(count: 3, seed: 5);
        var ml = new MLContext(seed: 1);
        var options = SyntheticSegmentationData.TinyOptions();
        options.ClassNames = ["background", "rectangle", "disc"];
        options.Palette = [0, 0, 0, 30, 40, 200, 40, 190, 50];
        options.CheckpointDirectory = "/some/checkpoints";
        options.CheckpointEverySteps = 17;
        options.ResumeFromCheckpoint = true;
        options.Precision = LabelCompletionPrecision.BFloat16;
        using var model = NewModel(ml, options);
        string zip = Path.Combine(data.Directory, "model.zip");
        ml.Model.Save(model, data.ImageData(ml).Schema, zip);
        return (data, ml, zip);
    });

    /// <summary>An untrained (seeded) Tiny model: enough for persistence, whose outputs are deterministic all the same.</summary>
    internal static LabelCompletionTransformer NewModel(MLContext ml, LabelCompletionOptions options)
        => new(ml, LabelCompletionEngine.Create(LmaeConfig.FromOptions(options), 3, CPU), options, ownsEngine: true);

    private static string Zip => _saved.Value.Zip;

    private static string Copy(string suffix)
    {
        string path = Path.Combine(_saved.Value.Data.Directory, Guid.NewGuid().ToString("N") + suffix);
        File.Copy(Zip, path);
        return path;
    }

    [TestMethod]
    public void SavedModel_RecordsFormatVersionClassesNamesPaletteOptionsAndLibraryVersion()
    {
        var loaded = (LabelCompletionTransformer)new MLContext().LabelCompletion().LoadModel(Zip, out _);
        using (loaded)
        {
            Assert.AreEqual(3, loaded.NumberOfClasses);
            CollectionAssert.AreEqual(new[] { "background", "rectangle", "disc" }, loaded.ClassNames!.ToArray());
            CollectionAssert.AreEqual(new byte[] { 0, 0, 0, 30, 40, 200, 40, 190, 50 }, loaded.Options.Palette);
            Assert.AreEqual("/some/checkpoints", loaded.Options.CheckpointDirectory);
            Assert.AreEqual(17, loaded.Options.CheckpointEverySteps);
            Assert.IsTrue(loaded.Options.ResumeFromCheckpoint);
            Assert.AreEqual(LabelCompletionPrecision.BFloat16, loaded.Options.Precision);
            Assert.IsFalse(string.IsNullOrEmpty(loaded.SavedByLibraryVersion));
            Assert.AreEqual(Internal.LibraryInfo.Version, loaded.SavedByLibraryVersion);
        }
        var (entry, bytes) = ModelEntry(Zip);
        int at = IndexOf(bytes, "LBLCOMPL"u8.ToArray());
        Assert.AreEqual(0x00010003u, BitConverter.ToUInt32(bytes, at + 8), $"{entry}: version written");
    }

    [TestMethod]
    public void TruncatedZip_NamesTheFileAndSaysTruncated()
    {
        byte[] bytes = File.ReadAllBytes(Zip);
        foreach (int length in new[] { 0, 100, bytes.Length / 2, bytes.Length - 10 })
        {
            string path = Copy($".truncated{length}.zip");
            File.WriteAllBytes(path, bytes[..length]);
            var error = Assert.Throws<InvalidDataException>(() => new MLContext().LabelCompletion().LoadModel(path, out _));
            StringAssert.StartsWith(error.Message, path + ": ");
            StringAssert.Contains(error.Message, "truncated or corrupted", error.Message);
            Assert.Throws<Exception>(() => new MLContext().Model.Load(path, out _)); // plain Load fails too
        }
    }

    [TestMethod]
    public void CorruptedEntries_NameTheFileAndTheProblem()
    {
        // A flipped bit inside the weights: the SHA-256 check catches it.
        string weights = Copy(".weights.zip");
        RewriteEntry(weights, LabelCompletionTransformer.WeightsEntryName, b => b[b.Length / 2] ^= 0x04);
        var error = Assert.Throws<InvalidDataException>(() => new MLContext().LabelCompletion().LoadModel(weights, out _));
        StringAssert.StartsWith(error.Message, weights + ": cannot load the label-completion model: ");
        StringAssert.Contains(error.Message, "corrupted");

        // Bit flips anywhere in the model entry (header, config, options, hash): a clear error, never a crash or a hang.
        var (entry, original) = ModelEntry(Zip);
        var rng = new Random(7);
        int failures = 0;
        for (int trial = 0; trial < 12; trial++)
        {
            string path = Copy($".flip{trial}.zip");
            int position = rng.Next(original.Length);
            RewriteEntry(path, entry, b => b[position] ^= (byte)(1 << rng.Next(8)));
            try
            {
                // A flip that loads must have hit a byte that changes nothing (string-table padding, the unused value of a
                // null option): the model must be the same model.
                using var loaded = (LabelCompletionTransformer)new MLContext().LabelCompletion().LoadModel(path, out _);
                using var reference = (LabelCompletionTransformer)new MLContext().Model.Load(Zip, out _);
                Assert.AreEqual(reference.Configuration, loaded.Configuration, $"flip at {position}");
                foreach (var field in typeof(LabelCompletionOptions).GetFields())
                {
                    object? x = field.GetValue(reference.Options), y = field.GetValue(loaded.Options);
                    if (x is System.Collections.IEnumerable a && y is System.Collections.IEnumerable b && x is not string)
                        CollectionAssert.AreEqual(a.Cast<object>().ToList(), b.Cast<object>().ToList(), $"flip at {position}: {field.Name}");
                    else Assert.AreEqual(x, y, $"flip at {position}: {field.Name}");
                }
            }
            catch (InvalidDataException e)
            {
                StringAssert.StartsWith(e.Message, path + ": ", $"flip at {position}");
                failures++;
            }
        }
        Assert.IsTrue(failures >= 6, $"only {failures} of 12 flips were detected");
    }

    [TestMethod]
    public void ForeignZips_AreNotModels()
    {
        string folder = _saved.Value.Data.Directory;
        string pictures = Path.Combine(folder, "pictures.zip");
        using (var archive = ZipFile.Open(pictures, ZipArchiveMode.Create))
        using (var writer = new StreamWriter(archive.CreateEntry("readme.txt").Open()))
            writer.Write("not a model");
        var error = Assert.Throws<InvalidDataException>(() => new MLContext().LabelCompletion().LoadModel(pictures, out _));
        StringAssert.StartsWith(error.Message, pictures + ": not a loadable ML.NET model");

        string text = Path.Combine(folder, "model.txt");
        File.WriteAllText(text, "hello");
        error = Assert.Throws<InvalidDataException>(() => new MLContext().LabelCompletion().LoadModel(text, out _));
        StringAssert.StartsWith(error.Message, text + ": not a readable zip file");

        // Another library's ML.NET model loads, as with Model.Load: it is not an error of the file.
        var ml = new MLContext();
        var rows = ml.Data.LoadFromEnumerable(new[] { new NumberRow { X = 1 } });
        string other = Path.Combine(folder, "other.zip");
        ml.Model.Save(ml.Transforms.CopyColumns("Y", "X").Fit(rows), rows.Schema, other);
        Assert.IsNotNull(ml.LabelCompletion().LoadModel(other, out _));
        Assert.Throws<FileNotFoundException>(() => ml.LabelCompletion().LoadModel(Path.Combine(folder, "missing.zip"), out _));
    }

    [TestMethod]
    public void NewerFormatVersion_SaysUpdateTheLibrary()
    {
        // ML.NET's version header: the model needs a reader of version 1.9 (verReadable), which this library is not.
        string header = Copy(".newer-header.zip");
        var (entry, _) = ModelEntry(Zip);
        RewriteEntry(header, entry, b =>
        {
            int at = IndexOf(b, "LBLCOMPL"u8.ToArray());
            BitConverter.TryWriteBytes(b.AsSpan(at + 8), 0x00010009u);  // version written
            BitConverter.TryWriteBytes(b.AsSpan(at + 12), 0x00010009u); // version readable
        });
        var error = Assert.Throws<InvalidDataException>(() => new MLContext().LabelCompletion().LoadModel(header, out _));
        StringAssert.StartsWith(error.Message, header + ": the model was saved by a newer version");

        // Our own layout version (the first int of the model data) says one more than this library writes.
        int newer = LabelCompletionTransformer.FormatVersion + 1;
        string layout = Copy(".newer-layout.zip");
        RewriteEntry(layout, entry, b =>
        {
            int at = IndexOf(b, BitConverter.GetBytes(LabelCompletionTransformer.FormatVersion).Concat(BitConverter.GetBytes(3)).ToArray());
            Assert.IsTrue(at > 0, "the format version is followed by the class count (3)");
            BitConverter.TryWriteBytes(b.AsSpan(at), newer);
        });
        error = Assert.Throws<InvalidDataException>(() => new MLContext().LabelCompletion().LoadModel(layout, out _));
        StringAssert.StartsWith(error.Message, layout + $": cannot load the label-completion model: format version {newer} was written by a newer version");
    }

    [TestMethod]
    public void FormatVersion1Model_StillLoads_WithIdenticalOutputs()
    {
        // Saved by the library at commit 1a8d037 (format version 1, no class names, palette or library version), with the
        // outputs that library produced on these two 16x16 scenes.
        string folder = Path.Combine(AppContext.BaseDirectory, "Reliability", "Fixtures");
        var ml = new MLContext(seed: 1);
        using var model = (LabelCompletionTransformer)ml.Model.Load(Path.Combine(folder, "lmae-format1.zip"), out _);
        Assert.IsNull(model.SavedByLibraryVersion);
        Assert.IsNull(model.ClassNames);
        Assert.IsNull(model.Options.CheckpointDirectory);
        Assert.AreEqual(200, model.Options.CheckpointEverySteps, "a version-1 model gets the defaults of the new options");
        var rows = Enumerable.Range(0, 2).Select(i => new PathRow
        {
            ImagePath = Path.Combine(folder, $"v1-image{i}.png"),
            Label = File.ReadAllBytes(Path.Combine(folder, $"v1-label{i}.bin")),
        });
        var outputs = IntegrationFixture.ReadOutputs(model.Transform(SyntheticSegmentationData.ImageData(ml, rows)));
        using var expected = new BinaryReader(File.OpenRead(Path.Combine(folder, "lmae-format1.outputs.bin")));
        foreach (var (completed, confidence, _) in outputs)
        {
            CollectionAssert.AreEqual(expected.ReadBytes(completed.Length), completed);
            foreach (float c in confidence) Assert.AreEqual(expected.ReadSingle(), c);
        }
        Assert.AreEqual(expected.BaseStream.Length, expected.BaseStream.Position);
    }

    [TestMethod]
    public void FormatVersion2Model_StillLoadsAsFloat32_WithIdenticalOutputs()
    {
        // Saved by the library at commit 4330339 (format version 2: no precision; pixel refinement with the directional
        // prior). The expected outputs on the two 16x16 scenes with unknown pixels (v2-label*.bin) are those of the Unknown
        // selector with hidden patches hidden from every input (their known pixels re-predicted too).
        string folder = Path.Combine(AppContext.BaseDirectory, "Reliability", "Fixtures");
        var ml = new MLContext(seed: 1);
        using var model = (LabelCompletionTransformer)ml.Model.Load(Path.Combine(folder, "lmae-format2.zip"), out _);
        Assert.AreEqual(LabelCompletionPrecision.Float32, model.Options.Precision, "a version-2 model computes in FP32");
        Assert.AreEqual(8, model.Configuration.RefinementChannels);
        Assert.IsTrue(model.Configuration.DirectionalPrior);
        var rows = Enumerable.Range(0, 2).Select(i => new PathRow
        {
            ImagePath = Path.Combine(folder, $"v1-image{i}.png"),
            Label = File.ReadAllBytes(Path.Combine(folder, $"v2-label{i}.bin")),
        });
        var outputs = IntegrationFixture.ReadOutputs(model.Transform(SyntheticSegmentationData.ImageData(ml, rows)));
        using var expected = new BinaryReader(File.OpenRead(Path.Combine(folder, "lmae-format2.outputs.bin")));
        int predicted = 0;
        foreach (var (completed, confidence, _) in outputs)
        {
            CollectionAssert.AreEqual(expected.ReadBytes(completed.Length), completed);
            foreach (float c in confidence)
            {
                Assert.AreEqual(expected.ReadSingle(), c, 1e-6f);
                if (c < 1) predicted++;
            }
        }
        Assert.AreEqual(expected.BaseStream.Length, expected.BaseStream.Position);
        Assert.IsTrue(predicted > 100, $"the fixture has hidden pixels to complete ({predicted})");
    }

    /// <summary>The zip entry that holds the transformer's own data (the one with our model signature).</summary>
    private static (string Name, byte[] Bytes) ModelEntry(string zip)
    {
        using var archive = ZipFile.OpenRead(zip);
        foreach (var entry in archive.Entries)
        {
            byte[] bytes = Read(entry);
            if (IndexOf(bytes, "LBLCOMPL"u8.ToArray()) >= 0) return (entry.FullName, bytes);
        }
        throw new AssertFailedException("no entry holds the LBLCOMPL signature: " + string.Join(", ", archive.Entries.Select(e => e.FullName)));
    }

    private static void RewriteEntry(string zip, string nameEnd, Action<byte[]> change)
    {
        using var archive = ZipFile.Open(zip, ZipArchiveMode.Update);
        var entry = archive.Entries.Single(e => e.FullName.EndsWith(nameEnd, StringComparison.Ordinal));
        byte[] bytes = Read(entry);
        change(bytes);
        string name = entry.FullName;
        entry.Delete();
        using var replaced = archive.CreateEntry(name).Open();
        replaced.Write(bytes);
    }

    private static byte[] Read(ZipArchiveEntry entry)
    {
        using var stream = entry.Open();
        using var copy = new MemoryStream();
        stream.CopyTo(copy);
        return copy.ToArray();
    }

    private static int IndexOf(byte[] haystack, byte[] needle) => haystack.AsSpan().IndexOf(needle);

    /// <summary>A row for a model of another kind.</summary>
    public sealed class NumberRow
    {
        public float X { get; set; }
    }
}
