namespace Microsoft.ML.LabelCompletion.Model;

/// <summary>
/// A fixed partition of a patch grid into <c>K</c> folds for label checking: hiding one fold at a time hides every patch
/// exactly once, so each pixel's prediction is made without its own label. Patch (row r, column c) belongs to fold
/// <c>(c + r·⌊K/2⌋) mod K</c>: a checkerboard for <c>K = 2</c>, and for <c>K ≥ 4</c> no two patches of one fold touch, not
/// even at a corner, so every hidden patch is predicted from all eight of its neighbours.
/// </summary>
internal static class PatchFolds
{
    /// <summary>The fold of every patch of a <paramref name="rows"/> x <paramref name="columns"/> grid, row-major.</summary>
    /// <param name="rows">Patch rows.</param>
    /// <param name="columns">Patch columns.</param>
    /// <param name="folds">Number of folds <c>K</c>, at least 2.</param>
    public static int[] Assign(int rows, int columns, int folds)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(rows);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(columns);
        if (folds < 2) throw new ArgumentOutOfRangeException(nameof(folds), folds, "Label checking needs at least 2 folds (one fold would hide the whole label).");
        int shift = folds / 2;
        var fold = new int[rows * columns];
        for (int r = 0; r < rows; r++)
            for (int c = 0; c < columns; c++)
                fold[r * columns + c] = (int)((c + (long)r * shift) % folds);
        return fold;
    }

    /// <summary>One patch mask per fold (true = hidden): mask <c>k</c> hides exactly the patches of fold <c>k</c>.</summary>
    /// <param name="rows">Patch rows.</param>
    /// <param name="columns">Patch columns.</param>
    /// <param name="folds">Number of folds <c>K</c>, at least 2.</param>
    public static bool[][] Masks(int rows, int columns, int folds)
    {
        var fold = Assign(rows, columns, folds);
        var masks = new bool[folds][];
        for (int k = 0; k < folds; k++)
        {
            masks[k] = new bool[fold.Length];
            for (int i = 0; i < fold.Length; i++) masks[k][i] = fold[i] == k;
        }
        return masks;
    }
}
