using FastPath.DataPlane.Packets;
using FastPath.DataPlane.Pipeline;
using FastPath.DataPlane.Ports;
using FastPath.DataPlane.Telemetry;
using FastPath.Tests.Support;

namespace FastPath.Tests.Packets;

/// <summary>
/// The parser on real bytes: captures from tcpdump's test suite (pcaps/external), expected values read off tshark.
/// </summary>
public class PacketParserTests
{
    private static (byte[] Frame, CaptureRecord Record) Record(string capture, int number = 1)
    {
        using var reader = new CaptureReader(RepositoryFiles.ExternalCapture(capture));
        var buffer = new byte[PacketBatch.MaxFrameLength];
        CaptureRecord record = default;
        for (int i = 0; i < number; i++) Assert.True(reader.TryRead(buffer, out record));
        return (buffer[..record.Length], record);
    }

    private static (DropReason Reason, PacketMeta Meta) Parse(byte[] frame)
    {
        var m = new PacketMeta();
        var r = PacketParser.Parse(frame, ref m);
        return (r, m);
    }

    [Fact]
    public void Ipv4TcpBehindAVlanTag()
    {
        var (frame, _) = Record("tcpdump_ipv4_tcp_http_xml.pcap");
        var (r, m) = Parse(frame);
        Assert.Equal(DropReason.None, r);
        Assert.Equal(L3Kind.Ipv4, m.L3);
        Assert.Equal(18, m.L3Offset);                       // 14 + one 802.1Q tag
        Assert.Equal(165, new VlanTag(frame.AsSpan(14)).VlanId);
        Assert.Equal(IpProtocol.Tcp, m.IpProtocol);
        Assert.Equal(80, m.SourcePort);
        Assert.Equal(5767, m.DestinationPort);
        var ip = new Ipv4Header(frame.AsSpan(m.L3Offset));
        Assert.Equal("10.21.11.94", IpAddr.FromV4(ip.Source).ToString());
        Assert.True(Checksum.Ipv4HeaderValid(frame.AsSpan(m.L3Offset, ip.HeaderLength)));
        var tcp = new TcpHeader(frame.AsSpan(m.L4Offset));
        Assert.Equal(m.L4Offset + tcp.HeaderLength + 605, m.L3Offset + m.L3Length); // tcp.len 605 per tshark
    }

    [Theory]
    [InlineData(1, 43966, 53)]
    [InlineData(2, 53, 43966)]
    public void Ipv4Udp(int number, int sport, int dport)
    {
        var (r, m) = Parse(Record("tcpdump_dns_udp.pcap", number).Frame);
        Assert.Equal(DropReason.None, r);
        Assert.Equal(IpProtocol.Udp, m.IpProtocol);
        Assert.Equal(sport, m.SourcePort);
        Assert.Equal(dport, m.DestinationPort);
        Assert.True((m.Flags & PacketFlags.HasL4) != 0);
    }

    [Theory]
    [InlineData(1, 134)] // router advertisement
    [InlineData(2, 143)] // MLDv2 report behind a hop-by-hop header
    [InlineData(3, 130)] // MLD query behind a hop-by-hop header
    public void Icmpv6ThroughTheExtensionChain(int number, int type)
    {
        var (frame, _) = Record("tcpdump_icmpv6.pcap", number);
        var (r, m) = Parse(frame);
        Assert.Equal(DropReason.None, r);
        Assert.Equal(L3Kind.Ipv6, m.L3);
        Assert.Equal(IpProtocol.Icmpv6, m.IpProtocol);
        Assert.Equal(type, frame[m.L4Offset]);
        Assert.Equal(0, (int)(m.Flags & PacketFlags.IcmpError));
    }

    [Fact]
    public void NeighborSolicitationWithNonce()
    {
        var (frame, _) = Record("tcpdump_icmpv6-ns-nonce.pcap");
        var (r, m) = Parse(frame);
        Assert.Equal(DropReason.None, r);
        Assert.Equal(135, frame[m.L4Offset]);
        var ns = new NeighborMessage(frame.AsSpan(m.L4Offset, m.L3Length - (m.L4Offset - m.L3Offset)));
        Assert.False(ns.TryGetLinkLayerOption(Icmpv6.OptionSourceLinkLayer, out _, out bool malformed)); // DAD: no SLLAO, a nonce option
        Assert.False(malformed);
    }

    [Fact]
    public void QinQTagsAreWalked()
    {
        var (frame, _) = Record("tcpdump_802.1ad_QinQ.pcap");
        var (r, m) = Parse(frame);
        Assert.Equal(DropReason.None, r);
        Assert.Equal(EtherType.QinQ, new EthernetHeader(frame).EtherType);
        Assert.Equal(200, new VlanTag(frame.AsSpan(14)).VlanId);   // S-tag
        Assert.Equal(2001, new VlanTag(frame.AsSpan(18)).VlanId);  // C-tag
        Assert.Equal(22, m.L3Offset);
        Assert.Equal(L3Kind.Arp, m.L3);
    }

    [Fact]
    public void VxlanOuterAndInnerParse()
    {
        var (frame, _) = Record("tcpdump_gso-ipv4-vxlan-ipv4.pcap");
        var (r, m) = Parse(frame);
        Assert.Equal(DropReason.None, r);
        Assert.Equal(IpProtocol.Udp, m.IpProtocol);
        Assert.Equal(4789, m.DestinationPort);
        var vxlan = new VxlanHeader(frame.AsSpan(m.L4Offset + UdpHeader.Length));
        Assert.True(vxlan.VniValid);
        Assert.Equal(5001u, vxlan.Vni);

        var inner = frame[(m.L4Offset + UdpHeader.Length + VxlanHeader.Length)..];
        var (ri, mi) = Parse(inner);
        Assert.Equal(DropReason.None, ri);
        Assert.Equal(IpProtocol.Tcp, mi.IpProtocol);
        Assert.Equal(37099, mi.SourcePort);
        Assert.Equal(41547, mi.DestinationPort);
    }

    [Fact]
    public void GeneveIsPlainUdp()
    {
        var (r, m) = Parse(Record("tcpdump_geneve.pcap").Frame);
        Assert.Equal(DropReason.None, r);
        Assert.Equal(6081, m.DestinationPort);
    }

    [Theory]
    [InlineData(1, IpProtocol.Icmpv6, 0, 0)]
    [InlineData(3, IpProtocol.Udp, 5645, 5642)]
    public void Ipv6RoutingHeaderIsSkipped(int number, byte proto, int sport, int dport)
    {
        var (r, m) = Parse(Record("tcpdump_ipv6-routing-header.pcap", number).Frame);
        Assert.Equal(DropReason.None, r);
        Assert.Equal(proto, m.IpProtocol);
        Assert.Equal(sport, m.SourcePort);
        Assert.Equal(dport, m.DestinationPort);
    }

    [Fact]
    public void NoNextHeaderEndsTheChainCleanly()
    {
        var (r, m) = Parse(Record("tcpdump_ipv6_no_next_header.pcap").Frame);
        Assert.Equal(DropReason.None, r);
        Assert.Equal(IpProtocol.NoNextHeader, m.IpProtocol);
        Assert.Equal(0, (int)(m.Flags & PacketFlags.HasL4));
    }

    [Fact]
    public void LinuxCookedAndRawCapturesParseAfterNormalisation()
    {
        var (sll, _) = Record("tcpdump_tcp-handshake-nano.pcap");
        Assert.Equal(DropReason.None, Parse(sll).Reason);
        Assert.Equal(IpProtocol.Tcp, Parse(sll).Meta.IpProtocol);
        var (raw, _) = Record("tcpdump_LINKTYPE_RAW_ipv4.pcap");
        Assert.Equal(L3Kind.Ipv4, Parse(raw).Meta.L3);
    }

    /// <summary>The deliberately broken captures: each is refused with a reason (or marked by the capture layer), never read past its end.</summary>
    [Theory]
    [InlineData("tcpdump_ipv4_invalid_hdr_length.pcap")]
    [InlineData("tcpdump_ipv4_invalid_total_length.pcap")]
    [InlineData("tcpdump_ipv6_invalid_length.pcap")]
    [InlineData("tcpdump_ipv6_frag6_negative_len.pcap")]
    [InlineData("tcpdump_tcp_header_heapoverflow.pcap")]
    [InlineData("tcpdump_arp-too-long-tha.pcap")]
    [InlineData("tcpdump_ip6_frag_asan.pcap")]
    [InlineData("tcpdump_heapoverflow-ip_demux_print.pcap")]
    public void MalformedCapturesAreRefused(string capture)
    {
        var (frame, record) = Record(capture);
        var (r, _) = Parse(frame);
        Assert.True(r != DropReason.None || record.IsTruncated, $"{capture}: parsed as valid ({r})");
    }

    [Fact]
    public void TcpOptionsAreFoundAndMalformedListsEndTheWalk()
    {
        var (frame, _) = Record("tcpdump_tcp-handshake-nano.pcap");
        var (_, m) = Parse(frame);
        var tcp = new TcpHeader(frame.AsSpan(m.L4Offset));
        Assert.True(tcp.TryGetOption(2, out var mss));        // SYN carries an MSS
        Assert.Equal(2, mss.Length);

        var broken = new byte[28];
        broken[12] = 0x70;                                      // 28-byte header: 8 bytes of options
        broken[20] = 1; broken[21] = 3; broken[22] = 9;        // NOP, then window scale claiming 9 bytes
        Assert.False(new TcpHeader(broken).TryGetOption(8, out _));
    }
}
