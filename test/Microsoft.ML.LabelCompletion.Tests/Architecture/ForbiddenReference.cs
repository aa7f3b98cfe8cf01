namespace Microsoft.ML.LabelCompletion.Tests.Architecture.ForbiddenReference;

/// <summary>A type that breaks the core's rule on purpose (<see cref="LayerTests.TheRuleFindsAForbiddenReference"/>).</summary>
internal sealed class UsesMLContext
{
    public MLContext Context { get; } = new();
}
