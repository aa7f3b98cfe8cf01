namespace Microsoft.ML.LabelCompletion.Tests.Integration;

/// <summary>What the whole run shares is deleted when it ends: the integration fixture's folder and its temporary files.</summary>
[TestClass]
public static class TestRunCleanup
{
    [AssemblyCleanup]
    public static void DeleteSharedFolders() => IntegrationFixture.Cleanup();
}
