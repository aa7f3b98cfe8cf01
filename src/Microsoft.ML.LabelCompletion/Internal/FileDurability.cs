using System.Runtime.InteropServices;

namespace Microsoft.ML.LabelCompletion.Internal;

/// <summary>
/// Flushing a folder's entries to the disk. A file's own <c>fsync</c> (<see cref="FileStream.Flush(bool)"/>) makes its
/// content durable, not its name: after a rename, a power cut can still bring back the folder as it was before, so a
/// replaced file reappears and a new one is missing. <c>fsync</c> of the folder makes the rename durable (POSIX; ext4 and
/// XFS do what it asks).
/// </summary>
internal static class FileDurability
{
    private const int EINTR = 4, EBADF = 9, EACCES = 13, EINVAL = 22, EROFS = 30;

    /// <summary>
    /// Flushes the entries of <paramref name="folder"/> to the disk. On Windows nothing is done: NTFS journals the rename
    /// (metadata) and a folder cannot be flushed through a plain handle. File systems that cannot flush a folder (EINVAL,
    /// EBADF, EROFS), and a folder that cannot be opened for reading (EACCES), are passed over, as PostgreSQL's
    /// <c>fsync_fname</c> does.
    /// </summary>
    /// <exception cref="IOException">The flush itself failed (an I/O error): the rename may not survive a power cut.</exception>
    public static void FlushFolder(string folder)
    {
        if (OperatingSystem.IsWindows()) return;
        int fd;
        do fd = Open(folder, 0 /* O_RDONLY */);
        while (fd < 0 && Marshal.GetLastPInvokeError() == EINTR);
        if (fd < 0)
        {
            int error = Marshal.GetLastPInvokeError();
            if (error is EACCES or EINVAL) return;
            throw new IOException($"{folder}: cannot open the folder to flush it to the disk (errno {error}).");
        }
        try
        {
            if (Fsync(fd) != 0)
            {
                int error = Marshal.GetLastPInvokeError();
                if (error is EINVAL or EBADF or EROFS) return;
                throw new IOException($"{folder}: flushing the folder to the disk failed (errno {error}); a file just renamed into it may not survive a power cut.");
            }
        }
        finally
        {
            _ = Close(fd);
        }
    }

    [DllImport("libc", EntryPoint = "open", SetLastError = true)]
    private static extern int Open([MarshalAs(UnmanagedType.LPUTF8Str)] string path, int flags);

    [DllImport("libc", EntryPoint = "fsync", SetLastError = true)]
    private static extern int Fsync(int fd);

    [DllImport("libc", EntryPoint = "close", SetLastError = true)]
    private static extern int Close(int fd);
}
