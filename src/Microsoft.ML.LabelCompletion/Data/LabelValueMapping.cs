namespace Microsoft.ML.LabelCompletion.Data;

/// <summary>
/// How the values stored in a label file (raw values, e.g. palette indices or Cityscapes label ids) map to class ids
/// <c>0..C-1</c> or the unknown value, and back for writing. Raw values that are neither mapped explicitly nor a class id
/// nor the unknown value are invalid: reading them is an error that names the file and the pixel.
/// </summary>
public sealed class LabelValueMapping
{
    private readonly Dictionary<int, byte> _rawToClass;
    private readonly bool _unlistedAreUnknown;
    private readonly int[] _classToRaw;
    private readonly int _unknownRaw;
    private short[]? _lookup8;

    private LabelValueMapping(int numberOfClasses, byte unknownLabel, IReadOnlyDictionary<int, byte>? rawToClass, bool unlistedAreUnknown)
    {
        LabelMap.CheckClassCount(numberOfClasses, nameof(numberOfClasses));
        if (unknownLabel < numberOfClasses)
            throw new ArgumentOutOfRangeException(nameof(unknownLabel), unknownLabel, $"The unknown value must not be a class id (0..{numberOfClasses - 1}).");
        NumberOfClasses = numberOfClasses;
        UnknownLabel = unknownLabel;
        _unlistedAreUnknown = unlistedAreUnknown;
        _rawToClass = new Dictionary<int, byte>();
        if (rawToClass != null)
        {
            foreach (var (raw, value) in rawToClass)
            {
                if (raw < 0 || raw > ushort.MaxValue)
                    throw new ArgumentOutOfRangeException(nameof(rawToClass), raw, "Raw label values are 0..65535.");
                if (value >= numberOfClasses && value != unknownLabel)
                    throw new ArgumentOutOfRangeException(nameof(rawToClass), value, $"Raw value {raw} maps to {value}, which is neither a class nor the unknown value {unknownLabel}.");
                _rawToClass[raw] = value;
            }
        }

        // Inverse for writing: the smallest raw value that reads as each class / as unknown.
        _classToRaw = new int[numberOfClasses];
        Array.Fill(_classToRaw, -1);
        _unknownRaw = -1;
        for (int raw = 0; raw <= ushort.MaxValue; raw++)
        {
            if (!TryMap(raw, out byte v))
                continue;
            if (v == unknownLabel)
            {
                if (_unknownRaw < 0)
                    _unknownRaw = raw;
            }
            else if (_classToRaw[v] < 0)
            {
                _classToRaw[v] = raw;
            }
        }
    }

    /// <summary>Number of real classes <c>C</c>.</summary>
    public int NumberOfClasses { get; }

    /// <summary>The value that marks pixels whose class is not known.</summary>
    public byte UnknownLabel { get; }

    /// <summary>Raw value <c>v</c> reads as class <c>v</c> when <c>v &lt; C</c>, and the unknown value reads as unknown.</summary>
    /// <param name="numberOfClasses">Number of real classes.</param>
    /// <param name="unknownLabel">The unknown value (not a class id).</param>
    public static LabelValueMapping Identity(int numberOfClasses, byte unknownLabel = 255) => new(numberOfClasses, unknownLabel, null, false);

    /// <summary>As <see cref="Identity"/>, plus explicit raw values mapped to classes or to unknown (for example <c>{11: 255}</c>).</summary>
    /// <param name="numberOfClasses">Number of real classes.</param>
    /// <param name="unknownLabel">The unknown value (not a class id).</param>
    /// <param name="rawToClass">Raw file value to class id or <paramref name="unknownLabel"/>; these override the identity.</param>
    /// <param name="unlistedAreUnknown">When true, raw values not in <paramref name="rawToClass"/> read as unknown instead of by identity.</param>
    public static LabelValueMapping Create(int numberOfClasses, byte unknownLabel, IReadOnlyDictionary<int, byte> rawToClass, bool unlistedAreUnknown = false)
        => new(numberOfClasses, unknownLabel, rawToClass ?? throw new ArgumentNullException(nameof(rawToClass)), unlistedAreUnknown);

    /// <summary>CamVid (SegNet 11 classes): ids 0..10 are classes, void 11 reads as unknown (and is written back as 11).</summary>
    /// <param name="unknownLabel">The unknown value.</param>
    public static LabelValueMapping CamVid(byte unknownLabel = 255) =>
        new(11, unknownLabel, new Dictionary<int, byte> { [11] = unknownLabel }, false);

    /// <summary>Pascal VOC 2012: 21 classes (0 background), boundary/void 255 reads as unknown.</summary>
    /// <param name="unknownLabel">The unknown value.</param>
    public static LabelValueMapping PascalVoc(byte unknownLabel = 255) =>
        new(21, unknownLabel, new Dictionary<int, byte> { [255] = unknownLabel }, false);

    /// <summary>Cityscapes <c>*_gtFine_labelIds.png</c>: the 19 evaluated label ids map to train ids 0..18, every other id reads as unknown.</summary>
    /// <param name="unknownLabel">The unknown value.</param>
    public static LabelValueMapping CityscapesLabelIds(byte unknownLabel = 255)
    {
        var map = new Dictionary<int, byte>();
        for (int trainId = 0; trainId < CityscapesTrainIdToLabelId.Length; trainId++)
            map[CityscapesTrainIdToLabelId[trainId]] = (byte)trainId;
        return new(19, unknownLabel, map, unlistedAreUnknown: true);
    }

    /// <summary>Cityscapes label id of each train id 0..18 (road 7, sidewalk 8, building 11, ..., bicycle 33).</summary>
    internal static ReadOnlySpan<int> CityscapesTrainIdToLabelId => [7, 8, 11, 12, 13, 17, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 31, 32, 33];

    /// <summary>Maps a raw file value to a class id or the unknown value; false when the raw value is invalid.</summary>
    /// <param name="raw">The value stored in the file.</param>
    /// <param name="value">The class id or the unknown value.</param>
    public bool TryMap(int raw, out byte value)
    {
        if (_rawToClass.TryGetValue(raw, out value))
            return true;
        if (_unlistedAreUnknown)
        {
            value = UnknownLabel;
            return raw >= 0;
        }
        if (raw >= 0 && (raw < NumberOfClasses || raw == UnknownLabel))
        {
            value = (byte)raw;
            return true;
        }
        value = 0;
        return false;
    }

    /// <summary>The raw value written for a class id or the unknown value (the smallest raw value that reads back as it).</summary>
    /// <param name="value">A class id <c>0..C-1</c> or the unknown value.</param>
    public int ToRaw(byte value)
    {
        if (value == UnknownLabel)
            return _unknownRaw >= 0 ? _unknownRaw : UnknownLabel;
        if (value >= NumberOfClasses)
            throw new ArgumentOutOfRangeException(nameof(value), value, $"{value} is neither a class (0..{NumberOfClasses - 1}) nor the unknown value {UnknownLabel}.");
        int raw = _classToRaw[value];
        return raw >= 0 ? raw : throw new InvalidOperationException($"No raw value reads as class {value}.");
    }

    /// <summary>Lookup table for 8-bit raw values: class id, unknown, or -1 for invalid (built once; read-only).</summary>
    internal short[] Lookup8() => _lookup8 ??= BuildLookup8();

    private short[] BuildLookup8()
    {
        var table = new short[256];
        for (int raw = 0; raw < 256; raw++)
            table[raw] = TryMap(raw, out byte v) ? v : (short)-1;
        return table;
    }
}
