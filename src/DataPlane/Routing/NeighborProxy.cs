using FastPath.DataPlane.Packets;
using FastPath.DataPlane.Pipeline;
using FastPath.DataPlane.Telemetry;

namespace FastPath.DataPlane.Routing;

/// <summary>
/// Answers ARP requests and IPv6 Neighbor Solicitations on pod ports with the gateway MAC for any address but the
/// asker's own, as Calico's proxy-ARP does: every pod reaches everything through the engine's gateway. Replies are
/// built in place over the request and leave through the port it came in on.
/// </summary>
public static class NeighborProxy
{
    /// <summary>Answers or consumes an ARP packet from a pod. Returns the drop reason (None when a reply is emitted).</summary>
    public static DropReason HandleArp(Span<byte> arena, ref PacketMeta m, MacAddress gatewayMac, AddressTable local, int ingress)
    {
        int l3 = m.Offset + m.L3Offset;
        var arp = new ArpPacket(arena.Slice(l3, ArpPacket.Length));
        if (arp.Operation != ArpPacket.OpRequest) return DropReason.Consumed; // replies and others: learned, not forwarded
        uint spa = arp.SenderProtocol, tpa = arp.TargetProtocol;
        // RFC 5227 probes (sender 0.0.0.0) and announcements (target = sender) must stay unanswered, or the pod
        // would see an address conflict. A pod asking for its own address gets no answer for the same reason.
        if (spa == 0 || spa == tpa) return DropReason.Consumed;
        if (local.Lookup(IpAddr.FromV4(spa)) != ingress) return DropReason.SpoofedSource;

        var requester = arp.SenderHardware;
        arp.Operation = ArpPacket.OpReply;
        arp.TargetHardware = requester;
        arp.TargetProtocol = spa;
        arp.SenderHardware = gatewayMac;
        arp.SenderProtocol = tpa;
        int start = l3 - EthernetHeader.Length; // drops any VLAN tag the request carried
        EthernetHeader.Write(arena[start..], requester, gatewayMac, EtherType.Arp);
        m.Offset = start;
        m.Length = EthernetHeader.Length + ArpPacket.Length;
        m.L3Offset = EthernetHeader.Length;
        m.EgressPort = (short)ingress;
        return DropReason.None;
    }

    /// <summary>
    /// Handles Neighbor Discovery from a pod (RFC 4861): answers a Neighbor Solicitation with a solicited
    /// Neighbor Advertisement carrying the gateway MAC; consumes everything else (RS, NA, MLD, DAD probes).
    /// Returns None when an advertisement is emitted, Consumed or Malformed otherwise.
    /// </summary>
    public static DropReason HandleNeighborDiscovery(Span<byte> arena, ref PacketMeta m, MacAddress gatewayMac, AddressTable local, int ingress)
    {
        int l3 = m.Offset + m.L3Offset;
        int l4 = m.Offset + m.L4Offset;
        byte type = arena[l4];
        if (type != Icmpv6.NeighborSolicitation) return DropReason.Consumed;
        var ip = new Ipv6Header(arena.Slice(l3, Ipv6Header.Length));
        int icmpLength = m.L3Length - (m.L4Offset - m.L3Offset);
        // RFC 4861 §7.1.1: hop limit 255 (proves the sender is on-link), code 0, at least 24 bytes.
        if (ip.HopLimit != 255 || arena[l4 + 1] != 0 || icmpLength < NeighborMessage.Length) return DropReason.Malformed;
        var ns = new NeighborMessage(arena.Slice(l4, icmpLength));
        ns.TryGetLinkLayerOption(Icmpv6.OptionSourceLinkLayer, out _, out bool malformed);
        if (malformed) return DropReason.Malformed;
        var src = ip.Source;
        var target = ns.Target;
        // Duplicate address detection (source ::) and a pod asking for its own address get no answer (RFC 4862 §5.4).
        if (Ipv6Header.IsUnspecified(src) || target == src || local.Lookup(target) == ingress) return DropReason.Consumed;
        if (!Ipv6Header.IsLinkLocal(src) && local.Lookup(src) != ingress) return DropReason.SpoofedSource;

        var requester = MacAddress.Read(arena[(m.Offset + 6)..]);
        const int naLength = NeighborMessage.Length + 8; // + target link-layer address option
        int start = l3 - EthernetHeader.Length;
        var frame = arena.Slice(start, EthernetHeader.Length + Ipv6Header.Length + naLength);
        EthernetHeader.Write(frame, requester, gatewayMac, EtherType.Ipv6);
        var outIp = frame[EthernetHeader.Length..];
        Ipv6Header.Write(outIp, 0, naLength, IpProtocol.Icmpv6, 255, target, src);
        var icmp = outIp.Slice(Ipv6Header.Length, naLength);
        icmp.Clear();
        icmp[0] = Icmpv6.NeighborAdvertisement;
        var na = new NeighborMessage(icmp);
        na.Flags = NeighborMessage.FlagRouter | NeighborMessage.FlagSolicited | NeighborMessage.FlagOverride;
        na.Target = target;
        icmp[NeighborMessage.Length] = Icmpv6.OptionTargetLinkLayer;
        icmp[NeighborMessage.Length + 1] = 1;
        gatewayMac.Write(icmp[(NeighborMessage.Length + 2)..]);
        var c = Checksum.TransportV6(outIp.Slice(8, 16), outIp.Slice(24, 16), IpProtocol.Icmpv6, icmp);
        icmp[2] = (byte)(c >> 8);
        icmp[3] = (byte)c;

        m.Offset = start;
        m.Length = frame.Length;
        m.L3Offset = EthernetHeader.Length;
        m.L4Offset = EthernetHeader.Length + Ipv6Header.Length;
        m.L3Length = Ipv6Header.Length + naLength;
        m.EgressPort = (short)ingress;
        return DropReason.None;
    }
}
