namespace FastPath.DataPlane.Ports;

/// <summary>Discards frames, counting them: the sink for throughput measurements.</summary>
public sealed class NullSink : IPacketSink
{
    public long Packets { get; private set; }
    public long Bytes { get; private set; }

    public void Transmit(int port, ReadOnlySpan<byte> frame, long timestamp)
    {
        Packets++;
        Bytes += frame.Length;
    }
}
