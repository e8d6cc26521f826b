using System.Buffers.Binary;
using FastPath.DataPlane.Packets;

namespace FastPath.DataPlane.Ports;

/// <summary>
/// Well-formed frames for the traffic generator and benchmarks (checksums correct, so the engine takes its normal
/// path). Built once, before anything is measured.
/// </summary>
public static class SyntheticFrames
{
    public const ushort VxlanPort = 8472;
    public static readonly MacAddress Gateway = new(0xEEEE_EEEE_EEEEUL);
    public static readonly MacAddress Client = new(0x0242_0AF4_010AUL);

    public static byte[] Ipv4Tcp(ushort sport, ushort dport, int frameLength, uint src = 0x0AF4_010A, uint dst = 0x0AF4_010B,
        byte tcpFlags = TcpHeader.Ack, MacAddress? source = null, MacAddress? destination = null)
    {
        var f = new byte[Math.Max(frameLength, 54)];
        EthernetHeader.Write(f, destination ?? Gateway, source ?? Client, EtherType.Ipv4);
        int ipLen = f.Length - 14;
        Ipv4Header.Write(f.AsSpan(14), 0, (ushort)ipLen, 1, Ipv4Header.FlagDontFragment, 64, IpProtocol.Tcp, src, dst);
        var tcp = f.AsSpan(34);
        BinaryPrimitives.WriteUInt16BigEndian(tcp, sport);
        BinaryPrimitives.WriteUInt16BigEndian(tcp[2..], dport);
        tcp[12] = 0x50;
        tcp[13] = tcpFlags;
        BinaryPrimitives.WriteUInt16BigEndian(tcp[16..], Checksum.TransportV4(src, dst, IpProtocol.Tcp, tcp[..(ipLen - 20)]));
        return f;
    }

    public static byte[] Ipv6Udp(ushort sport, ushort dport, int frameLength)
    {
        var f = new byte[Math.Max(frameLength, 62)];
        EthernetHeader.Write(f, Gateway, Client, EtherType.Ipv6);
        int payload = f.Length - 54;
        var src = new IpAddr(new UInt128(0xFD00_0010_0244_0001UL, 0xA));
        var dst = new IpAddr(new UInt128(0xFD00_0010_0244_0001UL, 0xB));
        Ipv6Header.Write(f.AsSpan(14), 0, (ushort)payload, IpProtocol.Udp, 64, src, dst);
        var udp = f.AsSpan(54);
        BinaryPrimitives.WriteUInt16BigEndian(udp, sport);
        BinaryPrimitives.WriteUInt16BigEndian(udp[2..], dport);
        BinaryPrimitives.WriteUInt16BigEndian(udp[4..], (ushort)payload);
        BinaryPrimitives.WriteUInt16BigEndian(udp[6..], Checksum.TransportV6(f.AsSpan(22, 16), f.AsSpan(38, 16), IpProtocol.Udp, udp[..payload]));
        return f;
    }

    /// <summary>
    /// Wraps an inner frame in Ethernet/IPv4/UDP(8472)/VXLAN(VNI 1) from another node (<paramref name="from"/>) to this
    /// one; <paramref name="sourcePort"/> is the sender's flow-hash entropy (RFC 7348 §5).
    /// </summary>
    public static byte[] Vxlan(byte[] inner, uint from = 0xC0A8_380C, ushort sourcePort = 50000)
    {
        var f = new byte[50 + inner.Length];
        EthernetHeader.Write(f, new MacAddress(0x0200_0000_0101UL), new MacAddress(0x0200_0000_0201UL), EtherType.Ipv4);
        Ipv4Header.Write(f.AsSpan(14), 0, (ushort)(f.Length - 14), 0, 0, 64, IpProtocol.Udp, from, 0xC0A8_380B);
        var udp = f.AsSpan(34);
        BinaryPrimitives.WriteUInt16BigEndian(udp, sourcePort);
        BinaryPrimitives.WriteUInt16BigEndian(udp[2..], VxlanPort);
        BinaryPrimitives.WriteUInt16BigEndian(udp[4..], (ushort)(f.Length - 34));
        VxlanHeader.Write(f.AsSpan(42), 1);
        inner.CopyTo(f, 50);
        return f;
    }
}
