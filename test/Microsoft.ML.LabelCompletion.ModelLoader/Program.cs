// Usage: dotnet Microsoft.ML.LabelCompletion.ModelLoader.dll <model.zip> <images|paths> <manifest.tsv> <outputs.bin>
//   manifest: one line per row, "<image file>\t<label file>" (the label file holds the raw label bytes, row-major).
//   images: the model's input has an MLImage column "Image" (decoded here with LoadImages) and a Byte vector column "Label";
//   paths:  the model's input has a string column "ImagePath" and a Byte vector column "RawLabel" (a chain that loads images).
// Writes, per row, the model's outputs (see OutputWriter) and prints the loaded transformer's type.
using Microsoft.ML;
using Microsoft.ML.Data;
using Microsoft.ML.LabelCompletion.ModelLoader;

if (args.Length != 4)
{
    Console.Error.WriteLine("usage: <model.zip> <images|paths> <manifest.tsv> <outputs.bin>");
    return 2;
}

try
{
    var mlContext = new MLContext(seed: 7);
    ITransformer model = mlContext.Model.Load(args[0], out var inputSchema);
    Console.WriteLine($"loaded {model.GetType().FullName}");

    var rows = File.ReadAllLines(args[2]).Where(l => l.Length > 0).Select(l => l.Split('\t')).ToList();
    IDataView data = args[1] switch
    {
        "images" => DecodeImages(mlContext, mlContext.Data.LoadFromEnumerable(rows.Select(r => new ImageRow { ImagePath = r[0], Label = File.ReadAllBytes(r[1]) }))),
        "paths" => mlContext.Data.LoadFromEnumerable(rows.Select(r => new PathRow { ImagePath = r[0], RawLabel = File.ReadAllBytes(r[1]) })),
        _ => throw new ArgumentException($"unknown input kind '{args[1]}'"),
    };
    OutputWriter.Write(model.Transform(data), args[3]);
    return 0;
}
catch (Exception e)
{
    Console.Error.WriteLine($"{e.GetType().FullName}: {e.Message}");
    return 1;
}

// ML.NET 5.0.1 cannot read MLImage members of .NET objects, so images are decoded by LoadImages, as in any application.
static IDataView DecodeImages(MLContext mlContext, IDataView paths)
    => mlContext.Transforms.LoadImages("Image", imageFolder: null, inputColumnName: nameof(ImageRow.ImagePath)).Fit(paths).Transform(paths);
