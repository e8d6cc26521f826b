namespace FastPath.DataPlane.Conntrack;

/// <summary>
/// Which worker tracks a connection, for live runs with several workers (each with its own conntrack table): a lossy
/// map from a tuple's hash to the worker that inserted a connection with that tuple, written by every worker and read
/// by all without locks (single-byte stores). A worker that misses a packet in its own table asks it and hands the
/// packet to the owner — the reply of a SNATed connection that took another path back (a NodePort reply from a remote
/// backend arrives unencapsulated on the uplink) or arrived after the TAP's flow steering forgot the flow. It is a
/// hint: a stale or colliding entry only costs a needless hand-off (the receiver treats the packet as its own) or,
/// on insert, a needless change of NAT port (<see cref="ConntrackTable.Insert"/> treats a tuple another worker claims
/// as a clash, so two workers never hand out the same reply tuple).
/// </summary>
public sealed class FlowOwners
{
    /// <summary>No worker claims the tuple.</summary>
    public const int None = -1;

    private const int Bits = 20;
    private const ulong Seed = 0x6A09_E667_F3BC_C908UL;
    private readonly byte[] _owner = new byte[1 << Bits]; // worker + 1; 0 = unclaimed

    public FlowOwners(int workers)
    {
        ArgumentOutOfRangeException.ThrowIfGreaterThan(workers, 255);
        Workers = workers;
        // Claims land all over the map: resident now rather than page by page (State.ResidentMemory).
        State.ResidentMemory.Prefault(_owner);
    }

    /// <summary>The map's memory, for the test that it is resident from the start.</summary>
    internal ReadOnlySpan<byte> Memory => _owner;

    public int Workers { get; }

    /// <summary>The worker that claimed <paramref name="key"/> last, or <see cref="None"/>.</summary>
    public int Owner(in FlowKey key) => Volatile.Read(ref _owner[Slot(key)]) - 1;

    public void Claim(in FlowKey key, int worker) => Volatile.Write(ref _owner[Slot(key)], (byte)(worker + 1));

    private static int Slot(in FlowKey key) => (int)(key.Hash(Seed) >> (64 - Bits));
}
