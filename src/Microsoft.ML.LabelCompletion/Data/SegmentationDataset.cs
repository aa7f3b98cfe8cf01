using System.Collections;

namespace Microsoft.ML.LabelCompletion.Data;

/// <summary>One image/label pair as listed on disk (nothing decoded).</summary>
/// <param name="ImagePath">Full path of the image file.</param>
/// <param name="LabelPath">Full path of the label file.</param>
/// <param name="RelativeLabelPath">The label's path relative to the data root (to mirror the layout when writing results).</param>
public sealed record SegmentationPair(string ImagePath, string LabelPath, string RelativeLabelPath);

/// <summary>One decoded image/label pair.</summary>
/// <param name="Image">The RGB image.</param>
/// <param name="Label">The label map (class ids, unknown value for unknown pixels), same size as the image.</param>
/// <param name="ImagePath">Full path of the image file.</param>
/// <param name="LabelPath">Full path of the label file.</param>
public sealed record SegmentationSample(RgbImage Image, LabelMap Label, string ImagePath, string LabelPath);

/// <summary>A pair that was left out because <see cref="SegmentationDataOptions.SkipBadRows"/> is on.</summary>
/// <param name="ImagePath">The image file (empty when the row has no image).</param>
/// <param name="LabelPath">The label file (empty when the row has no label).</param>
/// <param name="Reason">What is wrong, naming the file.</param>
public sealed record SegmentationBadRow(string ImagePath, string LabelPath, string Reason);

/// <summary>
/// A segmentation data set on disk: the list of image/label pairs of one split of one layout, decoded on demand. Listing
/// problems (missing files, list entries outside the root) are found when it is opened; decoding problems (corrupt files,
/// size mismatches, invalid label values) when a pair is read. With <see cref="SegmentationDataOptions.SkipBadRows"/> off
/// each throws; with it on, bad rows are left out and recorded in <see cref="BadRows"/>. Reading is thread-safe.
/// </summary>
public sealed class SegmentationDataset : IEnumerable<SegmentationSample>
{
    private static readonly string[] s_imageExtensions = [".png", ".jpg", ".jpeg"];

    private readonly SegmentationPair[] _pairs;
    private readonly object _badRowsLock = new();
    private readonly List<SegmentationBadRow> _badRows = [];
    private readonly HashSet<(string, string)> _badRowKeys = [];
    // Per pair: 0 not yet read, 1 good, 2 bad (only tracked with SkipBadRows).
    private readonly int[] _rowState;
    private int _rowsSeen;
    private int _decodeBadRows;

    private SegmentationDataset(SegmentationDataOptions options, string root, LabelValueMapping mapping, List<SegmentationPair> pairs, List<SegmentationBadRow> listingBadRows)
    {
        Options = options;
        Root = root;
        LabelMapping = mapping;
        _pairs = [.. pairs];
        _rowState = new int[_pairs.Length];
        foreach (var bad in listingBadRows)
            RecordBadRow(bad);
    }

    /// <summary>The options it was opened with (a copy).</summary>
    public SegmentationDataOptions Options { get; }

    /// <summary>The data root (full path).</summary>
    public string Root { get; }

    /// <summary>How raw label values map to class ids and back.</summary>
    public LabelValueMapping LabelMapping { get; }

    /// <summary>Number of real classes.</summary>
    public int NumberOfClasses => LabelMapping.NumberOfClasses;

    /// <summary>The unknown value.</summary>
    public byte UnknownLabel => LabelMapping.UnknownLabel;

    /// <summary>The listed pairs, in a stable order (sorted by path, or in list-file order).</summary>
    public IReadOnlyList<SegmentationPair> Pairs => _pairs;

    /// <summary>Number of listed pairs (bad rows found at listing time are not counted; ones found while decoding are).</summary>
    public int Count => _pairs.Length;

    /// <summary>Class colours for overlays (RGB triples by class id).</summary>
    public byte[] ClassColours => SegmentationPalettes.For(Options.Format);

    /// <summary>The rows left out so far (with <see cref="SegmentationDataOptions.SkipBadRows"/> on), each with its reason.</summary>
    public IReadOnlyList<SegmentationBadRow> BadRows
    {
        get
        {
            lock (_badRowsLock)
                return [.. _badRows];
        }
    }

    /// <summary>Number of rows left out so far.</summary>
    public int BadRowCount
    {
        get
        {
            lock (_badRowsLock)
                return _badRows.Count;
        }
    }

    /// <summary>
    /// Number of good rows when known: <see cref="Count"/> without <see cref="SegmentationDataOptions.SkipBadRows"/>, else
    /// known once every pair has been read once (null before).
    /// </summary>
    public long? KnownGoodRowCount =>
        !Options.SkipBadRows ? _pairs.Length : Volatile.Read(ref _rowsSeen) == _pairs.Length ? _pairs.Length - Volatile.Read(ref _decodeBadRows) : null;

    /// <summary>Opens a data set: lists its pairs (nothing is decoded yet).</summary>
    /// <param name="options">Where and what to read.</param>
    /// <exception cref="ArgumentException">Options are inconsistent (no root, number of classes missing for a generic format).</exception>
    /// <exception cref="DirectoryNotFoundException">A folder of the layout does not exist.</exception>
    /// <exception cref="FileNotFoundException">A listed file does not exist (without <see cref="SegmentationDataOptions.SkipBadRows"/>).</exception>
    /// <exception cref="InvalidDataException">The data set is empty, or a list file is malformed or names a path outside the root.</exception>
    public static SegmentationDataset Open(SegmentationDataOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        options = options.Clone();
        if (options.MaxImagePixels < 1)
            throw new ArgumentException($"MaxImagePixels must be at least 1, not {options.MaxImagePixels}.", nameof(options));
        if (!Enum.IsDefined(options.ExifOrientation))
            throw new ArgumentException($"Unknown ExifOrientation {options.ExifOrientation}.", nameof(options));
        if (string.IsNullOrWhiteSpace(options.Split) && options.Format != SegmentationDataFormat.Folders)
            throw new ArgumentException("The split name is empty.", nameof(options));
        var mapping = MappingFor(options);
        var pairs = new List<SegmentationPair>();
        var bad = new List<SegmentationBadRow>();
        string root;
        string where;
        switch (options.Format)
        {
            case SegmentationDataFormat.CamVid:
                root = RequireRoot(options);
                where = ListCamVid(options, root, pairs, bad);
                break;
            case SegmentationDataFormat.PascalVoc:
                root = RequireRoot(options);
                root = FindVocRoot(root);
                where = ListVoc(options, root, pairs, bad);
                break;
            case SegmentationDataFormat.Cityscapes:
                root = RequireRoot(options);
                where = ListCityscapes(options, root, pairs, bad);
                break;
            case SegmentationDataFormat.ListFile:
                (root, where) = ListFromFile(options, pairs, bad);
                break;
            case SegmentationDataFormat.Folders:
                root = RequireRoot(options);
                where = ListFolders(options, root, pairs, bad);
                break;
            default:
                throw new ArgumentException($"Unknown format {options.Format}.", nameof(options));
        }

        if (pairs.Count == 0)
        {
            string detail = bad.Count == 0 ? "" : $" ({bad.Count} bad row(s), first: {bad[0].Reason})";
            throw new InvalidDataException($"{where}: the data set is empty: no image/label pairs for split '{options.Split}'{detail}.");
        }
        return new SegmentationDataset(options, root, mapping, pairs, bad);
    }

    /// <summary>Decodes pair <paramref name="index"/> and checks it; throws on a bad row whatever <see cref="SegmentationDataOptions.SkipBadRows"/> says.</summary>
    /// <param name="index">0..<see cref="Count"/>-1.</param>
    /// <exception cref="FileNotFoundException">The image or label file is gone.</exception>
    /// <exception cref="InvalidDataException">A file is corrupt or truncated, sizes differ, or label values are invalid.</exception>
    public SegmentationSample Read(int index)
    {
        var pair = _pairs[index];
        long maxPixels = Options.MaxImagePixels;
        var image = SegmentationFiles.DecodeImage(SegmentationFiles.ReadAllBytes(pair.ImagePath, "image", maxPixels), pair.ImagePath,
            maxPixels, Options.ExifOrientation, out int orientation);
        var label = SegmentationFiles.ReadLabel(pair.LabelPath, LabelMapping, maxPixels, Options.ExifOrientation);
        if (image.Width != label.Width || image.Height != label.Height)
        {
            string turned = "";
            if (ExifOrientation.SwapsAxes(orientation) && label.Width == image.Height && label.Height == image.Width)
                turned = $" after its EXIF orientation {orientation} ({ExifOrientation.Describe(orientation)}) was applied; the label fits the stored pixels, "
                    + "so it was drawn without that orientation: set ExifOrientation = Ignore to use the stored pixels";
            throw new InvalidDataException(
                $"{pair.LabelPath}: the label is {label.Width}x{label.Height} but its image {pair.ImagePath} is {image.Width}x{image.Height}{turned}.");
        }
        return new SegmentationSample(image, label, pair.ImagePath, pair.LabelPath);
    }

    /// <summary>
    /// Reads pair <paramref name="index"/>; with <see cref="SegmentationDataOptions.SkipBadRows"/> on, a bad row is recorded in
    /// <see cref="BadRows"/> and null is returned, otherwise it throws as <see cref="Read"/>.
    /// </summary>
    /// <param name="index">0..<see cref="Count"/>-1.</param>
    public SegmentationSample? ReadOrSkip(int index)
    {
        if (!Options.SkipBadRows)
            return Read(index);
        if (Volatile.Read(ref _rowState[index]) == 2)
            return null;
        try
        {
            var sample = Read(index);
            MarkRow(index, 1);
            return sample;
        }
        catch (Exception ex) when (ex is InvalidDataException or IOException or UnauthorizedAccessException)
        {
            var pair = _pairs[index];
            RecordBadRow(new SegmentationBadRow(pair.ImagePath, pair.LabelPath, ex.Message));
            MarkRow(index, 2);
            return null;
        }
    }

    /// <summary>True when pair <paramref name="index"/> is already known to be bad (read before, with skipping on).</summary>
    /// <param name="index">0..<see cref="Count"/>-1.</param>
    public bool IsKnownBad(int index) => Volatile.Read(ref _rowState[index]) == 2;

    internal bool IsKnownGood(int index) => Volatile.Read(ref _rowState[index]) == 1;

    /// <summary>Decodes every good pair in order (bad rows skipped and recorded, or thrown, as the options say).</summary>
    public IEnumerator<SegmentationSample> GetEnumerator()
    {
        for (int i = 0; i < _pairs.Length; i++)
        {
            var sample = ReadOrSkip(i);
            if (sample != null)
                yield return sample;
        }
    }

    IEnumerator IEnumerable.GetEnumerator() => GetEnumerator();

    /// <summary>
    /// Writes a completed label for pair <paramref name="index"/> in the data set's own format (see
    /// <see cref="SegmentationFiles.WriteLabelLike"/>): palette PNGs keep their palette, grayscale stays grayscale, CamVid
    /// unknown goes back to void 11, Cityscapes as label ids or train ids.
    /// </summary>
    /// <param name="index">0..<see cref="Count"/>-1.</param>
    /// <param name="completed">The completed label, same size as the source.</param>
    /// <param name="destinationPath">Destination file (written atomically).</param>
    /// <param name="cityscapesOutput">Cityscapes only: which ids to write.</param>
    public void WriteCompletedLabel(int index, LabelMap completed, string destinationPath, CityscapesLabelOutput cityscapesOutput = CityscapesLabelOutput.LabelIds)
    {
        ArgumentNullException.ThrowIfNull(completed);
        completed.Validate(NumberOfClasses, UnknownLabel, destinationPath);
        if (Options.Format == SegmentationDataFormat.Cityscapes && cityscapesOutput == CityscapesLabelOutput.TrainIds)
            SegmentationFiles.WriteGrayscaleLabel(destinationPath, completed);
        else
            SegmentationFiles.WriteLabelLike(destinationPath, completed, _pairs[index].LabelPath, LabelMapping);
    }

    /// <summary>The mapping a set of options reads labels with.</summary>
    /// <param name="options">The options.</param>
    public static LabelValueMapping MappingFor(SegmentationDataOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        byte unknown = options.UnknownLabel;
        int? classes = options.NumberOfClasses;
        void CheckClasses(int expected)
        {
            if (classes != null && classes != expected)
                throw new ArgumentException($"{options.Format} has {expected} classes, not {classes}.", nameof(options));
        }
        switch (options.Format)
        {
            case SegmentationDataFormat.CamVid:
                CheckClasses(11);
                return LabelValueMapping.CamVid(unknown);
            case SegmentationDataFormat.PascalVoc:
                CheckClasses(21);
                return LabelValueMapping.PascalVoc(unknown);
            case SegmentationDataFormat.Cityscapes:
                CheckClasses(19);
                return LabelValueMapping.CityscapesLabelIds(unknown);
            default:
                if (classes == null)
                    throw new ArgumentException($"NumberOfClasses is required for the {options.Format} format.", nameof(options));
                return options.LabelValueMap == null
                    ? LabelValueMapping.Identity(classes.Value, unknown)
                    : LabelValueMapping.Create(classes.Value, unknown, options.LabelValueMap);
        }
    }

    private void MarkRow(int index, int state)
    {
        if (Interlocked.CompareExchange(ref _rowState[index], state, 0) == 0)
        {
            Interlocked.Increment(ref _rowsSeen);
            if (state == 2)
                Interlocked.Increment(ref _decodeBadRows);
        }
    }

    private void RecordBadRow(SegmentationBadRow row)
    {
        lock (_badRowsLock)
        {
            if (_badRowKeys.Add((row.ImagePath, row.LabelPath)))
                _badRows.Add(row);
        }
    }

    private static string RequireRoot(SegmentationDataOptions options)
    {
        if (string.IsNullOrWhiteSpace(options.Root))
            throw new ArgumentException($"The data root is required for the {options.Format} format.", nameof(options));
        string root = Path.GetFullPath(options.Root);
        if (!Directory.Exists(root))
            throw new DirectoryNotFoundException($"{root}: the data root folder does not exist.");
        return root;
    }

    private static string RequireFolder(string folder, string what)
    {
        if (!Directory.Exists(folder))
            throw new DirectoryNotFoundException($"{folder}: the {what} folder does not exist.");
        return folder;
    }

    /// <summary>Adds a pair when both files exist; otherwise throws or records the bad row.</summary>
    private static void AddPair(SegmentationDataOptions options, string root, string image, string label, List<SegmentationPair> pairs, List<SegmentationBadRow> bad, string? context = null)
    {
        string prefix = context == null ? "" : context + ": ";
        string? missing = !File.Exists(image) ? image : !File.Exists(label) ? label : null;
        if (missing != null)
        {
            string what = missing == image ? "image" : "label";
            string reason = $"{prefix}{missing}: the {what} file does not exist.";
            if (!options.SkipBadRows)
                throw new FileNotFoundException(reason, missing);
            bad.Add(new SegmentationBadRow(image, label, reason));
            return;
        }
        pairs.Add(new SegmentationPair(image, label, Path.GetRelativePath(root, label)));
    }

    private static void AddOrphan(SegmentationDataOptions options, string image, string label, string reason, List<SegmentationBadRow> bad)
    {
        if (!options.SkipBadRows)
            throw new FileNotFoundException(reason, image.Length == 0 ? label : image);
        bad.Add(new SegmentationBadRow(image, label, reason));
    }

    private static string ListCamVid(SegmentationDataOptions options, string root, List<SegmentationPair> pairs, List<SegmentationBadRow> bad)
    {
        string images = RequireFolder(Path.Combine(root, options.Split), "CamVid image");
        string labels = RequireFolder(Path.Combine(root, options.Split + "annot"), "CamVid label");
        MatchFolders(options, root, images, labels, pairs, bad);
        return images;
    }

    private static string ListFolders(SegmentationDataOptions options, string root, List<SegmentationPair> pairs, List<SegmentationBadRow> bad)
    {
        string images = RequireFolder(InsideRoot(root, options.ImageFolder ?? "images", "ImageFolder"), "image");
        string labels = RequireFolder(InsideRoot(root, options.LabelFolder ?? "labels", "LabelFolder"), "label");
        MatchFolders(options, root, images, labels, pairs, bad);
        return images;
    }

    private static string InsideRoot(string root, string path, string what)
    {
        string full = Path.GetFullPath(Path.Combine(root, path));
        if (!IsInside(root, full))
            throw new ArgumentException($"{what} '{path}' resolves to {full}, outside the data root {root}.");
        return full;
    }

    private static void MatchFolders(SegmentationDataOptions options, string root, string imageFolder, string labelFolder, List<SegmentationPair> pairs, List<SegmentationBadRow> bad)
    {
        var labels = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (string label in Directory.EnumerateFiles(labelFolder, "*.png"))
            labels[Path.GetFileNameWithoutExtension(label)] = label;
        var images = Directory.EnumerateFiles(imageFolder)
            .Where(f => s_imageExtensions.Contains(Path.GetExtension(f), StringComparer.OrdinalIgnoreCase))
            .OrderBy(f => f, StringComparer.Ordinal)
            .ToList();
        var used = new HashSet<string>(StringComparer.Ordinal);
        foreach (string image in images)
        {
            string key = Path.GetFileNameWithoutExtension(image);
            if (!used.Add(key))
            {
                AddOrphan(options, image, "", $"{image}: another image in {imageFolder} has the same name without extension; cannot pair it with a label unambiguously.", bad);
                continue;
            }
            if (labels.TryGetValue(key, out string? label))
                pairs.Add(new SegmentationPair(image, label, Path.GetRelativePath(root, label)));
            else
                AddPair(options, root, image, Path.Combine(labelFolder, key + ".png"), pairs, bad);
        }
        foreach (var (key, label) in labels.OrderBy(kv => kv.Key, StringComparer.Ordinal))
        {
            if (!used.Contains(key))
                AddOrphan(options, "", label, $"{label}: the label has no image named {key}.* in {imageFolder}.", bad);
        }
    }

    private static string FindVocRoot(string root)
    {
        foreach (string candidate in new[] { root, Path.Combine(root, "VOC2012"), Path.Combine(root, "VOCdevkit", "VOC2012") })
        {
            if (Directory.Exists(Path.Combine(candidate, "JPEGImages")))
                return candidate;
        }
        return root;
    }

    private static string ListVoc(SegmentationDataOptions options, string root, List<SegmentationPair> pairs, List<SegmentationBadRow> bad)
    {
        string list = Path.Combine(root, "ImageSets", "Segmentation", options.Split + ".txt");
        if (!File.Exists(list))
            throw new FileNotFoundException($"{list}: the Pascal VOC split list does not exist.", list);
        int lineNumber = 0;
        foreach (string rawLine in File.ReadLines(list))
        {
            lineNumber++;
            string id = rawLine.Trim();
            if (id.Length == 0)
                continue;
            if (id.IndexOfAny(['/', '\\']) >= 0 || id.Contains("..", StringComparison.Ordinal))
                throw new InvalidDataException($"{list} line {lineNumber}: '{id}' is not an image id.");
            AddPair(options, root, Path.Combine(root, "JPEGImages", id + ".jpg"), Path.Combine(root, "SegmentationClass", id + ".png"),
                pairs, bad, $"{list} line {lineNumber}");
        }
        return list;
    }

    private static string ListCityscapes(SegmentationDataOptions options, string root, List<SegmentationPair> pairs, List<SegmentationBadRow> bad)
    {
        const string imageSuffix = "_leftImg8bit.png";
        string images = RequireFolder(Path.Combine(root, "leftImg8bit", options.Split), "Cityscapes image");
        string labels = RequireFolder(Path.Combine(root, "gtFine", options.Split), "Cityscapes label");
        foreach (string image in Directory.EnumerateFiles(images, "*" + imageSuffix, SearchOption.AllDirectories).OrderBy(f => f, StringComparer.Ordinal))
        {
            string city = Path.GetFileName(Path.GetDirectoryName(image)!);
            string stem = Path.GetFileName(image)[..^imageSuffix.Length];
            AddPair(options, root, image, Path.Combine(labels, city, stem + "_gtFine_labelIds.png"), pairs, bad);
        }
        return images;
    }

    private static (string Root, string Where) ListFromFile(SegmentationDataOptions options, List<SegmentationPair> pairs, List<SegmentationBadRow> bad)
    {
        string? givenRoot = string.IsNullOrWhiteSpace(options.Root) ? null : Path.GetFullPath(options.Root);
        string list = options.ListFile ?? (givenRoot == null
            ? throw new ArgumentException("The ListFile format needs ListFile or Root.", nameof(options))
            : options.Split + ".txt");
        list = Path.GetFullPath(givenRoot == null ? list : Path.Combine(givenRoot, list));
        if (!File.Exists(list))
            throw new FileNotFoundException($"{list}: the list file does not exist.", list);
        string listFolder = Path.GetDirectoryName(list)!;
        string root = givenRoot ?? listFolder;
        if (!Directory.Exists(root))
            throw new DirectoryNotFoundException($"{root}: the data root folder does not exist.");

        int lineNumber = 0;
        foreach (string rawLine in File.ReadLines(list))
        {
            lineNumber++;
            string line = rawLine.Trim();
            if (line.Length == 0 || line[0] == '#')
                continue;
            string[] parts = line.Contains('\t')
                ? line.Split('\t', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)
                : line.Split((char[]?)null, StringSplitOptions.RemoveEmptyEntries);
            if (parts.Length != 2)
                throw new InvalidDataException($"{list} line {lineNumber}: expected 'image label' (two paths), found {parts.Length} field(s): '{line}'.");
            string image = Path.GetFullPath(Path.Combine(listFolder, parts[0]));
            string label = Path.GetFullPath(Path.Combine(listFolder, parts[1]));
            foreach (var (given, full) in new[] { (parts[0], image), (parts[1], label) })
            {
                if (!IsInside(root, full))
                {
                    string reason = $"{list} line {lineNumber}: '{given}' resolves to {full}, outside the data root {root}.";
                    if (!options.SkipBadRows)
                        throw new InvalidDataException(reason);
                    bad.Add(new SegmentationBadRow(image, label, reason));
                    goto nextLine;
                }
            }
            AddPair(options, root, image, label, pairs, bad, $"{list} line {lineNumber}");
        nextLine:;
        }
        return (root, list);
    }

    private static bool IsInside(string root, string fullPath)
    {
        string relative = Path.GetRelativePath(root, fullPath);
        return relative != ".." && !relative.StartsWith(".." + Path.DirectorySeparatorChar, StringComparison.Ordinal)
            && !Path.IsPathRooted(relative);
    }
}
