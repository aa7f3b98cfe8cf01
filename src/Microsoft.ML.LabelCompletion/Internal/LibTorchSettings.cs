using System.Runtime.InteropServices;

namespace Microsoft.ML.LabelCompletion.Internal;

/// <summary>
/// Process-wide libtorch settings that TorchSharp 0.107 does not expose, applied only when the host asks
/// (<see cref="LabelCompletionProcessTuning.Apply"/>). NNPACK is switched off: libtorch tries it for the CPU convolutions that oneDNN does not take (small inputs at batch 1,
/// such as the QuickStart's validation crops) and, on a processor that NNPACK's CPU detection does not know (the 2-core
/// AMD EPYC Zen 5 VM), logs "Could not initialize NNPACK! Reason: Unsupported hardware." on standard error for every such
/// convolution (1699 lines in one QuickStart run). Off, libtorch goes straight to the kernel it falls back to anyway, so
/// results do not change. Linux only (the entry points are the Itanium-mangled C++ names in <c>libtorch_cpu</c>); a no-op
/// where they are missing.
/// </summary>
internal static class LibTorchSettings
{
    private const string LibTorch = "torch_cpu";
    private static int _applied;

    /// <summary>Applies the settings (idempotent, thread-safe).</summary>
    public static void Apply()
    {
        if (Interlocked.Exchange(ref _applied, 1) == 1) return;
        SetNnpackEnabled(false);
    }

    /// <summary>Sets libtorch's NNPACK switch; returns false where it cannot be set (not Linux, another libtorch layout).</summary>
    internal static bool SetNnpackEnabled(bool enabled)
    {
        if (!OperatingSystem.IsLinux()) return false;
        try
        {
            SetUserEnabledNnpack(GlobalContext(), enabled);
            return true;
        }
        catch (Exception e) when (e is DllNotFoundException or EntryPointNotFoundException)
        {
            return false; // another libtorch build or layout: leave its defaults
        }
    }

    /// <summary>Whether libtorch may use NNPACK (<c>at::globalContext().userEnabledNNPACK()</c>), or null where it cannot be asked.</summary>
    public static bool? NnpackEnabled()
    {
        if (!OperatingSystem.IsLinux()) return null;
        try
        {
            return UserEnabledNnpack(GlobalContext());
        }
        catch (Exception e) when (e is DllNotFoundException or EntryPointNotFoundException)
        {
            return null;
        }
    }

    [DllImport(LibTorch, EntryPoint = "_ZN2at13globalContextEv")]
    private static extern IntPtr GlobalContext();

    [DllImport(LibTorch, EntryPoint = "_ZN2at7Context20setUserEnabledNNPACKEb")]
    private static extern void SetUserEnabledNnpack(IntPtr context, [MarshalAs(UnmanagedType.U1)] bool enabled);

    [DllImport(LibTorch, EntryPoint = "_ZNK2at7Context17userEnabledNNPACKEv")]
    [return: MarshalAs(UnmanagedType.U1)]
    private static extern bool UserEnabledNnpack(IntPtr context);
}
