using System.Buffers.Binary;
using System.Runtime.CompilerServices;
using FastPath.DataPlane.Packets;
using FastPath.DataPlane.Pipeline;
using FastPath.DataPlane.Telemetry;

namespace FastPath.DataPlane.Overlay;

/// <summary>
/// VXLAN (RFC 7348) encapsulation and decapsulation in place, Flannel-compatible: outer Ethernet/IPv4/UDP/VXLAN in
/// the slot's headroom in front of the inner frame, so neither direction copies the packet.
/// </summary>
public static class VxlanTunnel
{
    /// <summary>
    /// Outer Ethernet + IPv4 + UDP + VXLAN: 50 bytes, which is also what the encapsulation adds to the inner L3 packet
    /// against the uplink's L3 MTU (outer IPv4 + UDP + VXLAN + the inner Ethernet header).
    /// </summary>
    public const int Overhead = EthernetHeader.Length + Ipv4Header.MinLength + UdpHeader.Length + VxlanHeader.Length;

    private const ushort SourcePortMin = 49152;
    internal const byte OuterTtl = 64;

    /// <summary>
    /// Encapsulates the packet (whose inner Ethernet header must already be in place at <see cref="PacketMeta.Offset"/>)
    /// towards <paramref name="remote"/>. The outer UDP source port is a hash of the inner flow folded into
    /// 49152–65535, so one flow keeps one port (ECMP and RSS on the underlay keep its packets in order) as the Linux
    /// vxlan driver does with udp_flow_src_port. The outer UDP checksum is computed, as a Linux vxlan device created
    /// with default settings does ("udpcsum"; checked against the kernel by VxlanKernelDifferentialTests); DF is
    /// clear so the underlay may fragment, as with Linux's default "df unset".
    /// </summary>
    public static void Encapsulate(Span<byte> arena, ref PacketMeta m, uint localUnderlay, uint remoteUnderlay,
        MacAddress localMac, MacAddress remoteMac, ushort udpPort, uint vni, ushort ipId)
    {
        var template = VxlanTemplate.Create(localUnderlay, remoteUnderlay, localMac, remoteMac, udpPort, vni);
        Encapsulate(arena, ref m, in template, ipId);
    }

    /// <summary>
    /// <see cref="Encapsulate(Span{byte}, ref PacketMeta, uint, uint, MacAddress, MacAddress, ushort, uint, ushort)"/>
    /// with the outer headers prebuilt for the remote node (<see cref="VxlanTemplate"/>): one copy, then the fields that
    /// vary per packet, each checksum finished from its precomputed partial sum.
    /// </summary>
    public static void Encapsulate(Span<byte> arena, ref PacketMeta m, in VxlanTemplate template, ushort ipId)
    {
        int innerStart = m.Offset;
        int innerLength = m.Length;
        ushort sourcePort = (ushort)(SourcePortMin + (FlowHash(arena.Slice(innerStart, innerLength), in m) % (65536 - SourcePortMin)));

        int start = innerStart - Overhead;
        var outer = arena.Slice(start, Overhead);
        ((ReadOnlySpan<byte>)template.Bytes).CopyTo(outer);
        int ipLength = Overhead - EthernetHeader.Length + innerLength;
        int udpLength = ipLength - Ipv4Header.MinLength;
        var ip = outer[EthernetHeader.Length..];
        BinaryPrimitives.WriteUInt16BigEndian(ip[2..], (ushort)ipLength);
        BinaryPrimitives.WriteUInt16BigEndian(ip[4..], ipId);
        BinaryPrimitives.WriteUInt16BigEndian(ip[10..], Checksum.Fold(template.IpSum + (uint)ipLength + ipId));
        var udp = ip[Ipv4Header.MinLength..];
        BinaryPrimitives.WriteUInt16BigEndian(udp, sourcePort);
        BinaryPrimitives.WriteUInt16BigEndian(udp[4..], (ushort)udpLength);
        int udpStart = start + EthernetHeader.Length + Ipv4Header.MinLength;
        // A super-frame's outer checksum would differ per segment: it goes as 0 (allowed over IPv4, RFC 768), as the
        // kernel's GSO over UDP tunnels without _CSUM leaves it. (The template's checksum field is 0.)
        if (m.Gso == GsoKind.None)
        {
            // The constant words, the pseudo-header's and the header's UDP length, the source port; then the rest.
            uint known = template.UdpSum + 2 * (uint)udpLength + sourcePort;
            ushort checksum = OuterChecksum(arena, in m, udpStart, innerStart, udpLength, known);
            BinaryPrimitives.WriteUInt16BigEndian(udp[6..], checksum);
        }
        if ((m.Offload & OffloadFlags.ChecksumPartial) != 0)
        {
            // The offloaded checksum stays the inner packet's: remember where its header is.
            m.Offload |= OffloadFlags.Encapsulated;
            m.ChecksumStart = (ushort)(m.L4Offset + Overhead);
        }

        DescribeOuter(ref m, start, ipLength, sourcePort, BinaryPrimitives.ReadUInt16BigEndian(udp[2..]));
    }

    /// <summary>The metadata of the encapsulated packet: outer IPv4 and UDP from <paramref name="start"/>.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void DescribeOuter(ref PacketMeta m, int start, int ipLength, ushort sourcePort, ushort destinationPort)
    {
        m.Offset = start;
        m.Length = EthernetHeader.Length + ipLength;
        m.L3 = L3Kind.Ipv4;
        m.L3Offset = EthernetHeader.Length;
        m.L4Offset = EthernetHeader.Length + Ipv4Header.MinLength;
        m.L3Length = (ushort)ipLength;
        m.IpProtocol = IpProtocol.Udp;
        m.SourcePort = sourcePort;
        m.DestinationPort = destinationPort;
        m.Flags = PacketFlags.HasL4;
    }

    /// <summary>
    /// <see cref="Encapsulate(Span{byte}, ref PacketMeta, in VxlanTemplate, ushort)"/> over a raw pointer for what
    /// <see cref="CanEncapsulatePlain4"/> admits: a whole IPv4 TCP or UDP packet whose untagged Ethernet header and
    /// 20-byte IPv4 header, its checksum valid (the parsers verify it, the TTL and NAT updates keep it), start at
    /// <paramref name="frame"/>, with the headroom in front. The same bytes and metadata: one 50-byte copy, the
    /// varying fields, and the outer UDP checksum from the template's constant part, the inner Ethernet header and the
    /// inner segment's pseudo-header — the inner IPv4 header, valid, sums to −0 and is left out.
    /// </summary>
    internal static unsafe void EncapsulatePlain4(byte* frame, ref PacketMeta m, in VxlanTemplate template, ushort ipId)
    {
        byte* ip = frame + EthernetHeader.Length;
        uint src = Big(Unsafe.ReadUnaligned<uint>(ip + 12));
        uint dst = Big(Unsafe.ReadUnaligned<uint>(ip + 16));
        byte protocol = m.IpProtocol;
        int innerLength = m.Length;
        ushort sourcePort = (ushort)(SourcePortMin + FlowHashV4(src, dst, m.SourcePort, m.DestinationPort, protocol) % (65536 - SourcePortMin));

        byte* outer = frame - Overhead;
        Unsafe.CopyBlockUnaligned(ref *outer, ref Unsafe.AsRef(in template.Bytes[0]), Overhead);
        int ipLength = Overhead - EthernetHeader.Length + innerLength;
        int udpLength = ipLength - Ipv4Header.MinLength;
        byte* oip = outer + EthernetHeader.Length;
        WriteBig(oip + 2, (ushort)ipLength);
        WriteBig(oip + 4, ipId);
        WriteBig(oip + 10, Checksum.Fold(template.IpSum + (uint)ipLength + ipId));
        byte* udp = oip + Ipv4Header.MinLength;
        WriteBig(udp, sourcePort);
        WriteBig(udp + 4, (ushort)udpLength);
        uint w0 = Big(Unsafe.ReadUnaligned<uint>(frame)), w1 = Big(Unsafe.ReadUnaligned<uint>(frame + 4)), w2 = Big(Unsafe.ReadUnaligned<uint>(frame + 8));
        uint ethernet = (w0 >> 16) + (w0 & 0xFFFF) + (w1 >> 16) + (w1 & 0xFFFF) + (w2 >> 16) + (w2 & 0xFFFF) + Big(Unsafe.ReadUnaligned<ushort>(frame + 12));
        uint segment = (ushort)~Checksum.FoldNoComplement(Checksum.PseudoHeaderV4(src, dst, protocol, m.L3Length - Ipv4Header.MinLength));
        WriteBig(udp + 6, Checksum.UdpTransmitted(Checksum.Fold(template.UdpSum + 2 * (uint)udpLength + sourcePort + ethernet + segment)));

        DescribeOuter(ref m, m.Offset - Overhead, ipLength, sourcePort, Big(Unsafe.ReadUnaligned<ushort>(udp + 2)));
    }

    /// <summary>
    /// True when <see cref="EncapsulatePlain4"/> may encapsulate the packet <paramref name="frame"/> holds (its L2
    /// rewritten, so its IPv4 header follows an untagged Ethernet header): IPv4 with a 20-byte header, a whole TCP or
    /// UDP segment (a UDP checksum of 0 makes the outer checksum sum the datagram), no GSO or offloads, the headroom.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static unsafe bool CanEncapsulatePlain4(byte* frame, in PacketMeta m) =>
        m.L3 == L3Kind.Ipv4 && m.L4Offset == EthernetHeader.Length + Ipv4Header.MinLength && m.Offset >= Overhead
        && m.Gso == GsoKind.None && m.Offload == OffloadFlags.None
        && (m.Flags & (PacketFlags.HasL4 | PacketFlags.Fragment)) == PacketFlags.HasL4
        && (m.IpProtocol == IpProtocol.Tcp
            || (m.IpProtocol == IpProtocol.Udp && Unsafe.ReadUnaligned<ushort>(frame + EthernetHeader.Length + Ipv4Header.MinLength + 6) != 0));

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static unsafe void WriteBig(byte* at, ushort value) => Unsafe.WriteUnaligned(at, Big(value));
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static uint Big(uint v) => BitConverter.IsLittleEndian ? BinaryPrimitives.ReverseEndianness(v) : v;
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static ushort Big(ushort v) => BitConverter.IsLittleEndian ? BinaryPrimitives.ReverseEndianness(v) : v;

    /// <summary>
    /// The outer UDP checksum by local checksum offload (Linux Documentation/networking/checksum-offloads.rst): when
    /// the inner transport checksum is valid, the inner segment sums to the complement of its pseudo-header, so
    /// only the headers in front of it need summing — O(headers), not O(packet). Packets without a usable inner
    /// checksum (fragments, UDP/IPv4 with checksum 0, other protocols) are summed in full. A partial inner checksum
    /// (offloaded, to be finished downstream) counts as valid: the sum is what it will be once finished, as the
    /// kernel's lco_csum assumes.
    /// </summary>
    private static ushort OuterChecksum(ReadOnlySpan<byte> arena, in PacketMeta inner, int udpStart, int innerStart, int udpLength, uint outerHeaders)
    {
        int innerL3 = innerStart + inner.L3Offset;
        int innerL4 = innerStart + inner.L4Offset;
        int l4Length = inner.L3Length - (inner.L4Offset - inner.L3Offset);
        bool whole = (inner.Flags & (PacketFlags.HasL4 | PacketFlags.Fragment)) == PacketFlags.HasL4;
        uint segment;
        if (whole && inner.IpProtocol == IpProtocol.Icmp && inner.L3 == L3Kind.Ipv4)
        {
            segment = 0xFFFF; // ICMPv4 has no pseudo-header: a valid message sums to -0
        }
        else if (whole && inner.IpProtocol is IpProtocol.Tcp or IpProtocol.Udp or IpProtocol.Icmpv6
                 && !(inner.IpProtocol == IpProtocol.Udp && inner.L3 == L3Kind.Ipv4 && (inner.Offload & OffloadFlags.ChecksumPartial) == 0
                      && BinaryPrimitives.ReadUInt16BigEndian(arena[(innerL4 + 6)..]) == 0))
        {
            var ip = arena[innerL3..];
            uint pseudo = inner.L3 == L3Kind.Ipv4
                ? Checksum.PseudoHeaderV4(BinaryPrimitives.ReadUInt32BigEndian(ip[12..]), BinaryPrimitives.ReadUInt32BigEndian(ip[16..]), inner.IpProtocol, l4Length)
                : Checksum.PseudoHeaderV6(ip.Slice(8, 16), ip.Slice(24, 16), inner.IpProtocol, l4Length);
            segment = (ushort)~Checksum.FoldNoComplement(pseudo);
        }
        else
        {
            // Nothing to take for granted: sum the whole datagram (its checksum field is still 0) and the pseudo-header.
            uint pseudo = Checksum.PseudoHeaderV4(BinaryPrimitives.ReadUInt32BigEndian(arena[(udpStart - 8)..]),
                BinaryPrimitives.ReadUInt32BigEndian(arena[(udpStart - 4)..]), IpProtocol.Udp, udpLength);
            return Checksum.UdpTransmitted(Checksum.Fold(Checksum.Sum(arena.Slice(udpStart, udpLength), pseudo)));
        }
        // The outer headers in front of the inner frame are known; sum the inner headers in front of its checksum.
        uint sum = Checksum.Sum(arena[innerStart..innerL4], outerHeaders) + segment;
        return Checksum.UdpTransmitted(Checksum.Fold(sum));
    }

    /// <summary>
    /// True when the packet is VXLAN addressed to this node's tunnel endpoint (outer IPv4 destination and UDP port).
    /// </summary>
    public static bool IsForUs(ReadOnlySpan<byte> arena, in PacketMeta m, uint localUnderlay, ushort udpPort) =>
        m.L3 == L3Kind.Ipv4 && m.IpProtocol == IpProtocol.Udp && m.DestinationPort == udpPort
        && (m.Flags & (PacketFlags.HasL4 | PacketFlags.Fragment)) == PacketFlags.HasL4
        && localUnderlay != 0
        && BinaryPrimitives.ReadUInt32BigEndian(arena[(m.Offset + m.L3Offset + 16)..]) == localUnderlay;

    /// <summary>
    /// Strips the outer headers and parses the inner frame into <paramref name="m"/> (timestamp, input index and
    /// ingress port kept). A VXLAN header without the I flag is malformed; a VNI other than ours is dropped, as the
    /// kernel does for a VNI no vxlan device owns.
    /// </summary>
    public static DropReason Decapsulate(Span<byte> arena, ref PacketMeta m, uint vni)
    {
        int vx = m.Offset + m.L4Offset + UdpHeader.Length;
        int end = m.Offset + m.L3Offset + m.L3Length;
        if (vx + VxlanHeader.Length + EthernetHeader.Length > end) return DropReason.Malformed;
        var header = new VxlanHeader(arena.Slice(vx, VxlanHeader.Length));
        if (!header.VniValid) return DropReason.Malformed;
        if (header.Vni != vni) return DropReason.UnknownVni;

        int innerStart = vx + VxlanHeader.Length;
        var outer = m;
        m = default;
        (m.Timestamp, m.InputIndex, m.IngressPort) = (outer.Timestamp, outer.InputIndex, outer.IngressPort);
        // Offloads travel with the inner packet; its partial checksum's offset moves with the frame start. A partial
        // checksum that was the outer UDP header's own (not Encapsulated) goes with the outer headers.
        m.CopyOffloads(in outer);
        if ((outer.Offload & OffloadFlags.Encapsulated) == 0 && outer.Gso == GsoKind.None) m.Offload &= ~OffloadFlags.ChecksumPartial;
        m.Offload &= ~OffloadFlags.Encapsulated;
        m.ChecksumStart = (ushort)(outer.ChecksumStart - (innerStart - outer.Offset));
        m.EgressPort = PortIndex.None;
        m.Offset = innerStart;
        m.Length = end - innerStart;
        return PacketParser.Parse(arena.Slice(innerStart, m.Length), ref m);
    }

    /// <summary>
    /// A symmetric hash of the inner flow (FNV-1a over its two (address, port) ends in a fixed order, protocol, then
    /// mixed): both directions of a flow get the same outer source port on every node (no per-process seed), so the
    /// outer tuples of a request and its reply are reverses of each other. A multi-queue TAP's flow steering (which
    /// hashes symmetrically) then hands the reply to the worker whose queue sent the request, which holds the
    /// connection's NAT state.
    /// </summary>
    /// <remarks>Inlined with its IPv4 case into <see cref="Encapsulate(Span{byte}, ref PacketMeta, in VxlanTemplate, ushort)"/>:
    /// as a call it was 7 % of an encapsulation profile once the engine inlined the encapsulation (issue 16).</remarks>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static uint FlowHash(ReadOnlySpan<byte> frame, in PacketMeta m) => m.L3 == L3Kind.Ipv4
        ? FlowHashV4(BinaryPrimitives.ReadUInt32BigEndian(frame[(m.L3Offset + 12)..]), BinaryPrimitives.ReadUInt32BigEndian(frame[(m.L3Offset + 16)..]),
            m.SourcePort, m.DestinationPort, m.IpProtocol)
        : FlowHashV6(frame[m.L3Offset..], in m);

    private static uint FlowHashV6(ReadOnlySpan<byte> l3, in PacketMeta m)
    {
        var a = l3.Slice(8, 16);
        var b = l3.Slice(24, 16);
        ushort pa = m.SourcePort, pb = m.DestinationPort;
        int order = a.SequenceCompareTo(b);
        if (order > 0 || (order == 0 && pa > pb))
        {
            var t = a;
            a = b;
            b = t;
            (pa, pb) = (pb, pa);
        }
        ulong h = 0xCBF2_9CE4_8422_2325UL;
        foreach (byte x in a) h = (h ^ x) * 0x0000_0100_0000_01B3UL;
        foreach (byte x in b) h = (h ^ x) * 0x0000_0100_0000_01B3UL;
        h ^= ((ulong)m.IpProtocol << 32) | ((ulong)pa << 16) | pb;
        h *= 0x9E37_79B9_7F4A_7C15UL;
        return (uint)(h >> 32);
    }

    /// <summary><see cref="FlowHashV6"/>'s byte-wise hash for IPv4, the same value: the byte-wise order of two 4-byte addresses is their
    /// order as big-endian integers, and FNV-1a runs over their bytes high to low.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static uint FlowHashV4(uint a, uint b, ushort pa, ushort pb, byte protocol)
    {
        if (a > b || (a == b && pa > pb))
        {
            (a, b) = (b, a);
            (pa, pb) = (pb, pa);
        }
        ulong h = 0xCBF2_9CE4_8422_2325UL;
        h = (h ^ (a >> 24)) * 0x0000_0100_0000_01B3UL;
        h = (h ^ ((a >> 16) & 0xFF)) * 0x0000_0100_0000_01B3UL;
        h = (h ^ ((a >> 8) & 0xFF)) * 0x0000_0100_0000_01B3UL;
        h = (h ^ (a & 0xFF)) * 0x0000_0100_0000_01B3UL;
        h = (h ^ (b >> 24)) * 0x0000_0100_0000_01B3UL;
        h = (h ^ ((b >> 16) & 0xFF)) * 0x0000_0100_0000_01B3UL;
        h = (h ^ ((b >> 8) & 0xFF)) * 0x0000_0100_0000_01B3UL;
        h = (h ^ (b & 0xFF)) * 0x0000_0100_0000_01B3UL;
        h ^= ((ulong)protocol << 32) | ((ulong)pa << 16) | pb;
        h *= 0x9E37_79B9_7F4A_7C15UL;
        return (uint)(h >> 32);
    }
}
