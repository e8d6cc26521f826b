using FastPath.DataPlane.Packets;

namespace FastPath.DataPlane.Routing;

/// <summary>
/// Exact-match table from a local address (pod IP, node IP, or a pod's MAC) to a port index. Open addressing with linear probing
/// over a power-of-two array of structs, built once and then read-only, so readers need no lock.
/// </summary>
public sealed class AddressTable
{
    private struct Entry
    {
        public UInt128 Key;
        public int Port; // 0 = empty slot, else port + 1
    }

    private readonly Entry[] _entries;
    private readonly int _mask;

    public AddressTable(IReadOnlyList<(IpAddr Address, int Port)> addresses)
        : this(addresses.Select(a => (a.Address.Value, a.Port)).ToList())
    {
    }

    /// <summary>A table keyed by MAC address (zero-extended to 128 bits).</summary>
    public static AddressTable ForMacs(IReadOnlyList<(MacAddress Mac, int Port)> macs) =>
        new(macs.Select(m => ((UInt128)m.Mac.Value, m.Port)).ToList());

    private AddressTable(List<(UInt128 Key, int Port)> addresses)
    {
        int size = 8;
        while (size < addresses.Count * 2) size <<= 1; // load factor <= 0.5 keeps probes short
        _entries = new Entry[size];
        _mask = size - 1;
        foreach (var (key, port) in addresses)
        {
            int i = (int)new IpAddr(key).Hash() & _mask;
            while (_entries[i].Port != 0 && _entries[i].Key != key) i = (i + 1) & _mask;
            _entries[i] = new Entry { Key = key, Port = port + 1 };
        }
        Count = addresses.Count;
    }

    public int Count { get; }

    /// <summary>The port owning <paramref name="address"/>, or -1.</summary>
    public int Lookup(IpAddr address) => Lookup(address.Value, address.Hash());

    /// <summary><see cref="Lookup(IpAddr)"/> with <paramref name="hash"/> = <c>address.Hash()</c> already computed.</summary>
    public int Lookup(IpAddr address, ulong hash) => Lookup(address.Value, hash);

    /// <summary>The port whose device has MAC <paramref name="mac"/>, or -1 (tables built by <see cref="ForMacs"/>).</summary>
    public int Lookup(MacAddress mac) => Lookup(mac.Value, new IpAddr(mac.Value).Hash());

    private int Lookup(UInt128 key, ulong hash)
    {
        var entries = _entries;
        int i = (int)hash & _mask;
        while (true)
        {
            ref var e = ref entries[i];
            if (e.Port == 0) return -1;
            if (e.Key == key) return e.Port - 1;
            i = (i + 1) & _mask;
        }
    }
}
