using System.Buffers.Binary;
using FastPath.DataPlane.Offload;
using FastPath.DataPlane.Packets;
using FastPath.DataPlane.Pipeline;

namespace FastPath.DataPlane.Icmp;

/// <summary>
/// Turns a packet, in place, into the ICMP or ICMPv6 error that answers it: the new Ethernet/IP/ICMP headers are
/// written into the headroom in front of the offending packet's IP header, which becomes the quoted part without a
/// copy. The result goes back out of the ingress port to the sender.
/// </summary>
public static class IcmpErrorBuilder
{
    /// <summary>RFC 1812 §4.3.2.3: quote as much as fits in 576 bytes (Linux does the same).</summary>
    private const int MaxIpv4ErrorLength = 576;
    /// <summary>RFC 4443 §2.4 (c): as much as fits in the IPv6 minimum MTU.</summary>
    private const int MaxIpv6ErrorLength = 1280;
    private const int Ipv4Overhead = Ipv4Header.MinLength + IcmpHeader.Length;
    private const int Ipv6Overhead = Ipv6Header.Length + IcmpHeader.Length;
    /// <summary>IP precedence "internetwork control", as Linux's icmp_send sets for errors.</summary>
    private const byte TosInternetControl = 0xC0;
    private const byte DefaultTtl = 64;

    /// <summary>
    /// True when the rules allow an error in reply to this packet: never to an ICMP error, a non-first fragment,
    /// a link-layer broadcast/multicast, or from/to an address that does not name one host
    /// (RFC 1122 §3.2.2, RFC 1812 §4.3.2.7, RFC 4443 §2.4 e).
    /// </summary>
    public static bool MayAnswer(ReadOnlySpan<byte> frame, in PacketMeta m)
    {
        if ((m.Flags & (PacketFlags.IcmpError | PacketFlags.NonFirstFragment | PacketFlags.L2Multicast)) != 0) return false;
        var ip = frame[m.L3Offset..];
        if (m.L3 == L3Kind.Ipv4)
        {
            uint src = BinaryPrimitives.ReadUInt32BigEndian(ip[12..]);
            uint dst = BinaryPrimitives.ReadUInt32BigEndian(ip[16..]);
            return src != 0 && (src >> 24) != 127 && (src >> 28) != 0xE && src != uint.MaxValue
                && (dst >> 28) != 0xE && dst != uint.MaxValue;
        }
        if (m.L3 == L3Kind.Ipv6)
        {
            var src = IpAddr.ReadV6(ip[8..]);
            var dst = IpAddr.ReadV6(ip[24..]);
            // RFC 4443 §2.4 e.3: multicast destinations only get Packet Too Big / Parameter Problem code 2; we send
            // neither to multicast, which is always allowed.
            return !Ipv6Header.IsUnspecified(src) && !Ipv6Header.IsMulticast(src) && !Ipv6Header.IsMulticast(dst);
        }
        return false;
    }

    /// <summary>
    /// Rewrites the packet into an ICMPv4 error from <paramref name="source"/> to the packet's source, addressed at
    /// L2 back to the frame's sender. <paramref name="rest"/> is the 32-bit field after the checksum (next-hop MTU
    /// for fragmentation needed, RFC 1191). Needs <see cref="PacketBatch.Headroom"/> in front of the frame.
    /// </summary>
    public static void BuildV4(Span<byte> arena, ref PacketMeta m, byte type, byte code, uint rest, uint source, MacAddress gatewayMac)
    {
        FinishPartialChecksum(arena, ref m);
        int l3 = m.Offset + m.L3Offset;
        var sender = MacAddress.Read(arena[(m.Offset + 6)..]);
        uint dst = BinaryPrimitives.ReadUInt32BigEndian(arena[(l3 + 12)..]);
        int quote = Math.Min((int)m.L3Length, MaxIpv4ErrorLength - Ipv4Overhead);

        int start = l3 - Ipv4Overhead - EthernetHeader.Length;
        var frame = arena.Slice(start, EthernetHeader.Length + Ipv4Overhead + quote);
        EthernetHeader.Write(frame, sender, gatewayMac, EtherType.Ipv4);
        Ipv4Header.Write(frame[EthernetHeader.Length..], TosInternetControl, (ushort)(Ipv4Overhead + quote), 0, 0,
            DefaultTtl, IpProtocol.Icmp, source, dst);
        var icmp = frame[(EthernetHeader.Length + Ipv4Header.MinLength)..];
        var h = new IcmpHeader(icmp);
        h.Type = type;
        h.Code = code;
        h.Checksum = 0;
        h.Rest = rest;
        h.Checksum = Checksum.Fold(Checksum.Sum(icmp));
        Reframe(ref m, start, frame.Length, L3Kind.Ipv4, IpProtocol.Icmp, Ipv4Overhead + quote);
    }

    /// <summary>
    /// The quote is the packet as its sender meant it: a transport checksum still partial (a TAP with offloads handed
    /// the packet over with only the pseudo-header sum in the field) is finished first, so the error is the same bytes
    /// whether the checksum came finished (replay, a NIC without offloads) or not (found by the replay-vs-live
    /// differential, docs/BENCHMARKS.md "Replay vs live on real TAPs").
    /// </summary>
    private static void FinishPartialChecksum(Span<byte> arena, ref PacketMeta m)
    {
        if ((m.Offload & OffloadFlags.ChecksumPartial) != 0)
            ChecksumOffload.Complete(arena.Slice(m.Offset, m.Length), ref m, ChecksumOffload.TransportStart(in m));
    }

    /// <summary>The ICMPv6 counterpart of <see cref="BuildV4"/> (RFC 4443 §3); <paramref name="rest"/> carries the MTU for Packet Too Big.</summary>
    public static void BuildV6(Span<byte> arena, ref PacketMeta m, byte type, byte code, uint rest, IpAddr source, MacAddress gatewayMac)
    {
        FinishPartialChecksum(arena, ref m);
        int l3 = m.Offset + m.L3Offset;
        var sender = MacAddress.Read(arena[(m.Offset + 6)..]);
        var dst = IpAddr.ReadV6(arena[(l3 + 8)..]);
        int quote = Math.Min((int)m.L3Length, MaxIpv6ErrorLength - Ipv6Overhead);

        int start = l3 - Ipv6Overhead - EthernetHeader.Length;
        var frame = arena.Slice(start, EthernetHeader.Length + Ipv6Overhead + quote);
        EthernetHeader.Write(frame, sender, gatewayMac, EtherType.Ipv6);
        var ip = frame[EthernetHeader.Length..];
        Ipv6Header.Write(ip, 0, (ushort)(IcmpHeader.Length + quote), IpProtocol.Icmpv6, DefaultTtl, source, dst);
        var icmp = ip[Ipv6Header.Length..];
        var h = new IcmpHeader(icmp);
        h.Type = type;
        h.Code = code;
        h.Checksum = 0;
        h.Rest = rest;
        h.Checksum = Checksum.TransportV6(ip.Slice(8, 16), ip.Slice(24, 16), IpProtocol.Icmpv6, icmp);
        Reframe(ref m, start, frame.Length, L3Kind.Ipv6, IpProtocol.Icmpv6, Ipv6Overhead + quote);
    }

    private static void Reframe(ref PacketMeta m, int start, int length, L3Kind l3, byte proto, int l3Length)
    {
        m.Offset = start;
        m.Length = length;
        m.L3 = l3;
        m.L3Offset = EthernetHeader.Length;
        m.L3Length = (ushort)l3Length;
        m.IpProtocol = proto;
        m.L4Offset = (ushort)(EthernetHeader.Length + (l3 == L3Kind.Ipv4 ? Ipv4Header.MinLength : Ipv6Header.Length));
        m.Flags = PacketFlags.HasL4 | PacketFlags.IcmpError;
        m.SourcePort = m.DestinationPort = 0;
    }
}
