namespace FastPath.DataPlane.Ports;

/// <summary>Keeps a copy of every transmitted frame, in order. For tests: it allocates per frame.</summary>
public sealed class MemorySink : IPacketSink
{
    /// <summary>One frame as transmitted.</summary>
    public readonly record struct TransmittedFrame(int Port, byte[] Bytes, long Timestamp);

    public List<TransmittedFrame> Frames { get; } = [];

    public void Transmit(int port, ReadOnlySpan<byte> frame, long timestamp) =>
        Frames.Add(new TransmittedFrame(port, frame.ToArray(), timestamp));
}
