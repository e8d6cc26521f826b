using System.Buffers.Binary;
using System.Text.Json;
using FastPath.ControlPlane.Cluster;
using FastPath.ControlPlane.Compile;
using FastPath.DataPlane.Packets;
using FastPath.DataPlane.Pipeline;
using FastPath.DataPlane.Ports;
using FastPath.DataPlane.Routing;
using FastPath.DataPlane.Telemetry;
using FastPath.Live;
using FastPath.Tests.Support;
using static FastPath.Tests.Support.TestFrames;

namespace FastPath.Tests.Routing;

/// <summary>
/// Issue 18 item 6: a gateway named by address (uplinkGateway) is resolved by the engine itself — the packet that finds
/// no MAC becomes the ARP request / Neighbor Solicitation, the reply is learned, the next packet goes out masqueraded.
/// Frames are built byte by byte by <see cref="TestFrames"/>, not by the code under test.
/// </summary>
public class UplinkGatewayResolutionTests
{
    private const long T0 = 1_000_000_000L * 1000, Second = 1_000_000_000L;
    private static readonly byte[] Broadcast = Mac("ff:ff:ff:ff:ff:ff");

    private static IReadOnlyList<Route> Routes() =>
    [
        new Route(EngineHarness.Addr("10.244.0.0"), 16, new NextHop(NextHopKind.Unreachable, default, MacAddress.Zero, 0)),
        new Route(EngineHarness.Addr("0.0.0.0"), 0, new NextHop(NextHopKind.Uplink, EngineHarness.Addr("192.168.56.1"), MacAddress.Zero, Masquerade: true, Resolve: true)),
        new Route(EngineHarness.Addr("::"), 0, new NextHop(NextHopKind.Uplink, EngineHarness.Addr("fd00:56::1"), MacAddress.Zero, Masquerade: true, Resolve: true)),
    ];

    private static byte[] Syn(ushort sport = 40000) =>
        EngineHarness.FromClient(Ipv4("10.244.1.10", "203.0.113.5", 6, Tcp(sport, 443)));

    private static byte[] ArpReplyFromGateway() =>
        Ethernet(Mac(EngineHarness.NodeMac), Mac(EngineHarness.RouterMac), 0x0806,
            Arp(2, Mac(EngineHarness.RouterMac), "192.168.56.1", Mac(EngineHarness.NodeMac), "192.168.56.11"));

    [Fact]
    public void ArpRequestGoesOutTheReplyIsLearnedAndTheRetransmissionLeavesMasqueraded()
    {
        var h = new EngineHarness(Routes());
        var first = h.RunAt(T0, Second / 4, (h.Client, Syn()), (h.Client, Syn()));

        // The first packet became "who-has 192.168.56.1 tell 192.168.56.11", broadcast from the node's MAC.
        Assert.Equal(DropReason.NeighborUnknown, first[0].Drop);
        Assert.Equal(PortIndex.Uplink, first[0].Egress);
        var request = Ethernet(Broadcast, Mac(EngineHarness.NodeMac), 0x0806,
            Arp(1, Mac(EngineHarness.NodeMac), "192.168.56.11", new byte[6], "192.168.56.1"));
        Assert.Equal(request, first[0].Frame);
        // A quarter second later: no second request (one a second), dropped with the same reason.
        Assert.Equal(DropReason.NeighborUnknown, first[1].Drop);
        Assert.Equal(PortIndex.None, first[1].Egress);
        Assert.Equal(2, h.Engine.Counters.Drops(h.Client, DropReason.NeighborUnknown));
        Assert.Equal(1, h.Engine.Neighbors.Requests);

        // The reply fills the entry (and, addressed to the node, goes on to the host stack as before).
        var reply = h.RunAt(T0 + Second / 2, 0, (PortIndex.Uplink, ArpReplyFromGateway()))[0];
        Assert.Equal(PortIndex.Host, reply.Egress);
        Assert.Equal(EngineHarness.Parse(EngineHarness.RouterMac), h.Engine.Neighbors.Describe(EngineHarness.Addr("192.168.56.1")));

        // The sender's retransmission leaves for the gateway's MAC, SNATed to the node address.
        var sent = h.RunAt(T0 + Second, 0, (h.Client, Syn()))[0];
        Assert.Equal(DropReason.None, sent.Drop);
        Assert.Equal(PortIndex.Uplink, sent.Egress);
        Assert.Equal(Mac(EngineHarness.RouterMac), sent.Frame[..6]);
        Assert.Equal(Mac(EngineHarness.NodeMac), sent.Frame[6..12]);
        Assert.Equal(Ip("192.168.56.11"), sent.Frame[26..30]);
        Assert.Equal(Ip("203.0.113.5"), sent.Frame[30..34]);
        Assert.True(ChecksumsValid(sent.Frame));

        // The server's answer comes back to the client through the masquerade entry.
        ushort port = BinaryPrimitives.ReadUInt16BigEndian(sent.Frame.AsSpan(34));
        var back = h.RunAt(T0 + Second + 1000, 0, (PortIndex.Uplink,
            Ethernet(Mac(EngineHarness.NodeMac), Mac(EngineHarness.RouterMac), 0x0800, Ipv4("203.0.113.5", "192.168.56.11", 6, Tcp(443, port, 0x12)))))[0];
        Assert.Equal(h.Client, back.Egress);
        Assert.Equal(Ip("10.244.1.10"), back.Frame[30..34]);
    }

    [Fact]
    public void AnEntryNotConfirmedForAMinuteIsResolvedAgainAndTheGatewaysFramesKeepItAlive()
    {
        var h = new EngineHarness(Routes());
        h.RunAt(T0, 0, (h.Client, Syn()));
        h.RunAt(T0 + Second / 2, 0, (PortIndex.Uplink, ArpReplyFromGateway()));
        Assert.Equal(DropReason.None, h.RunAt(T0 + Second, 0, (h.Client, Syn(40001)))[0].Drop);

        // 50 s later a frame from the gateway's MAC (any, here an ARP request for the node) confirms it ...
        var ask = Ethernet(Broadcast, Mac(EngineHarness.RouterMac), 0x0806, Arp(1, Mac(EngineHarness.RouterMac), "192.168.56.1", new byte[6], "192.168.56.11"));
        h.RunAt(T0 + 50 * Second, 0, (PortIndex.Uplink, ask));
        Assert.Equal(DropReason.None, h.RunAt(T0 + 100 * Second, 0, (h.Client, Syn(40002)))[0].Drop);
        // ... and 61 s after the last confirmation the entry has expired: the next packet asks again.
        var again = h.RunAt(T0 + 111 * Second, 0, (h.Client, Syn(40003)))[0];
        Assert.Equal(DropReason.NeighborUnknown, again.Drop);
        Assert.Equal(PortIndex.Uplink, again.Egress);
        Assert.Equal(0x0806, BinaryPrimitives.ReadUInt16BigEndian(again.Frame.AsSpan(12)));
        Assert.Equal(2, h.Engine.Neighbors.Requests);
    }

    [Fact]
    public void Ipv6GatewayIsSolicitedOnItsSolicitedNodeGroupAndItsAdvertisementLearned()
    {
        var h = new EngineHarness(Routes());
        byte[] Syn6() => EngineHarness.FromClient(Ipv6("fd00:244:1::a", "2001:db8::5", 6, Tcp(40000, 443)), 0x86DD);
        var ns = h.RunAt(T0, 0, (h.Client, Syn6()))[0];
        Assert.Equal(DropReason.NeighborUnknown, ns.Drop);
        Assert.Equal(PortIndex.Uplink, ns.Egress);
        // RFC 4861 §7.2.2: to ff02::1:ff00:1 (33:33:ff:00:00:01), from the node's address, hop limit 255, SLLA option.
        var body = NeighborSolicitation("fd00:56::1", Mac(EngineHarness.NodeMac));
        var expected = Ethernet(Mac("33:33:ff:00:00:01"), Mac(EngineHarness.NodeMac), 0x86DD,
            Ipv6("fd00:56::11", "ff02::1:ff00:1", 58, body, hopLimit: 255));
        Assert.Equal(expected, ns.Frame);
        Assert.True(ChecksumsValid(ns.Frame));

        // A solicited Neighbor Advertisement with the target link-layer option (RFC 4861 §4.4).
        var na = new byte[32];
        na[0] = 136;
        na[4] = 0x60; // solicited, override
        Ip("fd00:56::1").CopyTo(na, 8);
        na[24] = 2; na[25] = 1;
        Mac(EngineHarness.RouterMac).CopyTo(na, 26);
        var advert = Ethernet(Mac(EngineHarness.NodeMac), Mac(EngineHarness.RouterMac), 0x86DD,
            Ipv6("fd00:56::1", "fd00:56::11", 58, na, hopLimit: 255));
        h.RunAt(T0 + Second / 2, 0, (PortIndex.Uplink, advert));
        Assert.Equal(EngineHarness.Parse(EngineHarness.RouterMac), h.Engine.Neighbors.Describe(EngineHarness.Addr("fd00:56::1")));

        var sent = h.RunAt(T0 + Second, 0, (h.Client, Syn6()))[0];
        Assert.Equal(DropReason.None, sent.Drop);
        Assert.Equal(Mac(EngineHarness.RouterMac), sent.Frame[..6]);
        Assert.Equal(Ip("fd00:56::11"), sent.Frame[22..38]); // masqueraded to the node's IPv6 address
        Assert.True(ChecksumsValid(sent.Frame));
    }

    [Fact]
    public void TheHostStacksArpIsAnsweredLikeAPodsAndItsRepliesGoOut()
    {
        var h = new EngineHarness(Routes());
        // The node's stack on its host TAP asks for the router: the engine answers with the gateway MAC.
        var ask = Ethernet(Broadcast, Mac(EngineHarness.NodeMac), 0x0806, Arp(1, Mac(EngineHarness.NodeMac), "192.168.56.11", new byte[6], "192.168.56.1"));
        var answer = h.RunOne(PortIndex.Host, ask);
        Assert.Equal(PortIndex.Host, answer.Egress);
        Assert.Equal(Ethernet(Mac(EngineHarness.NodeMac), GatewayMac, 0x0806, Arp(2, GatewayMac, "192.168.56.1", Mac(EngineHarness.NodeMac), "192.168.56.11")), answer.Frame);
        // Its reply to the router's request for the node address leaves on the uplink unchanged.
        var reply = Ethernet(Mac(EngineHarness.RouterMac), Mac(EngineHarness.NodeMac), 0x0806, Arp(2, Mac(EngineHarness.NodeMac), "192.168.56.11", Mac(EngineHarness.RouterMac), "192.168.56.1"));
        var sent = h.RunOne(PortIndex.Host, reply);
        Assert.Equal(PortIndex.Uplink, sent.Egress);
        Assert.Equal(reply, sent.Frame);
    }

    [Fact]
    public void RunSaysWhereTheGatewayComesFrom()
    {
        var none = ReadConfig("mtu: 1500", out _);
        Assert.Contains("192.168.56.1 (default route via eth0) taken from the host's routing table",
            FastPath.Commands.RunCommand.UplinkGatewayLine(none, [(EngineHarness.Addr("192.168.56.1"), "eth0")]));
        Assert.Contains("uplink gateway: none", FastPath.Commands.RunCommand.UplinkGatewayLine(none, []));
        Assert.Contains("192.168.56.1 (uplinkGateway; MAC resolved by ARP",
            FastPath.Commands.RunCommand.UplinkGatewayLine(ReadConfig("uplinkGateway: 192.168.56.1", out _), []));
    }

    [Theory]
    [InlineData("uplinkGateway: 192.168.56.1", "192.168.56.1", null)]
    [InlineData("uplinkGateway: [192.168.56.1, \"fd00:56::1\"]", "192.168.56.1", "fd00:56::1")]
    [InlineData("uplinkGateway: \"fd00:56::1\"", null, "fd00:56::1")]
    public void UplinkGatewayGivesResolvingDefaultRoutesPerFamily(string line, string? v4, string? v6)
    {
        var config = ReadConfig(line, out var errors);
        Assert.Empty(errors);
        var routes = RouteCompiler.GlobalRoutes(config);
        AssertDefault(routes, true, v4);
        AssertDefault(routes, false, v6);
    }

    [Fact]
    public void HostGatewaysServeOnlyWhenTheConfigurationNamesNone()
    {
        IpAddr[] host = [EngineHarness.Addr("10.0.0.1")];
        AssertDefault(RouteCompiler.GlobalRoutes(ReadConfig("mtu: 1500", out _), host), true, "10.0.0.1");
        AssertDefault(RouteCompiler.GlobalRoutes(ReadConfig("uplinkGateway: 192.168.56.1", out _), host), true, "192.168.56.1");
        var macOnly = RouteCompiler.GlobalRoutes(ReadConfig("uplinkGatewayMAC: \"02:00:00:00:00:fe\"", out _), host);
        Assert.All(macOnly.Where(r => r.Length == 0), r => Assert.False(r.NextHop.Resolve));
        Assert.Equal(2, macOnly.Count(r => r.Length == 0));
    }

    [Theory]
    [InlineData("uplinkGateway: router.local", "\"router.local\" is not an IP address")]
    [InlineData("uplinkGateway: 224.0.0.1", "is not a unicast address")]
    [InlineData("uplinkGateway: [10.0.0.1, 10.0.0.2]", "more than one IPv4 gateway")]
    public void BadGatewaysNameTheField(string line, string message)
    {
        ReadConfig(line, out var errors);
        var error = Assert.Single(errors);
        Assert.Contains("uplinkGateway", error);
        Assert.Contains(message, error);
        Assert.Contains("config.yaml", error);
    }

    [Fact]
    public void TheKernelsDefaultRoutesAreReadFromProc()
    {
        // As Linux prints them: /proc/net/route (host-order hex) and /proc/net/ipv6_route.
        string[] v4 =
        [
            "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT",
            "eth0\t00000000\t0138A8C0\t0003\t0\t0\t100\t00000000\t0\t0\t0",
            "eth1\t00000000\t0100000A\t0003\t0\t0\t50\t00000000\t0\t0\t0",
            "eth0\t0038A8C0\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0",
        ];
        var g4 = HostDefaultRoute.ParseV4(v4);
        Assert.Equal((EngineHarness.Addr("10.0.0.1"), "eth1"), g4); // the lower metric
        string[] v6 =
        [
            "fd000056000000000000000000000000 40 00000000000000000000000000000000 00 00000000000000000000000000000000 00000100 00000001 00000000 00000001     eth0",
            "00000000000000000000000000000000 00 00000000000000000000000000000000 00 fe800000000000000000000000000001 00000400 00000001 00000000 00000003     eth0",
            "00000000000000000000000000000000 00 00000000000000000000000000000000 00 00000000000000000000000000000000 ffffffff 00000001 00000000 00200200       lo",
        ];
        Assert.Equal((EngineHarness.Addr("fe80::1"), "eth0"), HostDefaultRoute.ParseV6(v6));
        Assert.Null(HostDefaultRoute.ParseV4(v4[..1]));
    }

    [Fact]
    public void ReplayLearnsTheGatewayAndTraceShowsBothSteps()
    {
        using var tmp = new TempFolder();
        var cluster = CopyDemoCluster(tmp, "uplinkGateway: 192.168.56.1");
        var capture = tmp.File("egress.pcap");
        using (var w = new PcapWriter(capture))
        {
            w.Write(Syn(), T0);
            w.Write(ArpReplyFromGateway(), T0 + Second / 10);
            w.Write(Syn(), T0 + Second);
        }
        var (exit, stdout, stderr) = FastpathCli.Run("replay", capture, "--cluster", cluster, "--node", "node-a", "--out", tmp.File("out"));
        Assert.True(exit == 0, stderr);
        var drop = JsonDocument.Parse(Assert.Single(File.ReadAllLines(tmp.File("out/drops.jsonl")))).RootElement;
        Assert.Equal(1, drop.GetProperty("packet").GetInt32());
        Assert.Equal("neighbor-unknown", drop.GetProperty("reason").GetString());
        var uplink = ReadPcap(tmp.File("out/uplink.pcap"));
        Assert.Equal(2, uplink.Count);
        Assert.Equal(Ethernet(Broadcast, Mac(EngineHarness.NodeMac), 0x0806,
            Arp(1, Mac(EngineHarness.NodeMac), "192.168.56.11", new byte[6], "192.168.56.1")), uplink[0]);
        Assert.Equal(Mac(EngineHarness.RouterMac), uplink[1][..6]);
        Assert.Equal(Ip("192.168.56.11"), uplink[1][26..30]);
        Assert.DoesNotContain("no_gateway", File.ReadAllText(tmp.File("out/summary.json")));

        var (e1, first, err1) = FastpathCli.Run("trace", "--cluster", cluster, "--node", "node-a", "--capture", capture, "--packet", "1");
        Assert.True(e1 == 0, err1);
        Assert.Contains("0.0.0.0/0 via uplink gateway 192.168.56.1 (MAC unresolved: ARP on the uplink), masquerade", first);
        Assert.Contains("dropped: neighbor-unknown; resolving the gateway, sent to uplink: arp who-has 192.168.56.1 tell 192.168.56.11", first);
        var (e3, third, err3) = FastpathCli.Run("trace", "--cluster", cluster, "--node", "node-a", "--capture", capture, "--packet", "3");
        Assert.True(e3 == 0, err3);
        Assert.Contains("uplink gateway 192.168.56.1 (is-at 02:00:00:00:00:fe, learned by ARP), masquerade", third);
        Assert.Contains("forwarded to uplink", third);
    }

    [Fact]
    public void ReplayWithoutAGatewaySaysWhichSettingIsMissing()
    {
        using var tmp = new TempFolder();
        var cluster = CopyDemoCluster(tmp, null);
        var capture = tmp.File("egress.pcap");
        using (var w = new PcapWriter(capture)) w.Write(Syn(), T0);
        var (exit, stdout, stderr) = FastpathCli.Run("replay", capture, "--cluster", cluster, "--node", "node-a", "--out", tmp.File("out"));
        Assert.True(exit == 0, stderr);
        using var summary = JsonDocument.Parse(File.ReadAllText(tmp.File("out/summary.json")));
        var v4 = summary.RootElement.GetProperty("no_gateway").GetProperty("ipv4");
        Assert.Equal(1, v4.GetProperty("packets").GetInt64());
        Assert.Contains("no IPv4 address in uplinkGateway and no uplinkGatewayMAC", v4.GetProperty("missing").GetString());
        Assert.Contains("no-route 1: the FastPathConfiguration has no IPv4 address in uplinkGateway and no uplinkGatewayMAC", stdout);
    }

    private static string CopyDemoCluster(TempFolder tmp, string? gatewayLine)
    {
        var dir = Directory.CreateDirectory(tmp.File("cluster")).FullName;
        var text = File.ReadAllText(Path.Combine(RepositoryFiles.Root, "pcaps", "demo", "cluster", "cluster.yaml"));
        var lines = text.Split('\n').Select(l => l.StartsWith("uplinkGatewayMAC:", StringComparison.Ordinal) ? gatewayLine : l).Where(l => l is not null);
        File.WriteAllText(Path.Combine(dir, "cluster.yaml"), string.Join('\n', lines));
        return dir;
    }

    private static List<byte[]> ReadPcap(string path)
    {
        var frames = new List<byte[]>();
        var bytes = File.ReadAllBytes(path);
        for (int at = 24; at + 16 <= bytes.Length;)
        {
            int length = BinaryPrimitives.ReadInt32LittleEndian(bytes.AsSpan(at + 8));
            frames.Add(bytes.AsSpan(at + 16, length).ToArray());
            at += 16 + length;
        }
        return frames;
    }

    private static FastPathConfiguration ReadConfig(string line, out List<string> errors)
    {
        using var tmp = new TempFolder();
        File.WriteAllText(tmp.File("config.yaml"), $"apiVersion: fastpath.io/v1alpha1\nkind: FastPathConfiguration\n{line}\n");
        var loaded = ClusterDirectory.Load(tmp.Path);
        errors = loaded.Errors.Select(e => e.ToString()).ToList();
        return loaded.State.Configuration;
    }

    private static void AssertDefault(List<Route> routes, bool v4, string? gateway)
    {
        var route = routes.Where(r => r.Length == 0 && r.Prefix.IsV4 == v4).ToList();
        if (gateway is null) { Assert.Empty(route); return; }
        var hop = Assert.Single(route).NextHop;
        Assert.Equal(NextHopKind.Uplink, hop.Kind);
        Assert.Equal(EngineHarness.Addr(gateway), hop.Underlay);
        Assert.True(hop.Resolve);
        Assert.True(hop.Masquerade);
    }
}

/// <summary>The resolution path (a packet turned into the ARP request, or dropped while one is out) allocates nothing.</summary>
[Collection(AllocationCollection.Name)]
public class UplinkGatewayAllocationTests
{
    private const long T0 = 1_000_000_000L * 1000, Second = 1_000_000_000L;

    private static IReadOnlyList<Route> Routes() =>
    [
        new Route(EngineHarness.Addr("0.0.0.0"), 0, new NextHop(NextHopKind.Uplink, EngineHarness.Addr("192.168.56.1"), MacAddress.Zero, Masquerade: true, Resolve: true)),
    ];

    private static byte[] Syn() => EngineHarness.FromClient(Ipv4("10.244.1.10", "203.0.113.5", 6, Tcp(40000, 443)));

    [Fact]
    public void ResolvingAllocatesNothingPerPacket()
    {
        var h = new EngineHarness(Routes());
        var batch = new PacketBatch(32);
        var syn = Syn();
        void Fill(long at)
        {
            for (int i = 0; i < batch.Capacity; i++)
            {
                syn.CopyTo(batch.ReceiveArea(i));
                batch.SetReceived(i, syn.Length, at, i + 1, h.Client);
            }
            batch.Count = batch.Capacity;
        }
        void Rounds(int from, int to)
        {
            for (int round = from; round < to; round++)
            {
                Fill(T0 + round * (Second / 10));
                h.Engine.Process(batch);
            }
        }
        Rounds(0, 40); // warm up: both paths (a request sent, a request already out this second) are compiled
        Assert.Equal(0, Allocations.Measure(() => Rounds(40, 40 + 32_768)));      // 1M packets
        Assert.InRange(h.Engine.Neighbors.Requests, 3200, 3400); // one a second over 3,280 s
    }

}
