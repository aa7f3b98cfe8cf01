using System.CommandLine;
using Command = System.CommandLine.Command;
using System.Diagnostics;
using System.Globalization;
using Microsoft.ML.LabelCompletion.Data;
using TorchSharp;
using static TorchSharp.torch;

namespace Microsoft.ML.LabelCompletion.Cli.Commands;

/// <summary>
/// <c>lmae bench</c>: benchmarks printed as one JSON object per line (DESIGN.md §6). Each fixes its size, thread count and seed,
/// warms up first and reports the median of timed repeats.
/// </summary>
internal static class BenchCommand
{
    /// <summary>The benchmarks this build can run.</summary>
    public static readonly string[] Benchmarks = ["matmul", "loader"];

    public static Command Create(CliConsole console)
    {
        var only = new Option<string>("--only")
        {
            Description = $"Comma-separated benchmarks to run: {string.Join(", ", Benchmarks)} (loader needs --data and --format). Default matmul.",
            DefaultValueFactory = _ => "matmul",
        };
        var threads = new Option<int?>("--threads") { Description = "Threads (TorchSharp intra-op threads; loader decoding threads). Default: all cores.", HelpName = "N" };
        var repeats = new Option<int>("--repeats") { Description = "Timed repeats (the median is reported). Default 10.", DefaultValueFactory = _ => 10 };
        var size = new Option<int>("--size") { Description = "matmul: side of the square FP32 matrices. Default 2048.", DefaultValueFactory = _ => 2048 };
        var data = new Option<string?>("--data") { Description = "loader: data folder.", HelpName = "DIR" };
        var format = new Option<string?>("--format") { Description = "loader: layout of --data (camvid, voc, cityscapes, pairs)." };
        var split = CommonOptions.Split("train");
        var seed = new Option<int>("--seed") { Description = "Seed of the random inputs. Default 0.", DefaultValueFactory = _ => 0 };

        var command = new Command("bench", "Run benchmarks; print one JSON line per result.") { only, threads, repeats, size, data, format, split, seed };
        command.SetAction(parse =>
        {
            var selected = parse.GetValue(only)!.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
            foreach (string name in selected)
            {
                if (!Benchmarks.Contains(name))
                    throw new CliException($"--only: unknown benchmark '{name}'; this build has {string.Join(", ", Benchmarks)} (train, infer, pipeline and paper need the library's model benchmarks, not in this build).");
            }
            int repeatCount = parse.GetValue(repeats);
            if (repeatCount < 1) throw new CliException($"--repeats must be at least 1, not {repeatCount}.");
            int? threadCount = parse.GetValue(threads);
            if (threadCount is < 1) throw new CliException($"--threads must be at least 1, not {threadCount}.");
            foreach (string name in selected)
            {
                string line = name switch
                {
                    "matmul" => MatMul(parse.GetValue(size), threadCount, repeatCount, parse.GetValue(seed)),
                    _ => Loader(parse.GetValue(data), parse.GetValue(format), parse.GetValue(split)!, threadCount ?? 1, repeatCount),
                };
                console.Out.WriteLine(line);
            }
            return LmaeCli.Success;
        });
        return command;
    }

    /// <summary>FP32 <c>n x n</c> matmul on the CPU: GFLOP/s of the median repeat (2n³ floating-point operations each).</summary>
    internal static string MatMul(int n, int? threads, int repeats, int seed)
    {
        if (n < 1 || n > 16384) throw new CliException($"--size must be 1..16384, not {n}.");
        if (threads is int t) set_num_threads(t);
        random.manual_seed(seed);
        using var a = randn(n, n, ScalarType.Float32);
        using var b = randn(n, n, ScalarType.Float32);
        for (int i = 0; i < 3; i++)
        {
            using var warm = matmul(a, b);
        }
        var ms = new double[repeats];
        for (int i = 0; i < repeats; i++)
        {
            long start = Stopwatch.GetTimestamp();
            using (var c = matmul(a, b))
            {
                _ = c.data<float>()[0];
            }
            ms[i] = Stopwatch.GetElapsedTime(start).TotalMilliseconds;
        }
        Array.Sort(ms);
        double median = repeats % 2 == 1 ? ms[repeats / 2] : (ms[repeats / 2 - 1] + ms[repeats / 2]) / 2;
        double gflop = 2.0 * n * n * (double)n / 1e9;
        return string.Create(CultureInfo.InvariantCulture,
            $"{{\"bench\":\"matmul\",\"n\":{n},\"dtype\":\"float32\",\"device\":\"cpu\",\"threads\":{get_num_threads()},\"repeats\":{repeats},\"ms\":{median:F2},\"gflop_per_s\":{gflop / (median / 1000):F1}}}");
    }

    private static string Loader(string? data, string? format, string split, int threads, int repeats)
    {
        if (data is null || format is null) throw new CliException("the loader benchmark needs --data and --format.");
        if (!DataSets.FormatNames.Contains(format)) throw new CliException($"unknown format '{format}'; use one of {string.Join(", ", DataSets.FormatNames)}.");
        var opened = DataSets.Open(new MLContext(seed: 0), data, format, split, null, 255);
        return LoaderBenchmark.Run(opened.Dataset, threads, repeats).ToJson();
    }
}
