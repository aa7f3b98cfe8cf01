// The command line of the downstream sample.
using System.Globalization;
using Microsoft.ML.LabelCompletion;

namespace LabelCompletion.Downstream;

/// <summary>The downstream sample's settings, parsed from the command line (see <see cref="HelpText"/>).</summary>
public sealed class DownstreamOptions
{
    /// <summary>The usage text.</summary>
    public const string HelpText = """
        LabelCompletion.Downstream: trains the same segmentation network on full, degraded and completed training labels
        and scores each on the test split.

          dotnet run --project samples/LabelCompletion.Downstream -c Release -- [options]

        Data
          --data DIR             CamVid in the SegNet layout (train/ trainannot/ test/ testannot/; 11 classes, void 11).
                                 Without it: synthetic scenes (128x96, 6 classes), written under --out/data.
          --train-split NAME     CamVid split to train on (default train).
          --test-split NAME      CamVid split to score on (default test).
          --limit N              CamVid: only the first N images of each split (a smoke test).
          --synthetic N,M        synthetic training and test scene counts (default 64,32).
          --out DIR              output folder (default artifacts/downstream).
          --ratio R              share of 16-pixel patches hidden in the training labels (default 0.5).
        L-MAE
          --lmae-minutes M       training time budget (default 25 with --data, 2 without).
          --lmae-epochs N        most epochs (default 200 with --data, 30 without).
          --lmae-size S          tiny or small (default small with --data, tiny without).
          --lmae-model PATH      complete with this saved model (mlContext.Model.Load) instead of training one.
          --confidence C         arm 5 ignores completed pixels with confidence below C (default 0.5).
        Segmenter (the same for every arm)
          --arms LIST            arms to run, e.g. 1,2,3,4,5 (default all): 1 full labels, 2 degraded (holes ignored),
                                 3 NearestKnown fill, 4 L-MAE completion, 5 L-MAE completion without low-confidence pixels.
          --epochs N             epochs per arm (default 60 with --data, 40 without).
          --minutes-per-arm M    also stop an arm after M minutes (no epoch starts later; default none).
          --batch N              images per step (default 8).
          --lr X                 Adam learning rate (default 0.001).
        General
          --threads N            torch threads (default: the number of cores).
          --seed N               seed of the segmenters and of ML.NET (default 1).
        """;

    /// <summary>CamVid folder, or null for the synthetic scenes.</summary>
    public string? DataFolder { get; private set; }

    /// <summary>CamVid training split.</summary>
    public string TrainSplit { get; private set; } = "train";

    /// <summary>CamVid test split.</summary>
    public string TestSplit { get; private set; } = "test";

    /// <summary>Only the first N images of each CamVid split, or null for all.</summary>
    public int? Limit { get; private set; }

    /// <summary>Synthetic training scenes.</summary>
    public int SyntheticTrain { get; private set; } = 64;

    /// <summary>Synthetic test scenes.</summary>
    public int SyntheticTest { get; private set; } = 32;

    /// <summary>Output folder (full path).</summary>
    public string Output { get; private set; } = Path.GetFullPath(Path.Combine("artifacts", "downstream"));

    /// <summary>Share of patches hidden.</summary>
    public double MaskRatio { get; private set; } = 0.5;

    /// <summary>L-MAE training minutes.</summary>
    public double LmaeMinutes { get; private set; }

    /// <summary>L-MAE epochs at most.</summary>
    public int LmaeEpochs { get; private set; }

    /// <summary>L-MAE size preset.</summary>
    public LabelCompletionModelSize LmaeSize { get; private set; }

    /// <summary>A saved L-MAE to load instead of training, or null.</summary>
    public string? LmaeModel { get; private set; }

    /// <summary>Confidence threshold of arm 5.</summary>
    public float Confidence { get; private set; } = 0.5f;

    /// <summary>The arms to run, ascending.</summary>
    public IReadOnlyList<int> Arms { get; private set; } = [1, 2, 3, 4, 5];

    /// <summary>Segmenter epochs per arm.</summary>
    public int Epochs { get; private set; }

    /// <summary>Segmenter minutes per arm, or null.</summary>
    public double? MinutesPerArm { get; private set; }

    /// <summary>Segmenter batch size.</summary>
    public int BatchSize { get; private set; } = 8;

    /// <summary>Segmenter learning rate.</summary>
    public double LearningRate { get; private set; } = 1e-3;

    /// <summary>Torch threads.</summary>
    public int Threads { get; private set; } = Environment.ProcessorCount;

    /// <summary>Seed.</summary>
    public int Seed { get; private set; } = 1;

    /// <summary><c>--help</c> was given.</summary>
    public bool Help { get; private set; }

    /// <summary>Parses the arguments; the message of the <see cref="ArgumentException"/> names the option at fault.</summary>
    public static DownstreamOptions Parse(IReadOnlyList<string> args)
    {
        var o = new DownstreamOptions();
        double? lmaeMinutes = null;
        int? lmaeEpochs = null, epochs = null;
        LabelCompletionModelSize? size = null;
        for (int i = 0; i < args.Count; i++)
        {
            string name = args[i];
            string Value() => i + 1 < args.Count ? args[++i] : throw new ArgumentException($"{name} needs a value.");
            int Int(int min, int max)
            {
                string v = Value();
                return int.TryParse(v, NumberStyles.Integer, CultureInfo.InvariantCulture, out int n) && n >= min && n <= max
                    ? n : throw new ArgumentException($"{name} takes a whole number from {min} to {max}, not '{v}'.");
            }
            double Real(double min, double max)
            {
                string v = Value();
                return double.TryParse(v, NumberStyles.Float, CultureInfo.InvariantCulture, out double x) && x >= min && x <= max
                    ? x : throw new ArgumentException($"{name} takes a number from {min} to {max}, not '{v}'.");
            }
            switch (name)
            {
                case "-h" or "--help": o.Help = true; break;
                case "--data": o.DataFolder = Value(); break;
                case "--train-split": o.TrainSplit = Value(); break;
                case "--test-split": o.TestSplit = Value(); break;
                case "--limit": o.Limit = Int(1, int.MaxValue); break;
                case "--synthetic":
                    {
                        var parts = Value().Split(',');
                        if (parts.Length != 2 || !int.TryParse(parts[0], out int a) || !int.TryParse(parts[1], out int b) || a < 1 || b < 1)
                            throw new ArgumentException("--synthetic takes two positive counts, e.g. 64,32.");
                        (o.SyntheticTrain, o.SyntheticTest) = (a, b);
                        break;
                    }
                case "--out": o.Output = Path.GetFullPath(Value()); break;
                case "--ratio": o.MaskRatio = Real(0, 1); break;
                case "--lmae-minutes": lmaeMinutes = Real(0.01, 100_000); break;
                case "--lmae-epochs": lmaeEpochs = Int(1, 1_000_000); break;
                case "--lmae-size":
                    {
                        string v = Value();
                        size = v.ToLowerInvariant() switch
                        {
                            "tiny" => LabelCompletionModelSize.Tiny,
                            "small" => LabelCompletionModelSize.Small,
                            _ => throw new ArgumentException($"--lmae-size takes tiny or small, not '{v}'."),
                        };
                        break;
                    }
                case "--lmae-model":
                    o.LmaeModel = Value();
                    if (!File.Exists(o.LmaeModel)) throw new ArgumentException($"--lmae-model: '{o.LmaeModel}' does not exist.");
                    break;
                case "--confidence": o.Confidence = (float)Real(0, 1); break;
                case "--arms":
                    {
                        string v = Value();
                        var arms = v.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)
                            .Select(a => int.TryParse(a, out int n) && n is >= 1 and <= 5 ? n : throw new ArgumentException($"--arms takes numbers from 1 to 5, not '{a}'."))
                            .Distinct().Order().ToArray();
                        if (arms.Length == 0) throw new ArgumentException("--arms needs at least one arm.");
                        o.Arms = arms;
                        break;
                    }
                case "--epochs": epochs = Int(1, 1_000_000); break;
                case "--minutes-per-arm": o.MinutesPerArm = Real(0.01, 100_000); break;
                case "--batch": o.BatchSize = Int(1, 4096); break;
                case "--lr": o.LearningRate = Real(1e-8, 10); break;
                case "--threads": o.Threads = Int(1, 1024); break;
                case "--seed": o.Seed = Int(0, int.MaxValue); break;
                default: throw new ArgumentException($"unknown option '{name}'.");
            }
        }
        if (o.DataFolder is not null && !Directory.Exists(o.DataFolder)) throw new ArgumentException($"--data: the folder '{o.DataFolder}' does not exist.");
        if (o.DataFolder is null && o.Limit is not null) throw new ArgumentException("--limit applies to --data only.");
        bool real = o.DataFolder is not null;
        o.LmaeMinutes = lmaeMinutes ?? (real ? 25 : 2);
        o.LmaeEpochs = lmaeEpochs ?? (real ? 200 : 30);
        o.LmaeSize = size ?? (real ? LabelCompletionModelSize.Small : LabelCompletionModelSize.Tiny);
        o.Epochs = epochs ?? (real ? 60 : 40);
        return o;
    }
}
