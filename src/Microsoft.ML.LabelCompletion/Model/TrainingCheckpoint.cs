using System.Security.Cryptography;
using System.Text;
using Microsoft.ML.LabelCompletion.Data;

namespace Microsoft.ML.LabelCompletion.Model;

/// <summary>
/// One training checkpoint: where training stands (epoch, step, counters, loss sums, scheduler and early-stopping state),
/// the network's weights and Adam's state, in one file written atomically and closed by a SHA-256 of everything before it.
/// </summary>
/// <remarks>
/// <para>File layout (all little-endian, <see cref="BinaryWriter"/> conventions):</para>
/// <code>
/// byte[8]: "LMAECKPT"; int: layout version (1); string: library version
/// int: n; n x string: the run's fingerprint ("name=value" lines; a resume must match them all)
/// int: epoch (1-based); int: steps done in that epoch; bool: epoch complete (validation, scheduler and early stopping done);
/// bool: finished (last epoch done or early stopping fired); long: global step; double: loss sum; int: images (this epoch)
/// double: learning rate; double: scheduler best; int: scheduler bad epochs; double: early-stopping best; int: epochs without improvement
/// the network's weights (TorchSharp Module.save); Adam's state (AdamOptimizer.SaveState: step count, learning rate, moments)
/// byte[32]: SHA-256 of every byte above
/// </code>
/// <para>
/// A file is only ever replaced by a complete one (temporary file, flush to disk, rename), and a reader checks the hash
/// before it trusts a byte, so a checkpoint is either whole or ignored. No random-number state is stored: every draw of the
/// trainer comes from a generator seeded by (seed, epoch, step), see <see cref="LmaeTrainer.Mix"/>.
/// </para>
/// </remarks>
internal sealed class TrainingCheckpoint
{
    /// <summary>File name extension of checkpoints.</summary>
    public const string Extension = ".lmaeckpt";

    /// <summary>Layout version written by this library.</summary>
    public const int LayoutVersion = 1;

    private static readonly byte[] Magic = "LMAECKPT"u8.ToArray();
    private const int HashLength = 32;

    /// <summary>1-based epoch the checkpoint belongs to.</summary>
    public int Epoch { get; init; }

    /// <summary>Steps of <see cref="Epoch"/> already done.</summary>
    public int StepsDone { get; init; }

    /// <summary>The epoch's end-of-epoch work (validation, scheduler, early stopping) is done.</summary>
    public bool EpochComplete { get; init; }

    /// <summary>Training has nothing left to do (last epoch done, or early stopping fired).</summary>
    public bool Finished { get; init; }

    /// <summary>Optimisation steps done since the start of training.</summary>
    public long GlobalStep { get; init; }

    /// <summary>Sum of loss x images over the steps done in the epoch (for the epoch's mean loss).</summary>
    public double LossSum { get; init; }

    /// <summary>Images seen in the epoch so far.</summary>
    public int Images { get; init; }

    /// <summary>The learning rate when the checkpoint was written (also inside the optimizer state; kept for reports).</summary>
    public double LearningRate { get; init; }

    /// <summary>ReduceLROnPlateau's best metric.</summary>
    public double SchedulerBest { get; init; }

    /// <summary>ReduceLROnPlateau's bad-epoch count.</summary>
    public int SchedulerBadEpochs { get; init; }

    /// <summary>Early stopping's best metric.</summary>
    public double EarlyStoppingBest { get; init; }

    /// <summary>Early stopping's count of epochs without improvement.</summary>
    public int EpochsWithoutImprovement { get; init; }

    /// <summary>What identifies the training run ("name=value" lines).</summary>
    public IReadOnlyList<string> Fingerprint { get; init; } = [];

    /// <summary>The library version that wrote the checkpoint.</summary>
    public string LibraryVersion { get; init; } = "";

    /// <summary>The file name of this checkpoint: epoch and step, so a listing reads in training order.</summary>
    public string FileName => $"checkpoint-e{Epoch:D5}-s{StepsDone:D7}{(EpochComplete ? "-end" : "")}{Extension}";

    /// <summary>Position of the checkpoint in training order.</summary>
    public (int Epoch, int Complete, int Steps) Order => (Epoch, EpochComplete ? 1 : 0, StepsDone);

    /// <summary>
    /// Writes the checkpoint atomically into <paramref name="directory"/>; <paramref name="writeState"/> writes the weights
    /// and then the optimizer state. Returns the file's path.
    /// </summary>
    public string Write(string directory, Action<BinaryWriter> writeState)
    {
        string path = Path.Combine(directory, FileName);
        SegmentationFiles.WriteAtomically(path, stream =>
        {
            using var hashing = new Internal.HashingStream(stream, writing: true);
            using (var writer = new BinaryWriter(hashing, Encoding.UTF8, leaveOpen: true))
            {
                writer.Write(Magic);
                writer.Write(LayoutVersion);
                writer.Write(LibraryVersion);
                writer.Write(Fingerprint.Count);
                foreach (var line in Fingerprint) writer.Write(line);
                writer.Write(Epoch);
                writer.Write(StepsDone);
                writer.Write(EpochComplete);
                writer.Write(Finished);
                writer.Write(GlobalStep);
                writer.Write(LossSum);
                writer.Write(Images);
                writer.Write(LearningRate);
                writer.Write(SchedulerBest);
                writer.Write(SchedulerBadEpochs);
                writer.Write(EarlyStoppingBest);
                writer.Write(EpochsWithoutImprovement);
                writeState(writer);
                writer.Flush();
            }
            stream.Write(hashing.Finish());
        });
        return path;
    }

    /// <summary>
    /// Reads and checks a checkpoint: the hash first (a truncated or altered file fails here, naming the file), then the
    /// header. When <paramref name="readState"/> is given, it reads the weights and optimizer state from the rest.
    /// </summary>
    /// <exception cref="InvalidDataException">The file is not a checkpoint, is truncated, corrupted, or of a newer layout.</exception>
    public static TrainingCheckpoint Read(string path, Action<BinaryReader>? readState = null)
    {
        using var stream = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read, 1 << 16);
        long length = stream.Length;
        if (length < Magic.Length + HashLength)
            throw new InvalidDataException($"{path}: not a training checkpoint (only {length} bytes; truncated).");
        VerifyHash(stream, length, path);
        stream.Position = 0;
        using var bounded = new BoundedStream(stream, length - HashLength);
        using var reader = new BinaryReader(bounded, Encoding.UTF8, leaveOpen: true);
        try
        {
            if (!reader.ReadBytes(Magic.Length).AsSpan().SequenceEqual(Magic))
                throw new InvalidDataException($"{path}: not a training checkpoint (wrong magic bytes).");
            int layout = reader.ReadInt32();
            if (layout < 1 || layout > LayoutVersion)
                throw new InvalidDataException($"{path}: checkpoint layout version {layout} is not supported (this library reads 1..{LayoutVersion}); it was written by a newer library.");
            string version = reader.ReadString();
            int lines = reader.ReadInt32();
            if (lines < 0 || lines > 10_000) throw new InvalidDataException($"{path}: corrupted checkpoint header ({lines} fingerprint lines).");
            var fingerprint = new string[lines];
            for (int i = 0; i < lines; i++) fingerprint[i] = reader.ReadString();
            var checkpoint = new TrainingCheckpoint
            {
                LibraryVersion = version,
                Fingerprint = fingerprint,
                Epoch = reader.ReadInt32(),
                StepsDone = reader.ReadInt32(),
                EpochComplete = reader.ReadBoolean(),
                Finished = reader.ReadBoolean(),
                GlobalStep = reader.ReadInt64(),
                LossSum = reader.ReadDouble(),
                Images = reader.ReadInt32(),
                LearningRate = reader.ReadDouble(),
                SchedulerBest = reader.ReadDouble(),
                SchedulerBadEpochs = reader.ReadInt32(),
                EarlyStoppingBest = reader.ReadDouble(),
                EpochsWithoutImprovement = reader.ReadInt32(),
            };
            if (checkpoint.Epoch < 1 || checkpoint.StepsDone < 0 || checkpoint.GlobalStep < 0 || checkpoint.Images < 0)
                throw new InvalidDataException($"{path}: corrupted checkpoint header (epoch {checkpoint.Epoch}, step {checkpoint.StepsDone}).");
            if (readState is not null)
            {
                readState(reader);
                if (bounded.Remaining != 0)
                    throw new InvalidDataException($"{path}: {bounded.Remaining} bytes after the optimizer state; the checkpoint does not match this network.");
            }
            return checkpoint;
        }
        catch (EndOfStreamException e)
        {
            throw new InvalidDataException($"{path}: the checkpoint ends early; it does not match this network.", e);
        }
    }

    /// <summary>
    /// The latest valid checkpoint in <paramref name="directory"/> (by epoch and step), or null when there is none.
    /// Files that fail their check are listed in <paramref name="rejected"/> with the reason and never used.
    /// </summary>
    public static (string Path, TrainingCheckpoint Checkpoint)? FindLatest(string directory, List<string> rejected)
    {
        if (!Directory.Exists(directory)) return null;
        (string, TrainingCheckpoint)? best = null;
        foreach (var path in Directory.EnumerateFiles(directory, "*" + Extension))
        {
            if (Path.GetFileName(path).StartsWith('.')) continue; // a temporary file of an interrupted write
            try
            {
                var checkpoint = Read(path);
                if (best is null || checkpoint.Order.CompareTo(best.Value.Item2.Order) > 0) best = (path, checkpoint);
            }
            catch (Exception e) when (e is InvalidDataException or IOException or UnauthorizedAccessException)
            {
                rejected.Add(e.Message);
            }
        }
        return best;
    }

    /// <summary>
    /// Restores the newest checkpoint of <paramref name="directory"/> that passes its hash and loads: <paramref name="readState"/>
    /// reads the weights and the optimizer state. Files that fail their hash are listed in <paramref name="rejected"/> and never
    /// used. When a checkpoint's hash checks out but its content does not load (it was written by another network or library,
    /// or the reader rejects a value), the reason goes to <paramref name="rejected"/> too and the one before it is tried, and so on.
    /// Returns null when the folder holds no valid checkpoint.
    /// </summary>
    /// <exception cref="InvalidOperationException">The newest valid checkpoint belongs to another run (every differing setting is named).</exception>
    /// <exception cref="InvalidDataException">No valid checkpoint loads (every file and reason is named); the network is then partly overwritten.</exception>
    public static (string Path, TrainingCheckpoint Checkpoint)? Resume(string directory, IReadOnlyList<string> fingerprint,
        Action<BinaryReader> readState, List<string> rejected)
    {
        var valid = new List<(string Path, TrainingCheckpoint Checkpoint)>();
        foreach (var path in List(directory))
        {
            try
            {
                valid.Add((path, Read(path)));
            }
            catch (Exception e) when (e is InvalidDataException or IOException or UnauthorizedAccessException)
            {
                rejected.Add(e.Message);
            }
        }
        if (valid.Count == 0) return null;
        valid.Sort((a, b) => b.Checkpoint.Order.CompareTo(a.Checkpoint.Order));
        var differences = Differences(valid[0].Checkpoint.Fingerprint, fingerprint);
        if (differences.Count > 0)
            throw new InvalidOperationException(
                $"{valid[0].Path} belongs to another training run and cannot be resumed with these data and settings ({string.Join("; ", differences)}).");

        var failures = new List<string>();
        for (int i = 0; i < valid.Count; i++)
        {
            var (path, header) = valid[i];
            string next = i + 1 < valid.Count ? $"falling back to {Path.GetFileName(valid[i + 1].Path)}" : "no earlier checkpoint is left";
            if (i > 0 && Differences(header.Fingerprint, fingerprint).Count > 0)
            {
                failures.Add($"{path}: belongs to another training run");
                rejected.Add($"{path}: belongs to another training run; {next}.");
                continue;
            }
            try
            {
                return (path, Read(path, readState));
            }
            catch (Exception e) when (e is not (OutOfMemoryException or OperationCanceledException))
            {
                failures.Add($"{path}: {e.Message}");
                rejected.Add($"{path}: its SHA-256 checks out but it does not load into this network ({e.GetType().Name}: {e.Message}); {next}.");
            }
        }
        throw new InvalidDataException(
            $"{directory}: none of its {valid.Count} valid checkpoint(s) loads into this network ({string.Join("; ", failures)}). "
            + "Start afresh in another folder, or with the same library and settings that wrote them.");
    }

    /// <summary>Checkpoint files in <paramref name="directory"/> (valid or not), oldest training position first by name.</summary>
    public static IReadOnlyList<string> List(string directory)
        => Directory.Exists(directory)
            ? Directory.EnumerateFiles(directory, "*" + Extension).Where(p => !Path.GetFileName(p).StartsWith('.')).Order(StringComparer.Ordinal).ToList()
            : [];

    /// <summary>The training position encoded in a checkpoint's file name (see <see cref="FileName"/>); (0, 0, 0) for other names.</summary>
    public static (int Epoch, int Complete, int Steps) OrderOfName(string path)
    {
        var match = System.Text.RegularExpressions.Regex.Match(Path.GetFileName(path), @"^checkpoint-e(\d+)-s(\d+)(-end)?\.lmaeckpt$");
        return match.Success && int.TryParse(match.Groups[1].Value, out int e) && int.TryParse(match.Groups[2].Value, out int s)
            ? (e, match.Groups[3].Success ? 1 : 0, s)
            : (0, 0, 0);
    }

    /// <summary>Deletes temporary files left in <paramref name="directory"/> by a checkpoint write that was killed.</summary>
    public static void DeleteLeftovers(string directory)
    {
        if (!Directory.Exists(directory)) return;
        foreach (var path in Directory.EnumerateFiles(directory, ".checkpoint-*" + Extension + ".*.tmp"))
        {
            try { File.Delete(path); }
            catch (IOException) { }
        }
    }

    /// <summary>
    /// The fingerprint of a training run ("name=value" lines; a resume must match them all): every setting that changes the
    /// weights (<see cref="LabelCompletionSettings.RunFingerprint"/>, from the settings record that models are saved with),
    /// the seed and precision actually used, and digests of the training and validation data.
    /// </summary>
    public static List<string> RunFingerprint(LabelCompletionSettings settings, int seed, LabelCompletionPrecision precision,
        string trainingData, string validationData)
        => [.. settings.RunFingerprint(seed, precision), $"training data={trainingData}", $"validation data={validationData}"];

    /// <summary>The names (before '=') of the fingerprint lines that differ between two runs.</summary>
    public static IReadOnlyList<string> Differences(IReadOnlyList<string> saved, IReadOnlyList<string> current)
    {
        static Dictionary<string, string> Parse(IReadOnlyList<string> lines)
            => lines.Select(l => l.Split('=', 2)).ToDictionary(p => p[0], p => p.Length > 1 ? p[1] : "", StringComparer.Ordinal);
        var a = Parse(saved);
        var b = Parse(current);
        return a.Keys.Union(b.Keys).Where(k => !a.TryGetValue(k, out var x) || !b.TryGetValue(k, out var y) || x != y)
            .Select(k => $"{k}: checkpoint {(a.TryGetValue(k, out var x) ? x : "(none)")}, now {(b.TryGetValue(k, out var y) ? y : "(none)")}")
            .ToList();
    }

    private static void VerifyHash(Stream stream, long length, string path)
    {
        using var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        var buffer = new byte[1 << 16];
        long left = length - HashLength;
        while (left > 0)
        {
            int read = stream.Read(buffer, 0, (int)Math.Min(buffer.Length, left));
            if (read <= 0) throw new InvalidDataException($"{path}: the checkpoint ends early (truncated).");
            hash.AppendData(buffer, 0, read);
            left -= read;
        }
        var stored = new byte[HashLength];
        stream.ReadExactly(stored);
        if (!hash.GetHashAndReset().AsSpan().SequenceEqual(stored))
            throw new InvalidDataException($"{path}: the checkpoint is truncated or corrupted (its SHA-256 does not match its content).");
    }

    /// <summary>
    /// An exclusive lock on a checkpoint folder for the life of one training run, so that two trainers (processes or threads)
    /// never write checkpoints into the same folder. The lock is an operating-system lock on <see cref="LockFileName"/> (on
    /// Unix an <c>flock</c> taken by .NET for <see cref="FileShare.None"/>, on Windows a sharing mode), so the kernel releases
    /// it when its process dies however it ends: a lock left by a killed process is free and is taken over. Who holds it
    /// (process id, machine, start time) is written to <see cref="OwnerFileName"/> so that a refused trainer can name it.
    /// </summary>
    internal sealed class FolderLock : IDisposable
    {
        /// <summary>The file that is locked (kept between runs: deleting it could let two processes lock two different files).</summary>
        public const string LockFileName = ".lmae-training.lock";

        /// <summary>Who holds the lock; deleted when the lock is released, so one found at acquisition was left by a process that died.</summary>
        public const string OwnerFileName = ".lmae-training.owner";

        private readonly FileStream _stream;
        private readonly string _ownerPath;

        private FolderLock(FileStream stream, string ownerPath, string? takenOverFrom)
        {
            _stream = stream;
            _ownerPath = ownerPath;
            TakenOverFrom = takenOverFrom;
        }

        /// <summary>The owner record of a holder that died without releasing the lock, when this lock took it over; else null.</summary>
        public string? TakenOverFrom { get; }

        /// <summary>Takes the lock of <paramref name="directory"/> (created when missing).</summary>
        /// <exception cref="IOException">Another trainer holds it; the message names the folder and the holder's process id.</exception>
        public static FolderLock Acquire(string directory)
        {
            Directory.CreateDirectory(directory);
            string lockPath = Path.Combine(directory, LockFileName), ownerPath = Path.Combine(directory, OwnerFileName);
            FileStream stream;
            try
            {
                stream = new FileStream(lockPath, FileMode.OpenOrCreate, FileAccess.ReadWrite, FileShare.None, 1, FileOptions.None);
            }
            catch (IOException e) when (File.Exists(lockPath))
            {
                throw new IOException(
                    $"{directory} is in use by another training run ({ReadOwner(ownerPath) ?? "holder unknown"}): two trainers cannot share a "
                    + "checkpoint folder. Wait for that run to end or stop it, or give this run another folder.", e);
            }
            string? previous = ReadOwner(ownerPath);
            try
            {
                using var process = System.Diagnostics.Process.GetCurrentProcess();
                string owner = string.Create(System.Globalization.CultureInfo.InvariantCulture,
                    $"process {Environment.ProcessId} on {Environment.MachineName}, started {process.StartTime.ToUniversalTime():yyyy-MM-dd HH:mm:ss} UTC");
                SegmentationFiles.WriteAtomically(ownerPath, s => s.Write(Encoding.UTF8.GetBytes(owner)));
            }
            catch
            {
                stream.Dispose();
                throw;
            }
            return new FolderLock(stream, ownerPath, previous);
        }

        /// <summary>Releases the lock (the owner record goes first, so a present record always means a held or abandoned lock).</summary>
        public void Dispose()
        {
            try { File.Delete(_ownerPath); }
            catch (IOException) { }
            catch (UnauthorizedAccessException) { }
            _stream.Dispose();
        }

        private static string? ReadOwner(string path)
        {
            try
            {
                string text = File.ReadAllText(path).Trim();
                return text.Length == 0 ? null : text.Length > 200 ? text[..200] : text;
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                return null;
            }
        }
    }

    /// <summary>A read-only view of the first <c>length</c> bytes of a stream, so parsing can never run into the hash.</summary>
    private sealed class BoundedStream(Stream inner, long length) : Stream
    {
        private long _position;

        public long Remaining => length - _position;
        public override bool CanRead => true;
        public override bool CanSeek => false;
        public override bool CanWrite => false;
        public override long Length => length;
        public override long Position { get => _position; set => throw new NotSupportedException(); }
        public override void Flush() { }
        public override int Read(byte[] buffer, int offset, int count) => Read(buffer.AsSpan(offset, count));

        public override int Read(Span<byte> buffer)
        {
            int n = (int)Math.Min(buffer.Length, Remaining);
            if (n <= 0) return 0;
            int read = inner.Read(buffer[..n]);
            _position += read;
            return read;
        }

        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();
        public override void SetLength(long value) => throw new NotSupportedException();
        public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();
    }
}
