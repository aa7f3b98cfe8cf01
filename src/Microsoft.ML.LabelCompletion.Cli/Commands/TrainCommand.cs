using System.CommandLine;
using System.Diagnostics;
using System.Globalization;
using System.Text;
using Microsoft.ML.LabelCompletion.Data;

namespace Microsoft.ML.LabelCompletion.Cli.Commands;

/// <summary>
/// <c>lmae train</c>: trains an L-MAE through the ML.NET pipeline (<c>mlContext.Transforms.CompleteLabels(options).Fit</c>), saves it
/// with <c>mlContext.Model.Save</c>, and writes the training curves as <c>&lt;out&gt;.curves.csv</c> and <c>&lt;out&gt;.curves.png</c>.
/// Training writes checkpoints to <c>&lt;out&gt;.checkpoints/</c> (or <c>--checkpoints</c>); after a crash, Ctrl+C or SIGTERM,
/// the same command with <c>--resume</c> continues from the last one. They are deleted once the model is saved. Progress comes
/// as <see cref="LabelCompletionOptions.Progress"/> records (<see cref="TrainingMonitor"/>). The model, its curves and the
/// checkpoint folder are refused inside the training or validation data (<see cref="OutputPaths"/>).
/// </summary>
internal static class TrainCommand
{
    public static System.CommandLine.Command Create(CliConsole console)
    {
        var data = CommonOptions.Data("Training data folder (or list file for pairs).");
        var format = CommonOptions.Format();
        var split = CommonOptions.Split("train");
        var output = new Option<string>("--out") { Description = "Model zip to write (plus <out>.curves.csv and <out>.curves.png).", Required = true, HelpName = "FILE" };
        var config = new Option<string>("--config") { Description = "Network size preset: Tiny, Small or Paper. Default Small.", DefaultValueFactory = _ => "Small" };
        config.AcceptOnlyFromAmong("Tiny", "Small", "Paper", "tiny", "small", "paper");
        var epochs = new Option<int?>("--epochs") { Description = "Passes over the training data (default 40).", HelpName = "N" };
        var maskRatio = new Option<float?>("--mask-ratio") { Description = "Share of patches masked per training sample (default 0.5).", HelpName = "M" };
        var validation = new Option<string?>("--val") { Description = "Validation data folder, same format: per-epoch validation loss and PA-mIoU; the learning-rate schedule watches its loss.", HelpName = "DIR" };
        var validationSplit = new Option<string>("--val-split") { Description = "Split of --val. Default val.", DefaultValueFactory = _ => "val" };
        var device = CommonOptions.Device();
        var threads = CommonOptions.Threads();
        var seed = new Option<int>("--seed") { Description = "Seed of weights, masks and augmentation. Default 1.", DefaultValueFactory = _ => 1 };
        var batch = new Option<int?>("--batch") { Description = "Images per optimisation step (default 8).", HelpName = "N" };
        var learningRate = new Option<double?>("--lr") { Description = "Adam learning rate (default 1e-3).", HelpName = "X" };
        var noIps = new Option<bool>("--no-ips") { Description = "Replace the Image Patch Supplement by one learned mask token (the MAE baseline)." };
        var labelPrior = new Option<string?>("--label-prior") { Description = "Label prior from the NearestKnown fill: none (the paper's model), ips, ips-logits (default)." };
        labelPrior.AcceptOnlyFromAmong("none", "ips", "ips-logits");
        var classWeights = new Option<string?>("--class-weights") { Description = "Loss class weights: none (default), eq10 (the paper's eq. 10), median (median frequency)." };
        classWeights.AcceptOnlyFromAmong("none", "eq10", "median");
        var patch = new Option<int?>("--patch") { Description = "Patch size in pixels (default: the preset's, Tiny 8, Small/Paper 16).", HelpName = "N" };
        var crop = new Option<int?>("--crop") { Description = "Side of the square training crop, also the inference window (default 224).", HelpName = "N" };
        var noAugment = new Option<bool>("--no-augment") { Description = "Turn off random scale, crop and flip." };
        var noDirectional = new Option<bool>("--no-directional") { Description = "The pixel refinement does not read the nearest known labels left, right, above and below." };
        var minutes = new Option<double?>("--minutes") { Description = "Training time budget: no epoch starts after it (default: none, --epochs decides).", HelpName = "M" };
        var imageFeatures = new Option<string?>("--image-features")
        {
            Description = "Where the ImageNet ResNet18's features enter the network: all (default), none, or a comma list of encoder, supplement, refinement.",
            HelpName = "WHERE",
        };
        var imageEncoderLr = new Option<double?>("--image-encoder-lr")
        {
            Description = "Fine-tune the ResNet18's stride-16 stage at this multiple of --lr, 0 to 10 (default 0: frozen). Needs encoder or supplement image features.",
            HelpName = "SCALE",
        };
        var refine = new Option<int?>("--refine") { Description = "Hidden channels of the pixel-level refinement head (default 32; 0 = off, the paper's model).", HelpName = "N" };
        var precision = CommonOptions.Precision("Saved with the model; completion uses it unless told otherwise. Default fp32.");
        var classes = CommonOptions.Classes();
        var unknown = CommonOptions.Unknown();
        var checkpoints = new Option<string?>("--checkpoints") { Description = "Checkpoint folder (default <out>.checkpoints); deleted once the model is saved.", HelpName = "DIR" };
        var checkpointEvery = new Option<int?>("--checkpoint-every") { Description = "Steps between checkpoints inside an epoch (default 200; 0: epoch ends only).", HelpName = "N" };
        var resume = new Option<bool>("--resume") { Description = "Continue from the last checkpoint of an interrupted run of the same command (starts afresh when there is none)." };

        var command = new System.CommandLine.Command("train", "Train an L-MAE model and save it as an ML.NET zip, with training curves.")
        {
            data, format, split, output, config, epochs, maskRatio, validation, validationSplit, device, threads, seed, batch,
            learningRate, noIps, labelPrior, classWeights, patch, crop, noAugment, refine, noDirectional, imageFeatures, imageEncoderLr, minutes, classes, unknown,
            checkpoints, checkpointEvery, resume, precision,
        };
        command.SetAction(parse =>
        {
            var ml = new MLContext(seed: parse.GetValue(seed));
            CommonOptions.ApplyDevice(ml, parse.GetValue(device)!);
            byte unknownValue = CommonOptions.UnknownValue(parse.GetValue(unknown));
            string fmt = parse.GetValue(format)!;
            string outPath = Path.GetFullPath(parse.GetValue(output)!);
            if (Directory.Exists(outPath)) throw new CliException($"--out '{outPath}' is a folder; give the model zip's file name.");

            var train = DataSets.Open(ml, parse.GetValue(data)!, fmt, parse.GetValue(split)!, parse.GetValue(classes), unknownValue, console);
            console.Out.WriteLine($"training data: {train.Description}, {train.NumberOfClasses} classes");
            OpenedData? val = null;
            if (parse.GetValue(validation) is string valDir)
            {
                val = DataSets.Open(ml, valDir, fmt, parse.GetValue(validationSplit)!, train.NumberOfClasses, unknownValue);
                console.Out.WriteLine($"validation data: {val.Description}");
            }

            var options = new LabelCompletionOptions
            {
                NumberOfClasses = train.NumberOfClasses,
                UnknownLabel = train.UnknownLabel,
                ModelSize = Enum.Parse<LabelCompletionModelSize>(parse.GetValue(config)!, ignoreCase: true),
                Seed = parse.GetValue(seed),
                ValidationSet = val?.View,
                UseImagePatchSupplement = !parse.GetValue(noIps),
                Augment = !parse.GetValue(noAugment),
                PatchSize = Positive(parse.GetValue(patch), "--patch"),
                NumberOfThreads = Positive(parse.GetValue(threads), "--threads"),
            };
            if (Positive(parse.GetValue(epochs), "--epochs") is int e) options.Epochs = e;
            if (Positive(parse.GetValue(batch), "--batch") is int b) options.BatchSize = b;
            if (Positive(parse.GetValue(crop), "--crop") is int c) options.TrainingSize = c;
            if (parse.GetValue(refine) is int r)
                options.PixelRefinementChannels = r >= 0 ? r : throw new CliException($"--refine must be 0 or more, not {r}.");
            options.DirectionalPrior = !parse.GetValue(noDirectional) && options.PixelRefinementChannels > 0;
            if (parse.GetValue(imageFeatures) is string where) options.ImageFeatures = ParseImageFeatures(where);
            if (parse.GetValue(imageEncoderLr) is double scale) options.ImageEncoderLearningRateScale = scale;
            options.Precision = CommonOptions.ParsePrecision(parse.GetValue(precision), LabelCompletionPrecision.Float32);
            if (parse.GetValue(minutes) is double budget)
                options.TrainingTimeLimit = budget > 0 && double.IsFinite(budget) ? TimeSpan.FromMinutes(budget) : throw new CliException($"--minutes must be positive, not {budget.ToString(CultureInfo.InvariantCulture)}.");
            if (parse.GetValue(maskRatio) is float m)
                options.MaskRatio = m is > 0 and < 1 ? m : throw new CliException($"--mask-ratio must be in (0, 1), not {m.ToString(CultureInfo.InvariantCulture)}.");
            if (parse.GetValue(learningRate) is double lr)
                options.LearningRate = lr > 0 && double.IsFinite(lr) ? lr : throw new CliException($"--lr must be positive, not {lr.ToString(CultureInfo.InvariantCulture)}.");
            if (parse.GetValue(labelPrior) is string prior)
            {
                options.LabelPrior = prior switch
                {
                    "none" => LabelPriorMode.None,
                    "ips" => LabelPriorMode.ImagePatchSupplement,
                    _ => LabelPriorMode.ImagePatchSupplementAndLogits,
                };
            }
            if (parse.GetValue(classWeights) is string weights)
            {
                options.ClassWeighting = weights switch
                {
                    "none" => ClassWeighting.None,
                    "median" => ClassWeighting.MedianFrequency,
                    _ => ClassWeighting.Equation10,
                };
            }

            string checkpointDir = Path.GetFullPath(parse.GetValue(checkpoints) ?? outPath + ".checkpoints");
            options.CheckpointDirectory = checkpointDir;
            var inputs = new OutputPaths().Reads(train);
            if (val is not null) inputs.Reads(val, "the validation data folder");
            inputs.CheckFiles("--out", [outPath, outPath + ".curves.csv", outPath + ".curves.png"]);
            inputs.CheckFolder("--checkpoints", checkpointDir); // it is emptied once the model is saved
            if (parse.GetValue(checkpointEvery) is int every)
                options.CheckpointEverySteps = every >= 0 ? every : throw new CliException($"--checkpoint-every must be 0 or positive, not {every}.");
            options.ResumeFromCheckpoint = parse.GetValue(resume);
            options.CancellationToken = console.Cancellation;
            var latest = TrainingCheckpoints.FindLatest(checkpointDir);
            if (latest is not null && !options.ResumeFromCheckpoint)
                throw new CliException($"{checkpointDir} holds a checkpoint of an earlier run ({Describe(latest)}): add --resume to continue it, or delete the folder to start afresh.");
            if (options.ResumeFromCheckpoint)
                console.Out.WriteLine(latest is null ? $"no checkpoint in {checkpointDir}; starting afresh" : $"resuming from {Describe(latest)} ({latest.Path})");

            console.Out.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"training {options.ModelSize} for {options.Epochs} epochs, batch {options.BatchSize}, lr {options.LearningRate:G3}, mask ratio {options.MaskRatio}, device {parse.GetValue(device)}, seed {options.Seed}"));
            var clock = Stopwatch.StartNew();
            var monitor = new TrainingMonitor(console) { TimeLimit = options.TrainingTimeLimit };
            options.Progress = monitor;
            LabelCompletionTransformer model;
            try
            {
                model = Fit(ml, options, train);
            }
            catch (OperationCanceledException)
            {
                monitor.Finish();
                console.Error.WriteLine(TrainingCheckpoints.FindLatest(checkpointDir) is { } last
                    ? $"lmae: training interrupted; its checkpoint at {Describe(last)} is in {checkpointDir}. Run the same command with --resume to continue."
                    : "lmae: training interrupted before its first checkpoint.");
                return LmaeCli.Cancelled;
            }
            finally
            {
                monitor.Finish();
            }
            var curves = monitor.Epochs;
            using (model)
            {
                ModelFiles.Save(ml, model, train.View.Schema, outPath);
            }
            TrainingCheckpoints.Delete(checkpointDir); // the model is saved: the checkpoints have done their job
            console.Out.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"model: {outPath} ({new FileInfo(outPath).Length / 1024.0:F0} KiB, trained in {clock.Elapsed.TotalSeconds:F0} s)"));

            if (curves.Count == 0)
            {
                console.Warn("the trainer reported no epochs; no training curves were written.");
                return LmaeCli.Success;
            }
            string csv = outPath + ".curves.csv", png = outPath + ".curves.png";
            SegmentationFiles.WriteAtomically(csv, s =>
            {
                using var writer = new StreamWriter(s, new UTF8Encoding(false), leaveOpen: true);
                writer.Write(CurvesCsv(curves));
            });
            WriteCurvesPlot(png, curves, Path.GetFileName(outPath));
            console.Out.WriteLine($"curves: {csv}, {png}");
            return LmaeCli.Success;
        });
        return command;
    }

    /// <summary>The training curves as CSV: <c>epoch,train_loss,val_loss,val_pa_miou,lr,seconds</c>; missing values are empty.</summary>
    internal static string CurvesCsv(IReadOnlyList<EpochRecord> curves)
    {
        var text = new StringBuilder("epoch,train_loss,val_loss,val_pa_miou,lr,seconds\n");
        foreach (var r in curves)
        {
            text.Append(CultureInfo.InvariantCulture,
                $"{r.Epoch},{r.TrainLoss:R},{(r.ValidationLoss is double vl ? vl.ToString("R", CultureInfo.InvariantCulture) : "")},"
                + $"{(r.ValidationPaMiou is double pa ? pa.ToString("R", CultureInfo.InvariantCulture) : "")},{r.LearningRate:R},{r.Seconds:F1}\n");
        }
        return text.ToString();
    }

    private static LabelCompletionTransformer Fit(MLContext ml, LabelCompletionOptions options, OpenedData train)
    {
        try
        {
            return ml.Transforms.CompleteLabels(options).Fit(train.View);
        }
        catch (InvalidDataException e)
        {
            throw new CliException($"bad training data: {DataSets.FirstLine(e.Message)}", e);
        }
    }

    private static void WriteCurvesPlot(string path, IReadOnlyList<EpochRecord> curves, string title)
    {
        var losses = new List<ChartSeries> { new("train loss", curves.Select(r => r.TrainLoss).ToArray()) };
        if (curves.Any(r => r.ValidationLoss.HasValue))
            losses.Add(new ChartSeries("val loss", curves.Select(r => r.ValidationLoss ?? double.NaN).ToArray()));
        var panels = new List<(string, IReadOnlyList<ChartSeries>)> { ("loss", losses) };
        if (curves.Any(r => r.ValidationPaMiou.HasValue))
            panels.Add(("val PA-mIoU (%)", new[] { new ChartSeries("val PA-mIoU", curves.Select(r => r.ValidationPaMiou ?? double.NaN).ToArray()) }));
        Charts.WriteLineCharts(path, $"L-MAE training: {title}", panels, "epoch");
    }

    private static string Describe(TrainingCheckpointInfo checkpoint) => checkpoint.EpochComplete
        ? $"end of epoch {checkpoint.Epoch}"
        : $"epoch {checkpoint.Epoch}, step {checkpoint.StepsDone}";

    private static int? Positive(int? value, string name) =>
        value is int v && v < 1 ? throw new CliException($"{name} must be at least 1, not {v}.") : value;

    /// <summary>The value of <c>--image-features</c>: all, none, or a comma list of encoder, supplement, refinement.</summary>
    internal static ImageFeatureInputs ParseImageFeatures(string text)
    {
        var result = ImageFeatureInputs.None;
        foreach (var part in text.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
        {
            result |= part.ToLowerInvariant() switch
            {
                "all" => ImageFeatureInputs.All,
                "none" => ImageFeatureInputs.None,
                "encoder" => ImageFeatureInputs.EncoderTokens,
                "supplement" => ImageFeatureInputs.PatchSupplement,
                "refinement" => ImageFeatureInputs.PixelRefinement,
                _ => throw new CliException($"--image-features: '{part}' is not one of all, none, encoder, supplement, refinement."),
            };
        }
        return result;
    }
}
