using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using FastPath.DataPlane.Packets;
using FastPath.DataPlane.State;

namespace FastPath.DataPlane.Services;

/// <summary>
/// sessionAffinity: ClientIP — which backend a client last used for a Service address and port, until it has been
/// idle for the Service's timeout (kube-proxy's "recent" match, default 10800 s). Fixed-size open addressing with
/// linear probing over structs; a full probe window overwrites its stalest entry, so the table never grows and
/// never refuses (affinity is a preference, not a correctness guarantee). One per worker: no locks. With `run
/// --state-dir` the entries live in a <see cref="StateFile"/> (<see cref="Restore"/>), as the conntrack records do.
/// </summary>
public sealed unsafe class AffinityTable
{
    /// <summary>Bumped when an entry's meaning changes without its shape (state files of other versions are discarded).</summary>
    public const uint LayoutVersion = 1;

    private const int ProbeWindow = 8;

    private struct Entry
    {
        public UInt128 Client;
        public UInt128 Service;
        public ushort ServicePort;
        public byte Protocol;
        public ushort BackendPort;
        public UInt128 Backend;
        public long Expires; // 0 = empty
    }

    private readonly Entry* _entries;
    private readonly int _size;
    private readonly int _mask;
    // What keeps _entries alive: the pinned array, or the mapped file.
    private readonly Entry[]? _pinned;
    private readonly StateFile? _file;

    public AffinityTable(int capacity = 65536)
    {
        _size = Size(capacity);
        _mask = _size - 1;
        _pinned = GC.AllocateArray<Entry>(_size, pinned: true);
        // Clients land all over the table: resident now rather than page by page (State.ResidentMemory).
        State.ResidentMemory.Prefault(_pinned);
        _entries = (Entry*)Unsafe.AsPointer(ref MemoryMarshal.GetArrayDataReference(_pinned));
    }

    /// <summary>The table's memory when it is this process's own (not a state file's), for the test that it is
    /// resident from the start.</summary>
    internal ReadOnlySpan<byte> Memory => _pinned is null ? default : MemoryMarshal.AsBytes(_pinned.AsSpan());

    /// <summary>A table whose entries are <paramref name="file"/>'s (opened with <see cref="StateLayout"/>); call <see cref="Restore"/>.</summary>
    public AffinityTable(StateFile file)
    {
        _file = file;
        _size = (int)file.Records(0);
        _mask = _size - 1;
        _entries = (Entry*)file.Region(0);
    }

    private static int Size(int capacity)
    {
        int size = 16;
        while (size < capacity) size <<= 1;
        return size;
    }

    /// <summary>The state file the entries live in, or null.</summary>
    public StateFile? File => _file;

    /// <summary>What a state file holding a table of <paramref name="capacity"/> entries looks like.</summary>
    public static StateLayout StateLayout(int capacity, int worker, int workers) =>
        new(StateKind.Affinity, LayoutVersion, [StateRegion.Of<Entry>(Size(capacity))], worker, workers);

    /// <summary>
    /// Keeps the memories a previous process left that are still live: times moved by the wall clock's step
    /// (<see cref="StateFile.ClockShift"/>); an expired one, or one whose expiry lies beyond the longest timeout
    /// Kubernetes allows (86400 s) from now, is cleared. A wrong backend cannot do harm: a memory is used only while
    /// its frontend still has that backend. Returns the memories kept.
    /// </summary>
    public int Restore(long now)
    {
        const long longest = 86_400L * 1_000_000_000;
        long shift = _file?.ClockShift ?? 0;
        int kept = 0;
        for (int i = 0; i < _size; i++)
        {
            ref var e = ref _entries[i];
            if (e.Expires == 0) continue;
            e.Expires += shift;
            if (e.Expires <= now || e.Expires > now + longest) e = default;
            else kept++;
        }
        return kept;
    }

    /// <summary>The backend <paramref name="client"/> used for this Service port, if its affinity has not expired.</summary>
    public bool TryGet(IpAddr client, IpAddr service, ushort port, byte protocol, long now, out ServiceBackend backend)
    {
        int i = Slot(client, service, port, protocol);
        for (int n = 0; n < ProbeWindow; n++, i = (i + 1) & _mask)
        {
            ref var e = ref _entries[i];
            if (e.Expires != 0 && e.Client == client.Value && e.Service == service.Value && e.ServicePort == port && e.Protocol == protocol)
            {
                if (e.Expires <= now) break;
                backend = new ServiceBackend(new IpAddr(e.Backend), e.BackendPort);
                return true;
            }
        }
        backend = default;
        return false;
    }

    /// <summary>Records (or refreshes) the client's backend for <paramref name="timeout"/> nanoseconds of idleness.</summary>
    public void Set(IpAddr client, IpAddr service, ushort port, byte protocol, ServiceBackend backend, long now, long timeout)
    {
        int i = Slot(client, service, port, protocol);
        int victim = i;
        long stalest = long.MaxValue;
        for (int n = 0; n < ProbeWindow; n++, i = (i + 1) & _mask)
        {
            ref var e = ref _entries[i];
            bool same = e.Expires != 0 && e.Client == client.Value && e.Service == service.Value && e.ServicePort == port && e.Protocol == protocol;
            if (same || e.Expires <= now) { victim = i; break; }
            if (e.Expires < stalest) { stalest = e.Expires; victim = i; }
        }
        _entries[victim] = new Entry
        {
            Client = client.Value, Service = service.Value, ServicePort = port, Protocol = protocol,
            Backend = backend.Address.Value, BackendPort = backend.Port, Expires = now + timeout,
        };
    }

    private int Slot(IpAddr client, IpAddr service, ushort port, byte protocol) =>
        (int)((client.Hash() * 31 ^ service.Hash() ^ ((ulong)port << 8 | protocol)) & (ulong)_mask);

    /// <summary>
    /// Forgets every memory whose Service port is no longer a frontend of <paramref name="services"/> or whose
    /// backend it no longer has (a deleted Service releases its affinity state). Control path: walks the table.
    /// </summary>
    public void Release(ServiceTable services)
    {
        for (int i = 0; i < _size; i++)
        {
            ref var e = ref _entries[i];
            if (e.Expires == 0) continue;
            int frontend = services.Lookup(new IpAddr(e.Service), e.ServicePort, e.Protocol);
            if (frontend < 0 || !services.Contains(frontend, new ServiceBackend(new IpAddr(e.Backend), e.BackendPort))) e = default;
        }
    }
}
