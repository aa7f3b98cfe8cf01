using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Microsoft.ML.LabelCompletion.Model;

/// <summary>
/// Image Patch Supplement (paper §3.3): every image patch embedded by <c>Linear(3p² → Dd)</c>; the embeddings of masked
/// patches are inserted among the encoder outputs, so the decoder sees the image where the label was hidden. With the
/// label prior (<see cref="LabelPriorMode"/>) the patch also carries the NearestKnown fill's one-hot: <c>Linear((3+C)p² → Dd)</c>.
/// When the supplement is off, one learned mask token stands at every masked position instead (the MAE baseline).
/// </summary>
internal sealed class ImagePatchSupplement : nn.Module<Tensor, Tensor>
{
    private readonly Linear? _embed;
    private readonly Parameter? _maskToken;
    private readonly int _decoderDimension;

    /// <summary>Creates the supplement (or the mask token) of <paramref name="config"/>.</summary>
    public ImagePatchSupplement(LmaeConfig config) : base(nameof(ImagePatchSupplement))
    {
        _decoderDimension = config.DecoderDimension;
        int p2 = config.PatchSize * config.PatchSize;
        if (config.UseImagePatchSupplement)
        {
            int channels = config.LabelPrior == LabelPriorMode.None ? 3 : 3 + config.NumberOfClasses;
            _embed = nn.Linear(channels * p2, config.DecoderDimension);
        }
        else
        {
            _maskToken = nn.Parameter(zeros(1, 1, config.DecoderDimension));
        }
        RegisterComponents();
    }

    /// <summary>Whether this is the supplement (true) or the mask-token baseline (false).</summary>
    public bool IsSupplement => _embed is not null;

    /// <summary>Initialises the mask token like MAE (normal, std 0.02).</summary>
    public void InitializeMaskToken()
    {
        if (_maskToken is not null)
            using (no_grad()) nn.init.normal_(_maskToken, 0, 0.02);
    }

    /// <summary>Patches <c>[B, L, k·p²]</c> (RGB, or RGB and prior one-hot) → tokens <c>[B, L, Dd]</c> for every position.</summary>
    public override Tensor forward(Tensor patches)
    {
        if (_embed is not null) return Autocast.ToFloat32(Autocast.Linear(_embed, patches));
        return _maskToken!.expand(patches.shape[0], patches.shape[1], _decoderDimension);
    }
}
