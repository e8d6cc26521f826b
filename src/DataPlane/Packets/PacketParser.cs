using System.Buffers.Binary;
using FastPath.DataPlane.Pipeline;
using FastPath.DataPlane.Telemetry;

namespace FastPath.DataPlane.Packets;

/// <summary>
/// Parses a frame once and records what later stages need in <see cref="PacketMeta"/>: L3 kind and offset, the
/// transport protocol and offset, ports, fragment and error flags. Every length is checked before it is read; the
/// result is a drop reason, never an exception.
/// </summary>
public static class PacketParser
{
    /// <summary>802.1ad allows an S-tag and a C-tag; more is not Ethernet we forward.</summary>
    private const int MaxVlanTags = 2;

    /// <summary>Bound on the IPv6 extension-header walk (each header consumes ≥ 8 bytes anyway).</summary>
    private const int MaxExtensionHeaders = 16;

    public static DropReason Parse(ReadOnlySpan<byte> frame, ref PacketMeta m)
    {
        if (frame.Length < EthernetHeader.Length) return DropReason.Malformed;
        if ((frame[0] & 1) != 0) m.Flags |= PacketFlags.L2Multicast;

        int off = 12;
        ushort type = BinaryPrimitives.ReadUInt16BigEndian(frame[off..]);
        int tags = 0;
        while (type is EtherType.Vlan or EtherType.QinQ or EtherType.QinQLegacy)
        {
            if (++tags > MaxVlanTags) return DropReason.UnsupportedProtocol;
            if (frame.Length < off + 2 + EthernetHeader.VlanTagLength + 2) return DropReason.Malformed;
            off += EthernetHeader.VlanTagLength;
            type = BinaryPrimitives.ReadUInt16BigEndian(frame[off..]);
        }
        off += 2;
        m.L3Offset = (ushort)off;

        switch (type)
        {
            case EtherType.Arp:
                if (!ArpPacket.IsEthernetIpv4(frame[off..])) return DropReason.Malformed;
                m.L3 = L3Kind.Arp;
                m.L3Length = ArpPacket.Length;
                return DropReason.None;
            case EtherType.Ipv4:
                return ParseIpv4(frame, off, ref m);
            case EtherType.Ipv6:
                return ParseIpv6(frame, off, ref m);
            default:
                return DropReason.UnsupportedProtocol;
        }
    }

    private static DropReason ParseIpv4(ReadOnlySpan<byte> frame, int off, ref PacketMeta m)
    {
        var ip = frame[off..];
        if (ip.Length < Ipv4Header.MinLength || ip[0] >> 4 != 4) return DropReason.Malformed;
        int ihl = (ip[0] & 0x0F) * 4;
        int total = BinaryPrimitives.ReadUInt16BigEndian(ip[2..]);
        if (ihl < Ipv4Header.MinLength || ihl > ip.Length || total < ihl || total > ip.Length) return DropReason.Malformed;
        if (!Checksum.Ipv4HeaderValid(ip[..ihl])) return DropReason.BadChecksum;
        if (ihl > Ipv4Header.MinLength && !Ipv4Header.OptionsWellFormed(ip[Ipv4Header.MinLength..ihl])) return DropReason.Malformed;

        m.L3 = L3Kind.Ipv4;
        m.L3Length = (ushort)total;
        byte proto = ip[9];
        m.IpProtocol = proto;
        ushort frag = BinaryPrimitives.ReadUInt16BigEndian(ip[6..]);
        if ((frag & Ipv4Header.FlagDontFragment) != 0) m.Flags |= PacketFlags.DontFragment;
        if ((frag & (Ipv4Header.FlagMoreFragments | Ipv4Header.FragmentOffsetMask)) != 0)
        {
            m.Flags |= PacketFlags.Fragment;
            if ((frag & Ipv4Header.FragmentOffsetMask) != 0)
            {
                m.Flags |= PacketFlags.NonFirstFragment;
                return DropReason.None;
            }
        }
        return ParseTransport(frame, off + ihl, off + total, proto, isV6: false, ref m);
    }

    private static DropReason ParseIpv6(ReadOnlySpan<byte> frame, int off, ref PacketMeta m)
    {
        var ip = frame[off..];
        if (ip.Length < Ipv6Header.Length || ip[0] >> 4 != 6) return DropReason.Malformed;
        int payload = BinaryPrimitives.ReadUInt16BigEndian(ip[4..]);
        // A zero payload length with a hop-by-hop header is a jumbogram (RFC 2675); only links with MTU > 65575
        // carry them, and our buffers hold 9 KiB, so they are malformed here as everywhere on Ethernet.
        int total = Ipv6Header.Length + payload;
        if (payload == 0 && ip[6] == IpProtocol.HopByHop) return DropReason.Malformed;
        if (total > ip.Length) return DropReason.Malformed;
        // L3Length is 16 bits: a 65,535-byte payload (possible only in a super-frame slot) does not fit with its header.
        if (total > ushort.MaxValue) return DropReason.FrameTooLarge;

        m.L3 = L3Kind.Ipv6;
        m.L3Length = (ushort)total;
        int end = off + total;
        int next = ip[6];
        int cur = off + Ipv6Header.Length;
        for (int n = 0; ; n++)
        {
            if (n > MaxExtensionHeaders) return DropReason.Malformed;
            switch (next)
            {
                case IpProtocol.HopByHop:
                    // RFC 8200 §4.3: hop-by-hop options only ever follow the fixed header directly.
                    if (n != 0) return DropReason.Malformed;
                    goto case IpProtocol.DestinationOptions;
                case IpProtocol.Routing:
                case IpProtocol.DestinationOptions:
                case IpProtocol.Mobility:
                case IpProtocol.Hip:
                case IpProtocol.Shim6:
                {
                    if (cur + 8 > end) return DropReason.Malformed;
                    int len = (frame[cur + 1] + 1) * 8;
                    if (cur + len > end) return DropReason.Malformed;
                    next = frame[cur];
                    cur += len;
                    continue;
                }
                case IpProtocol.Fragment:
                {
                    if (cur + Ipv6FragmentHeader.Length > end) return DropReason.Malformed;
                    ushort offFlags = BinaryPrimitives.ReadUInt16BigEndian(frame[(cur + 2)..]);
                    next = frame[cur];
                    cur += Ipv6FragmentHeader.Length;
                    if ((offFlags & 0xFFF9) == 0) continue; // atomic fragment (RFC 6946): offset 0, M=0
                    m.Flags |= PacketFlags.Fragment;
                    if ((offFlags & 0xFFF8) != 0)
                    {
                        m.Flags |= PacketFlags.NonFirstFragment;
                        m.IpProtocol = (byte)next;
                        return DropReason.None;
                    }
                    continue;
                }
                default:
                    // ESP, AH, No Next Header and anything unknown end the walk cleanly: we route on the fixed
                    // header and leave the rest opaque.
                    m.IpProtocol = (byte)next;
                    return ParseTransport(frame, cur, end, (byte)next, isV6: true, ref m);
            }
        }
    }

    private static DropReason ParseTransport(ReadOnlySpan<byte> frame, int off, int end, byte proto, bool isV6, ref PacketMeta m)
    {
        // A transport header cut short is malformed even in a first fragment: RFC 3128 says to drop tiny first
        // fragments that split the TCP header, since they defeat port-based filtering (RFC 1858).
        m.L4Offset = (ushort)off;
        int avail = end - off;
        switch (proto)
        {
            case IpProtocol.Tcp:
            {
                if (avail < TcpHeader.MinLength) return DropReason.Malformed;
                int hl = (frame[off + 12] >> 4) * 4;
                if (hl < TcpHeader.MinLength || hl > avail) return DropReason.Malformed;
                SetPorts(frame, off, ref m);
                return DropReason.None;
            }
            case IpProtocol.Udp:
            {
                if (avail < UdpHeader.Length) return DropReason.Malformed;
                int ul = BinaryPrimitives.ReadUInt16BigEndian(frame[(off + 4)..]);
                // A fragment's UDP length covers the reassembled datagram, so only check it when unfragmented.
                if ((m.Flags & PacketFlags.Fragment) == 0 && (ul < UdpHeader.Length || ul > avail)) return DropReason.Malformed;
                SetPorts(frame, off, ref m);
                return DropReason.None;
            }
            case IpProtocol.Sctp:
                if (avail < 12) return DropReason.Malformed;
                SetPorts(frame, off, ref m);
                return DropReason.None;
            case IpProtocol.Icmp when !isV6:
                if (avail < IcmpHeader.Length) return DropReason.Malformed;
                m.Flags |= PacketFlags.HasL4;
                if (IcmpHeader.IsV4Error(frame[off])) m.Flags |= PacketFlags.IcmpError;
                return DropReason.None;
            case IpProtocol.Icmpv6 when isV6:
                if (avail < 4) return DropReason.Malformed;
                m.Flags |= PacketFlags.HasL4;
                if (Icmpv6.IsError(frame[off])) m.Flags |= PacketFlags.IcmpError;
                return DropReason.None;
            default:
                return DropReason.None;
        }
    }

    private static void SetPorts(ReadOnlySpan<byte> frame, int off, ref PacketMeta m)
    {
        m.SourcePort = BinaryPrimitives.ReadUInt16BigEndian(frame[off..]);
        m.DestinationPort = BinaryPrimitives.ReadUInt16BigEndian(frame[(off + 2)..]);
        m.Flags |= PacketFlags.HasL4;
    }
}
