using System.Buffers.Binary;
using FastPath.DataPlane.Packets;
using FastPath.DataPlane.Pipeline;

namespace FastPath.DataPlane.Offload;

/// <summary>Receives the segments <see cref="GsoSegmenter"/> cuts, one at a time (the span is reused for the next).</summary>
public interface ISegmentSink
{
    void Emit(ReadOnlySpan<byte> segment);
}

/// <summary>
/// Software GSO, for the egress that cannot take a super-frame (a device without offloads, a kernel without GSO over
/// UDP tunnels): cuts a TCP or UDP (USO) super-frame into packets of at most gso_size payload bytes, as the kernel's
/// tcp_gso_segment / __udp_gso_segment do — headers copied, IPv4 total length, identification (+1 per segment) and
/// header checksum, IPv6 payload length, TCP sequence number (FIN and PSH on the last segment only, CWR on the first),
/// UDP length, and every transport checksum finished. A VXLAN-encapsulated super-frame has its outer IPv4 and UDP
/// headers fixed per segment too (outer UDP checksum 0, as the kernel's UDP_TUNNEL without _CSUM).
/// </summary>
public static class GsoSegmenter
{
    private const byte TcpFin = 0x01, TcpPsh = 0x08, TcpCwr = 0x80;

    /// <summary>Segments the processed super-frame <paramref name="frame"/> (offsets in <paramref name="m"/>).</summary>
    /// <param name="scratch">Room for one segment (headers + gso_size).</param>
    /// <returns>The segments emitted; 0 when the super-frame is not one this can cut (nothing emitted).</returns>
    public static int Segment<TSink>(ReadOnlySpan<byte> frame, in PacketMeta m, Span<byte> scratch, ref TSink sink)
        where TSink : struct, ISegmentSink
    {
        bool encapsulated = (m.Offload & OffloadFlags.Encapsulated) != 0;
        int l3 = encapsulated ? m.L4Offset + UdpHeader.Length + VxlanHeader.Length + EthernetHeader.Length : m.L3Offset;
        int l4 = ChecksumOffload.TransportStart(in m);
        if (m.Gso == GsoKind.None || m.GsoSize == 0 || l3 + Ipv4Header.MinLength > frame.Length || l4 + UdpHeader.Length > frame.Length || l4 <= l3) return 0;
        bool v4 = frame[l3] >> 4 == 4;
        bool tcp = m.Gso != GsoKind.UdpL4;
        int l4Header = tcp ? (l4 + TcpHeader.MinLength <= frame.Length ? (frame[l4 + 12] >> 4) * 4 : 0) : UdpHeader.Length;
        int ipEnd = l3 + (v4 ? BinaryPrimitives.ReadUInt16BigEndian(frame[(l3 + 2)..]) : Ipv6Header.Length + BinaryPrimitives.ReadUInt16BigEndian(frame[(l3 + 4)..]));
        int headerEnd = l4 + l4Header;
        if (l4Header < UdpHeader.Length || headerEnd > ipEnd || ipEnd > frame.Length || headerEnd + m.GsoSize > scratch.Length) return 0;

        int payload = ipEnd - headerEnd;
        uint seq = tcp ? BinaryPrimitives.ReadUInt32BigEndian(frame[(l4 + 4)..]) : 0;
        ushort innerId = v4 ? BinaryPrimitives.ReadUInt16BigEndian(frame[(l3 + 4)..]) : (ushort)0;
        ushort outerId = encapsulated ? BinaryPrimitives.ReadUInt16BigEndian(frame[(m.L3Offset + 4)..]) : (ushort)0;
        byte flags = tcp ? frame[l4 + 13] : (byte)0;
        int count = 0;
        for (int done = 0; done < payload || (payload == 0 && count == 0); count++)
        {
            int chunk = Math.Min(m.GsoSize, payload - done);
            bool last = done + chunk >= payload;
            int length = headerEnd + chunk;
            var s = scratch[..length];
            frame[..headerEnd].CopyTo(s);
            frame.Slice(headerEnd + done, chunk).CopyTo(s[headerEnd..]);

            if (v4)
            {
                BinaryPrimitives.WriteUInt16BigEndian(s[(l3 + 2)..], (ushort)(length - l3));
                BinaryPrimitives.WriteUInt16BigEndian(s[(l3 + 4)..], (ushort)(innerId + count));
                RefreshIpv4Checksum(s[l3..]);
            }
            else BinaryPrimitives.WriteUInt16BigEndian(s[(l3 + 4)..], (ushort)(length - l3 - Ipv6Header.Length));

            int csumAt;
            if (tcp)
            {
                BinaryPrimitives.WriteUInt32BigEndian(s[(l4 + 4)..], seq + (uint)done);
                byte f = flags;
                if (!last) f = (byte)(f & ~(TcpFin | TcpPsh));
                if (count > 0) f = (byte)(f & ~TcpCwr);
                s[l4 + 13] = f;
                csumAt = l4 + 16;
            }
            else
            {
                BinaryPrimitives.WriteUInt16BigEndian(s[(l4 + 4)..], (ushort)(length - l4));
                csumAt = l4 + 6;
            }
            BinaryPrimitives.WriteUInt16BigEndian(s[csumAt..], 0);
            int l4Length = length - l4;
            byte protocol = tcp ? IpProtocol.Tcp : IpProtocol.Udp;
            uint pseudo = v4
                ? Checksum.PseudoHeaderV4(BinaryPrimitives.ReadUInt32BigEndian(s[(l3 + 12)..]), BinaryPrimitives.ReadUInt32BigEndian(s[(l3 + 16)..]), protocol, l4Length)
                : Checksum.PseudoHeaderV6(s.Slice(l3 + 8, 16), s.Slice(l3 + 24, 16), protocol, l4Length);
            ushort csum = Checksum.Fold(Checksum.Sum(s[l4..], pseudo));
            BinaryPrimitives.WriteUInt16BigEndian(s[csumAt..], !tcp && csum == 0 ? (ushort)0xFFFF : csum);

            if (encapsulated)
            {
                int outer = m.L3Offset;
                BinaryPrimitives.WriteUInt16BigEndian(s[(outer + 2)..], (ushort)(length - outer));
                BinaryPrimitives.WriteUInt16BigEndian(s[(outer + 4)..], (ushort)(outerId + count));
                RefreshIpv4Checksum(s[outer..]);
                BinaryPrimitives.WriteUInt16BigEndian(s[(m.L4Offset + 4)..], (ushort)(length - m.L4Offset));
                BinaryPrimitives.WriteUInt16BigEndian(s[(m.L4Offset + 6)..], 0);
            }
            sink.Emit(s);
            done += chunk;
        }
        return count;
    }

    private static void RefreshIpv4Checksum(Span<byte> ip)
    {
        int ihl = (ip[0] & 0x0F) * 4;
        BinaryPrimitives.WriteUInt16BigEndian(ip[10..], 0);
        BinaryPrimitives.WriteUInt16BigEndian(ip[10..], Checksum.Ipv4Header(ip[..ihl]));
    }
}
