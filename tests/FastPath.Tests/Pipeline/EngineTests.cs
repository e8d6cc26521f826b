using System.Buffers.Binary;
using FastPath.DataPlane.Pipeline;
using FastPath.DataPlane.Telemetry;
using FastPath.Tests.Support;
using static FastPath.Tests.Support.TestFrames;

namespace FastPath.Tests.Pipeline;

public class EngineTests
{
    private readonly EngineHarness _h = new();

    [Theory]
    [InlineData(6)]
    [InlineData(17)]
    [InlineData(1)]
    public void SameNodeIpv4IsForwardedWithTtlDecrementedAndMacsRewritten(byte proto)
    {
        byte[] l4 = proto switch { 6 => Tcp(40000, 8080), 17 => Udp(5000, 9999, 20), _ => IcmpEcho() };
        var r = _h.RunOne(_h.Client, EngineHarness.FromClient(Ipv4("10.244.1.10", "10.244.1.11", proto, l4)));

        Assert.Equal(DropReason.None, r.Drop);
        Assert.Equal(_h.Web1, r.Egress);
        Assert.Equal(Mac(EngineHarness.Web1Mac), r.Frame[..6]);
        Assert.Equal(GatewayMac, r.Frame[6..12]);
        Assert.Equal(63, r.Frame[14 + 8]);
        Assert.Equal(Ip("10.244.1.10"), r.Frame[26..30]);
        Assert.Equal(Ip("10.244.1.11"), r.Frame[30..34]);
        Assert.True(ChecksumsValid(r.Frame));
    }

    [Fact]
    public void SameNodeIpv6HopLimitIsDecremented()
    {
        var pkt = Ipv6("fd00:244:1::a", "fd00:244:1::b", 17, Udp(5000, 53));
        var r = _h.RunOne(_h.Client, EngineHarness.FromClient(pkt, 0x86DD));
        Assert.Equal(DropReason.None, r.Drop);
        Assert.Equal(_h.Web1, r.Egress);
        Assert.Equal(63, r.Frame[14 + 7]);
        Assert.True(ChecksumsValid(r.Frame));
    }

    [Fact]
    public void VlanTagsAreStrippedAndEthernetPaddingTrimmed()
    {
        var ip = Ipv4("10.244.1.10", "10.244.1.11", 17, Udp(1, 2, 0));
        var padded = ip.Concat(new byte[12]).ToArray();
        var frame = Ethernet(GatewayMac, Mac(EngineHarness.ClientMac), 0x0800, padded, 0x88A8, 0x8100);
        var r = _h.RunOne(_h.Client, frame);
        Assert.Equal(DropReason.None, r.Drop);
        Assert.Equal(14 + ip.Length, r.Frame.Length);
        Assert.Equal(0x0800, BinaryPrimitives.ReadUInt16BigEndian(r.Frame.AsSpan(12)));
        Assert.True(ChecksumsValid(r.Frame));
    }

    [Fact]
    public void ArpRequestFromPodIsAnsweredWithTheGatewayMac()
    {
        var req = Ethernet(Mac("ff:ff:ff:ff:ff:ff"), Mac(EngineHarness.ClientMac), 0x0806,
            Arp(1, Mac(EngineHarness.ClientMac), "10.244.1.10", new byte[6], "10.244.1.1"));
        var r = _h.RunOne(_h.Client, req);
        Assert.Equal(DropReason.None, r.Drop);
        Assert.Equal(_h.Client, r.Egress);
        Assert.Equal(Mac(EngineHarness.ClientMac), r.Frame[..6]);
        Assert.Equal(2, r.Frame[14 + 7]);                       // reply
        Assert.Equal(GatewayMac, r.Frame[22..28]);               // sender MAC = gateway
        Assert.Equal(Ip("10.244.1.1"), r.Frame[28..32]);         // sender IP = the asked address
        Assert.Equal(Mac(EngineHarness.ClientMac), r.Frame[32..38]);
        Assert.Equal(Ip("10.244.1.10"), r.Frame[38..42]);
    }

    [Theory]
    [InlineData("0.0.0.0", "10.244.1.10")]      // RFC 5227 probe
    [InlineData("10.244.1.10", "10.244.1.10")]  // announcement
    public void ArpProbesAndAnnouncementsAreNotAnswered(string spa, string tpa)
    {
        var req = Ethernet(Mac("ff:ff:ff:ff:ff:ff"), Mac(EngineHarness.ClientMac), 0x0806, Arp(1, Mac(EngineHarness.ClientMac), spa, new byte[6], tpa));
        var r = _h.RunOne(_h.Client, req);
        Assert.Equal(DropReason.Consumed, r.Drop);
        Assert.Equal(-1, r.Egress);
    }

    [Fact]
    public void NeighborSolicitationIsAnsweredWithAnAdvertisement()
    {
        var ns = Ipv6("fd00:244:1::a", "ff02::1:ff00:1", 58, NeighborSolicitation("fd00:244:1::1", Mac(EngineHarness.ClientMac)), hopLimit: 255);
        var r = _h.RunOne(_h.Client, EngineHarness.FromClient(ns, 0x86DD));
        Assert.Equal(DropReason.None, r.Drop);
        Assert.Equal(_h.Client, r.Egress);
        Assert.Equal(Mac(EngineHarness.ClientMac), r.Frame[..6]);
        var ip = r.Frame.AsSpan(14);
        Assert.Equal(255, ip[7]);
        Assert.Equal(Ip("fd00:244:1::1"), ip.Slice(8, 16).ToArray());   // from the target
        Assert.Equal(Ip("fd00:244:1::a"), ip.Slice(24, 16).ToArray());  // to the asker
        Assert.Equal(136, ip[40]);
        Assert.Equal(0xE0, ip[44]);                                       // R, S, O
        Assert.Equal(2, ip[40 + 24]);                                     // target link-layer option
        Assert.Equal(GatewayMac, ip.Slice(40 + 26, 6).ToArray());
        Assert.True(ChecksumsValid(r.Frame));
    }

    [Fact]
    public void ExpiringTtlDropsAndSendsTimeExceededBackToTheSender()
    {
        var original = Ipv4("10.244.1.10", "10.244.1.11", 6, Tcp(40000, 8080), ttl: 1);
        var r = _h.RunOne(_h.Client, EngineHarness.FromClient(original));
        Assert.Equal(DropReason.TtlExceeded, r.Drop);
        Assert.Equal(_h.Client, r.Egress);
        Assert.Equal(Mac(EngineHarness.ClientMac), r.Frame[..6]);
        var ip = r.Frame.AsSpan(14);
        Assert.Equal(1, ip[9]);
        Assert.Equal(Ip("192.168.56.11"), ip.Slice(12, 4).ToArray());  // from the node
        Assert.Equal(Ip("10.244.1.10"), ip.Slice(16, 4).ToArray());
        Assert.Equal(11, ip[20]);
        Assert.Equal(0, ip[21]);
        Assert.Equal(original, ip[28..].ToArray());                       // the whole offending packet is quoted
        Assert.True(ChecksumsValid(r.Frame));
    }

    [Fact]
    public void ExpiringHopLimitSendsIcmpv6TimeExceeded()
    {
        var original = Ipv6("fd00:244:1::a", "fd00:244:1::b", 17, Udp(5000, 53), hopLimit: 1);
        var r = _h.RunOne(_h.Client, EngineHarness.FromClient(original, 0x86DD));
        Assert.Equal(DropReason.TtlExceeded, r.Drop);
        Assert.Equal(_h.Client, r.Egress);
        var ip = r.Frame.AsSpan(14);
        Assert.Equal(58, ip[6]);
        Assert.Equal(3, ip[40]);
        Assert.Equal(original, ip[48..].ToArray());
        Assert.True(ChecksumsValid(r.Frame));
    }

    [Fact]
    public void AnIcmpErrorIsNeverAnsweredWithAnother()
    {
        var quoted = Ipv4("10.244.1.11", "10.244.1.10", 17, Udp(1, 2));
        var err = new byte[8 + 28];
        err[0] = 3; err[1] = 3;
        quoted.AsSpan(0, 28).CopyTo(err.AsSpan(8));
        var r = _h.RunOne(_h.Client, EngineHarness.FromClient(Ipv4("10.244.1.10", "10.244.1.11", 1, err, ttl: 1)));
        Assert.Equal(DropReason.TtlExceeded, r.Drop);
        Assert.Equal(-1, r.Egress);
    }

    [Fact]
    public void SpoofedSourceIsDropped()
    {
        var r = _h.RunOne(_h.Client, EngineHarness.FromClient(Ipv4("10.244.1.11", "10.244.1.13", 17, Udp(1, 2))));
        Assert.Equal(DropReason.SpoofedSource, r.Drop);
        Assert.Equal(-1, r.Egress);
    }

    [Fact]
    public void PodMacIsLearnedFromItsFramesWhenNotConfigured()
    {
        var toWeb3 = EngineHarness.FromClient(Ipv4("10.244.1.10", "10.244.1.13", 17, Udp(1, 2)));
        Assert.Equal(DropReason.NeighborUnknown, _h.RunOne(_h.Client, toWeb3).Drop);

        var web3Mac = Mac(EngineHarness.Web3Mac);
        var fromWeb3 = Ethernet(GatewayMac, web3Mac, 0x0800, Ipv4("10.244.1.13", "10.244.1.10", 17, Udp(2, 1)));
        Assert.Equal(DropReason.None, _h.RunOne(_h.Web3, fromWeb3).Drop);

        var r = _h.RunOne(_h.Client, toWeb3);
        Assert.Equal(DropReason.None, r.Drop);
        Assert.Equal(web3Mac, r.Frame[..6]);
    }

    [Fact]
    public void AutoIngressPicksThePodOwningTheSourceElseTheUplink()
    {
        var results = _h.Run(
            (PortIndex.Auto, EngineHarness.FromClient(Ipv4("10.244.1.10", "10.244.1.11", 17, Udp(1, 2)))),
            (PortIndex.Auto, EngineHarness.FromClient(Ipv4("192.168.56.12", "10.244.1.11", 17, Udp(1, 2)))));
        Assert.Equal(_h.Client, results[0].Ingress);
        Assert.Equal(PortIndex.Uplink, results[1].Ingress);
        Assert.Equal(DropReason.None, results[1].Drop);
        Assert.Equal(_h.Web1, results[1].Egress);
    }

    [Fact]
    public void TrafficToTheNodeGoesToTheHostPortWithoutTtlChange()
    {
        var r = _h.RunOne(_h.Client, EngineHarness.FromClient(Ipv4("10.244.1.10", "192.168.56.11", 6, Tcp(40000, 10250))));
        Assert.Equal(DropReason.None, r.Drop);
        Assert.Equal(PortIndex.Host, r.Egress);
        Assert.Equal(64, r.Frame[14 + 8]);
    }

    [Fact]
    public void UnknownDestinationsAreDroppedWithAReason()
    {
        var results = _h.Run(
            (_h.Client, EngineHarness.FromClient(Ipv4("10.244.1.10", "10.244.9.9", 17, Udp(1, 2)))),
            (PortIndex.Uplink, EngineHarness.FromClient(Ipv4("192.168.56.12", "10.244.9.9", 17, Udp(1, 2)))));
        Assert.Equal(DropReason.NoRoute, results[0].Drop);
        Assert.Equal(DropReason.NotForNode, results[1].Drop);
    }

    [Fact]
    public void AUnicastFrameOnTheUplinkForAnotherStationsMacIsNotServed()
    {
        // A bridge floods a frame for a MAC it has not learned to every port: node-b's SYN must not be answered here.
        byte[] ToNodePort(string dstMac) => Ethernet(Mac(dstMac), Mac(EngineHarness.RouterMac), 0x0800,
            Ipv4("198.51.100.7", "192.168.56.11", 17, Udp(5000, 5001)));
        var results = _h.Run(
            (PortIndex.Uplink, ToNodePort(EngineHarness.NodeBMac)),
            (PortIndex.Uplink, ToNodePort(EngineHarness.NodeMac)),
            (PortIndex.Uplink, ToNodePort("ff:ff:ff:ff:ff:ff")),
            (PortIndex.Auto, ToNodePort(EngineHarness.NodeBMac))); // a capture's frame guessed to be the uplink's: its MACs say nothing
        Assert.Equal(DropReason.NotForNode, results[0].Drop);
        Assert.Equal(1, _h.Engine.Counters.Drops(PortIndex.Uplink, DropReason.NotForNode));
        Assert.Equal([PortIndex.Host, PortIndex.Host, PortIndex.Host], results.Skip(1).Select(r => r.Egress));
    }

    [Fact]
    public void CountersFollowVerdicts()
    {
        _h.Run(
            (_h.Client, EngineHarness.FromClient(Ipv4("10.244.1.10", "10.244.1.11", 17, Udp(1, 2)))),
            (_h.Client, EngineHarness.FromClient(Ipv4("10.244.1.11", "10.244.1.11", 17, Udp(1, 2)))),
            (_h.Client, new byte[] { 1, 2, 3 }));
        var c = _h.Engine.Counters;
        Assert.Equal(3, c.RxPackets(_h.Client));
        Assert.Equal(1, c.TxPackets(_h.Web1));
        Assert.Equal(1, c.Drops(_h.Client, DropReason.SpoofedSource));
        Assert.Equal(1, c.Drops(DropReason.Malformed));
    }
}
