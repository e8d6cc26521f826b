using System.Buffers.Binary;
using System.Runtime.CompilerServices;
using FastPath.DataPlane.Icmp;
using FastPath.DataPlane.Packets;
using FastPath.DataPlane.Routing;
using FastPath.DataPlane.Telemetry;

namespace FastPath.DataPlane.Pipeline;

/// <summary>
/// One forwarding worker: takes a received batch and decides every packet's fate — parse, resolve the ingress
/// port, answer neighbor discovery, check the source, look up the destination, rewrite and emit, or drop with a
/// reason (and an ICMP error where the kernel would send one). Owns its counters and learned MACs, so it needs no
/// locks; it reads the snapshot once per batch.
/// </summary>
public sealed class Engine
{
    private readonly SnapshotHolder _snapshots;
    private ForwardingSnapshot? _sized;
    private ulong[] _learnedMacs = [];

    public Engine(SnapshotHolder snapshots)
    {
        _snapshots = snapshots;
        Counters = new PortCounters(0);
        Resize(snapshots.Current);
    }

    public PortCounters Counters { get; private set; }

    /// <summary>The snapshot the last batch ran against.</summary>
    public ForwardingSnapshot Snapshot => _sized!;

    /// <summary>Processes every packet of <paramref name="batch"/>, leaving a verdict in each packet's metadata.</summary>
    [SkipLocalsInit]
    public void Process(PacketBatch batch)
    {
        var snap = _snapshots.Current; // one read per batch: the whole batch sees one snapshot
        if (!ReferenceEquals(snap, _sized)) Resize(snap);
        var meta = batch.Meta;
        var arena = batch.Arena;
        int count = batch.Count;

        for (int i = 0; i < count; i++)
        {
            ref var m = ref meta[i];
            if (m.Drop == DropReason.None) m.Drop = PacketParser.Parse(arena.AsSpan(m.Offset, m.Length), ref m);
        }

        for (int i = 0; i < count; i++)
        {
            ref var m = ref meta[i];
            int ingress = ResolveIngress(snap, arena, ref m);
            if (ingress < 0)
            {
                m.Drop = DropReason.UnknownPort;
                continue;
            }
            Counters.CountRx(ingress, m.Length);
            if (m.Drop == DropReason.None) m.Drop = Forward(snap, arena, ref m, ingress);
            if (m.Drop != DropReason.None) Counters.CountDrop(ingress, m.Drop);
            if (m.EgressPort >= 0) Counters.CountTx(m.EgressPort, m.Length);
        }
    }

    /// <summary>
    /// Resolves <see cref="PortIndex.Auto"/> as the contract says: the pod owning the source address, else the
    /// uplink. Frames without a routable source (ARP probes from 0.0.0.0, IPv6 link-local or unspecified sources
    /// of neighbor discovery) fall back to the pod whose configured MAC sent them, since no address names a port.
    /// </summary>
    private int ResolveIngress(ForwardingSnapshot snap, byte[] arena, ref PacketMeta m)
    {
        int port = m.IngressPort;
        if (port == PortIndex.Auto)
        {
            port = PortIndex.Uplink;
            var src = SourceAddress(arena, in m, out bool found);
            if (found)
            {
                int owner = snap.LocalAddresses.Lookup(src);
                if (owner >= PortIndex.FirstPod) port = owner;
                else if (owner < 0 && IsLinkScoped(src))
                {
                    int byMac = snap.PodMacs.Lookup(MacAddress.Read(arena.AsSpan(m.Offset + 6)));
                    if (byMac >= 0) port = byMac;
                }
            }
            m.IngressPort = (short)port;
        }
        return (uint)port < (uint)snap.PortCount ? port : -1;
    }

    private static bool IsLinkScoped(IpAddr a) =>
        a.IsV4 ? a.V4 == 0 || (a.V4 >> 16) == 0xA9FE : Ipv6Header.IsUnspecified(a) || Ipv6Header.IsLinkLocal(a);

    private static IpAddr SourceAddress(byte[] arena, in PacketMeta m, out bool found)
    {
        found = true;
        int l3 = m.Offset + m.L3Offset;
        switch (m.L3)
        {
            case L3Kind.Ipv4: return IpAddr.ReadV4(arena.AsSpan(l3 + 12));
            case L3Kind.Ipv6: return IpAddr.ReadV6(arena.AsSpan(l3 + 8));
            case L3Kind.Arp: return IpAddr.FromV4(BinaryPrimitives.ReadUInt32BigEndian(arena.AsSpan(l3 + 14)));
            default: found = false; return default;
        }
    }

    private DropReason Forward(ForwardingSnapshot snap, byte[] arena, ref PacketMeta m, int ingress)
    {
        bool fromPod = ingress >= PortIndex.FirstPod;
        if (fromPod)
        {
            var srcMac = MacAddress.Read(arena.AsSpan(m.Offset + 6));
            if (!srcMac.IsMulticast) _learnedMacs[ingress] = srcMac.Value;
        }

        if (m.L3 == L3Kind.Arp)
        {
            if (fromPod) return NeighborProxy.HandleArp(arena, ref m, snap.Node.GatewayMac, snap.LocalAddresses, ingress);
            return ArpFromUplink(snap, arena, ref m, ingress);
        }

        int l3 = m.Offset + m.L3Offset;
        IpAddr src, dst;
        if (m.L3 == L3Kind.Ipv4)
        {
            src = IpAddr.ReadV4(arena.AsSpan(l3 + 12));
            dst = IpAddr.ReadV4(arena.AsSpan(l3 + 16));
            uint d = dst.V4;
            // Limited broadcast and link-local multicast (224.0.0.0/24) never leave the link (RFC 1812 §5.3.5).
            if (d == uint.MaxValue || (d >> 8) == 0xE0_00_00) return DropReason.Consumed;
            if ((d >> 28) == 0xE) return DropReason.NoRoute; // no multicast routing
        }
        else
        {
            src = IpAddr.ReadV6(arena.AsSpan(l3 + 8));
            dst = IpAddr.ReadV6(arena.AsSpan(l3 + 24));
            if (fromPod && m.IpProtocol == IpProtocol.Icmpv6 && (m.Flags & PacketFlags.HasL4) != 0 && IsNeighborDiscovery(arena[m.Offset + m.L4Offset]))
                return NeighborProxy.HandleNeighborDiscovery(arena, ref m, snap.Node.GatewayMac, snap.LocalAddresses, ingress);
            if (Ipv6Header.IsMulticast(dst))
                return (dst.Value >> 112) == 0xFF02 ? DropReason.Consumed : DropReason.NoRoute; // link-scope stays on the link
            // RFC 4291 §2.5.6: link-local addresses are never forwarded.
            if (Ipv6Header.IsLinkLocal(src) || Ipv6Header.IsLinkLocal(dst)) return DropReason.NoRoute;
        }

        if (fromPod && snap.LocalAddresses.Lookup(src) != ingress) return DropReason.SpoofedSource;

        int egress = snap.LocalAddresses.Lookup(dst);
        if (egress < 0) return ingress == PortIndex.Uplink ? DropReason.NotForNode : DropReason.NoRoute;

        // Delivery to the node's own stack is local input, not forwarding: the TTL is left alone as Linux does
        // for traffic a veth hands to the host.
        if (egress != PortIndex.Host)
        {
            var ttlDrop = DecrementTtl(snap, arena, ref m, ingress);
            if (ttlDrop != DropReason.None) return ttlDrop;
        }
        return RewriteL2(snap, arena, ref m, egress);
    }

    private static bool IsNeighborDiscovery(byte icmpType) =>
        icmpType is >= Icmpv6.MldQuery and <= Icmpv6.Redirect or Icmpv6.MldV2Report;

    /// <summary>ARP on the uplink: requests for the node's own addresses belong to the host stack.</summary>
    private static DropReason ArpFromUplink(ForwardingSnapshot snap, byte[] arena, ref PacketMeta m, int ingress)
    {
        uint tpa = BinaryPrimitives.ReadUInt32BigEndian(arena.AsSpan(m.Offset + m.L3Offset + 24));
        if (ingress == PortIndex.Uplink && snap.LocalAddresses.Lookup(IpAddr.FromV4(tpa)) == PortIndex.Host)
        {
            m.EgressPort = PortIndex.Host;
            return DropReason.None;
        }
        return DropReason.NotForNode;
    }

    /// <summary>
    /// RFC 1812 §5.3.1 / RFC 8200 §3: a router decrements the TTL / hop limit and, when it would reach zero, drops
    /// the packet and sends ICMP time exceeded (code 0) back out of the ingress port.
    /// </summary>
    private DropReason DecrementTtl(ForwardingSnapshot snap, byte[] arena, ref PacketMeta m, int ingress)
    {
        int l3 = m.Offset + m.L3Offset;
        if (m.L3 == L3Kind.Ipv4)
        {
            var ip = new Ipv4Header(arena.AsSpan(l3, Ipv4Header.MinLength));
            if (ip.Ttl > 1)
            {
                ip.DecrementTtl();
                return DropReason.None;
            }
            if (IcmpErrorBuilder.MayAnswer(arena.AsSpan(m.Offset, m.Length), in m))
            {
                IcmpErrorBuilder.BuildV4(arena, ref m, IcmpHeader.TimeExceeded, 0, 0, snap.IcmpSourceV4, snap.Node.GatewayMac);
                m.EgressPort = (short)ingress;
            }
            return DropReason.TtlExceeded;
        }

        ref byte hopLimit = ref arena[l3 + 7];
        if (hopLimit > 1)
        {
            hopLimit--;
            return DropReason.None;
        }
        if (IcmpErrorBuilder.MayAnswer(arena.AsSpan(m.Offset, m.Length), in m))
        {
            IcmpErrorBuilder.BuildV6(arena, ref m, Icmpv6.TimeExceeded, 0, 0, snap.IcmpSourceV6, snap.Node.GatewayMac);
            m.EgressPort = (short)ingress;
        }
        return DropReason.TtlExceeded;
    }

    /// <summary>
    /// Writes a fresh untagged Ethernet header right in front of the IP header (stripping any VLAN tags) and trims
    /// L2 padding: source is the gateway MAC, destination the egress device's configured or learned MAC.
    /// </summary>
    private DropReason RewriteL2(ForwardingSnapshot snap, byte[] arena, ref PacketMeta m, int egress)
    {
        ulong mac = snap.PortMacs[egress];
        if (mac == 0) mac = _learnedMacs[egress];
        if (mac == 0) return DropReason.NeighborUnknown;
        int start = m.Offset + m.L3Offset - EthernetHeader.Length;
        EthernetHeader.Write(arena.AsSpan(start), new MacAddress(mac), snap.Node.GatewayMac,
            m.L3 == L3Kind.Ipv4 ? EtherType.Ipv4 : EtherType.Ipv6);
        int shift = m.L3Offset - EthernetHeader.Length;
        m.Offset = start;
        m.Length = EthernetHeader.Length + m.L3Length;
        m.L3Offset = EthernetHeader.Length;
        if (m.L4Offset != 0) m.L4Offset = (ushort)(m.L4Offset - shift);
        m.EgressPort = (short)egress;
        return DropReason.None;
    }

    private void Resize(ForwardingSnapshot snap)
    {
        int ports = snap.PortCount;
        if (Counters.PortCount != ports) Counters = new PortCounters(ports);
        // Learned MACs follow the port name across snapshots; a pod that was re-created will announce itself again.
        var learned = new ulong[ports];
        if (_sized is not null)
            for (int p = 0; p < ports; p++)
            {
                int old = _sized.FindPort(snap.Ports[p].Name);
                if (old >= 0 && old < _learnedMacs.Length) learned[p] = _learnedMacs[old];
            }
        _learnedMacs = learned;
        _sized = snap;
    }
}
