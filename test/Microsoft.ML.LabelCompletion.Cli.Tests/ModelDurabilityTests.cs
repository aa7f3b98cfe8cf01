using System.Diagnostics;
using System.Text.RegularExpressions;

namespace Microsoft.ML.LabelCompletion.Cli.Tests;

/// <summary>
/// <c>lmae train</c> deletes its checkpoints only once the model zip is durable: the zip's content is flushed (<c>fsync</c>),
/// it is renamed into place, and its folder is flushed, in that order, before the first checkpoint is unlinked. The
/// system calls are watched with strace (Linux); a power cut cannot be simulated here, the order of the calls can.
/// </summary>
[TestClass]
public sealed class ModelDurabilityTests
{
    [TestMethod]
    [Timeout(300_000)]
    public void Train_FlushesTheModelAndItsFolder_BeforeDeletingTheCheckpoints()
    {
        if (!OperatingSystem.IsLinux() || !File.Exists("/usr/bin/strace")) Assert.Inconclusive("Needs Linux and /usr/bin/strace.");
        using var data = new SyntheticPairs(7, ("train", 4, false));
        string folder = data.NewFolder("durable");
        string model = Path.Combine(folder, "model.zip"), log = Path.Combine(folder, "strace.log");
        var start = new ProcessStartInfo("/usr/bin/strace") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (var arg in new[] { "-f", "-qq", "-y", "--seccomp-bpf", "-e", "trace=fsync,fdatasync,rename,renameat,renameat2,unlink,unlinkat", "-o", log,
                     "dotnet", Path.Combine(AppContext.BaseDirectory, "lmae.dll"),
                     "train", "--data", data.Root, "--format", "pairs", "--out", model, "--config", "Tiny", "--epochs", "1", "--batch", "4",
                     "--crop", "32", "--threads", "1", "--seed", "3" })
            start.ArgumentList.Add(arg);
        using var process = Process.Start(start)!;
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        if (!process.WaitForExit(240_000))
        {
            process.Kill(entireProcessTree: true);
            Assert.Fail("lmae train under strace did not finish within 240 s.");
        }
        if (process.ExitCode != 0 && stderr.Result.Contains("ptrace", StringComparison.OrdinalIgnoreCase))
            Assert.Inconclusive("strace may not trace here: " + stderr.Result);
        Assert.AreEqual(0, process.ExitCode, $"{stdout.Result}\n{stderr.Result}");
        Assert.IsTrue(File.Exists(model));

        var lines = File.ReadAllLines(log);
        string zip = Regex.Escape(model);
        string temp = Regex.Escape(Path.Combine(folder, ".model.zip.")) + @"[0-9a-f]{32}\.tmp";
        int Find(string pattern, int from = 0)
        {
            for (int i = from; i < lines.Length; i++)
                if (Regex.IsMatch(lines[i], pattern)) return i;
            return -1;
        }
        int rename = Find($@"rename(at2?)?\(.*""{temp}"".*""{zip}""");
        Assert.IsTrue(rename >= 0, "the model is renamed into place:\n" + string.Join("\n", lines));
        int fileFlush = Find($@"f(data)?sync\(\d+<{temp}>\) = 0");
        Assert.IsTrue(fileFlush >= 0 && fileFlush < rename, $"the zip's content is flushed before the rename (flush at line {fileFlush}, rename at {rename})");
        int folderFlush = Find($@"fsync\(\d+<{Regex.Escape(folder)}>\) = 0", rename + 1);
        Assert.IsTrue(folderFlush > rename, "the folder is flushed after the rename");
        int firstDelete = Find($@"unlink(at)?\(.*{Regex.Escape(model + ".checkpoints")}/checkpoint-e\d+-s\d+(-end)?\.lmaeckpt");
        Assert.IsTrue(firstDelete > folderFlush, $"the checkpoints are deleted after the folder flush (first unlink at line {firstDelete}, folder flush at {folderFlush})");
        Assert.IsFalse(Directory.Exists(model + ".checkpoints"), "the checkpoints are gone");
    }
}
