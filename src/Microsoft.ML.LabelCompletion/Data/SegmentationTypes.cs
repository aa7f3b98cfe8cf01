namespace Microsoft.ML.LabelCompletion.Data;

/// <summary>An 8-bit RGB image stored row-major, interleaved (height x width x 3).</summary>
/// <param name="Width">Width in pixels.</param>
/// <param name="Height">Height in pixels.</param>
/// <param name="Pixels">Interleaved R, G, B bytes, row by row; length is <c>Width * Height * 3</c>.</param>
public sealed record RgbImage(int Width, int Height, byte[] Pixels)
{
    /// <summary>Throws when the pixel buffer does not match the size.</summary>
    public void Validate(string? source = null)
    {
        if (Width <= 0 || Height <= 0)
            throw new InvalidDataException($"{source ?? "image"}: size {Width}x{Height} is not positive.");
        if (Pixels.Length != (long)Width * Height * 3)
            throw new InvalidDataException($"{source ?? "image"}: {Pixels.Length} bytes do not make a {Width}x{Height} RGB image.");
    }
}

/// <summary>
/// A label map stored row-major: one byte per pixel holding a class index <c>0..C-1</c>, or the unknown value
/// (by default 255) for pixels whose class is not known.
/// </summary>
/// <param name="Width">Width in pixels.</param>
/// <param name="Height">Height in pixels.</param>
/// <param name="Values">Class index per pixel, row by row; length is <c>Width * Height</c>.</param>
public sealed record LabelMap(int Width, int Height, byte[] Values)
{
    /// <summary>
    /// The most real classes a label map can hold: 255 (values are bytes and one value is left for "unknown"). Every
    /// class count in the library (options, model loading, data loading, metrics) is checked against this one bound.
    /// </summary>
    public const int MaxClasses = 255;

    /// <summary>Throws <see cref="ArgumentOutOfRangeException"/> unless 1 &lt;= <paramref name="numberOfClasses"/> &lt;= <see cref="MaxClasses"/>.</summary>
    internal static void CheckClassCount(int numberOfClasses, string parameterName)
    {
        if (numberOfClasses < 1 || numberOfClasses > MaxClasses)
            throw new ArgumentOutOfRangeException(parameterName, numberOfClasses,
                $"The number of classes must be between 1 and {MaxClasses} (byte labels with one value left for unknown).");
    }

    /// <summary>Throws when the value buffer does not match the size or holds values that are neither a class nor unknown.</summary>
    public void Validate(int numberOfClasses, byte unknownLabel, string? source = null)
    {
        if (Width <= 0 || Height <= 0)
            throw new InvalidDataException($"{source ?? "label"}: size {Width}x{Height} is not positive.");
        if (Values.Length != (long)Width * Height)
            throw new InvalidDataException($"{source ?? "label"}: {Values.Length} values do not make a {Width}x{Height} label map.");
        for (int i = 0; i < Values.Length; i++)
        {
            byte v = Values[i];
            if (v >= numberOfClasses && v != unknownLabel)
                throw new InvalidDataException(
                    $"{source ?? "label"}: pixel ({i % Width}, {i / Width}) has value {v}, which is neither a class (0..{numberOfClasses - 1}) nor the unknown value {unknownLabel}.");
        }
    }
}
