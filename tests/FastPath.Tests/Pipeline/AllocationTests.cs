using FastPath.DataPlane.Pipeline;
using FastPath.DataPlane.Telemetry;
using FastPath.Tests.Support;
using static FastPath.Tests.Support.TestFrames;

namespace FastPath.Tests.Pipeline;

[Collection(AllocationCollection.Name)]
public class AllocationTests
{
    /// <summary>
    /// The steady-state loop (receive into slots, parse, forward, count) allocates nothing over ≥ 1M packets: same-node,
    /// ARP/ND answers, ICMP errors, VXLAN encapsulation and decapsulation, masquerade with conntrack hits.
    /// </summary>
    [Fact]
    public void OneMillionPacketsAllocateNothing()
    {
        var h = new EngineHarness(EngineHarness.ClusterRoutes());
        var toNodeB = EngineHarness.FromClient(Ipv4("10.244.1.10", "10.244.2.11", 6, Tcp(40000, 8080)));
        byte[][] frames =
        [
            EngineHarness.FromClient(Ipv4("10.244.1.10", "10.244.1.11", 6, Tcp(40000, 8080))),
            EngineHarness.FromClient(Ipv6("fd00:244:1::a", "fd00:244:1::b", 17, Udp(5000, 53)), 0x86DD),
            EngineHarness.FromClient(Ipv4("10.244.1.10", "10.244.1.11", 6, Tcp(1, 2), ttl: 1)),
            Ethernet(Mac("ff:ff:ff:ff:ff:ff"), Mac(EngineHarness.ClientMac), 0x0806, Arp(1, Mac(EngineHarness.ClientMac), "10.244.1.10", new byte[6], "10.244.1.1")),
            EngineHarness.FromClient(Ipv6("fd00:244:1::a", "ff02::1:ff00:1", 58, NeighborSolicitation("fd00:244:1::1", Mac(EngineHarness.ClientMac)), hopLimit: 255), 0x86DD),
            EngineHarness.FromClient(Ipv4("10.244.1.11", "10.244.1.13", 17, Udp(1, 2))),
            [1, 2, 3, 4],
            toNodeB,                                                                                     // VXLAN encapsulation
            EngineHarness.FromClient(Ipv4("10.244.1.10", "203.0.113.5", 6, Tcp(40000, 443, 0x10))),     // masquerade, conntrack hit
            Ethernet(Mac(EngineHarness.NodeMac), Mac(EngineHarness.NodeBMac), 0x0800,                    // VXLAN decapsulation
                Ipv4("192.168.56.12", "192.168.56.11", 17, Udp(50000, 8472, 0).Concat(new byte[] { 8, 0, 0, 0, 0, 0, 1, 0 })
                    .Concat(Ethernet(Mac(EngineHarness.NodeMac), Mac(EngineHarness.NodeBMac), 0x0800, Ipv4("10.244.2.11", "10.244.1.11", 17, Udp(1, 2)))).ToArray())),
        ];
        short[] ports = [h.Client, h.Client, h.Client, h.Client, h.Client, h.Client, h.Client, h.Client, h.Client, PortIndex.Uplink];
        var batch = new PacketBatch(64);
        long emitted = 0;

        void RunBatches(int batches)
        {
            for (int b = 0; b < batches; b++)
            {
                for (int i = 0; i < batch.Capacity; i++)
                {
                    var f = frames[i % frames.Length];
                    f.CopyTo(batch.ReceiveArea(i));
                    batch.SetReceived(i, f.Length, i, i + 1, ports[i % frames.Length]);
                }
                batch.Count = batch.Capacity;
                h.Engine.Process(batch);
                for (int i = 0; i < batch.Count; i++)
                    if (batch.Meta[i].EgressPort >= 0) emitted++;
            }
        }

        RunBatches(1000); // warm up: tiering and first-call initialisation may allocate
        const int packets = 1_048_576;
        long allocated = Allocations.Measure(() => RunBatches(packets / batch.Capacity));

        Assert.Equal(0, allocated);
        Assert.True(emitted > packets / 2);
        Assert.True(h.Engine.Counters.Drops(DropReason.TtlExceeded) > 0);
        Assert.True(h.Engine.Counters.TxPackets(PortIndex.Uplink) > packets / 8);      // encapsulated and masqueraded
        Assert.Equal(0, h.Engine.Counters.Drops(PortIndex.Uplink, DropReason.Malformed));
        Assert.True(h.Engine.Counters.RxPackets(PortIndex.Uplink) > 0);
        Assert.Equal(0, h.Engine.Counters.Drops(PortIndex.Uplink, DropReason.NotForNode));  // the decapsulated packets were delivered
    }

    /// <summary>
    /// Established connections forwarded by the decision kept in their conntrack entry (ForwardingDecision) allocate
    /// nothing over ≥ 1M packets: ClusterIP to a local pod and its replies (TCP and UDP), ClusterIP over VXLAN, a NodePort
    /// from the uplink, masquerade, and the TTL and MTU errors that path still sends.
    /// </summary>
    [Fact]
    public void OneMillionPacketsOnKeptDecisionsAllocateNothing()
    {
        var snap = ForwardingDecisionTests.Node();
        var engine = new Engine(new SnapshotHolder(snap));
        ForwardingDecisionTests.Run(engine, ForwardingDecisionTests.Openings(snap), 0, observed: false);
        var frames = ForwardingDecisionTests.Traffic(snap);
        var batch = new PacketBatch(64);
        long emitted = 0, time = 1;

        void RunBatches(int batches)
        {
            for (int b = 0; b < batches; b++)
            {
                for (int i = 0; i < batch.Capacity; i++)
                {
                    var (port, f) = frames[i % frames.Length];
                    f.CopyTo(batch.ReceiveArea(i));
                    batch.SetReceived(i, f.Length, time++, i + 1, port);
                }
                batch.Count = batch.Capacity;
                engine.Process(batch);
                for (int i = 0; i < batch.Count; i++)
                    if (batch.Meta[i].Drop == DropReason.None) emitted++;
            }
        }

        RunBatches(1000);
        Assert.Equal(7, ForwardingDecisionTests.Decisions(engine.Conntrack!));
        const int packets = 1_048_576;
        emitted = 0;
        long allocated = Allocations.Measure(() => RunBatches(packets / batch.Capacity));

        Assert.Equal(0, allocated);
        Assert.True(emitted > packets / 2);
        Assert.Equal(7, ForwardingDecisionTests.Decisions(engine.Conntrack!));
    }

    /// <summary>
    /// A new snapshot that shares routes, node settings and ports with the previous one (what an EndpointSlice or
    /// Service change publishes) costs the forwarding thread no allocation: 1,000 swaps between two Service tables,
    /// one per batch, with VXLAN encapsulation running under both.
    /// </summary>
    [Fact]
    public void SnapshotSwapsThatShareRoutesAndPortsAllocateNothing()
    {
        var h = new EngineHarness(EngineHarness.ClusterRoutes());
        var a = h.Snapshot;
        var pods = a.Ports.Skip(PortIndex.FirstPod).ToList();
        var backends = new List<FastPath.DataPlane.Services.ServiceBackend> { new(EngineHarness.Addr("10.244.1.11"), 8080) };
        var services = new FastPath.DataPlane.Services.ServiceTable([new FastPath.DataPlane.Services.ServiceFrontend(
            "default/web", EngineHarness.Addr("10.96.0.10"), 80, 6, backends)]);
        var snapshots = new[] { a, new ForwardingSnapshot(a.Node, pods, 1, a.Routes, services), new ForwardingSnapshot(a.Node, pods, 2, a.Routes, services.Update([], [])) };
        var holder = new SnapshotHolder(a);
        var engine = new Engine(holder);
        var frame = EngineHarness.FromClient(Ipv4("10.244.1.10", "10.244.2.11", 6, Tcp(40000, 8080))); // VXLAN to node-b
        var batch = new PacketBatch(32);
        int swaps = 0;
        long encapsulated = 0;

        void Run(int batches)
        {
            for (int b = 0; b < batches; b++)
            {
                holder.Publish(snapshots[1 + (swaps++ & 1)]);
                for (int i = 0; i < batch.Capacity; i++)
                {
                    frame.CopyTo(batch.ReceiveArea(i));
                    batch.SetReceived(i, frame.Length, i, i + 1, (short)a.FindPort("default/client"));
                }
                batch.Count = batch.Capacity;
                engine.Process(batch);
                for (int i = 0; i < batch.Count; i++)
                    if (batch.Meta[i].EgressPort == PortIndex.Uplink) encapsulated++;
            }
        }

        Run(100); // warm up
        long allocated = Allocations.Measure(() => Run(1000));
        Assert.Equal(0, allocated);
        Assert.Equal(1100L * batch.Capacity, encapsulated);
    }
}
