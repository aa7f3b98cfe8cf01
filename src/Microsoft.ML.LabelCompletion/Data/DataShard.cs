using System.Globalization;

namespace Microsoft.ML.LabelCompletion.Data;

/// <summary>
/// Shard <see cref="Index"/> of <see cref="Count"/> of an ordered list of items (for example the pairs of a data set split),
/// so that <c>Count</c> machines can each process one shard under any job scheduler. Shard <c>i</c> is one contiguous run
/// of the list (<see cref="RangeOf"/>): the first <c>N mod Count</c> shards hold <c>floor(N / Count) + 1</c> items, the
/// others <c>floor(N / Count)</c>, so shard sizes differ by at most one, and the same list always gives the same shards on
/// every machine.
/// </summary>
/// <param name="Index">0-based shard index, below <see cref="Count"/>.</param>
/// <param name="Count">Number of shards, at least 1.</param>
public readonly record struct DataShard(int Index, int Count)
{
    /// <summary>The variable that gives the shard count where the scheduler does not (a Kubernetes Indexed Job).</summary>
    public const string ShardCountVariable = "LMAE_SHARD_COUNT";

    /// <summary>The whole list: shard 0 of 1.</summary>
    public static DataShard All => new(0, 1);

    /// <summary>Parses <c>"i/n"</c> (for example <c>"2/8"</c>: the third of eight shards).</summary>
    /// <param name="text">The shard, <c>index/count</c> with <c>0 &lt;= index &lt; count</c>.</param>
    /// <exception cref="FormatException">The text is not of that form.</exception>
    public static DataShard Parse(string text)
    {
        ArgumentNullException.ThrowIfNull(text);
        var parts = text.Split('/');
        if (parts.Length != 2
            || !int.TryParse(parts[0], NumberStyles.None, CultureInfo.InvariantCulture, out int index)
            || !int.TryParse(parts[1], NumberStyles.None, CultureInfo.InvariantCulture, out int count)
            || count < 1 || index >= count)
            throw new FormatException($"'{text}' is not a shard: write i/n with 0 <= i < n, for example 0/4.");
        return new DataShard(index, count);
    }

    /// <summary>
    /// The items of this shard in a list of <paramref name="itemCount"/> items: positions <c>Start .. Start + Length - 1</c>.
    /// Consecutive shards follow each other, together they cover the list once, and their lengths differ by at most one
    /// (a shard is empty when there are fewer items than shards).
    /// </summary>
    /// <param name="itemCount">Number of items in the whole list, not negative.</param>
    public (int Start, int Length) RangeOf(int itemCount)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(itemCount);
        Validate();
        int size = itemCount / Count, extra = itemCount % Count;
        int start = Index * size + Math.Min(Index, extra);
        return (start, size + (Index < extra ? 1 : 0));
    }

    /// <summary>Whether the item at <paramref name="position"/> of a list of <paramref name="itemCount"/> items belongs to this shard.</summary>
    /// <param name="position">0-based position of the item in the list.</param>
    /// <param name="itemCount">Number of items in the whole list.</param>
    public bool Contains(int position, int itemCount)
    {
        var (start, length) = RangeOf(itemCount);
        return position >= start && position < start + length;
    }

    /// <summary>
    /// Reads the shard from the environment of a job scheduler, when the process runs as one task of an array of tasks:
    /// <list type="bullet">
    /// <item>Kubernetes Indexed Job: <c>JOB_COMPLETION_INDEX</c>; the count is not in the environment, so it comes from
    /// <paramref name="count"/> or <c>LMAE_SHARD_COUNT</c> (the Job's <c>completions</c>).</item>
    /// <item>Slurm job array: shard <c>(SLURM_ARRAY_TASK_ID - SLURM_ARRAY_TASK_MIN) / SLURM_ARRAY_TASK_STEP</c> of
    /// <c>SLURM_ARRAY_TASK_COUNT</c> (step 1 when not set), e.g. <c>--array=1-8</c> or <c>--array=0-14:2</c>.</item>
    /// <item>AWS Batch array job: <c>AWS_BATCH_JOB_ARRAY_INDEX</c> of <c>AWS_BATCH_JOB_ARRAY_SIZE</c>.</item>
    /// <item>Google Cloud Batch: <c>BATCH_TASK_INDEX</c> of <c>BATCH_TASK_COUNT</c>.</item>
    /// </list>
    /// A count given as <paramref name="count"/> or <c>LMAE_SHARD_COUNT</c> must agree with the scheduler's own count.
    /// </summary>
    /// <param name="variable">Reads an environment variable (<see cref="Environment.GetEnvironmentVariable(string)"/>); null when not set.</param>
    /// <param name="count">A shard count given explicitly (a command line's <c>--shard-count</c>), or null.</param>
    /// <param name="shard">The shard, or <see cref="All"/> when no scheduler variable is set.</param>
    /// <param name="source">Which scheduler and variables gave the shard, for messages; empty when none did.</param>
    /// <returns>Whether a scheduler gave the shard.</returns>
    /// <exception cref="FormatException">A variable is not a number, the index is outside the count, the count is missing
    /// (Kubernetes) or disagrees, more than one scheduler's variables are set, or a count is given without any index.</exception>
    public static bool TryFromEnvironment(Func<string, string?> variable, int? count, out DataShard shard, out string source)
    {
        ArgumentNullException.ThrowIfNull(variable);
        string? Get(string name) => variable(name) is { Length: > 0 } value ? value.Trim() : null;
        int Number(string name, int minimum)
        {
            string? text = Get(name) ?? throw new FormatException($"{name} is not set.");
            if (!int.TryParse(text, NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out int value) || value < minimum)
                throw new FormatException($"{name}={text} is not a whole number of at least {minimum}.");
            return value;
        }

        var schedulers = new[]
        {
            (Name: "Kubernetes Indexed Job", Variable: "JOB_COMPLETION_INDEX"),
            (Name: "Slurm job array", Variable: "SLURM_ARRAY_TASK_ID"),
            (Name: "AWS Batch array job", Variable: "AWS_BATCH_JOB_ARRAY_INDEX"),
            (Name: "Google Cloud Batch", Variable: "BATCH_TASK_INDEX"),
        };
        var present = schedulers.Where(s => Get(s.Variable) is not null).ToArray();
        int? givenCount = count;
        string givenName = "--shard-count";
        if (givenCount is null && Get(ShardCountVariable) is not null)
        {
            givenCount = Number(ShardCountVariable, 1);
            givenName = ShardCountVariable;
        }
        if (givenCount is < 1) throw new FormatException($"{givenName} must be at least 1, not {givenCount}.");
        if (present.Length == 0)
        {
            shard = All;
            source = "";
            if (givenCount is int n && n > 1)
                throw new FormatException($"{givenName}={n} is given but no shard index: none of {string.Join(", ", schedulers.Select(s => s.Variable))} is set; "
                    + "pass --shard i/n.");
            return false;
        }
        if (present.Length > 1)
            throw new FormatException($"the variables of several schedulers are set ({string.Join(", ", present.Select(s => $"{s.Variable}={Get(s.Variable)}"))}); "
                + "pass --shard i/n to say which shard this is.");

        int index, total;
        string detail;
        switch (present[0].Variable)
        {
            case "JOB_COMPLETION_INDEX":
                index = Number("JOB_COMPLETION_INDEX", 0);
                total = givenCount ?? throw new FormatException(
                    $"JOB_COMPLETION_INDEX={index} (Kubernetes Indexed Job) gives no shard count: set {ShardCountVariable} to the Job's completions, or pass --shard-count.");
                detail = $"JOB_COMPLETION_INDEX={index}, {givenName}={total}";
                break;
            case "SLURM_ARRAY_TASK_ID":
                int id = Number("SLURM_ARRAY_TASK_ID", 0), min = Number("SLURM_ARRAY_TASK_MIN", 0);
                int step = Get("SLURM_ARRAY_TASK_STEP") is null ? 1 : Number("SLURM_ARRAY_TASK_STEP", 1);
                total = Number("SLURM_ARRAY_TASK_COUNT", 1);
                if (id < min || (id - min) % step != 0)
                    throw new FormatException($"SLURM_ARRAY_TASK_ID={id} is not on the array's range (SLURM_ARRAY_TASK_MIN={min}, SLURM_ARRAY_TASK_STEP={step}); "
                        + "submit the array as a range, e.g. --array=0-7, or pass --shard i/n.");
                index = (id - min) / step;
                detail = $"SLURM_ARRAY_TASK_ID={id}, SLURM_ARRAY_TASK_MIN={min}, SLURM_ARRAY_TASK_STEP={step}, SLURM_ARRAY_TASK_COUNT={total}";
                break;
            case "AWS_BATCH_JOB_ARRAY_INDEX":
                index = Number("AWS_BATCH_JOB_ARRAY_INDEX", 0);
                total = Number("AWS_BATCH_JOB_ARRAY_SIZE", 1);
                detail = $"AWS_BATCH_JOB_ARRAY_INDEX={index}, AWS_BATCH_JOB_ARRAY_SIZE={total}";
                break;
            default:
                index = Number("BATCH_TASK_INDEX", 0);
                total = Number("BATCH_TASK_COUNT", 1);
                detail = $"BATCH_TASK_INDEX={index}, BATCH_TASK_COUNT={total}";
                break;
        }
        if (givenCount is int expected && expected != total)
            throw new FormatException($"{givenName}={expected} disagrees with the {present[0].Name}'s {total} tasks ({detail}).");
        if (index >= total)
            throw new FormatException($"shard index {index} is not below the shard count {total} ({present[0].Name}: {detail}).");
        shard = new DataShard(index, total);
        source = $"{present[0].Name}: {detail}";
        return true;
    }

    /// <summary><c>index/count</c>.</summary>
    public override string ToString() => $"{Index}/{Count}";

    private void Validate()
    {
        if (Count < 1 || Index < 0 || Index >= Count)
            throw new InvalidOperationException($"{this} is not a shard: the index must be in 0..count-1 and the count at least 1.");
    }
}
