using System.Globalization;
using System.Text;
using System.Text.RegularExpressions;

namespace Microsoft.ML.LabelCompletion.Cli.Tests;

/// <summary>
/// <c>lmae train</c> in a process whose culture writes decimal commas: the culture stays the caller's during and after the run,
/// numbers on the command line and in the output are invariant, and the console's epoch lines and the curves CSV tell the same
/// epochs.
/// </summary>
[TestClass]
public sealed class CultureTests
{
    /// <summary>Standard output that notes the culture of the thread writing to it.</summary>
    private sealed class CultureNotingWriter : StringWriter
    {
        public HashSet<string> Cultures { get; } = new();

        public override void Write(char value)
        {
            Cultures.Add(CultureInfo.CurrentCulture.Name);
            base.Write(value);
        }

        public override void Write(string? value)
        {
            Cultures.Add(CultureInfo.CurrentCulture.Name);
            base.Write(value);
        }

        public override void Write(char[] buffer, int index, int count)
        {
            Cultures.Add(CultureInfo.CurrentCulture.Name);
            base.Write(buffer, index, count);
        }
    }

    [TestMethod]
    public void Train_UnderGermanCulture_LeavesTheCulture_AndWritesInvariantNumbers()
    {
        using var data = new SyntheticPairs(31, ("train", 4, false), ("val", 2, false));
        string model = Path.Combine(data.Root, "models", "m.zip");
        var german = CultureInfo.GetCultureInfo("de-DE");
        Assert.AreEqual(",", german.NumberFormat.NumberDecimalSeparator, "the test needs a culture with a decimal comma");
        var caller = CultureInfo.CurrentCulture;
        using var output = new CultureNotingWriter();
        using var error = new StringWriter();
        int code;
        try
        {
            CultureInfo.CurrentCulture = german;
            code = LmaeCli.Run(["train", "--data", data.Root, "--format", "pairs", "--out", model, "--config", "Tiny", "--epochs", "2",
                "--val", data.Root, "--batch", "2", "--crop", "32", "--threads", "1", "--seed", "3", "--lr", "0.002", "--mask-ratio", "0.4"],
                output, error);
            Assert.AreEqual("de-DE", CultureInfo.CurrentCulture.Name, "the caller's culture after the run");
        }
        finally
        {
            CultureInfo.CurrentCulture = caller;
        }
        string text = output.ToString();
        Assert.AreEqual(LmaeCli.Success, code, $"{text}\n{error}");
        CollectionAssert.AreEquivalent(new[] { "de-DE" }, output.Cultures.ToList(), "the culture while the command wrote its output");

        // "--lr 0.002" is two thousandths (a German parse reads 2), printed with a decimal point.
        StringAssert.Contains(text, "lr 0.002, mask ratio 0.4,");
        var epochLines = text.Split('\n').Where(l => l.StartsWith("epoch ", StringComparison.Ordinal) && l.Contains(" done ", StringComparison.Ordinal)).ToArray();
        Assert.HasCount(2, epochLines, text);
        string[] csv = File.ReadAllLines(model + ".curves.csv");
        Assert.HasCount(3, csv, string.Join("\n", csv));
        for (int e = 0; e < 2; e++)
        {
            var line = Regex.Match(epochLines[e], @"^epoch (\d)/2 done  loss (\d+\.\d{4})  val loss (\d+\.\d{4})  val PA-mIoU (\d+\.\d{2})  lr (\S+)  \d+\.\d img/s  \d\d:\d\d$");
            Assert.IsTrue(line.Success, epochLines[e]);
            string[] fields = csv[e + 1].Split(',');
            Assert.HasCount(6, fields, csv[e + 1]);
            double Field(int i) => double.Parse(fields[i], NumberStyles.Float, CultureInfo.InvariantCulture);
            Assert.AreEqual(line.Groups[1].Value, fields[0]);
            Assert.AreEqual(line.Groups[2].Value, Field(1).ToString("F4", CultureInfo.InvariantCulture), "train loss");
            Assert.AreEqual(line.Groups[3].Value, Field(2).ToString("F4", CultureInfo.InvariantCulture), "validation loss");
            Assert.AreEqual(line.Groups[4].Value, Field(3).ToString("F2", CultureInfo.InvariantCulture), "validation PA-mIoU");
            Assert.AreEqual(line.Groups[5].Value, Field(4).ToString("G3", CultureInfo.InvariantCulture), "learning rate");
            Assert.AreEqual(0.002, Field(4), 1e-9, "no plateau within two epochs: the rate given");
        }
    }

    [TestMethod]
    public void FloatingPointOptions_ReadTheInvariantCulture()
    {
        var caller = CultureInfo.CurrentCulture;
        try
        {
            CultureInfo.CurrentCulture = CultureInfo.GetCultureInfo("de-DE");
            // "0,5" is not a number on the command line, whatever the culture.
            var comma = CliRunner.Run("train", "--data", ".", "--format", "pairs", "--out", "m.zip", "--mask-ratio", "0,5");
            Assert.AreEqual(LmaeCli.UsageError, comma.ExitCode, comma.ToString());
            StringAssert.Contains(comma.Error, "'0,5'");
            Assert.AreEqual("de-DE", CultureInfo.CurrentCulture.Name);
        }
        finally
        {
            CultureInfo.CurrentCulture = caller;
        }
    }
}
