namespace FastPath.DataPlane.Ports;

/// <summary>
/// One packet record read from a capture. Lengths are of the frame as delivered, i.e. after normalization to
/// Ethernet (a raw IP or Linux cooked record gains a 14-byte Ethernet header and loses its cooked header).
/// </summary>
public readonly struct CaptureRecord
{
    public CaptureRecord(
        long timestamp, int length, int capturedLength, long originalLength, int interfaceIndex, bool truncated, bool oversize)
    {
        Timestamp = timestamp;
        Length = length;
        CapturedLength = capturedLength;
        OriginalLength = originalLength;
        InterfaceIndex = interfaceIndex;
        IsTruncated = truncated;
        IsOversize = oversize;
    }

    /// <summary>Nanoseconds since the Unix epoch.</summary>
    public long Timestamp { get; }
    /// <summary>Bytes written into the destination span (0 when only the header was read).</summary>
    public int Length { get; }
    /// <summary>Bytes of the frame the capture kept.</summary>
    public int CapturedLength { get; }
    /// <summary>Bytes the frame had on the wire.</summary>
    public long OriginalLength { get; }
    /// <summary>
    /// Interface the record was captured on: 0 for pcap; for pcapng the position of its Interface Description Block
    /// counted over the whole file (sections after the first continue the numbering).
    /// </summary>
    public int InterfaceIndex { get; }
    /// <summary>
    /// The capture kept fewer bytes than the wire had (snap length), or not even the whole link header, so the frame is
    /// incomplete.
    /// </summary>
    public bool IsTruncated { get; }
    /// <summary>
    /// The captured frame did not fit the destination span: only its first <see cref="Length"/> bytes were written and
    /// the reader still moved past it. Never set when only the header was read.
    /// </summary>
    public bool IsOversize { get; }
}
