using System.CommandLine;
using Microsoft.ML.LabelCompletion.Benchmarks;
using Microsoft.ML.LabelCompletion.Data;
using Microsoft.ML.LabelCompletion.Synthetic;

namespace Microsoft.ML.LabelCompletion.Cli.Commands;

/// <summary>
/// <c>lmae bench</c>: the benchmarks of DESIGN.md §6 (<see cref="LabelCompletionBenchmarks"/> and <see cref="LoaderBenchmark"/>),
/// printed as one JSON object per line. Each fixes config, batch, threads and seed, warms up first and reports medians.
/// </summary>
internal static class BenchCommand
{
    /// <summary>The benchmarks, in the order they run.</summary>
    public static readonly string[] Benchmarks = ["matmul", "model", "train", "infer", "pipeline", "paper", "profile", "ratios", "label-errors"];

    /// <summary>The switch that leaves the process tuning off (read by <see cref="Program.Main"/> before the tool starts).</summary>
    public const string LibraryDefaultsOption = "--library-defaults";

    public static System.CommandLine.Command Create(CliConsole console)
    {
        var only = new Option<string>("--only")
        {
            Description = "Comma-separated benchmarks: matmul (FP32 matmul ceiling), model (parameters, GFLOP), train (training step), "
                + "infer (completion of 480x360 images at batch 1 and at --batch), pipeline (PNG loading into fused arrays), paper (training step of the Paper config), "
                + "profile (where a training step's time goes), ratios (training step at mask ratios 0.25, 0.5, 0.75), "
                + "label-errors (seeded label errors in --data, found by --model's check against NearestKnown and random; LabelErrorBenchmark). "
                + "Default matmul,model,train,infer,pipeline.",
            DefaultValueFactory = _ => "matmul,model,train,infer,pipeline",
        };
        var threads = new Option<int?>("--threads") { Description = "Threads for TorchSharp and the loader. Default: all cores.", HelpName = "N" };
        var config = new Option<string>("--config") { Description = "Size preset of model, train and infer: Tiny, Small, Paper. Default Small.", DefaultValueFactory = _ => "Small" };
        config.AcceptOnlyFromAmong("Tiny", "Small", "Paper", "tiny", "small", "paper");
        var batch = new Option<int>("--batch") { Description = "Batch of train, profile and ratios, and the second batch of infer (which always runs batch 1 as well). Default 8.", DefaultValueFactory = _ => 8 };
        var repeats = new Option<int>("--repeats") { Description = "Timed repeats of matmul (median reported); timed steps of train. Default 10.", DefaultValueFactory = _ => 10 };
        var data = new Option<string?>("--data") { Description = "pipeline: data folder to read (default: a synthetic PNG set in a temporary folder); label-errors: data with clean labels (required).", HelpName = "DIR" };
        var format = new Option<string?>("--format") { Description = "pipeline and label-errors: layout of --data (camvid, voc, cityscapes, pairs)." };
        var split = CommonOptions.Split("train");
        var seed = new Option<int>("--seed") { Description = "Seed of the synthetic inputs and of the label errors. Default 0.", DefaultValueFactory = _ => 0 };
        var libraryDefaults = new Option<bool>(LibraryDefaultsOption)
        {
            Description = "Measure with the library's defaults: without the process tuning (allocator, NNPACK, garbage collections) that lmae applies.",
        };
        var imageFeatures = new Option<string?>("--image-features")
        {
            Description = "train and infer: where the ImageNet ResNet18's features enter the network (as lmae train --image-features). Default: the library's default.",
            HelpName = "WHERE",
        };
        var precision = CommonOptions.Precision("train, infer, paper, profile and ratios; matmul then also measures its bf16 ceiling. Default fp32.");
        var errors = LabelErrorsBench.Options();

        var command = new System.CommandLine.Command("bench", "Run benchmarks; print one JSON line per result (DESIGN.md §6).")
        {
            only, threads, config, batch, repeats, data, format, split, seed, precision, imageFeatures, libraryDefaults,
        };
        foreach (var option in errors.All) command.Add(option);
        command.SetAction(parse =>
        {
            var selected = parse.GetValue(only)!.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
            if (selected.Length == 0) throw new CliException("--only is empty.");
            foreach (string name in selected)
            {
                if (!Benchmarks.Contains(name))
                    throw new CliException($"--only: unknown benchmark '{name}'; use {string.Join(", ", Benchmarks)}.");
            }
            int threadCount = parse.GetValue(threads) ?? Environment.ProcessorCount;
            if (threadCount < 1) throw new CliException($"--threads must be at least 1, not {threadCount}.");
            int batchSize = parse.GetValue(batch), repeatCount = parse.GetValue(repeats), seedValue = parse.GetValue(seed);
            if (batchSize < 1) throw new CliException($"--batch must be at least 1, not {batchSize}.");
            if (repeatCount < 1) throw new CliException($"--repeats must be at least 1, not {repeatCount}.");
            var size = Enum.Parse<LabelCompletionModelSize>(parse.GetValue(config)!, ignoreCase: true);
            string? dataDir = parse.GetValue(data), dataFormat = parse.GetValue(format);
            if ((dataDir is null) != (dataFormat is null)) throw new CliException("the pipeline benchmark needs both --data and --format, or neither.");
            if (dataFormat is not null && !DataSets.FormatNames.Contains(dataFormat))
                throw new CliException($"unknown format '{dataFormat}'; use one of {string.Join(", ", DataSets.FormatNames)}.");

            var mode = CommonOptions.ParsePrecision(parse.GetValue(precision), LabelCompletionPrecision.Float32);
            ImageFeatureInputs? features = parse.GetValue(imageFeatures) is string where ? TrainCommand.ParseImageFeatures(where) : null;
            foreach (string name in Benchmarks.Where(selected.Contains))
            {
                BenchmarkRecord? record = null;
                switch (name)
                {
                    case "matmul":
                        record = LabelCompletionBenchmarks.Matmul(threadCount, repeats: repeatCount);
                        if (mode != LabelCompletionPrecision.Float32)
                        {
                            console.Out.WriteLine(record.ToJsonLine());
                            record = LabelCompletionBenchmarks.Matmul(threadCount, repeats: repeatCount, precision: mode);
                        }
                        break;
                    case "model":
                        record = LabelCompletionBenchmarks.ModelSize(size);
                        break;
                    case "train":
                        record = LabelCompletionBenchmarks.Train(size, batchSize, 0.5, threadCount, steps: repeatCount, seed: seedValue, precision: mode, imageFeatures: features);
                        break;
                    case "infer":
                        // Batch 1 (one image at a time, as an interactive user completes) and the batch given (8 by default).
                        foreach (int inferBatch in new[] { 1, batchSize }.Distinct())
                            console.Out.WriteLine(LabelCompletionBenchmarks.Infer(size, inferBatch, threadCount, seed: seedValue, precision: mode, imageFeatures: features).ToJsonLine());
                        continue;
                    case "paper":
                        record = LabelCompletionBenchmarks.Train(LabelCompletionModelSize.Paper, 2, 0.5, threadCount, steps: 3, warmup: 2, seed: seedValue, name: "paper", precision: mode);
                        break;
                    case "ratios":
                        foreach (double ratio in new[] { 0.25, 0.5, 0.75 })
                            console.Out.WriteLine(LabelCompletionBenchmarks.Train(size, batchSize, ratio, threadCount, steps: repeatCount, seed: seedValue, name: "train_ratio", precision: mode).ToJsonLine());
                        continue;
                    case "profile":
                        record = LabelCompletionBenchmarks.Profile(size, batchSize, threadCount, seed: seedValue, precision: mode);
                        break;
                    case "label-errors":
                        foreach (var line in LabelErrorsBench.Run(parse, errors, dataDir, dataFormat, parse.GetValue(split)!, seedValue, console))
                            console.Out.WriteLine(line);
                        continue;
                    case "pipeline":
                        console.Out.WriteLine(Pipeline(dataDir, dataFormat, parse.GetValue(split)!, threadCount, seedValue));
                        continue;
                }
                console.Out.WriteLine(record!.ToJsonLine());
            }
            return LmaeCli.Success;
        });
        return command;
    }

    /// <summary>Loader throughput on <paramref name="dataDir"/>, or on 32 synthetic 480x360 PNG pairs written to a temporary folder.</summary>
    private static string Pipeline(string? dataDir, string? format, string split, int threads, int seed)
    {
        if (dataDir is not null)
            return LoaderBenchmark.Run(DataSets.Open(new MLContext(seed: 0), dataDir, format!, split, null, 255).Dataset, threads).ToJson();
        string folder = Path.Combine(Path.GetTempPath(), $"lmae-bench-{Guid.NewGuid():N}");
        try
        {
            int i = 0;
            foreach (var (image, label) in SyntheticScenes.Generate(32, 480, 360, seed))
            {
                SegmentationFiles.WriteImage(Path.Combine(folder, "images", $"{i:D3}.png"), image);
                SegmentationFiles.WriteGrayscaleLabel(Path.Combine(folder, "labels", $"{i:D3}.png"), label);
                i++;
            }
            var dataset = SegmentationDataset.Open(new SegmentationDataOptions
            {
                Root = folder, Format = SegmentationDataFormat.Folders, NumberOfClasses = SyntheticScenes.NumberOfClasses,
            });
            return LoaderBenchmark.Run(dataset, threads).ToJson().Replace(folder, "synthetic 480x360", StringComparison.Ordinal);
        }
        finally
        {
            if (Directory.Exists(folder)) Directory.Delete(folder, recursive: true);
        }
    }
}
