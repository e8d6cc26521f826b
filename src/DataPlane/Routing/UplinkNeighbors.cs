using System.Buffers.Binary;
using FastPath.DataPlane.Packets;
using FastPath.DataPlane.Pipeline;

namespace FastPath.DataPlane.Routing;

/// <summary>
/// The uplink gateways' MACs, resolved by the engine itself (ARP, RFC 826; Neighbor Discovery, RFC 4861) when the
/// configuration names the gateway by address (<c>uplinkGateway</c>) instead of by MAC: a small neighbour cache with
/// one entry per family. Shared by every worker of a node (a reply reaches one TAP queue, every worker needs it):
/// each field is one aligned 64-bit word written with <see cref="Volatile"/> or <see cref="Interlocked"/>, so readers
/// never lock; a new gateway address (a new configuration) installs a new entry by reference swap.
/// <para>
/// States, after Linux's neighbour code (net/core/neighbour.c) with its defaults: a packet that finds no MAC is turned
/// into the request (broadcast ARP / multicast NS from the node's address and uplink MAC) and dropped
/// <c>neighbor-unknown</c>; at most one request per <see cref="RetransmitNanos"/> (retrans_time_ms, 1 s), the packets
/// in between are dropped without one. Any ARP or NS/NA from the gateway fills the entry, and every later frame the
/// uplink receives from the gateway's MAC confirms it (Linux's upper-layer confirmation). An entry not confirmed for
/// <see cref="ExpiryNanos"/> (gc_stale_time, 60 s) is resolved again by the next packet that needs it.
/// </para>
/// </summary>
public sealed class UplinkNeighbors
{
    public const long RetransmitNanos = 1_000_000_000;
    public const long ExpiryNanos = 60_000_000_000;
    /// <summary>Confirmations are written at most this often, so the gateway's reply traffic does not bounce a
    /// shared cache line between workers on every packet.</summary>
    private const long ConfirmGranularityNanos = 100_000_000;

    private sealed class Entry(IpAddr address)
    {
        public readonly IpAddr Address = address;
        public long Mac; // 0: not resolved
        public long ConfirmedAt;
        public long RequestedAt = long.MinValue / 2;
    }

    private Entry? _v4;
    private Entry? _v6;
    private long _requests;
    private long _resolved;

    /// <summary>Requests sent (ARP and NS), across workers.</summary>
    public long Requests => Volatile.Read(ref _requests);

    /// <summary>Times a gateway's MAC was learned or changed.</summary>
    public long Resolved => Volatile.Read(ref _resolved);

    /// <summary>Starts tracking <paramref name="gateway"/> as its family's gateway (control path; a no-op when it already is).</summary>
    public void Track(IpAddr gateway)
    {
        ref var slot = ref gateway.IsV4 ? ref _v4 : ref _v6;
        var current = Volatile.Read(ref slot);
        if (current is not null && current.Address == gateway) return;
        Interlocked.CompareExchange(ref slot, new Entry(gateway), current);
    }

    /// <summary>The gateway's MAC, or 0 when it is unknown or expired.</summary>
    public ulong Lookup(IpAddr gateway, long now)
    {
        var e = gateway.IsV4 ? Volatile.Read(ref _v4) : Volatile.Read(ref _v6);
        if (e is null || e.Address != gateway) return 0;
        long mac = Volatile.Read(ref e.Mac);
        return mac != 0 && now - Volatile.Read(ref e.ConfirmedAt) <= ExpiryNanos ? (ulong)mac : 0;
    }

    /// <summary>The state of a gateway for people (trace, logs): its MAC, or null while unresolved.</summary>
    public MacAddress? Describe(IpAddr gateway)
    {
        var e = gateway.IsV4 ? Volatile.Read(ref _v4) : Volatile.Read(ref _v6);
        return e is not null && e.Address == gateway && Volatile.Read(ref e.Mac) is var mac and not 0 ? new MacAddress((ulong)mac) : null;
    }

    /// <summary>True when a request for <paramref name="gateway"/> should go out now (none in the last second); claims it.</summary>
    public bool ClaimRequest(IpAddr gateway, long now)
    {
        var e = gateway.IsV4 ? Volatile.Read(ref _v4) : Volatile.Read(ref _v6);
        if (e is null || e.Address != gateway) return false;
        long last = Volatile.Read(ref e.RequestedAt);
        if (now - last < RetransmitNanos) return false;
        if (Interlocked.CompareExchange(ref e.RequestedAt, now, last) != last) return false; // another worker sent it
        Interlocked.Increment(ref _requests);
        return true;
    }

    /// <summary>Learns <paramref name="mac"/> if <paramref name="sender"/> is a tracked gateway (an ARP or ND message from it).</summary>
    public bool Learn(IpAddr sender, MacAddress mac, long now)
    {
        var e = sender.IsV4 ? Volatile.Read(ref _v4) : Volatile.Read(ref _v6);
        if (e is null || e.Address != sender || mac.IsMulticast || mac == MacAddress.Zero) return false;
        if (Volatile.Read(ref e.Mac) != (long)mac.Value)
        {
            Volatile.Write(ref e.Mac, (long)mac.Value);
            Interlocked.Increment(ref _resolved);
        }
        Volatile.Write(ref e.ConfirmedAt, now);
        return true;
    }

    /// <summary>A frame from <paramref name="source"/> arrived on the uplink: if it is a gateway's MAC, the gateway is alive.</summary>
    public void Confirm(ulong source, long now)
    {
        ConfirmOne(_v4, source, now);
        ConfirmOne(_v6, source, now);
    }

    private static void ConfirmOne(Entry? e, ulong source, long now)
    {
        if (e is null || (ulong)Volatile.Read(ref e.Mac) != source) return;
        if (now - Volatile.Read(ref e.ConfirmedAt) > ConfirmGranularityNanos) Volatile.Write(ref e.ConfirmedAt, now);
    }

    /// <summary>
    /// Turns the packet in slot <paramref name="m"/> into a broadcast ARP request "who-has <paramref name="target"/> tell
    /// <paramref name="senderIp"/>" from <paramref name="senderMac"/> (RFC 826), built in place in the slot.
    /// </summary>
    public static void WriteArpRequest(Span<byte> arena, ref PacketMeta m, uint senderIp, MacAddress senderMac, uint target)
    {
        const int length = EthernetHeader.Length + ArpPacket.Length;
        var frame = arena.Slice(m.Offset, length);
        EthernetHeader.Write(frame, MacAddress.Broadcast, senderMac, EtherType.Arp);
        var arp = frame[EthernetHeader.Length..];
        BinaryPrimitives.WriteUInt16BigEndian(arp, 1); // Ethernet
        BinaryPrimitives.WriteUInt16BigEndian(arp[2..], EtherType.Ipv4);
        arp[4] = 6;
        arp[5] = 4;
        var view = new ArpPacket(arp);
        view.Operation = ArpPacket.OpRequest;
        view.SenderHardware = senderMac;
        view.SenderProtocol = senderIp;
        view.TargetHardware = MacAddress.Zero;
        view.TargetProtocol = target;
        Emitted(ref m, length, L3Kind.Arp, ArpPacket.Length, 0);
    }

    /// <summary>
    /// Turns the packet into a Neighbor Solicitation for <paramref name="target"/> (RFC 4861 §4.3, §7.2.2): from the
    /// node's address to the target's solicited-node multicast group (ff02::1:ff00:0/104, RFC 4291 §2.7.1) and its
    /// MAC 33:33:ff:xx:xx:xx (RFC 2464 §7), hop limit 255, with the source link-layer address option.
    /// </summary>
    public static void WriteNeighborSolicitation(Span<byte> arena, ref PacketMeta m, IpAddr source, MacAddress senderMac, IpAddr target)
    {
        const int icmpLength = NeighborMessage.Length + 8;
        const int length = EthernetHeader.Length + Ipv6Header.Length + icmpLength;
        var frame = arena.Slice(m.Offset, length);
        uint low24 = (uint)(target.Value & 0xFF_FFFF);
        var group = new IpAddr(new UInt128(0xFF02_0000_0000_0000UL, 0x0000_0001_FF00_0000UL | low24));
        EthernetHeader.Write(frame, new MacAddress(0x3333_FF00_0000UL | low24), senderMac, EtherType.Ipv6);
        var ip = frame[EthernetHeader.Length..];
        Ipv6Header.Write(ip, 0, icmpLength, IpProtocol.Icmpv6, 255, source, group);
        var icmp = ip.Slice(Ipv6Header.Length, icmpLength);
        icmp.Clear();
        icmp[0] = Icmpv6.NeighborSolicitation;
        new NeighborMessage(icmp).Target = target;
        icmp[NeighborMessage.Length] = Icmpv6.OptionSourceLinkLayer;
        icmp[NeighborMessage.Length + 1] = 1;
        senderMac.Write(icmp[(NeighborMessage.Length + 2)..]);
        ushort c = Checksum.TransportV6(ip.Slice(8, 16), ip.Slice(24, 16), IpProtocol.Icmpv6, icmp);
        BinaryPrimitives.WriteUInt16BigEndian(icmp[2..], c);
        Emitted(ref m, length, L3Kind.Ipv6, Ipv6Header.Length + icmpLength, EthernetHeader.Length + Ipv6Header.Length);
    }

    private static void Emitted(ref PacketMeta m, int length, L3Kind l3, int l3Length, int l4Offset)
    {
        m.Length = length;
        m.L3 = l3;
        m.L3Offset = EthernetHeader.Length;
        m.L3Length = (ushort)l3Length;
        m.L4Offset = (ushort)l4Offset;
        m.IpProtocol = l3 == L3Kind.Ipv6 ? IpProtocol.Icmpv6 : (byte)0;
        m.Flags = l3 == L3Kind.Ipv6 ? PacketFlags.HasL4 : PacketFlags.None;
        // A new, whole frame: whatever offloads the packet it replaces had do not apply.
        m.Offload = OffloadFlags.None;
        m.Gso = GsoKind.None;
        m.EgressPort = PortIndex.Uplink;
    }
}
