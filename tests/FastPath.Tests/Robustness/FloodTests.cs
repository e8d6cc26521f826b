using System.Buffers.Binary;
using FastPath.DataPlane.Packets;
using FastPath.DataPlane.Pipeline;
using FastPath.DataPlane.Services;
using FastPath.DataPlane.Telemetry;
using FastPath.Tests.Support;
using static FastPath.Tests.Support.TestFrames;

namespace FastPath.Tests.Robustness;

/// <summary>
/// Floods and exhaustion: a SYN flood to a ClusterIP far beyond the conntrack capacity, a flood of packets that each
/// call for an ICMP error, and a million frames of random garbage. Rates: docs/BENCHMARKS.md (FloodBenchmarks).
/// </summary>
[Collection(AllocationCollection.Name)]
public class FloodTests
{
    internal const long Second = 1_000_000_000;

    /// <summary>A node with one ClusterIP Service (10.96.0.10:80 → web-1:8080) and a conntrack table of the given size.</summary>
    internal sealed class ServiceNode
    {
        public readonly EngineHarness H;
        public readonly Engine Engine;
        public readonly PacketBatch Batch = new(64);

        public ServiceNode(int conntrackCapacity)
        {
            H = new EngineHarness(conntrackCapacity: conntrackCapacity);
            var snapshot = new ForwardingSnapshot(H.Snapshot.Node, H.Snapshot.Ports.Skip(PortIndex.FirstPod).ToList(), 1, null,
                new ServiceTable([new ServiceFrontend("default/web:http", EngineHarness.Addr("10.96.0.10"), 80, IpProtocol.Tcp,
                    [new ServiceBackend(EngineHarness.Addr("10.244.1.11"), 8080)])]));
            Engine = new Engine(new SnapshotHolder(snapshot), conntrackSeed: 7);
        }

        public (DropReason Drop, short Egress, byte[] Frame) Run(short port, byte[] frame, long now)
        {
            var none = default(NoObserver);
            return Run(port, frame, now, ref none);
        }

        public (DropReason Drop, short Egress, byte[] Frame) Run<TObserver>(short port, byte[] frame, long now, ref TObserver observer)
            where TObserver : struct, IPacketObserver
        {
            frame.CopyTo(Batch.ReceiveArea(0));
            Batch.SetReceived(0, frame.Length, now, 1, port);
            Batch.Count = 1;
            Engine.Process(Batch, ref observer);
            var m = Batch.Meta[0];
            return (m.Drop, m.EgressPort, m.EgressPort >= 0 ? Batch.Frame(0).ToArray() : []);
        }

        public static byte[] FromClient(ushort sport, byte flags) =>
            EngineHarness.FromClient(Ipv4("10.244.1.10", "10.96.0.10", 6, Tcp(sport, 80, flags)));

        public static byte[] FromBackend(ushort dport, byte flags) =>
            Ethernet(GatewayMac, Mac(EngineHarness.Web1Mac), 0x0800, Ipv4("10.244.1.11", "10.244.1.10", 6, Tcp(8080, dport, flags)));

        /// <summary>SYN, SYN-ACK, ACK through the Service: the connection becomes assured.</summary>
        public void Establish(ushort sport, long now)
        {
            Assert.Equal(H.Web1, Run(H.Client, FromClient(sport, 0x02), now).Egress);
            Assert.Equal(H.Client, Run(H.Web1, FromBackend(sport, 0x12), now + 1000).Egress);
            Assert.Equal(H.Web1, Run(H.Client, FromClient(sport, 0x10), now + 2000).Egress);
        }

        /// <summary>The established flow still reaches its backend (DNAT by its conntrack entry) and its reply comes back from the ClusterIP.</summary>
        public void AssertStillWorks(ushort sport, long now)
        {
            var (drop, egress, frame) = Run(H.Client, FromClient(sport, 0x18), now);
            Assert.Equal((DropReason.None, H.Web1), (drop, egress));
            Assert.Equal(8080, BinaryPrimitives.ReadUInt16BigEndian(frame.AsSpan(36)));
            (drop, egress, frame) = Run(H.Web1, FromBackend(sport, 0x18), now + 1000);
            Assert.Equal((DropReason.None, H.Client), (drop, egress));
            Assert.Equal([10, 96, 0, 10], frame[26..30]);
        }
    }

    [Fact]
    public void SynFloodBeyondConntrackCapacityEvictsUnrepliedFlowsAndKeepsEstablishedOnes()
    {
        var node = new ServiceNode(conntrackCapacity: 1024);
        long now = 1000 * Second;
        for (ushort p = 1000; p < 1200; p++) node.Establish(p, now += 10_000);

        // 60,000 SYNs from distinct ports, never answered: 58× the table, all within a second (nothing expires).
        int forwarded = 0;
        for (int i = 0; i < 60_000; i++)
            if (node.Run(node.H.Client, ServiceNode.FromClient((ushort)(2000 + i), 0x02), now += 10_000).Drop == DropReason.None) forwarded++;

        var table = node.Engine.Conntrack!;
        Assert.Equal(1024, table.Count);                    // full, and it stays full
        Assert.Equal(60_000, forwarded);                    // each new SYN takes the place of an unreplied one (early drop)
        Assert.True(table.Evictions >= 60_000 - 824, $"evictions {table.Evictions}");
        Assert.Equal(0, node.Engine.Counters.Drops(DropReason.ConntrackFull));
        for (ushort p = 1000; p < 1200; p++) node.AssertStillWorks(p, now += 10_000);
    }

    [Fact]
    public void SynFloodIntoATableOfAssuredConnectionsIsDroppedAsConntrackFull()
    {
        var node = new ServiceNode(conntrackCapacity: 256);
        long now = 1000 * Second;
        for (ushort p = 1000; p < 1256; p++) node.Establish(p, now += 10_000);
        Assert.Equal(256, node.Engine.Conntrack!.Count);

        for (int i = 0; i < 20_000; i++)
            Assert.Equal(DropReason.ConntrackFull, node.Run(node.H.Client, ServiceNode.FromClient((ushort)(5000 + i), 0x02), now += 10_000).Drop);

        Assert.Equal(20_000, node.Engine.Counters.Drops(node.H.Client, DropReason.ConntrackFull));
        Assert.Equal(20_000, node.Engine.Conntrack.InsertFailures);
        Assert.Equal(0, node.Engine.Conntrack.Evictions);   // assured connections are never evicted
        for (ushort p = 1000; p < 1256; p++) node.AssertStillWorks(p, now += 10_000);
    }

    [Fact]
    public void IcmpErrorFloodIsHeldToTheRateLimits()
    {
        var h = new EngineHarness();
        var batch = new PacketBatch(64);
        var rng = new Random(10);
        // 100,000 packets over 10 s of capture time from 1,000 external sources, each expiring (TTL 1) on its way
        // to a pod: every one calls for a time exceeded. Linux's limits: 1000/s + burst 50 globally, 1/s + burst 6 per destination.
        var frames = Enumerable.Range(0, 1000).Select(i => Ethernet(Mac(EngineHarness.NodeMac), Mac(EngineHarness.RouterMac), 0x0800,
            Ipv4($"203.0.{i / 250}.{i % 250 + 1}", "10.244.1.11", 17, Udp(4000, 53), ttl: 1))).ToArray();
        long errors = 0;
        for (int n = 0; n < 100_000; n += batch.Capacity)
        {
            for (int i = 0; i < batch.Capacity; i++)
            {
                var f = frames[rng.Next(frames.Length)];
                f.CopyTo(batch.ReceiveArea(i));
                batch.SetReceived(i, f.Length, 1000 * Second + (n + i) * 100_000L, n + i + 1, PortIndex.Uplink);
            }
            batch.Count = batch.Capacity;
            h.Engine.Process(batch);
            for (int i = 0; i < batch.Count; i++)
            {
                Assert.Equal(DropReason.TtlExceeded, batch.Meta[i].Drop);
                if (batch.Meta[i].EgressPort == PortIndex.Uplink) errors++;
            }
        }
        Assert.Equal(100_032, h.Engine.Counters.Drops(PortIndex.Uplink, DropReason.TtlExceeded));
        Assert.InRange(errors, 1_000, 50 + 1000 * 10);      // the global bucket holds (tokens it grants that a per-destination bucket refuses are spent, as in Linux)
        Assert.Equal(100_032 - errors, h.Engine.IcmpLimiter.Limited);
    }

    [Fact]
    public void AMillionFramesOfRandomGarbageThrowNothingAndAllocateNothing()
    {
        var h = new EngineHarness(EngineHarness.ClusterRoutes());
        var rng = new Random(1125);
        var pool = new byte[4096][];
        for (int i = 0; i < pool.Length; i++)
        {
            pool[i] = new byte[rng.Next(0, 1515)];
            rng.NextBytes(pool[i]);
            // Half look like Ethernet + IPv4/IPv6 so the garbage reaches deeper stages than the EtherType check.
            if (i % 2 == 0 && pool[i].Length > 34)
            {
                pool[i][12] = (byte)(i % 4 == 0 ? 0x08 : 0x86);
                pool[i][13] = (byte)(i % 4 == 0 ? 0x00 : 0xDD);
                pool[i][14] = (byte)(i % 4 == 0 ? 0x45 : 0x60);
            }
        }
        short[] ports = [PortIndex.Auto, PortIndex.Uplink, PortIndex.Host, h.Client, h.Web1, 99];
        var batch = new PacketBatch(64);
        long verdicts = 0;
        void RunBatches(int batches, int seed)
        {
            int k = seed;
            for (int b = 0; b < batches; b++)
            {
                for (int i = 0; i < batch.Capacity; i++, k++)
                {
                    var f = pool[(k * 7919) & (pool.Length - 1)];
                    f.CopyTo(batch.ReceiveArea(i));
                    batch.SetReceived(i, f.Length, b * 1000L + i, i + 1, ports[k % ports.Length]);
                }
                batch.Count = batch.Capacity;
                h.Engine.Process(batch);
                for (int i = 0; i < batch.Count; i++)
                    if (batch.Meta[i].Drop != DropReason.None || batch.Meta[i].EgressPort >= 0) verdicts++;
            }
        }
        RunBatches(500, 0);
        verdicts = 0;
        Assert.Equal(0, Allocations.Measure(() => RunBatches(1_048_576 / 64, 1)));
        Assert.Equal(1_048_576, verdicts);                  // every frame got a verdict
    }
}
