using System.Diagnostics;
using System.IO.Compression;
using System.Security.Cryptography;
using System.Text;

namespace Microsoft.ML.LabelCompletion.Cli.Tests;

/// <summary>
/// Edited model files given to <c>lmae complete</c>: one line naming the file and the entry or field, within a second,
/// before any network is built (the repro: one edited encoder depth).
/// </summary>
[TestClass]
public sealed class ModelFileCliTests
{
    private static string Fixture(string name)
    {
        string path = Path.GetFullPath(Path.Combine(AppContext.BaseDirectory, "..", "..", "..", "..",
            "Microsoft.ML.LabelCompletion.Tests", "Reliability", "Fixtures", name));
        Assert.IsTrue(File.Exists(path), $"the fixture {path} is missing");
        return path;
    }

    [TestMethod]
    public void EditedEncoderDepth_FailsInASecond_NamingTheFieldOrTheEntry()
    {
        using var data = new SyntheticPairs(3, ("train", 1, false));
        // The settings describe an encoder of 10,000,000 blocks; hashes made to match, so the bound on the field stops it.
        string consistent = Path.Combine(data.Root, "deep.zip");
        File.Copy(Fixture("lmae-format4.zip"), consistent);
        EditSettings(consistent, "\"EncoderDepth\": 1,", "\"EncoderDepth\": 10000000,", fixHeader: true);
        // The same edit with the hashes left alone: the settings' SHA-256 stops it.
        string edited = Path.Combine(data.Root, "edited.zip");
        File.Copy(Fixture("lmae-format4.zip"), edited);
        EditSettings(edited, "\"EncoderDepth\": 1,", "\"EncoderDepth\": 9,", fixHeader: false);
        // The report's file: the format-2 fixture with the encoder depth in Model.key set to 10,000,000.
        string old = Path.Combine(data.Root, "format2-deep.zip");
        File.Copy(Fixture("lmae-format2.zip"), old);
        EditEntry(old, "Model.key", bytes =>
        {
            // Format 2, then the configuration: classes 6, unknown 255, patch 8, training size 16, encoder width 16, depth 1.
            byte[] pattern = [.. BitConverter.GetBytes(2), .. BitConverter.GetBytes(6), 255, .. BitConverter.GetBytes(8),
                .. BitConverter.GetBytes(16), .. BitConverter.GetBytes(16), .. BitConverter.GetBytes(1)];
            int at = bytes.AsSpan().IndexOf(pattern);
            Assert.IsTrue(at >= 0, "the format-2 configuration");
            BitConverter.TryWriteBytes(bytes.AsSpan(at + pattern.Length - 4), 10_000_000);
            return bytes;
        });

        foreach (var (model, expected) in new[]
        {
            (consistent, "LabelCompletionOptions.EncoderDepth: must be between 0 and 64; it is 10000000."),
            (edited, "the 'LmaeSettings' entry is corrupted"),
            (old, "model format 2 is not supported by this library"),
        })
        {
            var clock = Stopwatch.StartNew();
            var result = CliRunner.Run("complete", "--model", model, "--data", data.Root, "--format", "pairs", "--out", data.NewFolder("c"));
            clock.Stop();
            Assert.AreEqual(LmaeCli.Failure, result.ExitCode, result.ToString());
            Assert.HasCount(1, result.ErrorLines, result.ToString());
            StringAssert.StartsWith(result.Error, $"lmae: error: '{model}' is not an L-MAE model zip: ", result.ToString());
            StringAssert.Contains(result.Error, expected, result.ToString());
            Assert.IsTrue(clock.Elapsed < TimeSpan.FromSeconds(1), $"{model}: {clock.ElapsedMilliseconds} ms");
        }
    }

    /// <summary>Replaces text in the settings entry; with <paramref name="fixHeader"/>, also its length and SHA-256 in Model.key.</summary>
    private static void EditSettings(string zip, string from, string to, bool fixHeader)
    {
        byte[] old = [];
        byte[] changed = [];
        EditEntry(zip, "LmaeSettings", bytes =>
        {
            old = bytes;
            string text = Encoding.UTF8.GetString(bytes);
            Assert.IsTrue(text.Contains(from, StringComparison.Ordinal), $"'{from}' in the settings");
            changed = Encoding.UTF8.GetBytes(text.Replace(from, to, StringComparison.Ordinal));
            return changed;
        });
        if (!fixHeader) return;
        EditEntry(zip, "Model.key", header =>
        {
            byte[] pattern = [.. BitConverter.GetBytes(4), .. BitConverter.GetBytes((long)old.Length)];
            int at = header.AsSpan().IndexOf(pattern);
            Assert.IsTrue(at >= 0, "the format version and the settings' length in Model.key");
            BitConverter.TryWriteBytes(header.AsSpan(at + 4), (long)changed.Length);
            SHA256.HashData(changed).CopyTo(header.AsSpan(at + 12));
            return header;
        });
    }

    private static void EditEntry(string zip, string nameEnd, Func<byte[], byte[]> change)
    {
        using var archive = ZipFile.Open(zip, ZipArchiveMode.Update);
        var entry = archive.Entries.Single(e => e.FullName.EndsWith(nameEnd, StringComparison.Ordinal));
        byte[] bytes;
        using (var stream = entry.Open())
        using (var copy = new MemoryStream())
        {
            stream.CopyTo(copy);
            bytes = copy.ToArray();
        }
        bytes = change(bytes);
        string name = entry.FullName;
        entry.Delete();
        using var replaced = archive.CreateEntry(name).Open();
        replaced.Write(bytes);
    }
}
