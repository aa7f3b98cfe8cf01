using static TorchSharp.torch;

namespace Microsoft.ML.LabelCompletion.Model;

/// <summary>
/// Fixed 2-D sine-cosine position embedding (paper eq. 2-3, laid out as in MAE): the first half of the channels
/// encodes the patch row, the second half the column; within each half, <c>sin(pos * w_i)</c> for the first quarter
/// and <c>cos(pos * w_i)</c> for the second, <c>w_i = 1 / 10000^(i / (D/4))</c>, <c>i = 0..D/4-1</c>.
/// Works for any grid size, so the same network runs on any image size.
/// </summary>
internal static class PositionEmbedding
{
    /// <summary>The embedding value of channel <paramref name="channel"/> at patch (<paramref name="row"/>, <paramref name="column"/>) in the closed form.</summary>
    public static double Value(int dimension, int row, int column, int channel)
    {
        int quarter = dimension / 4;
        int half = channel / (2 * quarter);        // 0: row, 1: column
        int within = channel % (2 * quarter);
        int i = within % quarter;
        double pos = half == 0 ? row : column;
        double omega = 1.0 / Math.Pow(10000.0, (double)i / quarter);
        return within < quarter ? Math.Sin(pos * omega) : Math.Cos(pos * omega);
    }

    /// <summary>Embedding table <c>[rows*columns, dimension]</c> (float32, row-major patches).</summary>
    public static float[] Table(int dimension, int rows, int columns)
    {
        if (dimension % 4 != 0) throw new ArgumentException($"Dimension {dimension} is not a multiple of 4.", nameof(dimension));
        var table = new float[rows * columns * dimension];
        for (int r = 0; r < rows; r++)
            for (int c = 0; c < columns; c++)
                for (int k = 0; k < dimension; k++)
                    table[(r * columns + c) * dimension + k] = (float)Value(dimension, r, c, k);
        return table;
    }

    /// <summary>Embedding tensor <c>[1, rows*columns, dimension]</c> on <paramref name="device"/>.</summary>
    public static Tensor Create(int dimension, int rows, int columns, Device device)
        => tensor(Table(dimension, rows, columns), [1, rows * columns, dimension], ScalarType.Float32, device);
}
