using TorchSharp;

namespace Microsoft.ML.LabelCompletion.Model;

/// <summary>
/// ReduceLROnPlateau with the semantics of PyTorch's (and TorchSharp's) scheduler for mode <c>min</c>, threshold mode
/// <c>rel</c>, no cooldown and no minimum learning rate, but with state that can be saved in a training checkpoint:
/// TorchSharp 0.107.0 keeps <c>best</c> and <c>num_bad_epochs</c> private, so a resumed run could not continue its plateau count.
/// </summary>
/// <remarks>
/// Per <see cref="Step"/>: the metric improves when <c>metric &lt; best * (1 - threshold)</c> (best starts at +infinity);
/// an improvement resets the bad-epoch count, anything else increments it; when the count exceeds the patience, every
/// parameter group's learning rate is multiplied by the factor (unless the change is at most 1e-8, PyTorch's <c>eps</c>)
/// and the count restarts at 0. A test checks the learning rates against TorchSharp's own scheduler step by step.
/// </remarks>
internal sealed class PlateauScheduler
{
    private const double Eps = 1e-8;
    private readonly torch.optim.Optimizer _optimizer;
    private readonly double _factor;
    private readonly int _patience;
    private readonly double _threshold;

    public PlateauScheduler(torch.optim.Optimizer optimizer, double factor, int patience, double threshold)
    {
        ArgumentNullException.ThrowIfNull(optimizer);
        if (!(factor < 1.0)) throw new ArgumentOutOfRangeException(nameof(factor), factor, "The learning-rate factor must be below 1.");
        _optimizer = optimizer;
        _factor = factor;
        _patience = patience;
        _threshold = threshold;
    }

    /// <summary>The best metric so far (+infinity before the first step).</summary>
    public double Best { get; private set; } = double.PositiveInfinity;

    /// <summary>Steps since the last improvement (or since the last reduction).</summary>
    public int BadEpochs { get; private set; }

    /// <summary>Records one epoch's metric and cuts the learning rate after more than <c>patience</c> bad epochs.</summary>
    public void Step(double metric)
    {
        if (metric < Best * (1 - _threshold))
        {
            Best = metric;
            BadEpochs = 0;
        }
        else
        {
            BadEpochs++;
        }
        if (BadEpochs > _patience)
        {
            foreach (var group in _optimizer.ParamGroups)
            {
                double old = group.LearningRate, cut = Math.Max(old * _factor, 0);
                if (old - cut > Eps) group.LearningRate = cut;
            }
            BadEpochs = 0;
        }
    }

    /// <summary>Restores the state saved from <see cref="Best"/> and <see cref="BadEpochs"/> (learning rates travel with the optimizer).</summary>
    public void Restore(double best, int badEpochs)
    {
        Best = best;
        BadEpochs = badEpochs;
    }
}
