using System.CommandLine;
using System.Globalization;
using Microsoft.ML.LabelCompletion.Data;

namespace Microsoft.ML.LabelCompletion.Cli.Commands;

/// <summary>Options shared by several commands.</summary>
internal static class CommonOptions
{
    public static Option<string> Data(string description) => new("--data") { Description = description, Required = true, HelpName = "DIR" };

    public static Option<string> Format()
    {
        var option = new Option<string>("--format")
        {
            Description = "Layout of --data: camvid ({split}/ + {split}annot/), voc (JPEGImages/ + SegmentationClass/), cityscapes "
                + "(leftImg8bit/ + gtFine/), pairs (images/ + labels/ folders, per split or flat, or a {split}.txt list of 'image label' lines).",
            Required = true,
        };
        option.AcceptOnlyFromAmong(DataSets.FormatNames);
        return option;
    }

    public static Option<string> Split(string defaultSplit) => new("--split")
    {
        Description = $"Split to read (train, val, test; for pairs the {{split}} sub-folder or list file when there is one). Default {defaultSplit}.",
        DefaultValueFactory = _ => defaultSplit,
    };

    public static Option<string> Device()
    {
        var option = new Option<string>("--device")
        {
            Description = "cpu, or cuda (GPU 0, no fallback to the CPU; needs the CUDA libtorch build: -p:LabelCompletionTorchBackend=cuda).",
            DefaultValueFactory = _ => "cpu",
        };
        option.AcceptOnlyFromAmong("cpu", "cuda");
        return option;
    }

    public static Option<int?> Threads() => new("--threads") { Description = "Intra-op threads TorchSharp may use (default: all cores).", HelpName = "N" };

    /// <summary><c>--precision fp32|bf16|auto</c>; <paramref name="defaultText"/> says what leaving it out means.</summary>
    public static Option<string?> Precision(string defaultText)
    {
        var option = new Option<string?>("--precision")
        {
            Description = "fp32; bf16 (autocast: linear layers, attention and convolutions in bfloat16 from FP32 weights; fast on CPUs "
                + $"with AVX512-BF16 or AMX); auto (bf16 on such a CPU, else fp32). {defaultText}",
            HelpName = "fp32|bf16|auto",
        };
        option.AcceptOnlyFromAmong("fp32", "bf16", "auto");
        return option;
    }

    /// <summary>The precision a <c>--precision</c> value names, or <paramref name="fallback"/> when it was left out.</summary>
    public static LabelCompletionPrecision ParsePrecision(string? value, LabelCompletionPrecision fallback) => value switch
    {
        null => fallback,
        "bf16" => LabelCompletionPrecision.BFloat16,
        "auto" => LabelCompletionPrecision.Auto,
        _ => LabelCompletionPrecision.Float32,
    };

    /// <summary>
    /// The precision a run computes in, with <c>auto</c> decided here as the library decides it (bf16 on a CPU whose
    /// <c>/proc/cpuinfo</c> flags list <c>avx512_bf16</c> or <c>amx_bf16</c>, fp32 elsewhere and on CUDA), so that what a
    /// completion marker or an evaluation shard records is what ran, and machines of either kind are not mixed.
    /// </summary>
    public static LabelCompletionPrecision Concrete(LabelCompletionPrecision precision, string device)
    {
        if (precision != LabelCompletionPrecision.Auto) return precision;
        if (device != "cpu" || !OperatingSystem.IsLinux() || !File.Exists("/proc/cpuinfo")) return LabelCompletionPrecision.Float32;
        foreach (string line in File.ReadLines("/proc/cpuinfo"))
        {
            if (!line.StartsWith("flags", StringComparison.Ordinal)) continue;
            var flags = line.Split([' ', '\t', ':'], StringSplitOptions.RemoveEmptyEntries);
            return flags.Contains("avx512_bf16") || flags.Contains("amx_bf16") ? LabelCompletionPrecision.BFloat16 : LabelCompletionPrecision.Float32;
        }
        return LabelCompletionPrecision.Float32;
    }

    public static Option<int?> Classes() => new("--classes")
    {
        Description = "pairs only: number of classes (default: classes.txt beside the folders, else the largest label value + 1).",
        HelpName = "N",
    };

    public static Option<int> Unknown() => new("--unknown")
    {
        Description = "pairs only: the label value that marks unknown pixels. Default 255.",
        DefaultValueFactory = _ => 255,
        HelpName = "VALUE",
    };

    /// <summary>Sets the context's device: <c>cuda</c> is GPU 0 without fallback to the CPU.</summary>
    public static void ApplyDevice(MLContext ml, string device)
    {
        if (device == "cuda")
        {
            ml.GpuDeviceId = 0;
            ml.FallbackToCpu = false;
        }
    }

    /// <summary>Sets TorchSharp's intra-op thread count when one was given.</summary>
    public static void ApplyThreads(int? threads)
    {
        if (threads is not int n) return;
        if (n < 1) throw new CliException($"--threads must be at least 1, not {n}.");
        TorchSharp.torch.set_num_threads(n);
    }

    /// <summary>Checks an unknown value given on the command line.</summary>
    public static byte UnknownValue(int value) =>
        value is >= 0 and <= 255 ? (byte)value : throw new CliException($"--unknown must be 0..255, not {value}.");

    /// <summary><c>--shard i/n</c>: the shard of the split this process takes; without it, a scheduler's variables give it.</summary>
    public static Option<string?> Shard(string what) => new("--shard")
    {
        Description = $"Take only shard i of n (0 <= i < n), e.g. 0/4: {what} Shards are contiguous runs of the split's sorted list, "
            + "their sizes differ by at most one. Default: the task index and count of a Kubernetes Indexed Job (JOB_COMPLETION_INDEX), "
            + "Slurm array (SLURM_ARRAY_TASK_ID), AWS Batch array (AWS_BATCH_JOB_ARRAY_INDEX) or Google Cloud Batch task (BATCH_TASK_INDEX); else the whole split.",
        HelpName = "i/n",
    };

    /// <summary><c>--shard-count N</c>: the shard count where the scheduler does not give one (Kubernetes).</summary>
    public static Option<int?> ShardCount() => new("--shard-count")
    {
        Description = $"Number of shards where the scheduler does not say (a Kubernetes Indexed Job: its completions). Default: {DataShard.ShardCountVariable}.",
        HelpName = "N",
    };

    /// <summary>
    /// The shard of this process: <c>--shard</c> when given, else the scheduler's variables (<see cref="DataShard.TryFromEnvironment"/>),
    /// else the whole split. Prints which source gave it when the run is sharded.
    /// </summary>
    public static DataShard ResolveShard(string? shardText, int? shardCount, CliConsole console, Func<string, string?>? environment = null)
    {
        if (shardText is not null)
        {
            DataShard shard;
            try
            {
                shard = DataShard.Parse(shardText);
            }
            catch (FormatException e)
            {
                throw new CliException($"--shard: {e.Message}");
            }
            if (shardCount is int n && n != shard.Count)
                throw new CliException($"--shard {shard} and --shard-count {n} disagree.");
            if (shard.Count > 1) console.Out.WriteLine($"shard {shard} (from --shard)");
            return shard;
        }
        try
        {
            if (DataShard.TryFromEnvironment(environment ?? Environment.GetEnvironmentVariable, shardCount, out var shard, out string source))
            {
                console.Out.WriteLine($"shard {shard} (from the {source})");
                return shard;
            }
            return DataShard.All;
        }
        catch (FormatException e)
        {
            throw new CliException($"shard: {e.Message}");
        }
    }

    /// <summary>Parses a comma-separated list of ratios in (0, 1).</summary>
    public static double[] Ratios(string text)
    {
        var parts = text.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
        if (parts.Length == 0) throw new CliException("--ratios is empty; give e.g. 0.5,0.6.");
        return parts.Select(p => double.TryParse(p, NumberStyles.Float, CultureInfo.InvariantCulture, out double r) && r > 0 && r < 1
            ? r
            : throw new CliException($"--ratios: '{p}' is not a ratio in (0, 1).")).Distinct().ToArray();
    }
}
