using FastPath.DataPlane.Conntrack;
using FastPath.DataPlane.Packets;
using FastPath.DataPlane.Pipeline;
using FastPath.DataPlane.Routing;
using FastPath.DataPlane.Services;
using FastPath.DataPlane.Telemetry;
using FastPath.Tests.Support;
using static FastPath.Tests.Support.TestFrames;

namespace FastPath.Tests.Pipeline;

/// <summary>
/// The forwarding decision kept in a conntrack entry (<see cref="ForwardingDecision"/>): an established packet that
/// takes it leaves exactly as the general path would send it, and a new snapshot is never answered with an old one.
/// </summary>
public class ForwardingDecisionTests
{
    private static readonly IpAddr Web1 = EngineHarness.Addr("10.244.1.11"), Remote = EngineHarness.Addr("10.244.2.11");

    /// <summary>node-a with a ClusterIP to a local pod, one to a pod on node-b (VXLAN), and a NodePort (masqueraded) to node-b.</summary>
    internal static ForwardingSnapshot Node(IReadOnlyList<Route>? routes = null, bool reorderPods = false)
    {
        var h = new EngineHarness(routes ?? EngineHarness.ClusterRoutes());
        var a = h.Snapshot;
        var pods = a.Ports.Skip(PortIndex.FirstPod).ToList();
        // The client keeps its port number; web-1 and web-3 trade theirs.
        if (reorderPods) pods = [pods[0], pods[2], pods[1]];
        var services = new ServiceTable(
        [
            new ServiceFrontend("default/web", EngineHarness.Addr("10.96.0.10"), 80, IpProtocol.Tcp, [new ServiceBackend(Web1, 8080)]),
            new ServiceFrontend("default/dns", EngineHarness.Addr("10.96.0.11"), 53, IpProtocol.Udp, [new ServiceBackend(Web1, 5353)]),
            new ServiceFrontend("default/far", EngineHarness.Addr("10.96.0.20"), 80, IpProtocol.Tcp, [new ServiceBackend(Remote, 8080)]),
            new ServiceFrontend("default/np", EngineHarness.Addr("192.168.56.11"), 30080, IpProtocol.Tcp, [new ServiceBackend(Remote, 8080)]) { Masquerade = true },
        ]);
        return new ForwardingSnapshot(a.Node, pods, 1, a.Routes, services);
    }

    private static byte[] FromRouter(byte[] ipPacket) =>
        Ethernet(Mac(EngineHarness.NodeMac), Mac(EngineHarness.RouterMac), 0x0800, ipPacket);

    private static byte[] FromWeb1(byte[] ipPacket) =>
        Ethernet(GatewayMac, Mac(EngineHarness.Web1Mac), 0x0800, ipPacket);

    /// <summary>Every kind of decision and the per-packet checks that still apply to it: ClusterIP to a local pod (TCP
    /// and UDP) and its replies, to a remote pod over VXLAN, a NodePort from the uplink, masquerade to the internet, an
    /// established packet whose TTL runs out, one too large for the tunnel with DF set.</summary>
    internal static (short Port, byte[] Frame)[] Traffic(ForwardingSnapshot s)
    {
        short client = (short)s.FindPort("default/client"), web1 = (short)s.FindPort("default/web-1");
        return
        [
            (client, EngineHarness.FromClient(Ipv4("10.244.1.10", "10.96.0.10", 6, Tcp(40000, 80, 0x10, payload: 10)))),
            (web1, FromWeb1(Ipv4("10.244.1.11", "10.244.1.10", 6, Tcp(8080, 40000, 0x10, payload: 3)))),
            (client, EngineHarness.FromClient(Ipv4("10.244.1.10", "10.96.0.11", 17, Udp(5000, 53)))),
            (web1, FromWeb1(Ipv4("10.244.1.11", "10.244.1.10", 17, Udp(5353, 5000)))),
            (client, EngineHarness.FromClient(Ipv4("10.244.1.10", "10.96.0.20", 6, Tcp(40001, 80, 0x18, payload: 100)))),
            (PortIndex.Uplink, FromRouter(Ipv4("198.51.100.7", "192.168.56.11", 6, Tcp(50000, 30080, 0x10)))),
            (client, EngineHarness.FromClient(Ipv4("10.244.1.10", "203.0.113.5", 6, Tcp(40002, 443, 0x10)))),
            (client, EngineHarness.FromClient(Ipv4("10.244.1.10", "10.96.0.10", 6, Tcp(40000, 80, 0x10), ttl: 1))),
            (client, EngineHarness.FromClient(Ipv4("10.244.1.10", "10.96.0.20", 6, Tcp(40001, 80, 0x10, payload: 1440)))),
        ];
    }

    internal static (short Port, byte[] Frame)[] Openings(ForwardingSnapshot s)
    {
        short client = (short)s.FindPort("default/client");
        return
        [
            (client, EngineHarness.FromClient(Ipv4("10.244.1.10", "10.96.0.10", 6, Tcp(40000, 80)))),
            (client, EngineHarness.FromClient(Ipv4("10.244.1.10", "10.96.0.20", 6, Tcp(40001, 80)))),
            (PortIndex.Uplink, FromRouter(Ipv4("198.51.100.7", "192.168.56.11", 6, Tcp(50000, 30080)))),
            (client, EngineHarness.FromClient(Ipv4("10.244.1.10", "203.0.113.5", 6, Tcp(40002, 443)))),
        ];
    }

    internal static List<EngineHarness.Result> Run(Engine engine, (short Port, byte[] Frame)[] frames, long start, bool observed)
    {
        var batch = RunBatch(engine, frames, start, observed);
        var results = new List<EngineHarness.Result>();
        for (int i = 0; i < frames.Length; i++)
        {
            var m = batch.Meta[i];
            results.Add(new EngineHarness.Result(m.Drop, m.IngressPort, m.EgressPort, m.EgressPort >= 0 ? batch.Frame(i).ToArray() : []));
        }
        return results;
    }

    /// <summary>One batch of <paramref name="frames"/> through <paramref name="engine"/>, observed (every packet on the
    /// general path) or not; the batch as the engine left it.</summary>
    internal static PacketBatch RunBatch(Engine engine, (short Port, byte[] Frame)[] frames, long start, bool observed)
    {
        var batch = new PacketBatch(frames.Length);
        for (int i = 0; i < frames.Length; i++)
        {
            frames[i].Frame.CopyTo(batch.ReceiveArea(i));
            batch.SetReceived(i, frames[i].Frame.Length, start + i, i + 1, frames[i].Port);
        }
        batch.Count = frames.Length;
        if (observed)
        {
            var fate = new FateObserver(new PacketFate[frames.Length]);
            engine.Process(batch, ref fate);
        }
        else engine.Process(batch);
        return batch;
    }

    internal static int Decisions(ConntrackTable table)
    {
        int n = 0;
        for (int i = 0; i < table.Capacity; i++)
            if (table[i].InUse) n += (table[i].DecisionOriginal.Stamp != 0 ? 1 : 0) + (table[i].DecisionReply.Stamp != 0 ? 1 : 0);
        return n;
    }

    [Fact]
    public void EstablishedPacketsLeaveAsTheGeneralPathSendsThem()
    {
        var snap = Node();
        var fast = new Engine(new SnapshotHolder(snap), conntrackSeed: 7);
        var general = new Engine(new SnapshotHolder(snap), conntrackSeed: 7); // observed: every packet takes the general path
        long t = Start;
        Assert.Equal(Run(general, Openings(snap), t, observed: true).Select(r => r.Drop), Run(fast, Openings(snap), t, observed: false).Select(r => r.Drop));

        for (int round = 1; round <= 3; round++)
        {
            t += 1_000_000_000;
            var expected = Run(general, Traffic(snap), t, observed: true);
            var actual = Run(fast, Traffic(snap), t, observed: false);
            for (int i = 0; i < expected.Count; i++)
            {
                Assert.Equal(expected[i].Drop, actual[i].Drop);
                Assert.Equal(expected[i].Egress, actual[i].Egress);
                Assert.Equal(Convert.ToHexString(expected[i].Frame), Convert.ToHexString(actual[i].Frame));
            }
            // The traffic reaches every kind of decision and the checks that still run per packet.
            Assert.Equal(DropReason.None, actual[0].Drop);
            Assert.Equal(DropReason.TtlExceeded, actual[7].Drop);
            Assert.Equal(DropReason.MtuExceeded, actual[8].Drop);
            Assert.Equal(PortIndex.Uplink, actual[4].Egress);
        }
        // Both directions of the local flows, the VXLAN flow, the NodePort flow and the masqueraded one.
        Assert.Equal(7, Decisions(fast.Conntrack!));
        Assert.Equal(fast.Conntrack!.Count, general.Conntrack!.Count);
        for (int i = 0; i < fast.Conntrack.Capacity; i++)
        {
            Assert.Equal(general.Conntrack[i].State, fast.Conntrack[i].State);
            Assert.Equal(general.Conntrack[i].PacketsOriginal, fast.Conntrack[i].PacketsOriginal);
            Assert.Equal(general.Conntrack[i].Expires, fast.Conntrack[i].Expires);
        }
    }

    private const long Start = 1_000_000_000_000;

    /// <summary>An engine whose connections are open and whose entries hold decisions (the results of the traffic that made them).</summary>
    private static (SnapshotHolder Holder, Engine Engine, List<EngineHarness.Result> Results) Established(ForwardingSnapshot snap)
    {
        var holder = new SnapshotHolder(snap);
        var engine = new Engine(holder);
        Run(engine, Openings(snap), Start, observed: false);
        var results = Run(engine, Traffic(snap), Start + 1, observed: false);
        Assert.True(Decisions(engine.Conntrack!) > 0);
        return (holder, engine, results);
    }

    [Fact]
    public void ANewSnapshotWithOtherPortNumbersIsNotAnsweredWithTheOldPort()
    {
        var before = Node();
        var (holder, engine, _) = Established(before);
        long t = Start;

        var after = Node(reorderPods: true);
        Assert.NotEqual(before.FindPort("default/web-1"), after.FindPort("default/web-1"));
        Assert.Equal(before.FindPort("default/client"), after.FindPort("default/client"));
        holder.Publish(after);
        var result = Run(engine, Traffic(after), t + 2, observed: false);
        Assert.Equal(DropReason.None, result[0].Drop);
        Assert.Equal(after.FindPort("default/web-1"), result[0].Egress);
        Assert.Equal(after.FindPort("default/client"), result[1].Egress);
    }

    [Fact]
    public void ANewSnapshotWithAnotherGatewayIsNotAnsweredWithTheOldMac()
    {
        var before = Node();
        var (holder, engine, first) = Established(before);
        long t = Start;
        Assert.Equal(Mac(EngineHarness.RouterMac), first[6].Frame[..6]);

        const string otherRouter = "02:00:00:00:00:fd";
        var routes = EngineHarness.ClusterRoutes().Select(r => r.Length == 0
            ? new Route(r.Prefix, 0, r.NextHop with { Mac = EngineHarness.Parse(otherRouter) }) : r).ToList();
        holder.Publish(Node(routes));
        var result = Run(engine, Traffic(before), t + 2, observed: false);
        Assert.Equal(PortIndex.Uplink, result[6].Egress);
        Assert.Equal(Mac(otherRouter), result[6].Frame[..6]);
    }

    [Fact]
    public void ADecisionIsOnlyForTheIngressPortItWasMadeFor()
    {
        var snap = Node();
        var (_, engine, _) = Established(snap);
        long t = Start;
        // The client's established tuple arriving from web-1's port: the source check drops it, decision or not.
        var spoofed = Run(engine, [((short)snap.FindPort("default/web-1"), Traffic(snap)[0].Frame)], t + 2, observed: false);
        Assert.Equal(DropReason.SpoofedSource, spoofed[0].Drop);
    }
}
