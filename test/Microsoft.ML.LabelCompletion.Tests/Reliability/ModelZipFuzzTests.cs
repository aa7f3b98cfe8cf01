using System.Diagnostics;
using System.IO.Compression;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json.Nodes;
using Microsoft.ML.LabelCompletion.Model;
using Microsoft.ML.LabelCompletion.Tests.Integration;
using static TorchSharp.torch;

namespace Microsoft.ML.LabelCompletion.Tests.Reliability;

/// <summary>
/// Model zips an attacker or a careless user could hand over: every settings field at extremes (with the hashes made to
/// match, so the bounds are what stops them), entries swapped between two models, oversized and size-lying entries,
/// truncated zips. Each load fails with one clear <see cref="InvalidDataException"/> naming the file (and the field or
/// entry), within <see cref="TimeLimit"/> and without large allocations, or loads a model that is valid.
/// </summary>
[TestClass]
public sealed class ModelZipFuzzTests
{
    /// <summary>Per load (the load of a valid Tiny model takes tens of milliseconds).</summary>
    private static readonly TimeSpan TimeLimit = TimeSpan.FromSeconds(1);

    /// <summary>Managed bytes one load may allocate (the settings entry is capped at 1 MiB; a valid Tiny model needs far less).</summary>
    private const long AllocationLimit = 32L << 20;

    /// <summary>Growth of the process's peak resident set over all cases of a test (an encoder of depth 10,000,000 took 24 GB).</summary>
    private const long ResidentLimit = 512L << 20;

    private static readonly Lazy<(string Folder, string A, string B)> _models = new(() =>
    {
        var data = new SyntheticSegmentationData(count: 2, seed: 9);
        var ml = new MLContext(seed: 1);
        var schema = data.ImageData(ml).Schema;
        string a = Path.Combine(data.Directory, "a.zip"), b = Path.Combine(data.Directory, "b.zip");
        var options = SyntheticSegmentationData.TinyOptions();
        options.ClassNames = ["background", "rectangle", "disc"];
        using (var model = ModelFileTests.NewModel(ml, options)) ml.Model.Save(model, schema, a);
        var other = SyntheticSegmentationData.TinyOptions();
        other.PixelRefinementChannels = 0;
        using (var model = new LabelCompletionTransformer(ml, LabelCompletionEngine.Create(LmaeConfig.FromOptions(other), 4, CPU), other, ownsEngine: true))
            ml.Model.Save(model, schema, b);
        // Warm-up: the first load pays for ML.NET's catalog and TorchSharp's start; the bounds are about the file.
        using (var loaded = (LabelCompletionTransformer)ml.LabelCompletion().LoadModel(a, out _)) { }
        return (data.Directory, a, b);
    });

    private static string A => _models.Value.A;

    private static string B => _models.Value.B;

    [TestMethod]
    public void EverySettingsField_AtExtremes_FailsClearlyOrLoadsAValidModel_InBoundedTimeAndMemory()
    {
        var settings = JsonNode.Parse(ModelFileTests.ReadEntry(A, LabelCompletionModelFile.SettingsEntryName))!["Settings"]!.AsObject();
        var names = settings.Select(p => p.Key).ToList();
        Assert.IsTrue(names.Count >= 45, $"{names.Count} settings fields");
        JsonNode?[] extremes =
        [
            0, -1, int.MaxValue, int.MinValue, 10_000_000, 65536, 1e30, 0.5, "", "Bogus", new string('x', 5000), null, true,
            new JsonArray(Enumerable.Range(0, 300).Select(i => (JsonNode?)$"class {i}").ToArray()),
        ];
        long resident = ResetPeakResident();
        int failed = 0, loaded = 0;
        foreach (string name in names)
        {
            foreach (var value in extremes)
            {
                string label = $"{name} = {value?.ToJsonString() ?? "null"}";
                string path = WithSettings(A, s => s["Settings"]![name] = value?.DeepClone());
                var error = LoadBounded(path, label);
                if (error is null) loaded++;
                else failed++;
            }
        }
        Assert.IsTrue(failed > loaded, $"{failed} failed, {loaded} loaded");
        CheckPeakResident(resident);

        // The values of the reported attacks fail on their own field, before any network is built.
        foreach (var (name, value) in new (string, JsonNode)[]
        {
            ("EncoderDepth", 10_000_000), ("EncoderEmbeddingDimension", 16384), ("EncoderHeads", 0), ("DecoderDepth", int.MaxValue),
            ("DecoderEmbeddingDimension", -4), ("DecoderHeads", 1 << 20), ("NumberOfClasses", 0), ("NumberOfClasses", 256),
            ("PatchSize", 0), ("PatchSize", 1_000_000), ("TrainingSize", 100_000), ("MlpRatio", 100_000),
            ("PixelRefinementChannels", 1 << 20), ("InferenceBatchSize", -1), ("WindowOverlap", 0.99), ("Epochs", 0),
        })
        {
            string path = WithSettings(A, s => s["Settings"]![name] = value.DeepClone());
            var error = LoadBounded(path, $"{name} = {value.ToJsonString()}");
            Assert.IsNotNull(error, $"{name} = {value.ToJsonString()} loaded");
            Assert.AreEqual(name, error.Data[LabelCompletionModelFile.FieldKey], error.Message);
            StringAssert.Contains(error.Message, $"LabelCompletionOptions.{name}: ", error.Message);
        }
    }

    [TestMethod]
    public void EditedSettings_WithoutMatchingHashes_FailOnTheSettingsHash()
    {
        // The repro of the report: one edited number in the settings (the encoder depth), hashes left as they were; once
        // with the entry's length kept (the SHA-256 catches it), once longer (the size the zip declares catches it first).
        foreach (string depth in new[] { "9", "9999999" })
        {
            string path = Copy(A, ".edited.zip");
            ReplaceEntry(path, LabelCompletionModelFile.SettingsEntryName, json =>
            {
                string text = Encoding.UTF8.GetString(json);
                StringAssert.Contains(text, "\"EncoderDepth\": 2,");
                return Encoding.UTF8.GetBytes(text.Replace("\"EncoderDepth\": 2,", $"\"EncoderDepth\": {depth},", StringComparison.Ordinal));
            });
            var error = LoadBounded(path, $"edited depth {depth}");
            Assert.IsNotNull(error);
            Assert.AreEqual(LabelCompletionModelFile.SettingsEntryName, error.Data[LabelCompletionModelFile.FieldKey], error.Message);
            StringAssert.Contains(error.Message, depth.Length == 1 ? "SHA-256" : "entry declares");
        }

        // The weights' length and hash inside the settings: out of range or not a hash.
        foreach (var (field, value) in new (string, JsonNode)[] { ("Bytes", 0), ("Bytes", -1), ("Bytes", 1e12), ("Bytes", 10), ("Sha256", "zz"), ("Sha256", "") })
        {
            string edited = WithSettings(A, s => s["Weights"]![field] = value.DeepClone());
            var e = LoadBounded(edited, $"Weights.{field} = {value.ToJsonString()}");
            Assert.IsNotNull(e, $"Weights.{field} = {value.ToJsonString()} loaded");
        }

        // A network larger than its weights: a consistent file (hashes recomputed) whose settings describe 64 blocks of width 64.
        string larger = WithSettings(A, s => s["Settings"]!["EncoderDepth"] = 64);
        var tooLarge = LoadBounded(larger, "64 blocks");
        Assert.IsNotNull(tooLarge);
        StringAssert.Contains(tooLarge.Message, "describe a network of at least");
        Assert.AreEqual("Weights.Bytes", tooLarge.Data[LabelCompletionModelFile.FieldKey]);
    }

    [TestMethod]
    public void EntriesSwappedBetweenTwoModels_FailOnTheirHashes()
    {
        long resident = ResetPeakResident();
        foreach (var (entry, field) in new[]
        {
            (LabelCompletionTransformer.WeightsEntryName, LabelCompletionTransformer.WeightsEntryName),
            (LabelCompletionModelFile.SettingsEntryName, LabelCompletionModelFile.SettingsEntryName),
            ("Model.key", LabelCompletionModelFile.SettingsEntryName),
        })
        {
            string path = Copy(A, $".swapped-{entry}.zip");
            byte[] other = ModelFileTests.ReadEntry(B, entry);
            ReplaceEntry(path, entry, _ => other);
            var error = LoadBounded(path, $"{entry} of the other model");
            Assert.IsNotNull(error, $"{entry} swapped: loaded");
            Assert.AreEqual(field, error.Data[LabelCompletionModelFile.FieldKey], error.Message);
        }

        // Settings and header of B (consistent with each other) over the weights of A: the weights' hash fails.
        string both = Copy(A, ".swapped-settings-and-header.zip");
        foreach (string entry in new[] { LabelCompletionModelFile.SettingsEntryName, "Model.key" })
        {
            byte[] other = ModelFileTests.ReadEntry(B, entry);
            ReplaceEntry(both, entry, _ => other);
        }
        var mixed = LoadBounded(both, "settings and header of the other model");
        Assert.IsNotNull(mixed);
        Assert.AreEqual(LabelCompletionTransformer.WeightsEntryName, mixed.Data[LabelCompletionModelFile.FieldKey], mixed.Message);
        CheckPeakResident(resident);
    }

    [TestMethod]
    public void OversizedOrSizeLyingEntries_AreRefusedBeforeExtraction()
    {
        long resident = ResetPeakResident();
        // Settings larger than the header says (whitespace appended, header unchanged).
        string padded = Copy(A, ".settings-padded.zip");
        ReplaceEntry(padded, LabelCompletionModelFile.SettingsEntryName, json => [.. json, .. Encoding.UTF8.GetBytes(new string(' ', 4096))]);
        var error = LoadBounded(padded, "padded settings");
        Assert.IsNotNull(error);
        StringAssert.Contains(error.Message, "entry declares");
        Assert.AreEqual(LabelCompletionModelFile.SettingsEntryName, error.Data[LabelCompletionModelFile.FieldKey]);

        // Settings of 2 MiB with a matching header: above the 1 MiB cap.
        string huge = WithSettings(A, _ => { }, pad: 2 << 20);
        error = LoadBounded(huge, "2 MiB settings");
        Assert.IsNotNull(error);
        StringAssert.Contains(error.Message, $"(1 to {LabelCompletionModelFile.MaxSettingsBytes} allowed)");

        // Weights followed by 32 MiB of zeros (a small zip entry): the size the zip declares differs from the recorded one.
        string bomb = Copy(A, ".weights-bomb.zip");
        ReplaceEntry(bomb, LabelCompletionTransformer.WeightsEntryName, weights => [.. weights, .. new byte[32 << 20]]);
        Assert.IsTrue(new FileInfo(bomb).Length < new FileInfo(A).Length + (4 << 20), "the zeros compress");
        error = LoadBounded(bomb, "weights bomb");
        Assert.IsNotNull(error);
        Assert.AreEqual(LabelCompletionTransformer.WeightsEntryName, error.Data[LabelCompletionModelFile.FieldKey], error.Message);
        StringAssert.Contains(error.Message, "entry declares");

        // An entry whose directory record claims 3.75 GiB: the catalog's check refuses the zip, plain Model.Load our loader.
        string claims = Copy(A, ".weights-claims.zip");
        DeclareSize(claims, LabelCompletionTransformer.WeightsEntryName, 0xF000_0000u);
        error = LoadBounded(claims, "3.75 GiB claimed");
        Assert.IsNotNull(error);
        StringAssert.Contains(error.Message, "declares 4026531840 bytes, more than the");
        StringAssert.EndsWith((string)error.Data[LabelCompletionModelFile.FieldKey]!, LabelCompletionTransformer.WeightsEntryName);
        var clock = Stopwatch.StartNew();
        var plain = Assert.Throws<Exception>(() => new MLContext().Model.Load(claims, out _));
        Assert.IsTrue(clock.Elapsed < TimeLimit, $"plain Model.Load took {clock.ElapsedMilliseconds} ms");
        StringAssert.Contains(ModelFileTests.AllMessages(plain), "the 'LmaeWeights' entry declares 4026531840 bytes");
        CheckPeakResident(resident);
    }

    [TestMethod]
    public void TruncatedZips_FailClearly_InBoundedTimeAndMemory()
    {
        byte[] bytes = File.ReadAllBytes(A);
        long resident = ResetPeakResident();
        foreach (int length in new[] { 0, 1, 22, 100, bytes.Length / 3, bytes.Length / 2, bytes.Length - 23, bytes.Length - 1 })
        {
            string path = Path.Combine(_models.Value.Folder, $"truncated-{length}.zip");
            File.WriteAllBytes(path, bytes[..length]);
            var error = LoadBounded(path, $"{length} of {bytes.Length} bytes");
            Assert.IsNotNull(error, $"{length} bytes loaded");
        }
        CheckPeakResident(resident);
    }

    /// <summary>Loads through the catalog; returns the error (null when the model loaded), checking time, allocation and message.</summary>
    private static InvalidDataException? LoadBounded(string path, string label)
    {
        long allocated = GC.GetTotalAllocatedBytes(precise: true);
        var clock = Stopwatch.StartNew();
        InvalidDataException? error = null;
        try
        {
            var model = new MLContext().LabelCompletion().LoadModel(path, out _);
            (model as IDisposable)?.Dispose();
        }
        catch (InvalidDataException e)
        {
            error = e;
        }
        clock.Stop();
        long bytes = GC.GetTotalAllocatedBytes(precise: true) - allocated;
        Assert.IsTrue(clock.Elapsed < TimeLimit, $"{label}: {clock.ElapsedMilliseconds} ms");
        Assert.IsTrue(bytes < AllocationLimit, $"{label}: {bytes} bytes allocated");
        if (error is not null)
        {
            StringAssert.StartsWith(error.Message, path + ": ", label);
            Assert.AreEqual(path, error.Data[LabelCompletionModelFile.FileKey], label);
        }
        return error;
    }

    /// <summary>A copy of <paramref name="source"/> whose settings are changed and whose header matches them (length and SHA-256).</summary>
    private static string WithSettings(string source, Action<JsonObject> change, int pad = 0)
    {
        string path = Copy(source, ".settings.zip");
        byte[] old = ModelFileTests.ReadEntry(path, LabelCompletionModelFile.SettingsEntryName);
        var document = JsonNode.Parse(old)!.AsObject();
        change(document);
        byte[] changed = Encoding.UTF8.GetBytes(document.ToJsonString() + new string(' ', pad));
        ReplaceEntry(path, LabelCompletionModelFile.SettingsEntryName, _ => changed);
        ReplaceEntry(path, "Model.key", header =>
        {
            int at = ModelFileTests.OurHeaderOffset(header, old.Length);
            BitConverter.TryWriteBytes(header.AsSpan(at + 4), (long)changed.Length);
            SHA256.HashData(changed).CopyTo(header.AsSpan(at + 12));
            return header;
        });
        return path;
    }

    private static string Copy(string source, string suffix)
    {
        string path = Path.Combine(_models.Value.Folder, Guid.NewGuid().ToString("N") + suffix);
        File.Copy(source, path);
        return path;
    }

    private static void ReplaceEntry(string zip, string nameEnd, Func<byte[], byte[]> change)
    {
        using var archive = ZipFile.Open(zip, ZipArchiveMode.Update);
        var entry = archive.Entries.Single(e => e.FullName.EndsWith(nameEnd, StringComparison.Ordinal));
        byte[] bytes = change(ModelFileTests.Read(entry));
        string name = entry.FullName;
        entry.Delete();
        using var replaced = archive.CreateEntry(name).Open();
        replaced.Write(bytes);
    }

    /// <summary>Rewrites the uncompressed size that the local header and the central directory give for an entry.</summary>
    private static void DeclareSize(string zip, string nameEnd, uint size)
    {
        byte[] bytes = File.ReadAllBytes(zip);
        byte[] name = Encoding.UTF8.GetBytes(nameEnd);
        for (int at = 0; at + 46 < bytes.Length; at++)
        {
            bool local = bytes.AsSpan(at, 4).SequenceEqual("PK\u0003\u0004"u8);
            bool central = bytes.AsSpan(at, 4).SequenceEqual("PK\u0001\u0002"u8);
            if (!local && !central) continue;
            int nameLength = BitConverter.ToUInt16(bytes, at + (local ? 26 : 28));
            int nameStart = at + (local ? 30 : 46);
            if (!bytes.AsSpan(nameStart, nameLength).EndsWith(name)) continue;
            BitConverter.TryWriteBytes(bytes.AsSpan(at + (local ? 22 : 24)), size);
        }
        File.WriteAllBytes(zip, bytes);
    }

    /// <summary>Resets the kernel's peak resident set (Linux) and returns the resident set now; -1 elsewhere.</summary>
    private static long ResetPeakResident()
    {
        _ = _models.Value;
        if (!OperatingSystem.IsLinux()) return -1;
        File.WriteAllText("/proc/self/clear_refs", "5");
        return Status("VmRSS:");
    }

    private static void CheckPeakResident(long before)
    {
        if (before < 0) return;
        long peak = Status("VmHWM:");
        Assert.IsTrue(peak - before < ResidentLimit, $"the peak resident set grew by {(peak - before) >> 20} MiB");
    }

    private static long Status(string key)
    {
        string line = File.ReadLines("/proc/self/status").First(l => l.StartsWith(key, StringComparison.Ordinal));
        return long.Parse(line[key.Length..].Trim().Split(' ')[0], System.Globalization.CultureInfo.InvariantCulture) * 1024;
    }
}
