using System.Diagnostics;
using System.Reflection;
using Microsoft.ML.Data;

namespace Microsoft.ML.LabelCompletion.Tests.Integration;

/// <summary>Shared state of the integration tests: one synthetic data set and one trained model, built once per run.</summary>
internal static class IntegrationFixture
{
    private static readonly Lazy<(SyntheticSegmentationData Data, MLContext Context, LabelCompletionTransformer Model)> _trained = new(() =>
    {
        var data = new SyntheticSegmentationData(count: 6, seed: 11);
        var ml = new MLContext(seed: 1);
        var model = ml.Transforms.CompleteLabels(SyntheticSegmentationData.TinyOptions()).Fit(data.ImageData(ml));
        return (data, ml, model);
    });

    public static SyntheticSegmentationData Data => _trained.Value.Data;

    public static MLContext Context => _trained.Value.Context;

    public static LabelCompletionTransformer Model => _trained.Value.Model;

    /// <summary>Deletes the shared data set's folder (and every <see cref="TempFile"/> in it) after the run.</summary>
    public static void Cleanup()
    {
        if (_trained.IsValueCreated) _trained.Value.Data.Dispose();
    }

    public static string TempFile(string extension)
        => Path.Combine(Data.Directory, Guid.NewGuid().ToString("N") + extension);

    /// <summary>Runs the ModelLoader helper in a separate process; returns its exit code, stdout and stderr.</summary>
    public static (int ExitCode, string Output, string Error) RunModelLoader(string modelPath, string inputKind, string outputPath)
    {
        string loader = typeof(IntegrationFixture).Assembly.GetCustomAttributes<AssemblyMetadataAttribute>()
            .Single(a => a.Key == "ModelLoaderPath").Value!;
        Assert.IsTrue(File.Exists(loader), $"The ModelLoader helper is not built at {loader}.");
        var start = new ProcessStartInfo("dotnet")
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        foreach (var arg in new[] { loader, modelPath, inputKind, Data.ManifestPath, outputPath }) start.ArgumentList.Add(arg);
        using var process = Process.Start(start)!;
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        if (!process.WaitForExit(120_000))
        {
            process.Kill(entireProcessTree: true);
            Assert.Fail("The ModelLoader helper did not finish within 120 s.");
        }
        return (process.ExitCode, stdout.Result, stderr.Result);
    }

    /// <summary>Reads all output columns into arrays per row.</summary>
    public static List<(byte[] Completed, float[] Confidence, bool[] Mask)> ReadOutputs(IDataView data,
        string completed = "CompletedLabel", string confidence = "Confidence", string mask = "CompletionMask")
    {
        var rows = new List<(byte[], float[], bool[])>();
        var columns = new[] { data.Schema[completed], data.Schema[confidence], data.Schema[mask] };
        using var cursor = data.GetRowCursor(columns);
        var c = cursor.GetGetter<VBuffer<byte>>(columns[0]);
        var f = cursor.GetGetter<VBuffer<float>>(columns[1]);
        var m = cursor.GetGetter<VBuffer<bool>>(columns[2]);
        VBuffer<byte> cv = default;
        VBuffer<float> fv = default;
        VBuffer<bool> mv = default;
        while (cursor.MoveNext())
        {
            c(ref cv);
            f(ref fv);
            m(ref mv);
            rows.Add((cv.DenseValues().ToArray(), fv.DenseValues().ToArray(), mv.DenseValues().ToArray()));
        }
        return rows;
    }
}
