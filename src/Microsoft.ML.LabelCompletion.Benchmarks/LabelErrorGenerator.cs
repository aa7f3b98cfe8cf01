using Microsoft.ML.LabelCompletion.Data;

namespace Microsoft.ML.LabelCompletion.Benchmarks;

/// <summary>The kinds of label error <see cref="LabelErrorGenerator"/> makes.</summary>
public enum LabelErrorKind
{
    /// <summary>A whole object relabelled to a confusable class.</summary>
    Relabel,

    /// <summary>An object erased: labelled as the class that surrounds it.</summary>
    Erase,

    /// <summary>An object's boundary shifted: the object moved by a few pixels, what it uncovers labelled as its surroundings.</summary>
    BoundaryShift,

    /// <summary>A small object missed: erased to the class that surrounds it.</summary>
    MissedSmall,
}

/// <summary>Rates and sizes of <see cref="LabelErrorGenerator"/>; every field has a documented default.</summary>
public sealed class LabelErrorGeneratorOptions
{
    /// <summary>Share of images that get errors: exactly <c>round(rate · N)</c> of <c>N</c>, chosen by the seed. Default 0.5.</summary>
    public double ImageRate = 0.5;

    /// <summary>In an image that gets errors, the chance of each object (other than a missed small one) to be relabelled to a
    /// confusable class. Default 0.15.</summary>
    public double RelabelRate = 0.15;

    /// <summary>The chance of each object to be erased to its surrounding class. Default 0.10.</summary>
    public double EraseRate = 0.10;

    /// <summary>The chance of each object to have its boundary shifted by 1 to <see cref="MaxShift"/> pixels. Default 0.15.</summary>
    public double ShiftRate = 0.15;

    /// <summary>The chance of each small object (at most <see cref="SmallObjectPixels"/>) to be missed, checked first. Default 0.3.</summary>
    public double MissSmallRate = 0.3;

    /// <summary>An object is a 4-connected region of one class with at least this many pixels… Default 30.</summary>
    public int MinObjectPixels = 30;

    /// <summary>…and at most this share of the image's known pixels (larger regions are road, sky, buildings: "stuff", not
    /// objects). Default 0.05.</summary>
    public double MaxObjectShare = 0.05;

    /// <summary>Objects of at most this many pixels are small. Default 400.</summary>
    public int SmallObjectPixels = 400;

    /// <summary>Largest shift of a boundary, in pixels along each axis. Default 4.</summary>
    public int MaxShift = 4;

    /// <summary>The confusable class of each class (entry c), or null: <see cref="LabelErrorGenerator.CamVidConfusions"/> for
    /// 11 classes, else a class drawn at random among the others. Default null.</summary>
    public byte[]? Confusions;

    /// <summary>Seed of every choice: the same seed, labels and options give the same errors. Default 0.</summary>
    public int Seed;
}

/// <summary>One corrupted label and where it differs from the original.</summary>
/// <param name="Label">The corrupted label (unknown pixels are never changed).</param>
/// <param name="Changed">Per pixel, true where the corrupted label differs from the original.</param>
/// <param name="Errors">The errors made, in order: kind and object size in pixels.</param>
/// <param name="EligibleObjects">Objects of the image that could get an error.</param>
public sealed record CorruptedLabel(LabelMap Label, bool[] Changed, IReadOnlyList<(LabelErrorKind Kind, int Pixels)> Errors, int EligibleObjects)
{
    /// <summary>Whether any pixel changed.</summary>
    public bool HasErrors => Changed.Any(c => c);
}

/// <summary>
/// A seeded generator of realistic label errors for measuring label-error finding: whole objects relabelled to a confusable
/// class, objects erased to the surrounding class, boundaries shifted by a few pixels, small objects missed
/// (<see cref="LabelErrorGeneratorOptions"/> holds the rates). Objects are the 4-connected regions of one class whose size
/// lies between <see cref="LabelErrorGeneratorOptions.MinObjectPixels"/> and
/// <see cref="LabelErrorGeneratorOptions.MaxObjectShare"/> of the known pixels.
/// </summary>
public static class LabelErrorGenerator
{
    /// <summary>
    /// CamVid's confusable classes, by class id (Sky, Building, Pole, Road, Pavement, Tree, SignSymbol, Fence, Car, Pedestrian,
    /// Bicyclist): Sky→Building, Building→Tree, Pole→SignSymbol, Road→Pavement, Pavement→Road, Tree→Building,
    /// SignSymbol→Pole, Fence→Building, Car→Fence, Pedestrian→Bicyclist, Bicyclist→Pedestrian.
    /// </summary>
    public static byte[] CamVidConfusions() => [1, 5, 6, 4, 3, 1, 2, 1, 7, 10, 9];

    /// <summary>Corrupts <paramref name="labels"/> (the originals are not changed).</summary>
    /// <param name="labels">The clean labels.</param>
    /// <param name="numberOfClasses">Number of classes.</param>
    /// <param name="unknownLabel">The unknown value (never written, never changed).</param>
    /// <param name="options">Rates, sizes and seed; null for the defaults.</param>
    public static IReadOnlyList<CorruptedLabel> Corrupt(IReadOnlyList<LabelMap> labels, int numberOfClasses, byte unknownLabel, LabelErrorGeneratorOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(labels);
        options ??= new LabelErrorGeneratorOptions();
        if (numberOfClasses < 2) throw new ArgumentOutOfRangeException(nameof(numberOfClasses), numberOfClasses, "Label errors need at least 2 classes.");
        foreach (var (name, rate) in new[] { (nameof(options.ImageRate), options.ImageRate), (nameof(options.RelabelRate), options.RelabelRate),
            (nameof(options.EraseRate), options.EraseRate), (nameof(options.ShiftRate), options.ShiftRate), (nameof(options.MissSmallRate), options.MissSmallRate) })
            if (!(rate >= 0 && rate <= 1)) throw new ArgumentOutOfRangeException(name, rate, $"{name} must be in [0, 1].");
        if (options.RelabelRate + options.EraseRate + options.ShiftRate > 1)
            throw new ArgumentException("RelabelRate + EraseRate + ShiftRate must not exceed 1 (each object gets at most one error).");
        var confusions = options.Confusions ?? (numberOfClasses == 11 ? CamVidConfusions() : null);
        if (confusions is not null && (confusions.Length != numberOfClasses || confusions.Select((c, i) => c >= numberOfClasses || c == i).Any(bad => bad)))
            throw new ArgumentException($"Confusions needs one other class (0..{numberOfClasses - 1}) per class.");

        var order = Enumerable.Range(0, labels.Count).ToArray();
        new Random(options.Seed).Shuffle(order);
        var chosen = new HashSet<int>(order.Take((int)Math.Round(options.ImageRate * labels.Count, MidpointRounding.AwayFromZero)));
        var result = new CorruptedLabel[labels.Count];
        for (int i = 0; i < labels.Count; i++)
        {
            var label = labels[i];
            var objects = Objects(label, unknownLabel, options);
            if (!chosen.Contains(i))
            {
                result[i] = new CorruptedLabel(label with { Values = (byte[])label.Values.Clone() }, new bool[label.Values.Length], [], objects.Count);
                continue;
            }
            var random = new Random(unchecked(options.Seed * 1_000_003 + i + 1));
            result[i] = CorruptOne(label, objects, numberOfClasses, unknownLabel, confusions, options, random);
        }
        return result;
    }

    private sealed record Region(byte Class, int[] Pixels, byte Surrounding);

    private static CorruptedLabel CorruptOne(LabelMap label, List<Region> objects, int classes, byte unknown, byte[]? confusions,
        LabelErrorGeneratorOptions o, Random random)
    {
        var values = (byte[])label.Values.Clone();
        var errors = new List<(LabelErrorKind, int)>();
        void Apply(Region region, LabelErrorKind kind)
        {
            switch (kind)
            {
                case LabelErrorKind.Relabel:
                    byte to = confusions?[region.Class] ?? (byte)((region.Class + 1 + random.Next(classes - 1)) % classes);
                    foreach (int p in region.Pixels) values[p] = to;
                    break;
                case LabelErrorKind.Erase:
                case LabelErrorKind.MissedSmall:
                    foreach (int p in region.Pixels) values[p] = region.Surrounding;
                    break;
                case LabelErrorKind.BoundaryShift:
                    int dx, dy;
                    do
                    {
                        dx = random.Next(-o.MaxShift, o.MaxShift + 1);
                        dy = random.Next(-o.MaxShift, o.MaxShift + 1);
                    }
                    while (dx == 0 && dy == 0);
                    var moved = new HashSet<int>();
                    foreach (int p in region.Pixels)
                    {
                        int x = p % label.Width + dx, y = p / label.Width + dy;
                        if (x >= 0 && y >= 0 && x < label.Width && y < label.Height) moved.Add(y * label.Width + x);
                    }
                    foreach (int p in region.Pixels)
                        if (!moved.Contains(p)) values[p] = region.Surrounding;
                    foreach (int p in moved)
                        if (label.Values[p] != unknown) values[p] = region.Class;
                    break;
            }
            errors.Add((kind, region.Pixels.Length));
        }

        foreach (var region in objects)
        {
            if (region.Pixels.Length <= o.SmallObjectPixels && random.NextDouble() < o.MissSmallRate)
            {
                Apply(region, LabelErrorKind.MissedSmall);
                continue;
            }
            double u = random.NextDouble();
            if (u < o.RelabelRate) Apply(region, LabelErrorKind.Relabel);
            else if (u < o.RelabelRate + o.EraseRate) Apply(region, LabelErrorKind.Erase);
            else if (u < o.RelabelRate + o.EraseRate + o.ShiftRate) Apply(region, LabelErrorKind.BoundaryShift);
        }
        if (errors.Count == 0 && objects.Count > 0)
            Apply(objects[random.Next(objects.Count)], LabelErrorKind.Relabel); // a chosen image always gets an error when it has an object
        var changed = new bool[values.Length];
        for (int i = 0; i < values.Length; i++) changed[i] = values[i] != label.Values[i];
        return new CorruptedLabel(label with { Values = values }, changed, errors, objects.Count);
    }

    /// <summary>The eligible objects of <paramref name="label"/>, in scan order, with the class that surrounds each.</summary>
    private static List<Region> Objects(LabelMap label, byte unknown, LabelErrorGeneratorOptions o)
    {
        int w = label.Width, h = label.Height, n = w * h;
        var v = label.Values;
        int known = v.Count(x => x != unknown);
        int maxPixels = (int)(o.MaxObjectShare * known);
        var component = new int[n];
        Array.Fill(component, -1);
        var regions = new List<Region>();
        var stack = new Stack<int>();
        var pixels = new List<int>();
        int id = 0;
        for (int start = 0; start < n; start++)
        {
            if (v[start] == unknown || component[start] >= 0) continue;
            byte cls = v[start];
            pixels.Clear();
            stack.Push(start);
            component[start] = id;
            var border = new Dictionary<byte, int>();
            while (stack.Count > 0)
            {
                int p = stack.Pop();
                pixels.Add(p);
                int x = p % w, y = p / w;
                foreach (int q in (ReadOnlySpan<int>)[x > 0 ? p - 1 : -1, x < w - 1 ? p + 1 : -1, y > 0 ? p - w : -1, y < h - 1 ? p + w : -1])
                {
                    if (q < 0) continue;
                    if (v[q] == cls)
                    {
                        if (component[q] < 0)
                        {
                            component[q] = id;
                            stack.Push(q);
                        }
                    }
                    else if (v[q] != unknown) border[v[q]] = border.GetValueOrDefault(v[q]) + 1;
                }
            }
            id++;
            if (pixels.Count < o.MinObjectPixels || pixels.Count > maxPixels || border.Count == 0) continue;
            byte surrounding = border.OrderByDescending(b => b.Value).ThenBy(b => b.Key).First().Key;
            regions.Add(new Region(cls, pixels.ToArray(), surrounding));
        }
        return regions;
    }
}
