using Microsoft.ML.Runtime;
using TorchSharp;

namespace Microsoft.ML.LabelCompletion.Internal;

/// <summary>
/// Chooses the TorchSharp device from the ML.NET environment, as ML.NET's own GPU components do:
/// <c>MLContext.GpuDeviceId</c> set and CUDA available → <c>cuda:&lt;id&gt;</c>; otherwise the CPU, or an error when
/// <c>MLContext.FallbackToCpu</c> is <c>false</c>.
/// </summary>
internal static class TorchDeviceSelector
{
    /// <summary>Selects the device for <paramref name="env"/>; warnings about a fallback go to <paramref name="channel"/>.</summary>
    public static torch.Device Select(IHostEnvironment env, IChannel? channel)
    {
        var settings = env as IHostEnvironmentInternal;
        int? gpuDeviceId = settings?.GpuDeviceId;
        bool fallbackToCpu = settings?.FallbackToCpu ?? true;
        return Decide(gpuDeviceId, fallbackToCpu, torch.cuda.is_available, torch.cuda.device_count, channel) is int cuda
            ? torch.device(DeviceType.CUDA, cuda)
            : torch.CPU;
    }

    /// <summary>
    /// The decision itself, with CUDA probing injectable so every branch can be tested on any machine: the CUDA device index
    /// to use, or null for the CPU.
    /// </summary>
    public static int? Decide(int? gpuDeviceId, bool fallbackToCpu, Func<bool> cudaAvailable, Func<int> cudaDeviceCount, IChannel? channel)
    {
        if (gpuDeviceId is not int id)
            return null;
        if (id < 0)
            throw new ArgumentOutOfRangeException(nameof(gpuDeviceId), id, "MLContext.GpuDeviceId must be null or a non-negative CUDA device index.");

        string? problem = null;
        if (!cudaAvailable())
            problem = $"MLContext.GpuDeviceId is {id} but CUDA is not available to TorchSharp (no CUDA device, driver or libtorch CUDA backend; "
                + "build with -p:LabelCompletionTorchBackend=cuda to reference it).";
        else if (id >= cudaDeviceCount())
            problem = $"MLContext.GpuDeviceId is {id} but TorchSharp sees only {cudaDeviceCount()} CUDA device(s).";

        if (problem is null)
            return id;
        if (!fallbackToCpu)
            throw new InvalidOperationException(problem + " Set MLContext.FallbackToCpu = true to run on the CPU instead.");
        channel?.Warning(problem + " Falling back to the CPU (MLContext.FallbackToCpu is true).");
        return null;
    }
}
