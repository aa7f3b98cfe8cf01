namespace Microsoft.ML.LabelCompletion.Cli;

/// <summary>A mistake of the user (a missing folder, a wrong format, a file that is not a model): reported as one line, no stack trace.</summary>
internal sealed class CliException : Exception
{
    public CliException(string message)
        : base(message)
    {
    }

    public CliException(string message, Exception inner)
        : base(message, inner)
    {
    }
}
