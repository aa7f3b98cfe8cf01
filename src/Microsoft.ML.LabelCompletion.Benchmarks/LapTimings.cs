using System.Diagnostics;

namespace Microsoft.ML.LabelCompletion.Benchmarks;

/// <summary>
/// Milliseconds per named part, added up lap by lap (and over calls): where a completion (<c>lmae bench --only infer</c>,
/// the steps of <see cref="Model.LabelMaskAutoEncoder.Complete"/>) spends its wall time.
/// </summary>
internal sealed class LapTimings
{
    private readonly Stopwatch _clock = new();

    /// <summary>Milliseconds per part name, in the order the parts first ran.</summary>
    public OrderedDictionary<string, double> Milliseconds { get; } = new();

    /// <summary>Starts the next lap now.</summary>
    public void Restart() => _clock.Restart();

    /// <summary>Adds the time since the previous lap (or <see cref="Restart"/>) to <paramref name="part"/>; starts the next lap.</summary>
    public void Lap(string part)
    {
        Milliseconds[part] = Milliseconds.GetValueOrDefault(part) + _clock.Elapsed.TotalMilliseconds;
        _clock.Restart();
    }
}
