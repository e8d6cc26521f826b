namespace FastPath.DataPlane.Telemetry;

/// <summary>
/// Per-port packet/byte counters and per-port, per-reason drop counters, owned by one worker (no atomics needed).
/// Flat arrays indexed by port so the per-packet update is one add.
/// </summary>
public sealed class PortCounters
{
    private readonly long[] _rxPackets, _rxBytes, _txPackets, _txBytes, _drops;

    public PortCounters(int portCount)
    {
        PortCount = portCount;
        _rxPackets = new long[portCount];
        _rxBytes = new long[portCount];
        _txPackets = new long[portCount];
        _txBytes = new long[portCount];
        _drops = new long[portCount * DropReasons.Count];
    }

    public int PortCount { get; }

    public void CountRx(int port, int bytes) { _rxPackets[port]++; _rxBytes[port] += bytes; }
    public void CountTx(int port, int bytes) { _txPackets[port]++; _txBytes[port] += bytes; }
    public void CountDrop(int port, DropReason reason) => _drops[port * DropReasons.Count + (int)reason]++;

    public long RxPackets(int port) => _rxPackets[port];
    public long RxBytes(int port) => _rxBytes[port];
    public long TxPackets(int port) => _txPackets[port];
    public long TxBytes(int port) => _txBytes[port];
    public long Drops(int port, DropReason reason) => _drops[port * DropReasons.Count + (int)reason];

    public long Drops(DropReason reason)
    {
        long sum = 0;
        for (int p = 0; p < PortCount; p++) sum += Drops(p, reason);
        return sum;
    }
}
