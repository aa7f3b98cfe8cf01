namespace Microsoft.ML.LabelCompletion.Cli;

/// <summary>
/// Keeps what a command writes away from what it reads, comparing <b>real</b> paths: every symbolic link on the way is
/// followed (a link's <c>..</c> climbs from its target, as the operating system does), <c>.</c>, <c>..</c>, repeated and
/// trailing separators are resolved, and each existing name takes the spelling it has on disk, so that two spellings of one
/// folder on a case-insensitive file system compare equal and two folders differing in case on a case-sensitive one do not.
/// Every command that writes into a folder or next to its inputs calls it before it writes anything.
/// </summary>
/// <remarks>
/// Refused, with both paths named: an output folder that is an input root or lies inside one; an input root or input file
/// inside an output folder that mirrors or deletes files (<c>complete --out</c>, <c>train --checkpoints</c>); and any output
/// file whose real path is an input file or lies inside an input root. Hard links and bind mounts are not recognised.
/// </remarks>
internal sealed class OutputPaths
{
    private const int MaxLinkHops = 40; // as Linux's ELOOP limit

    private readonly List<(string Real, string Name)> _roots = new();
    private readonly Dictionary<string, string> _files = new(StringComparer.Ordinal);
    private readonly Dictionary<string, Listing?> _listings = new(StringComparer.Ordinal);
    private readonly Dictionary<string, string> _realFolders = new(StringComparer.Ordinal);

    /// <summary>Adds the data a command reads: its root folder and every image and label file (wherever its links lead).</summary>
    /// <param name="data">The opened data set.</param>
    /// <param name="name">How messages call it, e.g. "the data folder".</param>
    public OutputPaths Reads(OpenedData data, string name = "the data folder")
    {
        _roots.Add((RealPath(data.Dataset.Root), name));
        foreach (var pair in data.Dataset.Pairs)
        {
            _files.TryAdd(RealFile(pair.ImagePath), pair.ImagePath);
            _files.TryAdd(RealFile(pair.LabelPath), pair.LabelPath);
        }
        return this;
    }

    /// <summary>Adds one input file (the model zip).</summary>
    public OutputPaths Reads(string file)
    {
        _files.TryAdd(RealFile(file), file);
        return this;
    }

    /// <summary>
    /// Refuses <paramref name="folder"/> as an output folder when it is an input root, lies inside one, or (with
    /// <paramref name="mayHoldInputs"/> false) holds an input root or an input file; and refuses every one of
    /// <paramref name="outputFiles"/> whose real path is an input file or lies inside an input root.
    /// </summary>
    /// <param name="option">The command-line option that named the folder, for messages.</param>
    /// <param name="folder">The output folder as given.</param>
    /// <param name="outputFiles">The files the command will write (inside or outside the folder).</param>
    /// <param name="mayHoldInputs">True for a command that writes only <paramref name="outputFiles"/> into the folder (so an input below it is safe).</param>
    /// <exception cref="CliException">The folder or a file would overlap the inputs.</exception>
    public void CheckFolder(string option, string folder, IEnumerable<string>? outputFiles = null, bool mayHoldInputs = false)
    {
        string real = RealPath(folder);
        string shown = Shown(folder, real);
        foreach (var (root, name) in _roots)
        {
            if (real == root)
                throw new CliException($"{option} {shown} is {name} {root}: writing there could overwrite the input. Choose a folder outside the input data.");
            if (IsInside(real, root))
                throw new CliException($"{option} {shown} lies inside {name} {root}: writing there could overwrite the input. Choose a folder outside the input data.");
            if (!mayHoldInputs && IsInside(root, real))
                throw new CliException($"{name} {root} lies inside {option} {shown}: writing there could overwrite the input. Choose a folder that does not hold the input data.");
        }
        if (!mayHoldInputs)
        {
            foreach (var (file, given) in _files)
            {
                if (IsInside(file, real))
                    throw new CliException($"the input file {Shown(given, file)} lies inside {option} {shown}: writing there could overwrite it. Choose a folder that does not hold the input data.");
            }
        }
        if (outputFiles is not null) CheckFiles(option, outputFiles);
    }

    /// <summary>Refuses every output file whose real path is an input file or lies inside an input root.</summary>
    /// <param name="option">The command-line option that named the files, for messages.</param>
    /// <param name="outputFiles">The files the command will write.</param>
    /// <exception cref="CliException">A file would overwrite an input or be written among them.</exception>
    public void CheckFiles(string option, IEnumerable<string> outputFiles)
    {
        foreach (string output in outputFiles)
        {
            string real = RealFile(output);
            if (_files.TryGetValue(real, out string? input))
                throw new CliException($"{option} would write {Shown(output, real)}, which is the input file {input}. Choose an output outside the input data.");
            foreach (var (root, name) in _roots)
            {
                if (IsInside(real, root))
                    throw new CliException($"{option} would write {Shown(output, real)} inside {name} {root}: it could overwrite the input. Choose an output outside the input data.");
            }
        }
    }

    /// <summary>True when <paramref name="path"/> is <paramref name="folder"/> or lies below it (both real paths).</summary>
    public static bool IsInside(string path, string folder)
    {
        if (path == folder) return true;
        string prefix = Path.EndsInDirectorySeparator(folder) ? folder : folder + Path.DirectorySeparatorChar;
        return path.StartsWith(prefix, StringComparison.Ordinal);
    }

    /// <summary>
    /// The real path of <paramref name="path"/> (relative paths start at the current folder): links followed, <c>.</c> and
    /// <c>..</c> resolved in order as the operating system does (<c>link/..</c> is the parent of the link's target), names
    /// spelled as on disk. Names that do not exist yet are kept as given. Commands pass the paths they open (after
    /// <see cref="Path.GetFullPath(string)"/>), so the check sees the files they touch.
    /// </summary>
    /// <exception cref="CliException">The path runs through more than 40 symbolic links (a loop).</exception>
    public string RealPath(string path)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        string absolute;
        if (Path.IsPathFullyQualified(path)) absolute = path;
        else if (Path.IsPathRooted(path)) absolute = Path.GetFullPath(path); // Windows "C:x" or "\x": relative to a drive
        else absolute = Path.Join(Environment.CurrentDirectory, path);

        string root = Root(absolute);
        var pending = new Stack<string>(Components(absolute[root.Length..]).Reverse());
        string current = root;
        int missingDepth = 0, hops = 0;
        while (pending.Count > 0)
        {
            string name = pending.Pop();
            if (name == ".") continue;
            if (name == "..")
            {
                current = Path.GetDirectoryName(current) ?? current; // the root's parent is the root
                if (missingDepth > 0) missingDepth--;
                continue;
            }
            if (missingDepth > 0)
            {
                current = Path.Join(current, name);
                missingDepth++;
                continue;
            }
            var entry = Find(current, name);
            if (entry is null)
            {
                current = Path.Join(current, name);
                missingDepth = 1;
                continue;
            }
            string candidate = Path.Join(current, entry.Value.Name);
            string? target = entry.Value.IsLink ? new FileInfo(candidate).LinkTarget : null;
            if (target is null)
            {
                current = candidate;
                continue;
            }
            if (++hops > MaxLinkHops)
                throw new CliException($"'{path}' runs through more than {MaxLinkHops} symbolic links (a loop?).");
            if (Path.IsPathRooted(target))
            {
                current = Root(target);
                target = target[current.Length..];
            }
            foreach (string part in Components(target).Reverse()) pending.Push(part);
        }
        return current;
    }

    /// <summary>The real path of a file: its folder's (cached, files share few folders), then its own name (a link is followed).</summary>
    private string RealFile(string file)
    {
        string full = Path.GetFullPath(file);
        string? folder = Path.GetDirectoryName(full);
        string name = Path.GetFileName(full);
        if (folder is null || name.Length == 0) return RealPath(full);
        if (!_realFolders.TryGetValue(folder, out string? realFolder))
            _realFolders[folder] = realFolder = RealPath(folder);
        var entry = Find(realFolder, name);
        if (entry is { IsLink: true }) return RealPath(Path.Join(realFolder, entry.Value.Name));
        return Path.Join(realFolder, entry?.Name ?? name);
    }

    private static string Root(string absolute)
    {
        string root = Path.GetPathRoot(absolute) ?? "";
        return OperatingSystem.IsWindows() ? root.ToUpperInvariant().Replace(Path.AltDirectorySeparatorChar, Path.DirectorySeparatorChar) : root;
    }

    private static IEnumerable<string> Components(string relative) =>
        relative.Split([Path.DirectorySeparatorChar, Path.AltDirectorySeparatorChar], StringSplitOptions.RemoveEmptyEntries);

    private static string Shown(string given, string real) =>
        Path.GetFullPath(given) is var full && Path.TrimEndingDirectorySeparator(full) == real ? $"'{given}'" : $"'{given}' (real path {real})";

    /// <summary>
    /// The entry <paramref name="name"/> of the real folder <paramref name="folder"/>: its spelling on disk and whether it is a
    /// symbolic link; null when there is none. A name that matches an entry only when case is ignored counts only where the file
    /// system finds it under that spelling (a case-insensitive one).
    /// </summary>
    private (string Name, bool IsLink)? Find(string folder, string name)
    {
        if (!_listings.TryGetValue(folder, out var listing))
            _listings[folder] = listing = Listing.Read(folder);
        if (listing is not null && listing.Exact.TryGetValue(name, out bool isLink)) return (name, isLink);
        // Not listed under this spelling (or the folder cannot be listed, or the entry is newer than the listing): ask for the
        // entry itself; where the file system finds it, a case-insensitive one, take the spelling on disk.
        var info = new FileInfo(Path.Join(folder, name));
        bool link = info.LinkTarget is not null;
        if (!link && !info.Exists && !Directory.Exists(info.FullName)) return null;
        return listing is not null && listing.IgnoringCase.TryGetValue(name, out var spelled) && spelled != name
            ? (spelled, listing.Exact[spelled])
            : (name, link);
    }

    /// <summary>The names in one folder, exactly and ignoring case, with whether each is a symbolic link.</summary>
    private sealed class Listing
    {
        public Dictionary<string, bool> Exact { get; } = new(StringComparer.Ordinal);

        public Dictionary<string, string> IgnoringCase { get; } = new(StringComparer.OrdinalIgnoreCase);

        public static Listing? Read(string folder)
        {
            try
            {
                var listing = new Listing();
                var options = new EnumerationOptions { AttributesToSkip = 0, IgnoreInaccessible = true, RecurseSubdirectories = false };
                foreach (var entry in new DirectoryInfo(folder).EnumerateFileSystemInfos("*", options))
                {
                    listing.Exact[entry.Name] = (entry.Attributes & FileAttributes.ReparsePoint) != 0; // a symbolic link
                    listing.IgnoringCase.TryAdd(entry.Name, entry.Name);
                }
                return listing;
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException or System.Security.SecurityException)
            {
                return null;
            }
        }
    }
}
