namespace FastPath.Cni;

/// <summary>A CNI error (spec 1.0, "Error"): a well-known code (1–99) or one of ours (100+), a message and details.</summary>
public sealed class CniError(int code, string message, string details = "") : Exception(message)
{
    /// <summary>Well-known codes of the spec.</summary>
    public const int IncompatibleVersion = 1, UnsupportedField = 2, UnknownContainer = 3, InvalidConfig = 4,
        IoFailure = 5, DecodeFailure = 6, InvalidEnvironment = 7, TryAgainLater = 11;

    /// <summary>Ours: a link or address could not be set up; the node refused or is unreachable; CHECK found a difference.</summary>
    public const int LinkSetup = 100, NodeRefused = 101, CheckFailed = 102;

    public int Code { get; } = code;
    public string Details { get; } = details;
}
