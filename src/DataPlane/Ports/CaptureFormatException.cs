namespace FastPath.DataPlane.Ports;

/// <summary>
/// A capture file that cannot be read: not pcap/pcapng, a bad header, impossible record lengths, or a file that ends
/// mid-record. The message is one line naming the file, the record number and the byte offset, so the replay command
/// can print it as is and exit 2 before forwarding anything.
/// </summary>
public sealed class CaptureFormatException : Exception
{
    public CaptureFormatException(string path, long recordNumber, long offset, string problem)
        : base(Format(path, recordNumber, offset, problem))
    {
        Path = path;
        RecordNumber = recordNumber;
        Offset = offset;
        Problem = problem;
    }

    /// <summary>The capture file.</summary>
    public string Path { get; }
    /// <summary>1-based number of the packet record being read (0 for the file header).</summary>
    public long RecordNumber { get; }
    /// <summary>Byte offset in the file of the record or block that is wrong.</summary>
    public long Offset { get; }
    /// <summary>What is wrong, without the location.</summary>
    public string Problem { get; }

    private static string Format(string path, long recordNumber, long offset, string problem) =>
        recordNumber == 0
            ? $"{path}: file header at byte offset {offset}: {problem}"
            : $"{path}: record {recordNumber} at byte offset {offset}: {problem}";
}
