using System.IO.Compression;
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
        Assert.AreEqual(0x00010004u, BitConverter.ToUInt32(bytes, at + 8), $"{entry}: version written");

        // The settings are one JSON entry: format, library version, weights' length and hash, every option by name.
        using var settings = System.Text.Json.JsonDocument.Parse(ReadEntry(Zip, LabelCompletionModelFile.SettingsEntryName));
        var root = settings.RootElement;
        Assert.AreEqual(LabelCompletionTransformer.FormatVersion, root.GetProperty("Format").GetInt32());
        Assert.AreEqual(Internal.LibraryInfo.Version, root.GetProperty("SavedBy").GetString());
        Assert.AreEqual(ReadEntry(Zip, LabelCompletionTransformer.WeightsEntryName).Length, root.GetProperty("Weights").GetProperty("Bytes").GetInt64());
        Assert.AreEqual("BFloat16", root.GetProperty("Settings").GetProperty("Precision").GetString());
        Assert.AreEqual(8, root.GetProperty("Settings").GetProperty("PatchSize").GetInt32(), "network fields are saved explicitly (the Tiny preset resolved)");
        Assert.IsFalse(root.GetProperty("Settings").TryGetProperty("ValidationSet", out _), "process-only members are not saved");
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

        // Bit flips anywhere in the settings entry: its SHA-256 (in the model header) catches every one.
        byte[] json = ReadEntry(Zip, LabelCompletionModelFile.SettingsEntryName);
        var rng = new Random(7);
        for (int trial = 0; trial < 12; trial++)
        {
            string path = Copy($".settings-flip{trial}.zip");
            int position = rng.Next(json.Length);
            RewriteEntry(path, LabelCompletionModelFile.SettingsEntryName, b => b[position] ^= (byte)(1 << rng.Next(8)));
            var flipped = Assert.Throws<InvalidDataException>(() => new MLContext().LabelCompletion().LoadModel(path, out _), $"flip at {position}");
            StringAssert.StartsWith(flipped.Message, path + ": cannot load the label-completion model: the 'LmaeSettings' entry is corrupted");
            Assert.AreEqual(LabelCompletionModelFile.SettingsEntryName, flipped.Data[LabelCompletionModelFile.FieldKey]);
        }

        // Bit flips in the model entry (ML.NET's header, our format version, the settings' length and hash): a clear error,
        // never a crash or a hang; our 44 bytes are always caught.
        var (entry, original) = ModelEntry(Zip);
        int ours = OurHeaderOffset(original, json.Length);
        int failures = 0;
        for (int trial = 0; trial < 24; trial++)
        {
            string path = Copy($".flip{trial}.zip");
            int position = trial < 12 ? ours + rng.Next(4 + 8 + 32) : rng.Next(original.Length);
            RewriteEntry(path, entry, b => b[position] ^= (byte)(1 << rng.Next(8)));
            try
            {
                // A flip that loads must have hit a byte that changes nothing (ML.NET's string-table padding): the same model.
                using var loaded = (LabelCompletionTransformer)new MLContext().LabelCompletion().LoadModel(path, out _);
                Assert.IsTrue(position < ours || position >= ours + 44, $"a flip of our header at {position} went unnoticed");
                using var reference = (LabelCompletionTransformer)new MLContext().Model.Load(Zip, out _);
                Assert.AreEqual(reference.Configuration, loaded.Configuration, $"flip at {position}");
            }
            catch (InvalidDataException e)
            {
                StringAssert.StartsWith(e.Message, path + ": ", $"flip at {position}");
                failures++;
            }
        }
        Assert.IsTrue(failures >= 12, $"only {failures} of 24 flips were detected");
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

        // Our own layout version (the first int of our data in the model entry) says one more than this library writes.
        int newer = LabelCompletionTransformer.FormatVersion + 1;
        string layout = Copy(".newer-layout.zip");
        int settingsLength = ReadEntry(Zip, LabelCompletionModelFile.SettingsEntryName).Length;
        RewriteEntry(layout, entry, b => BitConverter.TryWriteBytes(b.AsSpan(OurHeaderOffset(b, settingsLength)), newer));
        error = Assert.Throws<InvalidDataException>(() => new MLContext().LabelCompletion().LoadModel(layout, out _));
        StringAssert.StartsWith(error.Message, layout + $": cannot load the label-completion model: format version {newer} was written by a newer version");
    }

    [TestMethod]
    public void DroppedFormats1And2_AreRefusedWithAClearError()
    {
        // Saved by the library at commits 1a8d037 (format 1) and 4330339 (format 2): hand-written binary layouts this library
        // no longer reads. The error says so and what to do, before any network is built.
        string folder = Path.Combine(AppContext.BaseDirectory, "Reliability", "Fixtures");
        foreach (int format in new[] { 1, 2 })
        {
            string path = Path.Combine(folder, $"lmae-format{format}.zip");
            var error = Assert.Throws<InvalidDataException>(() => new MLContext().LabelCompletion().LoadModel(path, out _));
            StringAssert.StartsWith(error.Message,
                $"{path}: cannot load the label-completion model: model format {format} is not supported by this library");
            StringAssert.Contains(error.Message, "retrain the model with this library");
            Assert.AreEqual("Format", error.Data[LabelCompletionModelFile.FieldKey]);
            var plain = Assert.Throws<Exception>(() => new MLContext().Model.Load(path, out _));
            StringAssert.Contains(AllMessages(plain), $"model format {format} is not supported");
        }
    }

    [TestMethod]
    public void Format4Fixture_CompletesAsTheFormat2FixtureDid()
    {
        // lmae-format4.zip holds the weights of lmae-format2.zip (byte for byte, saved by the library at commit 4330339) and
        // its settings with the network fields explicit. The expected outputs on the two 16x16 scenes with unknown pixels
        // (v2-label*.bin) are those of the Unknown selector: the patches that hold unknown pixels masked for the encoder, their
        // known pixels kept in the label prior and in the output.
        string folder = Path.Combine(AppContext.BaseDirectory, "Reliability", "Fixtures");
        var ml = new MLContext(seed: 1);
        using var model = (LabelCompletionTransformer)ml.Model.Load(Path.Combine(folder, "lmae-format4.zip"), out _);
        Assert.AreEqual(LabelCompletionPrecision.Float32, model.Options.Precision);
        Assert.AreEqual(8, model.Configuration.RefinementChannels);
        Assert.IsTrue(model.Configuration.DirectionalPrior);
        CollectionAssert.AreEqual(ReadEntry(Path.Combine(folder, "lmae-format2.zip"), LabelCompletionTransformer.WeightsEntryName),
            ReadEntry(Path.Combine(folder, "lmae-format4.zip"), LabelCompletionTransformer.WeightsEntryName), "the same weights");
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

    /// <summary>Offset of our data in the model entry: the format version followed by the settings entry's length.</summary>
    internal static int OurHeaderOffset(byte[] modelEntry, int settingsLength)
    {
        int at = IndexOf(modelEntry, BitConverter.GetBytes(LabelCompletionTransformer.FormatVersion).Concat(BitConverter.GetBytes((long)settingsLength)).ToArray());
        Assert.IsTrue(at > 0, "the model entry holds the format version followed by the settings' length");
        return at;
    }

    internal static byte[] ReadEntry(string zip, string nameEnd)
    {
        using var archive = ZipFile.OpenRead(zip);
        return Read(archive.Entries.Single(e => e.FullName.EndsWith(nameEnd, StringComparison.Ordinal)));
    }

    internal static string AllMessages(Exception e)
    {
        var messages = new List<string>();
        for (Exception? x = e; x is not null; x = x.InnerException) messages.Add($"{x.GetType().Name}: {x.Message}");
        return string.Join(" | ", messages);
    }

    /// <summary>The zip entry that holds the transformer's own data (the one with our model signature).</summary>
    internal static (string Name, byte[] Bytes) ModelEntry(string zip)
    {
        using var archive = ZipFile.OpenRead(zip);
        foreach (var entry in archive.Entries)
        {
            byte[] bytes = Read(entry);
            if (IndexOf(bytes, "LBLCOMPL"u8.ToArray()) >= 0) return (entry.FullName, bytes);
        }
        throw new AssertFailedException("no entry holds the LBLCOMPL signature: " + string.Join(", ", archive.Entries.Select(e => e.FullName)));
    }

    internal static void RewriteEntry(string zip, string nameEnd, Action<byte[]> change)
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

    internal static byte[] Read(ZipArchiveEntry entry)
    {
        using var stream = entry.Open();
        using var copy = new MemoryStream();
        stream.CopyTo(copy);
        return copy.ToArray();
    }

    internal static int IndexOf(byte[] haystack, byte[] needle) => haystack.AsSpan().IndexOf(needle);

    /// <summary>A row for a model of another kind.</summary>
    public sealed class NumberRow
    {
        public float X { get; set; }
    }
}
