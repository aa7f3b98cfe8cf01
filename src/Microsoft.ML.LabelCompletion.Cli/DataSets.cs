using Microsoft.ML.LabelCompletion.Data;

namespace Microsoft.ML.LabelCompletion.Cli;

/// <summary>A data set split opened for a command: the ML.NET view, the pairs behind it, and how to name and colour its classes.</summary>
/// <param name="View">The view with the Image, Label, Width, Height, ImagePath and LabelPath columns.</param>
/// <param name="Description">Format, root and split, for messages and reports.</param>
/// <param name="ClassNames">One name per class.</param>
/// <param name="ClassColours">RGB triples by class id (overlays, charts).</param>
internal sealed record OpenedData(SegmentationDataView View, string Description, IReadOnlyList<string> ClassNames, byte[] ClassColours)
{
    /// <summary>The pairs and decoded samples behind <see cref="View"/>.</summary>
    public SegmentationDataset Dataset => View.Dataset;

    /// <summary>Number of real classes.</summary>
    public int NumberOfClasses => Dataset.NumberOfClasses;

    /// <summary>The unknown label value.</summary>
    public byte UnknownLabel => Dataset.UnknownLabel;

    /// <summary>
    /// SHA-256 (hex) of the first <paramref name="count"/> pairs' paths relative to the data set's root, in the split's order
    /// (one <c>image TAB label LF</c> line each, '/' separators): the same list on every machine gives the same digest, another
    /// list (files added, removed, renamed, or another split) another one. File contents are not read.
    /// </summary>
    public string InputDigest(int count)
    {
        using var hash = System.Security.Cryptography.IncrementalHash.CreateHash(System.Security.Cryptography.HashAlgorithmName.SHA256);
        string root = Dataset.Root;
        foreach (var pair in Dataset.Pairs.Take(count))
        {
            string image = Path.GetRelativePath(root, pair.ImagePath).Replace('\\', '/');
            string label = Path.GetRelativePath(root, pair.LabelPath).Replace('\\', '/');
            hash.AppendData(System.Text.Encoding.UTF8.GetBytes($"{image}\t{label}\n"));
        }
        return Convert.ToHexString(hash.GetHashAndReset()).ToLowerInvariant();
    }
}

/// <summary>Opens data sets from the command line's <c>--data</c>, <c>--format</c> and <c>--split</c>.</summary>
internal static class DataSets
{
    /// <summary>The values <c>--format</c> accepts.</summary>
    public static readonly string[] FormatNames = ["camvid", "voc", "cityscapes", "pairs"];

    /// <summary>Name of the optional class-name file of a <c>pairs</c> data set (one name per line, in class order).</summary>
    public const string ClassNamesFile = "classes.txt";

    private static readonly string[] s_camVidNames =
        ["Sky", "Building", "Pole", "Road", "Pavement", "Tree", "SignSymbol", "Fence", "Car", "Pedestrian", "Bicyclist"];

    private static readonly string[] s_vocNames =
    [
        "background", "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair", "cow", "diningtable",
        "dog", "horse", "motorbike", "person", "pottedplant", "sheep", "sofa", "train", "tvmonitor",
    ];

    private static readonly string[] s_cityscapesNames =
    [
        "road", "sidewalk", "building", "wall", "fence", "pole", "traffic light", "traffic sign", "vegetation", "terrain", "sky",
        "person", "rider", "car", "truck", "bus", "train", "motorcycle", "bicycle",
    ];

    /// <summary>
    /// Opens one split. <paramref name="format"/> is <c>camvid</c>, <c>voc</c>, <c>cityscapes</c> or <c>pairs</c>; <c>pairs</c>
    /// reads <c>DIR/{split}/images</c> + <c>DIR/{split}/labels</c>, else <c>DIR/images</c> + <c>DIR/labels</c> (files pair by
    /// name), else the list file <c>DIR/{split}.txt</c> or <c>DIR</c> itself when it is a file. The number of classes of a
    /// <c>pairs</c> set is <paramref name="numberOfClasses"/>, else the line count of <c>classes.txt</c> beside the folders,
    /// else the largest label value found plus one.
    /// </summary>
    /// <exception cref="CliException">The folder or file does not exist, the format is unknown, or no pairs are found.</exception>
    public static OpenedData Open(MLContext ml, string path, string format, string split, int? numberOfClasses, byte unknownLabel, CliConsole? console = null)
    {
        if (string.IsNullOrWhiteSpace(path)) throw new CliException("--data is empty.");
        string full = Path.GetFullPath(path);
        if (!Directory.Exists(full) && !(format == "pairs" && File.Exists(full)))
            throw new CliException($"the data folder '{path}' does not exist.");
        if (numberOfClasses is int c && (c < 1 || c > 255 || unknownLabel < c))
            throw new CliException($"--classes {c} does not fit: classes are 1..255 and the unknown value {unknownLabel} must not be a class.");
        try
        {
            return format switch
            {
                "camvid" => OpenNamed(ml, full, SegmentationDataFormat.CamVid, split, numberOfClasses, unknownLabel, s_camVidNames),
                "voc" => OpenNamed(ml, full, SegmentationDataFormat.PascalVoc, split, numberOfClasses, unknownLabel, s_vocNames),
                "cityscapes" => OpenNamed(ml, full, SegmentationDataFormat.Cityscapes, split, numberOfClasses, unknownLabel, s_cityscapesNames),
                "pairs" => OpenPairs(ml, full, split, numberOfClasses, unknownLabel, console),
                _ => throw new CliException($"unknown format '{format}'; use one of {string.Join(", ", FormatNames)}."),
            };
        }
        catch (Exception e) when (e is IOException or InvalidDataException or ArgumentException or UnauthorizedAccessException)
        {
            throw new CliException($"cannot read {format} data at '{path}' (split '{split}'): {FirstLine(e.Message)}", e);
        }
    }

    /// <summary>The first line of a message (ML.NET and IO messages sometimes carry more).</summary>
    public static string FirstLine(string message)
    {
        int newline = message.IndexOfAny(['\r', '\n']);
        return newline < 0 ? message : message[..newline];
    }

    private static OpenedData OpenNamed(MLContext ml, string root, SegmentationDataFormat format, string split, int? numberOfClasses, byte unknownLabel, string[] names)
    {
        var view = ml.Data.LoadSegmentationPairs(new SegmentationDataOptions
        {
            Root = root,
            Format = format,
            Split = split,
            NumberOfClasses = numberOfClasses,
            UnknownLabel = unknownLabel,
        });
        return new OpenedData(view, $"{format} {root} ({split}, {view.Dataset.Count} images)", names, SegmentationPalettes.For(format));
    }

    private static OpenedData OpenPairs(MLContext ml, string path, string split, int? numberOfClasses, byte unknownLabel, CliConsole? console)
    {
        var options = new SegmentationDataOptions { Split = split, UnknownLabel = unknownLabel };
        string namesFolder;
        if (File.Exists(path))
        {
            options.Format = SegmentationDataFormat.ListFile;
            options.ListFile = path;
            options.Root = Path.GetDirectoryName(path)!;
            namesFolder = options.Root;
        }
        else if (HasPairFolders(Path.Combine(path, split)))
        {
            options.Format = SegmentationDataFormat.Folders;
            options.Root = Path.Combine(path, split);
            namesFolder = path;
        }
        else if (HasPairFolders(path))
        {
            options.Format = SegmentationDataFormat.Folders;
            options.Root = path;
            namesFolder = path;
        }
        else if (File.Exists(Path.Combine(path, split + ".txt")))
        {
            options.Format = SegmentationDataFormat.ListFile;
            options.Root = path;
            namesFolder = path;
        }
        else
        {
            throw new CliException($"'{path}' holds no image/label pairs: expected {split}/images + {split}/labels, images + labels, or a list file {split}.txt.");
        }

        string[]? names = ReadClassNames(namesFolder) ?? (options.Root != namesFolder ? ReadClassNames(options.Root) : null);
        if (names is not null && numberOfClasses is int given && given != names.Length)
            throw new CliException($"--classes {given} disagrees with the {names.Length} names in {Path.Combine(namesFolder, ClassNamesFile)}.");
        int classes = numberOfClasses ?? names?.Length ?? InferClassCount(options, unknownLabel, console);
        if (unknownLabel < classes)
            throw new CliException($"the unknown value {unknownLabel} is a class of this {classes}-class data set; set --unknown.");
        options.NumberOfClasses = classes;
        var view = ml.Data.LoadSegmentationPairs(options);
        names ??= Enumerable.Range(0, classes).Select(i => $"class{i}").ToArray();
        return new OpenedData(view, $"pairs {options.Root} ({view.Dataset.Count} images)", names, SegmentationPalettes.PascalVoc());
    }

    private static bool HasPairFolders(string folder) =>
        Directory.Exists(Path.Combine(folder, "images")) && Directory.Exists(Path.Combine(folder, "labels"));

    private static string[]? ReadClassNames(string folder)
    {
        string file = Path.Combine(folder, ClassNamesFile);
        if (!File.Exists(file)) return null;
        var names = File.ReadAllLines(file).Select(l => l.Trim()).Where(l => l.Length > 0 && !l.StartsWith('#')).ToArray();
        if (names.Length == 0 || names.Length > 255) throw new CliException($"{file} must name 1..255 classes, one per line; it names {names.Length}.");
        return names;
    }

    /// <summary>Reads every label once with every value below the unknown one taken as a class; the class count is the largest value plus one.</summary>
    private static int InferClassCount(SegmentationDataOptions options, byte unknownLabel, CliConsole? console)
    {
        var probe = options.Clone();
        probe.NumberOfClasses = unknownLabel;
        var dataset = SegmentationDataset.Open(probe);
        int max = -1;
        foreach (var pair in dataset.Pairs)
        {
            var label = SegmentationFiles.ReadLabel(pair.LabelPath, dataset.LabelMapping);
            foreach (byte v in label.Values)
                if (v != unknownLabel && v > max) max = v;
        }
        if (max < 0) throw new CliException($"every label pixel under '{options.Root}' is unknown ({unknownLabel}); there is nothing to learn from.");
        console?.Out.WriteLine($"{max + 1} classes found in the labels (largest value {max}); set --classes or write {ClassNamesFile} to fix the count.");
        return max + 1;
    }
}
