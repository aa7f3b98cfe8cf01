// MSBuild task (compiled by RoslynCodeTaskFactory, netstandard): marks one GLIBCXX version need of every
// libLibTorchSharp.so under a folder as weak, when the system libstdc++ does not define that version.
using System;
using System.Collections.Generic;
using System.IO;
using System.Text;
using Microsoft.Build.Framework;
using Microsoft.Build.Utilities;

public class MarkGlibcxxVersionNeedWeak : Task
{
    private const uint ShtGnuVerneed = 0x6ffffffe;
    private const ushort VerFlgWeak = 0x2;

    [Required] public string Directory { get; set; }
    [Required] public string VersionName { get; set; }

    public override bool Execute()
    {
        if (string.IsNullOrEmpty(Directory) || !System.IO.Directory.Exists(Directory)) return true;
        var targets = System.IO.Directory.GetFiles(Directory, "libLibTorchSharp.so", SearchOption.AllDirectories);
        if (targets.Length == 0) return true;
        if (SystemLibStdCxxHasVersion())
        {
            Log.LogMessage(MessageImportance.Low, "System libstdc++ defines " + VersionName + "; libLibTorchSharp.so left as it is.");
            return true;
        }
        foreach (var path in targets)
        {
            try
            {
                string result = Patch(path);
                Log.LogMessage(MessageImportance.Normal, path + ": " + result);
            }
            catch (Exception e)
            {
                Log.LogError("Could not mark " + VersionName + " weak in " + path + ": " + e.Message);
                return false;
            }
        }
        return !Log.HasLoggedErrors;
    }

    private bool SystemLibStdCxxHasVersion()
    {
        var candidates = new[]
        {
            "/usr/lib/x86_64-linux-gnu/libstdc++.so.6", "/lib/x86_64-linux-gnu/libstdc++.so.6",
            "/usr/lib/aarch64-linux-gnu/libstdc++.so.6", "/usr/lib64/libstdc++.so.6", "/usr/lib/libstdc++.so.6",
        };
        byte[] needle = Encoding.ASCII.GetBytes(VersionName + "\0");
        bool any = false;
        foreach (var c in candidates)
        {
            if (!File.Exists(c)) continue;
            any = true;
            if (IndexOf(File.ReadAllBytes(c), needle) >= 0) return true;
        }
        // No libstdc++ found where we look: do not guess, leave the library untouched.
        return !any;
    }

    private static int IndexOf(byte[] hay, byte[] needle)
    {
        for (int i = 0; i + needle.Length <= hay.Length; i++)
        {
            int j = 0;
            while (j < needle.Length && hay[i + j] == needle[j]) j++;
            if (j == needle.Length) return i;
        }
        return -1;
    }

    /// <summary>Sets VER_FLG_WEAK on the Vernaux entry named VersionName; writes through a temporary file.</summary>
    private string Patch(string path)
    {
        byte[] elf = File.ReadAllBytes(path);
        if (elf.Length < 64 || elf[0] != 0x7f || elf[1] != (byte)'E' || elf[2] != (byte)'L' || elf[3] != (byte)'F')
            throw new InvalidDataException("not an ELF file");
        if (elf[4] != 2 || elf[5] != 1) throw new InvalidDataException("only 64-bit little-endian ELF is supported");
        ulong shoff = BitConverter.ToUInt64(elf, 0x28);
        int shentsize = BitConverter.ToUInt16(elf, 0x3A);
        int shnum = BitConverter.ToUInt16(elf, 0x3C);
        for (int s = 0; s < shnum; s++)
        {
            int sh = checked((int)shoff + s * shentsize);
            if (BitConverter.ToUInt32(elf, sh + 4) != ShtGnuVerneed) continue;
            int offset = checked((int)BitConverter.ToUInt64(elf, sh + 0x18));
            int link = (int)BitConverter.ToUInt32(elf, sh + 0x28);
            int strtab = checked((int)BitConverter.ToUInt64(elf, (int)shoff + link * shentsize + 0x18));
            int vn = offset;
            while (true)
            {
                int cnt = BitConverter.ToUInt16(elf, vn + 2);
                int va = vn + (int)BitConverter.ToUInt32(elf, vn + 8);
                for (int a = 0; a < cnt; a++)
                {
                    ushort flags = BitConverter.ToUInt16(elf, va + 4);
                    string name = ReadCString(elf, strtab + (int)BitConverter.ToUInt32(elf, va + 8));
                    if (name == VersionName)
                    {
                        if ((flags & VerFlgWeak) != 0) return VersionName + " already weak";
                        flags |= VerFlgWeak;
                        elf[va + 4] = (byte)(flags & 0xff);
                        elf[va + 5] = (byte)(flags >> 8);
                        string tmp = path + ".tmp-" + Guid.NewGuid().ToString("N");
                        File.WriteAllBytes(tmp, elf);
                        File.Replace(tmp, path, null);
                        return VersionName + " marked weak";
                    }
                    int next = (int)BitConverter.ToUInt32(elf, va + 12);
                    if (next == 0) break;
                    va += next;
                }
                int vnNext = (int)BitConverter.ToUInt32(elf, vn + 12);
                if (vnNext == 0) break;
                vn += vnNext;
            }
        }
        return "no version need on " + VersionName;
    }

    private static string ReadCString(byte[] b, int at)
    {
        int end = at;
        while (end < b.Length && b[end] != 0) end++;
        return Encoding.ASCII.GetString(b, at, end - at);
    }
}
