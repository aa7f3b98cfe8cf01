// Usage: dotnet Microsoft.ML.LabelCompletion.TrainingRunner.dll <checkpoint folder|-> <resume: 0|1> <weights out> <hang after: epoch:step|->
// Trains the Tiny L-MAE on 12 synthetic 32x32 scenes (batch 2: 6 steps per epoch, 3 epochs, a checkpoint every 2 steps,
// one intra-op thread, seed 11) and writes the final weights (TorchSharp state dict) to <weights out>, atomically.
// Prints "step <epoch> <step>" after each step (after any checkpoint of that step is on disk) and "resumed <path>". With a
// hang point, the process stops there for good (so a test can kill it at a known place whatever the machine's load).
using Microsoft.ML.LabelCompletion;
using Microsoft.ML.LabelCompletion.Data;
using Microsoft.ML.LabelCompletion.Model;
using Microsoft.ML.LabelCompletion.Synthetic;
using static TorchSharp.torch;

if (args.Length != 4)
{
    Console.Error.WriteLine("usage: <checkpoint folder|-> <resume 0|1> <weights out> <hang after epoch:step|->");
    return 2;
}

try
{
    var options = TrainingRunner.Options(args[0] == "-" ? null : args[0], args[1] == "1");
    string hangAfter = args[3];
    using var engine = LabelCompletionEngine.Train(TrainingRunner.Scenes(), null, options, TrainingRunner.Seed, CPU, p =>
    {
        if (p.EndOfEpoch) return;
        Console.WriteLine($"step {p.Epoch} {p.Step}");
        Console.Out.Flush();
        if ($"{p.Epoch}:{p.Step}" == hangAfter) Thread.Sleep(Timeout.Infinite);
    }, CancellationToken.None);
    if (engine.ResumedFrom is { } from) Console.WriteLine($"resumed {from}");
    SegmentationFiles.WriteAtomically(args[2], stream =>
    {
        using var writer = new BinaryWriter(stream, System.Text.Encoding.UTF8, leaveOpen: true);
        engine.SaveWeights(writer);
    });
    Console.WriteLine("done");
    return 0;
}
catch (Exception e)
{
    Console.Error.WriteLine($"{e.GetType().FullName}: {e.Message}");
    return 1;
}
