using System.Buffers.Binary;
using System.Globalization;
using FastPath.DataPlane.Packets;

namespace FastPath.Trace;

/// <summary>
/// A packet described on the command line, tcpdump-style: <c>PROTO SRC[:PORT] &gt; DST[:PORT] [OPTION...]</c>, e.g.
/// <c>tcp 10.244.1.5:40000 &gt; 10.96.0.10:53</c>, <c>udp [fd00::5]:5353 &gt; [fd00:10:96::a]:53</c>,
/// <c>icmp 10.244.1.5 &gt; 10.244.2.7 ttl 1</c>. Options: <c>ttl N</c>, <c>size N</c> (payload bytes), <c>df</c>, and
/// TCP flags <c>syn ack fin rst psh</c> (default <c>syn</c>). ICMP means an echo request (ICMPv6 for IPv6 addresses).
/// </summary>
public sealed record PacketSpec(byte Protocol, IpAddr Source, ushort SourcePort, IpAddr Destination, ushort DestinationPort,
    byte Ttl, int PayloadSize, bool DontFragment, byte TcpFlags)
{
    public static bool TryParse(string text, out PacketSpec spec, out string problem)
    {
        spec = null!;
        var t = text.Split((char[]?)null, StringSplitOptions.RemoveEmptyEntries);
        if (t.Length < 4 || t[2] != ">")
        {
            problem = $"\"{text}\": expected PROTO SRC[:PORT] > DST[:PORT] [ttl N] [size N] [df] [syn|ack|fin|rst|psh...]";
            return false;
        }
        byte proto;
        switch (t[0].ToLowerInvariant())
        {
            case "tcp": proto = IpProtocol.Tcp; break;
            case "udp": proto = IpProtocol.Udp; break;
            case "icmp" or "icmp6" or "ping": proto = IpProtocol.Icmp; break;
            default:
                problem = $"\"{t[0]}\": protocol must be tcp, udp or icmp";
                return false;
        }
        bool ports = proto != IpProtocol.Icmp;
        if (!TryEndpoint(t[1], ports, out var src, out ushort sport, out problem)
            || !TryEndpoint(t[3], ports, out var dst, out ushort dport, out problem)) return false;
        if (src.IsV4 != dst.IsV4)
        {
            problem = $"\"{text}\": source and destination must be the same address family";
            return false;
        }
        if (proto == IpProtocol.Icmp && !src.IsV4) proto = IpProtocol.Icmpv6;
        byte ttl = 64, flags = 0;
        int size = 0;
        bool df = false;
        for (int i = 4; i < t.Length; i++)
        {
            switch (t[i].ToLowerInvariant())
            {
                case "ttl" or "hlim" when i + 1 < t.Length && byte.TryParse(t[i + 1], CultureInfo.InvariantCulture, out ttl): i++; break;
                case "size" when i + 1 < t.Length && int.TryParse(t[i + 1], CultureInfo.InvariantCulture, out size) && size is >= 0 and <= 9000: i++; break;
                case "df": df = true; break;
                case "syn": flags |= TcpHeader.Syn; break;
                case "ack": flags |= TcpHeader.Ack; break;
                case "fin": flags |= TcpHeader.Fin; break;
                case "rst": flags |= TcpHeader.Rst; break;
                case "psh": flags |= TcpHeader.Psh; break;
                default:
                    problem = $"\"{t[i]}\": unknown option (ttl N, size N up to 9000, df, syn, ack, fin, rst, psh)";
                    return false;
            }
        }
        if (flags == 0) flags = TcpHeader.Syn;
        spec = new PacketSpec(proto, src, sport, dst, dport, ttl, size, df, flags);
        problem = "";
        return true;
    }

    /// <summary>"10.0.0.1:80", "[fd00::1]:80", or a bare address when the protocol has no ports.</summary>
    private static bool TryEndpoint(string text, bool ports, out IpAddr address, out ushort port, out string problem)
    {
        port = 0;
        problem = "";
        string host = text, portText = "";
        if (text.StartsWith('['))
        {
            int close = text.IndexOf(']');
            host = close > 0 ? text[1..close] : text;
            portText = close > 0 && close + 1 < text.Length && text[close + 1] == ':' ? text[(close + 2)..] : "";
        }
        else if (text.Count(c => c == ':') == 1)
        {
            int colon = text.IndexOf(':');
            (host, portText) = (text[..colon], text[(colon + 1)..]);
        }
        if (!IpAddr.TryParse(host, out address))
        {
            problem = $"\"{text}\": not an IP address (IPv6 with a port is written [ADDR]:PORT)";
            return false;
        }
        if (ports != (portText.Length > 0) || (ports && (!ushort.TryParse(portText, CultureInfo.InvariantCulture, out port) || port == 0)))
        {
            problem = ports ? $"\"{text}\": needs a port 1-65535 (ADDR:PORT)" : $"\"{text}\": icmp takes no port";
            return false;
        }
        return true;
    }

    public bool IsV4 => Source.IsV4;

    /// <summary>The Ethernet frame, with correct IPv4 and transport checksums.</summary>
    public byte[] BuildFrame(MacAddress destinationMac, MacAddress sourceMac)
    {
        int l4Header = Protocol switch { IpProtocol.Tcp => TcpHeader.MinLength, IpProtocol.Udp => UdpHeader.Length, _ => IcmpHeader.Length };
        int l4Length = l4Header + PayloadSize;
        int l3Header = IsV4 ? Ipv4Header.MinLength : Ipv6Header.Length;
        var frame = new byte[EthernetHeader.Length + l3Header + l4Length];
        EthernetHeader.Write(frame, destinationMac, sourceMac, IsV4 ? EtherType.Ipv4 : EtherType.Ipv6);
        var ip = frame.AsSpan(EthernetHeader.Length);
        var l4 = ip[l3Header..];
        for (int i = 0; i < PayloadSize; i++) l4[l4Header + i] = (byte)('a' + i % 26);
        switch (Protocol)
        {
            case IpProtocol.Tcp:
                BinaryPrimitives.WriteUInt16BigEndian(l4, SourcePort);
                BinaryPrimitives.WriteUInt16BigEndian(l4[2..], DestinationPort);
                BinaryPrimitives.WriteUInt32BigEndian(l4[4..], 1);
                if ((TcpFlags & TcpHeader.Ack) != 0) BinaryPrimitives.WriteUInt32BigEndian(l4[8..], 1);
                l4[12] = 0x50;
                l4[13] = TcpFlags;
                BinaryPrimitives.WriteUInt16BigEndian(l4[14..], 64240);
                break;
            case IpProtocol.Udp:
                BinaryPrimitives.WriteUInt16BigEndian(l4, SourcePort);
                BinaryPrimitives.WriteUInt16BigEndian(l4[2..], DestinationPort);
                BinaryPrimitives.WriteUInt16BigEndian(l4[4..], (ushort)l4Length);
                break;
            default:
                l4[0] = Protocol == IpProtocol.Icmp ? IcmpHeader.EchoRequest : Icmpv6.EchoRequest;
                BinaryPrimitives.WriteUInt16BigEndian(l4[4..], 1); // identifier
                BinaryPrimitives.WriteUInt16BigEndian(l4[6..], 1); // sequence
                break;
        }
        int checksumAt = Protocol switch { IpProtocol.Tcp => 16, IpProtocol.Udp => 6, _ => 2 };
        if (IsV4)
        {
            ip[0] = 0x45;
            BinaryPrimitives.WriteUInt16BigEndian(ip[2..], (ushort)(l3Header + l4Length));
            BinaryPrimitives.WriteUInt16BigEndian(ip[4..], 1);
            if (DontFragment) ip[6] = 0x40;
            ip[8] = Ttl;
            ip[9] = Protocol;
            BinaryPrimitives.WriteUInt32BigEndian(ip[12..], Source.V4);
            BinaryPrimitives.WriteUInt32BigEndian(ip[16..], Destination.V4);
            BinaryPrimitives.WriteUInt16BigEndian(ip[10..], Checksum.Ipv4Header(ip[..l3Header]));
            ushort c = Protocol == IpProtocol.Icmp ? Checksum.Icmpv4(l4) : Checksum.TransportV4(Source.V4, Destination.V4, Protocol, l4);
            BinaryPrimitives.WriteUInt16BigEndian(l4[checksumAt..], c);
        }
        else
        {
            ip[0] = 0x60;
            BinaryPrimitives.WriteUInt16BigEndian(ip[4..], (ushort)l4Length);
            ip[6] = Protocol;
            ip[7] = Ttl;
            BinaryPrimitives.WriteUInt128BigEndian(ip[8..], Source.Value);
            BinaryPrimitives.WriteUInt128BigEndian(ip[24..], Destination.Value);
            BinaryPrimitives.WriteUInt16BigEndian(l4[checksumAt..], Checksum.TransportV6(ip.Slice(8, 16), ip.Slice(24, 16), Protocol, l4));
        }
        return frame;
    }
}
