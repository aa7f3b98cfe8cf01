using TorchSharp;
using static TorchSharp.torch;

namespace Microsoft.ML.LabelCompletion.Model;

/// <summary>
/// Adam (Kingma and Ba) with L2 weight decay added to the gradient, the update of <c>torch.optim.Adam</c>:
/// <c>g += wd·p; m = β1·m + (1-β1)·g; v = β2·v + (1-β2)·g²; p -= lr/(1-β1^t) · m / (sqrt(v)/sqrt(1-β2^t) + eps)</c>.
/// Ours rather than TorchSharp's because (1) every <see cref="Scalar"/> it passes to libtorch is created and disposed
/// explicitly: TorchSharp 0.107's optimizers pass implicitly converted Scalars that the GC may finalize while libtorch
/// still reads them (dotnet/TorchSharp PR #1434/#1496), which aborted long runs at random; (2) its state (moments, step)
/// is plain tensors that a checkpoint can save and restore exactly.
/// </summary>
internal sealed class AdamOptimizer : IDisposable
{
    private readonly IReadOnlyList<Tensor> _parameters;
    private readonly double[] _scales;
    private readonly Tensor[] _firstMoments;
    private readonly Tensor[] _secondMoments;

    /// <summary>Creates the optimizer over <paramref name="parameters"/> (tensors with gradients).</summary>
    public AdamOptimizer(IEnumerable<Tensor> parameters, double learningRate, double beta1 = 0.9, double beta2 = 0.999,
        double epsilon = 1e-8, double weightDecay = 0)
        : this(parameters.Select(p => (p, 1.0)), learningRate, beta1, beta2, epsilon, weightDecay)
    {
    }

    /// <summary>
    /// Creates the optimizer over <paramref name="parameters"/>, each updated with <see cref="LearningRate"/> times its
    /// scale (the scheduler's changes reach every parameter alike).
    /// </summary>
    public AdamOptimizer(IEnumerable<(Tensor Parameter, double Scale)> parameters, double learningRate, double beta1 = 0.9,
        double beta2 = 0.999, double epsilon = 1e-8, double weightDecay = 0)
    {
        var list = parameters.ToList();
        _parameters = list.Select(p => p.Parameter).ToList();
        _scales = list.Select(p => p.Scale).ToArray();
        LearningRate = learningRate;
        Beta1 = beta1;
        Beta2 = beta2;
        Epsilon = epsilon;
        WeightDecay = weightDecay;
        _firstMoments = _parameters.Select(p => zeros_like(p).DetachFromDisposeScope()).ToArray();
        _secondMoments = _parameters.Select(p => zeros_like(p).DetachFromDisposeScope()).ToArray();
    }

    /// <summary>Current learning rate (the scheduler changes it).</summary>
    public double LearningRate { get; set; }

    /// <summary>Decay of the first moment.</summary>
    public double Beta1 { get; }

    /// <summary>Decay of the second moment.</summary>
    public double Beta2 { get; }

    /// <summary>Added to the denominator.</summary>
    public double Epsilon { get; }

    /// <summary>L2 penalty added to the gradient.</summary>
    public double WeightDecay { get; }

    /// <summary>Number of updates done so far.</summary>
    public long StepCount { get; private set; }

    /// <summary>Clears the gradients of every parameter.</summary>
    public void ZeroGrad()
    {
        foreach (var p in _parameters) p.grad?.zero_();
    }

    /// <summary>One Adam update from the current gradients (parameters without a gradient are skipped).</summary>
    public void Step()
    {
        StepCount++;
        double correction1 = 1 - Math.Pow(Beta1, StepCount), correction2 = 1 - Math.Pow(Beta2, StepCount);
        using var guard = no_grad();
        using var scope = NewDisposeScope();
        using var beta1 = Beta1.ToScalar();
        using var oneMinusBeta1 = (1 - Beta1).ToScalar();
        using var beta2 = Beta2.ToScalar();
        using var oneMinusBeta2 = (1 - Beta2).ToScalar();
        using var decay = WeightDecay.ToScalar();
        using var sqrtCorrection2 = Math.Sqrt(correction2).ToScalar();
        using var epsilon = Epsilon.ToScalar();
        var stepSizes = _scales.Distinct().ToDictionary(scale => scale, scale => (-LearningRate * scale / correction1).ToScalar());
        try
        {
            for (int i = 0; i < _parameters.Count; i++) Update(i, stepSizes[_scales[i]]);
        }
        finally
        {
            foreach (var stepSize in stepSizes.Values) stepSize.Dispose();
        }

        void Update(int i, Scalar stepSize)
        {
            var p = _parameters[i];
            var grad = p.grad;
            if (grad is null) return;
            if (WeightDecay != 0) grad = grad.add(p, decay);
            _firstMoments[i].mul_(beta1).add_(grad, oneMinusBeta1);
            _secondMoments[i].mul_(beta2).addcmul_(grad, grad, oneMinusBeta2);
            var denominator = _secondMoments[i].sqrt().div_(sqrtCorrection2).add_(epsilon, TorchScalars.One);
            p.addcdiv_(_firstMoments[i], denominator, stepSize);
        }
    }

    /// <summary>Writes the step count, learning rate and both moments of every parameter.</summary>
    public void SaveState(BinaryWriter writer)
    {
        writer.Write(StepCount);
        writer.Write(LearningRate);
        writer.Write(_parameters.Count);
        for (int i = 0; i < _parameters.Count; i++)
        {
            _firstMoments[i].Save(writer);
            _secondMoments[i].Save(writer);
        }
    }

    /// <summary>Restores what <see cref="SaveState"/> wrote (for the same parameters, in the same order).</summary>
    public void LoadState(BinaryReader reader)
    {
        StepCount = reader.ReadInt64();
        LearningRate = reader.ReadDouble();
        int count = reader.ReadInt32();
        if (count != _parameters.Count)
            throw new InvalidDataException($"The optimizer state holds {count} parameters; the network has {_parameters.Count}.");
        for (int i = 0; i < count; i++)
        {
            _firstMoments[i].Load(reader);
            _secondMoments[i].Load(reader);
        }
    }

    /// <summary>Frees the moment tensors.</summary>
    public void Dispose()
    {
        foreach (var t in _firstMoments) t.Dispose();
        foreach (var t in _secondMoments) t.Dispose();
    }
}

/// <summary>
/// ReduceLROnPlateau (mode min, threshold mode rel, no cooldown), as in PyTorch: a value counts as better when it is below
/// <c>best·(1 - threshold)</c>; after more than <c>patience</c> epochs without a better value the rate is multiplied by
/// <c>factor</c> and the count restarts. Its state is three numbers, saved by checkpoints.
/// </summary>
internal sealed class PlateauScheduler
{
    /// <summary>Creates the scheduler.</summary>
    public PlateauScheduler(double factor, int patience, double threshold)
    {
        Factor = factor;
        Patience = patience;
        Threshold = threshold;
    }

    /// <summary>Multiplier applied to the learning rate on a plateau.</summary>
    public double Factor { get; }

    /// <summary>Epochs without improvement that are tolerated.</summary>
    public int Patience { get; }

    /// <summary>Relative improvement that counts.</summary>
    public double Threshold { get; }

    /// <summary>Best value seen.</summary>
    public double Best { get; set; } = double.PositiveInfinity;

    /// <summary>Epochs since the best value.</summary>
    public int BadEpochs { get; set; }

    /// <summary>Records an epoch's watched value and returns the (possibly reduced) learning rate.</summary>
    public double Step(double value, double learningRate)
    {
        if (value < Best * (1 - Threshold))
        {
            Best = value;
            BadEpochs = 0;
        }
        else BadEpochs++;
        if (BadEpochs > Patience)
        {
            BadEpochs = 0;
            return learningRate * Factor;
        }
        return learningRate;
    }
}
