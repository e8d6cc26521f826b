using FastPath.DataPlane.Packets;

namespace FastPath.DataPlane.Services;

/// <summary>
/// sessionAffinity: ClientIP — which backend a client last used for a Service address and port, until it has been
/// idle for the Service's timeout (kube-proxy's "recent" match, default 10800 s). Fixed-size open addressing with
/// linear probing over structs; a full probe window overwrites its stalest entry, so the table never grows and
/// never refuses (affinity is a preference, not a correctness guarantee). One per worker: no locks.
/// </summary>
public sealed class AffinityTable
{
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

    private readonly Entry[] _entries;
    private readonly int _mask;

    public AffinityTable(int capacity = 65536)
    {
        int size = 16;
        while (size < capacity) size <<= 1;
        _entries = new Entry[size];
        _mask = size - 1;
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
        for (int i = 0; i < _entries.Length; i++)
        {
            ref var e = ref _entries[i];
            if (e.Expires == 0) continue;
            int frontend = services.Lookup(new IpAddr(e.Service), e.ServicePort, e.Protocol);
            if (frontend < 0 || !services.Contains(frontend, new ServiceBackend(new IpAddr(e.Backend), e.BackendPort))) e = default;
        }
    }
}
