using Microsoft.ML.LabelCompletion.Model;

namespace Microsoft.ML.LabelCompletion;

/// <summary>Where a training checkpoint stands (see <see cref="LabelCompletionSettings.CheckpointDirectory"/>).</summary>
/// <param name="Path">The checkpoint file.</param>
/// <param name="Epoch">The 1-based epoch it belongs to.</param>
/// <param name="StepsDone">Optimisation steps of that epoch already done.</param>
/// <param name="EpochComplete"><c>true</c> when the epoch's end (validation, learning-rate schedule, early stopping) is done too.</param>
/// <param name="GlobalStep">Optimisation steps done since training started.</param>
/// <param name="LibraryVersion">The version of this library that wrote it.</param>
public sealed record TrainingCheckpointInfo(string Path, int Epoch, int StepsDone, bool EpochComplete, long GlobalStep, string LibraryVersion);

/// <summary>
/// Inspecting and removing the training checkpoints of a checkpoint folder (<see cref="LabelCompletionSettings.CheckpointDirectory"/>);
/// training itself writes and resumes them.
/// </summary>
public static class TrainingCheckpoints
{
    /// <summary>The latest checkpoint in <paramref name="directory"/> whose content checks out (SHA-256), or null when there is none.</summary>
    /// <param name="directory">The checkpoint folder (it need not exist).</param>
    public static TrainingCheckpointInfo? FindLatest(string directory)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(directory);
        if (TrainingCheckpoint.FindLatest(directory, new List<string>()) is not { } latest) return null;
        var c = latest.Checkpoint;
        return new TrainingCheckpointInfo(latest.Path, c.Epoch, c.StepsDone, c.EpochComplete, c.GlobalStep, c.LibraryVersion);
    }

    /// <summary>
    /// Deletes the checkpoints in <paramref name="directory"/>, the temporary files of interrupted checkpoint writes and the
    /// folder's training lock (only files this library names), then the folder itself when nothing else is left in it.
    /// Returns the number of checkpoints deleted. Call it only once the trained model is safely on disk: a model zip written
    /// through <see cref="Data.SegmentationFiles.WriteAtomically"/> is flushed to the disk, and so is its folder entry.
    /// </summary>
    /// <param name="directory">The checkpoint folder (it need not exist).</param>
    /// <exception cref="IOException">A training run holds the folder (the message names it and the holder's process id).</exception>
    public static int Delete(string directory)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(directory);
        if (!Directory.Exists(directory)) return 0;
        int deleted = 0;
        using (TrainingCheckpoint.FolderLock.Acquire(directory))
        {
            foreach (var file in TrainingCheckpoint.List(directory))
            {
                File.Delete(file);
                deleted++;
            }
            TrainingCheckpoint.DeleteLeftovers(directory);
        }
        File.Delete(Path.Combine(directory, TrainingCheckpoint.FolderLock.LockFileName));
        if (!Directory.EnumerateFileSystemEntries(directory).Any()) Directory.Delete(directory);
        return deleted;
    }
}
