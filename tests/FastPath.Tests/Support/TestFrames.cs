using System.Buffers.Binary;
using System.Net;

namespace FastPath.Tests.Support;

/// <summary>
/// Builds frames for tests byte by byte, with its own slow checksum, so the engine's code is never its own oracle.
/// </summary>
public static class TestFrames
{
    public static readonly byte[] GatewayMac = Mac("ee:ee:ee:ee:ee:ee");

    public static byte[] Mac(string text) => text.Split(':').Select(h => Convert.ToByte(h, 16)).ToArray();
    public static byte[] Ip(string text) => IPAddress.Parse(text).GetAddressBytes();

    public static byte[] Ethernet(byte[] dst, byte[] src, ushort type, byte[] payload, params ushort[] vlanTags)
    {
        var f = new List<byte>();
        f.AddRange(dst);
        f.AddRange(src);
        foreach (var tpid in vlanTags)
        {
            f.Add((byte)(tpid >> 8)); f.Add((byte)tpid);
            f.Add(0x00); f.Add(0x64); // VLAN 100
        }
        f.Add((byte)(type >> 8)); f.Add((byte)type);
        f.AddRange(payload);
        return f.ToArray();
    }

    public static byte[] Ipv4(string src, string dst, byte proto, byte[] l4, byte ttl = 64, ushort flags = 0x4000, byte[]? options = null)
    {
        int ihl = 20 + (options?.Length ?? 0);
        var h = new byte[ihl + l4.Length];
        h[0] = (byte)(0x40 | (ihl / 4));
        BinaryPrimitives.WriteUInt16BigEndian(h.AsSpan(2), (ushort)h.Length);
        BinaryPrimitives.WriteUInt16BigEndian(h.AsSpan(4), 0x1234);
        BinaryPrimitives.WriteUInt16BigEndian(h.AsSpan(6), flags);
        h[8] = ttl;
        h[9] = proto;
        Ip(src).CopyTo(h, 12);
        Ip(dst).CopyTo(h, 16);
        options?.CopyTo(h, 20);
        BinaryPrimitives.WriteUInt16BigEndian(h.AsSpan(10), SlowChecksum(h.AsSpan(0, ihl)));
        l4.CopyTo(h, ihl);
        FixTransportChecksum(h.AsSpan(ihl), proto, Ip(src), Ip(dst));
        return h;
    }

    public static byte[] Ipv6(string src, string dst, byte nextHeader, byte[] payload, byte hopLimit = 64, byte transportProto = 0, int transportOffset = 0)
    {
        var h = new byte[40 + payload.Length];
        h[0] = 0x60;
        BinaryPrimitives.WriteUInt16BigEndian(h.AsSpan(4), (ushort)payload.Length);
        h[6] = nextHeader;
        h[7] = hopLimit;
        Ip(src).CopyTo(h, 8);
        Ip(dst).CopyTo(h, 24);
        payload.CopyTo(h, 40);
        byte proto = transportProto == 0 ? nextHeader : transportProto;
        FixTransportChecksum(h.AsSpan(40 + transportOffset), proto, Ip(src), Ip(dst));
        return h;
    }

    public static byte[] Tcp(ushort sport, ushort dport, byte flags = 0x02, int payload = 0)
    {
        var t = new byte[20 + payload];
        BinaryPrimitives.WriteUInt16BigEndian(t, sport);
        BinaryPrimitives.WriteUInt16BigEndian(t.AsSpan(2), dport);
        BinaryPrimitives.WriteUInt32BigEndian(t.AsSpan(4), 1000);
        t[12] = 0x50;
        t[13] = flags;
        BinaryPrimitives.WriteUInt16BigEndian(t.AsSpan(14), 65535);
        for (int i = 0; i < payload; i++) t[20 + i] = (byte)i;
        return t;
    }

    public static byte[] Udp(ushort sport, ushort dport, int payload = 8)
    {
        var u = new byte[8 + payload];
        BinaryPrimitives.WriteUInt16BigEndian(u, sport);
        BinaryPrimitives.WriteUInt16BigEndian(u.AsSpan(2), dport);
        BinaryPrimitives.WriteUInt16BigEndian(u.AsSpan(4), (ushort)u.Length);
        for (int i = 0; i < payload; i++) u[8 + i] = (byte)('a' + i % 26);
        return u;
    }

    public static byte[] IcmpEcho(byte type = 8, ushort id = 7, ushort seq = 1)
    {
        var e = new byte[16];
        e[0] = type;
        BinaryPrimitives.WriteUInt16BigEndian(e.AsSpan(4), id);
        BinaryPrimitives.WriteUInt16BigEndian(e.AsSpan(6), seq);
        return e;
    }

    public static byte[] Arp(ushort op, byte[] sha, string spa, byte[] tha, string tpa)
    {
        var a = new byte[28];
        a[1] = 1; a[2] = 0x08; a[4] = 6; a[5] = 4; a[7] = (byte)op;
        sha.CopyTo(a, 8); Ip(spa).CopyTo(a, 14); tha.CopyTo(a, 18); Ip(tpa).CopyTo(a, 24);
        return a;
    }

    /// <summary>A Neighbor Solicitation body (ICMPv6 type 135) for <paramref name="target"/> with a source link-layer option.</summary>
    public static byte[] NeighborSolicitation(string target, byte[] sourceMac)
    {
        var n = new byte[32];
        n[0] = 135;
        Ip(target).CopyTo(n, 8);
        n[24] = 1; n[25] = 1;
        sourceMac.CopyTo(n, 26);
        return n;
    }

    public static ushort SlowChecksum(ReadOnlySpan<byte> data, uint sum = 0)
    {
        for (int i = 0; i < data.Length; i += 2)
            sum += (uint)(data[i] << 8 | (i + 1 < data.Length ? data[i + 1] : 0));
        while (sum > 0xFFFF) sum = (sum & 0xFFFF) + (sum >> 16);
        return (ushort)~sum;
    }

    public static uint PseudoSum(byte[] src, byte[] dst, byte proto, int length)
    {
        uint sum = 0;
        foreach (var a in new[] { src, dst })
            for (int i = 0; i < a.Length; i += 2) sum += (uint)(a[i] << 8 | a[i + 1]);
        return sum + proto + (uint)length;
    }

    private static void FixTransportChecksum(Span<byte> l4, byte proto, byte[] src, byte[] dst)
    {
        int at = proto switch { 6 => 16, 17 => 6, 1 or 58 => 2, _ => -1 };
        if (at < 0 || l4.Length < at + 2) return;
        l4[at] = 0; l4[at + 1] = 0;
        uint pseudo = proto == 1 ? 0 : PseudoSum(src, dst, proto, l4.Length);
        ushort c = SlowChecksum(l4, pseudo);
        if (proto == 17 && c == 0) c = 0xFFFF;
        BinaryPrimitives.WriteUInt16BigEndian(l4[at..], c);
    }

    /// <summary>True when the IPv4 header checksum and the transport checksum of an Ethernet frame verify.</summary>
    public static bool ChecksumsValid(ReadOnlySpan<byte> frame)
    {
        int off = 14;
        ushort type = BinaryPrimitives.ReadUInt16BigEndian(frame[12..]);
        if (type == 0x0800)
        {
            var ip = frame[off..];
            int ihl = (ip[0] & 15) * 4;
            int total = BinaryPrimitives.ReadUInt16BigEndian(ip[2..]);
            if (SlowChecksum(ip[..ihl]) != 0) return false;
            var l4 = ip[ihl..total];
            byte proto = ip[9];
            uint pseudo = proto == 1 ? 0 : PseudoSum(ip.Slice(12, 4).ToArray(), ip.Slice(16, 4).ToArray(), proto, l4.Length);
            return SlowChecksum(l4, pseudo) == 0;
        }
        if (type == 0x86DD)
        {
            var ip = frame[off..];
            int plen = BinaryPrimitives.ReadUInt16BigEndian(ip[4..]);
            byte proto = ip[6];
            var l4 = ip.Slice(40, plen);
            return SlowChecksum(l4, PseudoSum(ip.Slice(8, 16).ToArray(), ip.Slice(24, 16).ToArray(), proto, l4.Length)) == 0;
        }
        return true;
    }
}
