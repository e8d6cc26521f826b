using FastPath.DataPlane.Pipeline;

namespace FastPath.DataPlane.Ports;

/// <summary>
/// Something frames enter the engine from (a capture file, a TAP device, memory). Called once per batch, so the
/// interface call is amortised over the batch.
/// </summary>
public interface IPacketSource
{
    /// <summary>
    /// Fills <paramref name="batch"/> from slot 0 (<see cref="PacketBatch.ReceiveArea"/> then
    /// <see cref="PacketBatch.SetReceived"/>), sets <see cref="PacketBatch.Count"/> and returns it; 0 means the
    /// source is exhausted (for a live source such as <see cref="TapPort"/>: nothing arrived within its wait). A frame that cannot be forwarded as received (truncated by the capture, too large) is
    /// still delivered, with <see cref="PacketMeta.Drop"/> already set, so it is counted and never lost.
    /// </summary>
    int Receive(PacketBatch batch);
}

/// <summary>Something frames leave the engine through: one call per emitted frame.</summary>
public interface IPacketSink
{
    void Transmit(int port, ReadOnlySpan<byte> frame, long timestamp);
}
