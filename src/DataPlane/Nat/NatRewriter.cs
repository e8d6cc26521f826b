using System.Buffers.Binary;
using System.Runtime.CompilerServices;
using FastPath.DataPlane.Packets;
using FastPath.DataPlane.Pipeline;

namespace FastPath.DataPlane.Nat;

/// <summary>
/// In-place NAT of a parsed packet: one address and its port (or ICMP echo identifier) replaced, every checksum that
/// covers them patched with RFC 1624 eqn. 3 instead of recomputed, so the cost does not depend on the payload size.
/// </summary>
/// <remarks>
/// <para>Which checksums cover what: the IPv4 header checksum covers the addresses (RFC 791); TCP, UDP and ICMPv6
/// checksums cover them through the pseudo-header (RFC 9293 §3.1, RFC 768, RFC 8200 §8.1, RFC 4443 §2.3) and the
/// ports/identifier directly; the ICMPv4 checksum covers only the ICMP message (RFC 792), so an address change does
/// not touch it. A UDP-over-IPv4 checksum of 0 means "none" (RFC 768) and stays 0; an updated UDP checksum that
/// comes out 0 is sent as 0xFFFF.</para>
/// <para>Every offset is checked before anything is written: a malformed or unsupported packet returns false and
/// is left unchanged. Non-first fragments carry no ports and return false (Linux NATs only reassembled packets);
/// first fragments are fine, since an incremental update is valid for a checksum over data we cannot see.
/// IPv6 routing headers are not considered (the pseudo-header would use the final destination).</para>
/// </remarks>
[SkipLocalsInit]
public static class NatRewriter
{
    /// <summary>SNAT: source address and source port (the echo identifier for ICMP echo; ignored for other ICMP).</summary>
    public static bool RewriteSource(Span<byte> frame, ref PacketMeta m, IpAddr newAddress, ushort newPort)
        => Rewrite(frame, ref m, newAddress, newPort, source: true);

    /// <summary>DNAT: destination address and destination port (the echo identifier for ICMP echo; ignored for other ICMP).</summary>
    public static bool RewriteDestination(Span<byte> frame, ref PacketMeta m, IpAddr newAddress, ushort newPort)
        => Rewrite(frame, ref m, newAddress, newPort, source: false);

    private static bool Rewrite(Span<byte> frame, ref PacketMeta m, IpAddr addr, ushort port, bool source)
    {
        if ((m.Flags & PacketFlags.NonFirstFragment) != 0) return false;
        bool v4 = m.L3 == L3Kind.Ipv4;
        if (!v4 && m.L3 != L3Kind.Ipv6) return false;
        if (addr.IsV4 != v4) return false;
        int l3 = m.L3Offset;
        int end = l3 + m.L3Length;
        if (end > frame.Length || m.L3Length < (v4 ? Ipv4Header.MinLength : Ipv6Header.Length)) return false;
        int addrAt = l3 + (v4 ? (source ? 12 : 16) : (source ? 8 : 24));

        // Transport: where the port and checksum are, checked before any write.
        int l4 = m.L4Offset;
        byte proto = m.IpProtocol;
        int portAt = -1, csumAt = -1;
        bool pseudo = true, udp = false, sctp = false;
        if ((m.Flags & PacketFlags.HasL4) == 0 || l4 < l3) return false;
        switch (proto)
        {
            case IpProtocol.Tcp:
                if (l4 + TcpHeader.MinLength > end) return false;
                portAt = l4 + (source ? 0 : 2);
                csumAt = l4 + 16;
                break;
            case IpProtocol.Udp:
                if (l4 + UdpHeader.Length > end) return false;
                portAt = l4 + (source ? 0 : 2);
                csumAt = l4 + 6;
                udp = true;
                break;
            case IpProtocol.Sctp:
                // CRC32c over the whole packet: a fragment's cannot be recomputed (Linux NATs reassembled SCTP only).
                if (l4 + SctpPacket.CommonHeaderLength > end || (m.Flags & PacketFlags.Fragment) != 0) return false;
                portAt = l4 + (source ? 0 : 2);
                pseudo = false;
                sctp = true;
                break;
            case IpProtocol.Icmp when v4:
                if (l4 + IcmpHeader.Length > end) return false;
                pseudo = false;
                csumAt = l4 + 2;
                if (FlowKeyIsEcho(proto, frame[l4])) portAt = l4 + 4;
                break;
            case IpProtocol.Icmpv6 when !v4:
                if (l4 + 4 > end) return false;
                csumAt = l4 + 2;
                if (FlowKeyIsEcho(proto, frame[l4]))
                {
                    if (l4 + IcmpHeader.Length > end) return false;
                    portAt = l4 + 4;
                }
                break;
            default:
                return false;
        }

        ushort csum = csumAt >= 0 ? BinaryPrimitives.ReadUInt16BigEndian(frame[csumAt..]) : (ushort)0;
        // A partial checksum (offloaded: the field holds the uncomplemented pseudo-header sum) follows the addresses
        // only; the ports are summed with the payload when it is completed.
        bool partial = (m.Offload & OffloadFlags.ChecksumPartial) != 0 && proto is IpProtocol.Tcp or IpProtocol.Udp;
        // RFC 768: a zero UDP checksum over IPv4 was never computed, and must not become one.
        bool updateL4 = partial || !(udp && csum == 0);

        // Every change the transport checksum sees is summed first and folded once (RFC 1624 eqn. 3 over all
        // rewritten words): one fold per checksum instead of one per field (NatRewriterBenchmarks).
        ulong l4Delta;
        if (v4)
        {
            uint oldA = BinaryPrimitives.ReadUInt32BigEndian(frame[addrAt..]);
            uint newA = addr.V4;
            ulong delta = Checksum.Delta32(oldA, newA);
            ushort ipc = BinaryPrimitives.ReadUInt16BigEndian(frame[(l3 + 10)..]);
            BinaryPrimitives.WriteUInt16BigEndian(frame[(l3 + 10)..], Checksum.UpdateBy(ipc, delta));
            BinaryPrimitives.WriteUInt32BigEndian(frame[addrAt..], newA);
            l4Delta = pseudo ? delta : 0;
        }
        else
        {
            UInt128 oldA = BinaryPrimitives.ReadUInt128BigEndian(frame[addrAt..]);
            BinaryPrimitives.WriteUInt128BigEndian(frame[addrAt..], addr.Value);
            l4Delta = Checksum.Delta128(oldA, addr.Value);
        }

        if (portAt >= 0)
        {
            ushort oldP = BinaryPrimitives.ReadUInt16BigEndian(frame[portAt..]);
            BinaryPrimitives.WriteUInt16BigEndian(frame[portAt..], port);
            if (!partial) l4Delta += Checksum.Delta16(oldP, port);
        }

        if (sctp)
        {
            // No pseudo-header: only a port change alters the packet the CRC covers (RFC 9260 §6.8).
            if (portAt >= 0 && l4Delta != 0) SctpPacket.WriteChecksum(frame[l4..end]);
        }
        else if (updateL4 && l4Delta != 0)
        {
            // The partial field is the complement of a finished checksum's form: RFC 1624 applies to its complement.
            if (partial) csum = (ushort)~Checksum.UpdateBy((ushort)~csum, l4Delta);
            else
            {
                csum = Checksum.UpdateBy(csum, l4Delta);
                if (udp) csum = Checksum.UdpTransmitted(csum);
            }
            BinaryPrimitives.WriteUInt16BigEndian(frame[csumAt..], csum);
        }

        if (proto is IpProtocol.Tcp or IpProtocol.Udp or IpProtocol.Sctp)
        {
            if (source) m.SourcePort = port;
            else m.DestinationPort = port;
        }
        return true;
    }

    /// <summary>
    /// Rewrites the packet quoted inside an ICMP/ICMPv6 error (RFC 792 destination unreachable, time exceeded...;
    /// RFC 4443 §3) so it matches the addresses the receiver of the error knows: its source
    /// (<paramref name="innerSource"/> true) or destination address and port/echo identifier, the quoted IPv4
    /// header checksum and, when the quote contains it, the quoted transport checksum; then the outer ICMP checksum
    /// for all of those changes. This is the inner half of RFC 5508 §4.2 / Linux's nf_nat_icmp_reply_translation;
    /// the caller rewrites the outer header with <see cref="RewriteSource"/>/<see cref="RewriteDestination"/>.
    /// </summary>
    /// <remarks>
    /// A quoted TCP header is often cut after 8 bytes (RFC 792 only promises 64 bits), which leaves its checksum
    /// out; like Linux's tcp_manip_pkt we then rewrite the port only. The quoted IPv6 packet must carry its transport
    /// header directly after the fixed header (no extension headers).
    /// </remarks>
    public static bool RewriteIcmpErrorInner(Span<byte> frame, ref PacketMeta m, bool innerSource, IpAddr newAddress, ushort newPort)
    {
        bool v4 = m.L3 == L3Kind.Ipv4;
        if (!v4 && m.L3 != L3Kind.Ipv6) return false;
        if (newAddress.IsV4 != v4) return false;
        if ((m.Flags & (PacketFlags.HasL4 | PacketFlags.IcmpError)) != (PacketFlags.HasL4 | PacketFlags.IcmpError)) return false;
        if ((m.Flags & PacketFlags.Fragment) != 0) return false;
        byte outerProto = v4 ? IpProtocol.Icmp : IpProtocol.Icmpv6;
        if (m.IpProtocol != outerProto) return false;
        int end = m.L3Offset + m.L3Length;
        int icmp = m.L4Offset;
        if (end > frame.Length || icmp + IcmpHeader.Length > end) return false;
        int inner = icmp + IcmpHeader.Length;

        int innerL4, innerAddrAt, innerEnd = end;
        byte innerProto;
        if (v4)
        {
            if (inner + Ipv4Header.MinLength > end || frame[inner] >> 4 != 4) return false;
            int ihl = (frame[inner] & 0x0F) * 4;
            if (ihl < Ipv4Header.MinLength || inner + ihl > end) return false;
            // A quoted non-first fragment has no transport header to rewrite.
            if ((BinaryPrimitives.ReadUInt16BigEndian(frame[(inner + 6)..]) & Ipv4Header.FragmentOffsetMask) != 0) return false;
            innerProto = frame[inner + 9];
            innerL4 = inner + ihl;
            innerAddrAt = inner + (innerSource ? 12 : 16);
            // The quote may be shorter than the inner total length, never longer in a well-formed error.
            int innerTotal = BinaryPrimitives.ReadUInt16BigEndian(frame[(inner + 2)..]);
            if (innerTotal >= ihl) innerEnd = Math.Min(end, inner + innerTotal);
        }
        else
        {
            if (inner + Ipv6Header.Length > end || frame[inner] >> 4 != 6) return false;
            innerProto = frame[inner + 6];
            innerL4 = inner + Ipv6Header.Length;
            innerAddrAt = inner + (innerSource ? 8 : 24);
            innerEnd = Math.Min(end, innerL4 + BinaryPrimitives.ReadUInt16BigEndian(frame[(inner + 4)..]));
        }

        int portAt, csumAt = -1;
        bool pseudo = true, udp = false;
        switch (innerProto)
        {
            case IpProtocol.Tcp:
                if (innerL4 + 8 > innerEnd) return false;
                portAt = innerL4 + (innerSource ? 0 : 2);
                if (innerL4 + 18 <= innerEnd) csumAt = innerL4 + 16;
                break;
            case IpProtocol.Udp:
                if (innerL4 + UdpHeader.Length > innerEnd) return false;
                portAt = innerL4 + (innerSource ? 0 : 2);
                csumAt = innerL4 + 6;
                udp = true;
                break;
            case IpProtocol.Sctp:
                // A quote is seldom the whole SCTP packet, so its CRC32c is left as quoted: the port only.
                if (innerL4 + 8 > innerEnd) return false;
                portAt = innerL4 + (innerSource ? 0 : 2);
                break;
            case IpProtocol.Icmp when v4:
            case IpProtocol.Icmpv6 when !v4:
                if (innerL4 + IcmpHeader.Length > innerEnd || !FlowKeyIsEcho(innerProto, frame[innerL4])) return false;
                portAt = innerL4 + 4;
                csumAt = innerL4 + 2;
                pseudo = !v4;
                break;
            default:
                return false;
        }

        // All offsets are inside the ICMP message at even distances from its start (8 + 4·IHL or 8 + 40), so each
        // changed 16-bit word is a word of the outer checksum's sum and RFC 1624 applies to it directly.
        ushort outer = BinaryPrimitives.ReadUInt16BigEndian(frame[(icmp + 2)..]);
        ushort innerCsum = csumAt >= 0 ? BinaryPrimitives.ReadUInt16BigEndian(frame[csumAt..]) : (ushort)0;
        bool updateInner = csumAt >= 0 && !(udp && v4 && innerCsum == 0);
        ushort newInnerCsum = innerCsum;

        if (v4)
        {
            uint oldA = BinaryPrimitives.ReadUInt32BigEndian(frame[innerAddrAt..]);
            uint newA = newAddress.V4;
            ushort ipc = BinaryPrimitives.ReadUInt16BigEndian(frame[(inner + 10)..]);
            ushort newIpc = Checksum.Update32(ipc, oldA, newA);
            BinaryPrimitives.WriteUInt16BigEndian(frame[(inner + 10)..], newIpc);
            BinaryPrimitives.WriteUInt32BigEndian(frame[innerAddrAt..], newA);
            outer = Checksum.Update32(outer, oldA, newA);
            outer = Checksum.Update16(outer, ipc, newIpc);
            if (updateInner && pseudo) newInnerCsum = Checksum.Update32(newInnerCsum, oldA, newA);
        }
        else
        {
            UInt128 oldA = BinaryPrimitives.ReadUInt128BigEndian(frame[innerAddrAt..]);
            BinaryPrimitives.WriteUInt128BigEndian(frame[innerAddrAt..], newAddress.Value);
            outer = Checksum.Update128(outer, oldA, newAddress.Value);
            if (updateInner) newInnerCsum = Checksum.Update128(newInnerCsum, oldA, newAddress.Value);
        }

        ushort oldP = BinaryPrimitives.ReadUInt16BigEndian(frame[portAt..]);
        BinaryPrimitives.WriteUInt16BigEndian(frame[portAt..], newPort);
        outer = Checksum.Update16(outer, oldP, newPort);
        if (updateInner)
        {
            newInnerCsum = Checksum.Update16(newInnerCsum, oldP, newPort);
            if (udp) newInnerCsum = Checksum.UdpTransmitted(newInnerCsum);
            BinaryPrimitives.WriteUInt16BigEndian(frame[csumAt..], newInnerCsum);
            outer = Checksum.Update16(outer, innerCsum, newInnerCsum);
        }
        BinaryPrimitives.WriteUInt16BigEndian(frame[(icmp + 2)..], outer);
        return true;
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static bool FlowKeyIsEcho(byte protocol, byte type) => Conntrack.FlowKey.IsEcho(protocol, type);
}
