using System.Reflection;

namespace Microsoft.ML.LabelCompletion.Tests.Architecture;

/// <summary>
/// The library's layers, one way (DESIGN.md §7): data types and files at the bottom; the TorchSharp core
/// (<c>Microsoft.ML.LabelCompletion.Model</c>: network, training loop, completion) with no ML.NET types; the evaluation
/// layer (<c>Microsoft.ML.LabelCompletion.Evaluation</c>: one confusion matrix, the protocol) on the core; the ML.NET
/// adapter (estimator, transformer, catalogs, persistence) on top; the CLI and the benchmarks in their own assemblies. The
/// core may read the settings record (<see cref="LabelCompletionSettings"/>) and its enums, not the ML.NET options class.
/// </summary>
[TestClass]
public sealed class LayerTests
{
    private static readonly Assembly Library = typeof(LabelCompletionSettings).Assembly;

    /// <summary>ML.NET's own types and this library's ML.NET adapter.</summary>
    internal static readonly string[] Adapter =
    [
        "Microsoft.ML.Data", "Microsoft.ML.Runtime", "Microsoft.ML.IDataView", "Microsoft.ML.MLContext", "Microsoft.ML.ITransformer",
        "Microsoft.ML.IEstimator", "Microsoft.ML.DataViewSchema", "Microsoft.ML.LabelCompletionCatalog", "Microsoft.ML.LabelCompletionTransformsCatalog",
        "Microsoft.ML.SegmentationDataCatalog", "Microsoft.ML.LabelCompletion.LabelCompletionOptions",
        "Microsoft.ML.LabelCompletion.LabelCompletionEstimator", "Microsoft.ML.LabelCompletion.LabelCompletionTransformer",
        "Microsoft.ML.LabelCompletion.LabelCompletionModelFile", "Microsoft.ML.LabelCompletion.Data.SegmentationDataView",
        "Microsoft.ML.LabelCompletion.Data.ImageConversions", "Microsoft.ML.LabelCompletion.Internal.SegmentationColumns",
    ];

    private const string Core = "Microsoft.ML.LabelCompletion.Model";
    private const string Evaluation = "Microsoft.ML.LabelCompletion.Evaluation";

    /// <summary>
    /// The types of <paramref name="layer"/> (a namespace and the namespaces below it) in <paramref name="assembly"/> that use
    /// a type whose full name starts with any of <paramref name="forbidden"/>, each with what it uses; empty when the rule holds.
    /// </summary>
    internal static IReadOnlyList<string> Violations(Assembly assembly, string layer, IEnumerable<string> forbidden, params string[] exceptTypes)
    {
        var rules = forbidden.ToArray();
        bool Matches(string name, string prefix) => name == prefix || name.StartsWith(prefix + ".", StringComparison.Ordinal)
            || name.StartsWith(prefix + "`", StringComparison.Ordinal) || (prefix.Contains('.') && name.StartsWith(prefix, StringComparison.Ordinal) && !char.IsLetterOrDigit(name[prefix.Length]));
        return TypeDependencies.Read(assembly.Location)
            .Where(t => (t.Key.StartsWith(layer + ".", StringComparison.Ordinal)) && !exceptTypes.Contains(t.Key))
            .Select(t => (Type: t.Key, Bad: t.Value.Where(u => rules.Any(r => Matches(u, r))).Order(StringComparer.Ordinal).ToList()))
            .Where(t => t.Bad.Count > 0)
            .Select(t => $"{t.Type} uses {string.Join(", ", t.Bad)}")
            .ToList();
    }

    /// <summary>The top-level types of <paramref name="layer"/> in <paramref name="assembly"/>.</summary>
    internal static int TypeCount(Assembly assembly, string layer)
        => TypeDependencies.Read(assembly.Location).Keys.Count(t => t.StartsWith(layer + ".", StringComparison.Ordinal));

    [TestMethod]
    public void TheCoreUsesNeitherMLNetNorTheEvaluationLayer()
    {
        var violations = Violations(Library, Core, [.. Adapter, Evaluation]);
        Assert.IsEmpty(violations, "core types with a forbidden dependency: " + string.Join(", ", violations));
    }

    [TestMethod]
    public void TheEvaluationLayerUsesNoMLNetType()
    {
        var violations = Violations(Library, Evaluation, Adapter);
        Assert.IsEmpty(violations, "evaluation types with a forbidden dependency: " + string.Join(", ", violations));
    }

    [TestMethod]
    public void DataTypesAndFilesUseNeitherTheCoreNorTheLayersAbove()
    {
        // The ML.NET data views of the Data namespace belong to the adapter.
        var violations = Violations(Library, "Microsoft.ML.LabelCompletion.Data", [.. Adapter, Core, Evaluation],
            "Microsoft.ML.LabelCompletion.Data.SegmentationDataView", "Microsoft.ML.LabelCompletion.Data.ImageConversions");
        Assert.IsEmpty(violations, "data types with a forbidden dependency: " + string.Join(", ", violations));
    }

    [TestMethod]
    public void TheRuleFindsAForbiddenReference()
    {
        // This test assembly's own types stand in for a layer that breaks the rule: a class in a namespace of its own that
        // holds an MLContext must be reported, so the rules above cannot pass by matching nothing.
        var violations = Violations(typeof(LayerTests).Assembly, typeof(ForbiddenReference.UsesMLContext).Namespace!, Adapter);
        Assert.HasCount(1, violations);
        StringAssert.StartsWith(violations[0], typeof(ForbiddenReference.UsesMLContext).FullName + " uses Microsoft.ML.MLContext");
        Assert.IsTrue(TypeCount(Library, Core) > 20, "the core namespace holds the model's types");
        Assert.IsTrue(TypeCount(Library, Evaluation) >= 3, "the evaluation namespace holds its types");
    }
}
