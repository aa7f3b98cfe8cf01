using System.Diagnostics;
using System.Reflection;
using Microsoft.ML.LabelCompletion.Model;
using Microsoft.ML.LabelCompletion.Synthetic;
using static TorchSharp.torch;

namespace Microsoft.ML.LabelCompletion.Tests.Reliability;

/// <summary>
/// The training set-up of the reliability tests; it equals the TrainingRunner helper's (12 synthetic 32x32 scenes, batch 2:
/// 6 steps per epoch, 3 epochs, a checkpoint every 2 steps, 1 thread, seed 11), so in-process runs compare with its runs.
/// </summary>
internal static class ReliabilityTestData
{
    public const int Seed = TrainingRunner.Seed;

    private static readonly Lazy<byte[]> _uninterrupted = new(() => Weights(Train(Options(null, false))));

    public static LabelCompletionOptions Options(string? checkpoints, bool resume) => TrainingRunner.Options(checkpoints, resume);

    public static List<SegmentationExample> Scenes() => TrainingRunner.Scenes();

    /// <summary>Final weights of an uninterrupted in-process run (computed once).</summary>
    public static byte[] UninterruptedWeights => _uninterrupted.Value;

    public static LabelCompletionEngine Train(LabelCompletionOptions options, Action<TrainingProgress>? progress = null,
        CancellationToken token = default, Func<int, int, bool>? injectNaN = null)
        => LabelCompletionEngine.Train(Scenes(), null, options, Seed, CPU, progress, token, injectNonFiniteLoss: injectNaN);

    public static byte[] Weights(LabelCompletionEngine engine)
    {
        using (engine)
        {
            using var stream = new MemoryStream();
            using (var writer = new BinaryWriter(stream, System.Text.Encoding.UTF8, leaveOpen: true)) engine.SaveWeights(writer);
            return stream.ToArray();
        }
    }

    public static string NewFolder()
    {
        string path = Path.Combine(Path.GetTempPath(), "lc-rel-" + Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(path);
        return path;
    }

    public static string RunnerPath()
    {
        string path = typeof(ReliabilityTestData).Assembly.GetCustomAttributes<AssemblyMetadataAttribute>()
            .Single(a => a.Key == "TrainingRunnerPath").Value!;
        Assert.IsTrue(File.Exists(path), $"The TrainingRunner helper is not built at {path}.");
        return path;
    }

    public static ProcessStartInfo RunnerStart(params string[] args)
    {
        var start = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        start.ArgumentList.Add(RunnerPath());
        foreach (var a in args) start.ArgumentList.Add(a);
        return start;
    }
}
