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

    /// <summary>
    /// Counters for a new port list: a port that exists in both lists (by name) keeps its counts; a port that is
    /// gone is handed to <paramref name="retired"/> so its last counts can still be read (a deleted pod's port).
    /// </summary>
    public PortCounters CarryOver(IReadOnlyList<string> oldNames, IReadOnlyList<string> newNames, List<RetiredPort> retired)
    {
        var next = new PortCounters(newNames.Count);
        var byName = new Dictionary<string, int>(newNames.Count, StringComparer.Ordinal);
        for (int p = 0; p < newNames.Count; p++) byName[newNames[p]] = p;
        int n = DropReasons.Count;
        for (int old = 0; old < Math.Min(oldNames.Count, PortCount); old++)
        {
            if (byName.TryGetValue(oldNames[old], out int p))
            {
                next._rxPackets[p] = _rxPackets[old]; next._rxBytes[p] = _rxBytes[old];
                next._txPackets[p] = _txPackets[old]; next._txBytes[p] = _txBytes[old];
                Array.Copy(_drops, old * n, next._drops, p * n, n);
            }
            else
            {
                retired.Add(new RetiredPort(oldNames[old], _rxPackets[old], _rxBytes[old], _txPackets[old], _txBytes[old], _drops.AsSpan(old * n, n).ToArray()));
            }
        }
        return next;
    }
}

/// <summary>The last counts of a port that left the node (its pod was deleted), kept until someone reads them.</summary>
/// <param name="Drops">Per <see cref="DropReason"/>, indexed by its value.</param>
public sealed record RetiredPort(string Name, long RxPackets, long RxBytes, long TxPackets, long TxBytes, long[] Drops);
