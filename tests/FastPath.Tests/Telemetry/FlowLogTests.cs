using System.Text.Json;
using FastPath.DataPlane.Conntrack;
using FastPath.DataPlane.Packets;
using FastPath.DataPlane.Pipeline;
using FastPath.DataPlane.Telemetry;
using FastPath.Tests.Support;
using static FastPath.Tests.Support.TestFrames;

namespace FastPath.Tests.Telemetry;

/// <summary>Flow records: connection start/end/active and drops, through a ring drained by another thread.</summary>
public class FlowLogTests
{
    private static string Demo(string name) => Path.Combine(RepositoryFiles.Root, "pcaps", "demo", name);

    [Fact]
    public void ReplayOfTheDemoWritesOneRecordPerConnectionEventAndDrop()
    {
        using var tmp = new TempFolder();
        var stdout = new StringWriter();
        int exit = FastPath.Program.Run(["replay", Demo("demo.pcapng"), "--cluster", Demo("cluster"), "--node", "node-a", "--out", tmp.Path,
            "--flow-log", tmp.File("flows.jsonl")], stdout, TextWriter.Null);
        Assert.Equal(0, exit);
        Assert.Contains("9 records, 0 lost", stdout.ToString());
        var records = File.ReadAllLines(tmp.File("flows.jsonl")).Select(l => JsonDocument.Parse(l).RootElement).ToList();
        Assert.Equal(9, records.Count);

        // Every drops.jsonl line has its drop record, with the same reason and ingress.
        var drops = records.Where(r => r.GetProperty("event").GetString() == "drop").ToList();
        var expected = File.ReadAllLines(tmp.File("drops.jsonl")).Select(l => JsonDocument.Parse(l).RootElement).ToList();
        Assert.Equal(expected.Select(d => d.GetProperty("reason").GetString()), drops.Select(d => d.GetProperty("drop_reason").GetString()));
        Assert.All(drops, d => Assert.Equal("default/client", d.GetProperty("ingress").GetString()));
        Assert.Equal("10.244.1.99", drops.Single(d => d.GetProperty("drop_reason").GetString() == "spoofed-source")
            .GetProperty("original").GetProperty("source").GetString());

        // The ClusterIP connection (packet 24): before and after DNAT, Service, backend.
        var service = records.Single(r => r.GetProperty("event").GetString() == "start" && r.GetProperty("nat").GetString() == "service");
        Assert.Equal("10.96.0.20", service.GetProperty("original").GetProperty("destination").GetString());
        Assert.Equal("10.244.1.11", service.GetProperty("translated").GetProperty("destination").GetString());
        Assert.Equal(8080, service.GetProperty("translated").GetProperty("destination_port").GetInt32());
        Assert.Equal("shop/web:http", service.GetProperty("service").GetString());
        Assert.Equal("10.244.1.11:8080", service.GetProperty("backend").GetString());
        Assert.Equal(1_024_000_000_000, service.GetProperty("start_ns").GetInt64());

        // The masqueraded connection (packets 21-22) is still tracked at the end: one packet each way.
        var masq = records.Single(r => r.GetProperty("event").GetString() == "active" && r.GetProperty("nat").GetString() == "masquerade");
        Assert.Equal("192.168.56.11", masq.GetProperty("translated").GetProperty("source").GetString());
        Assert.Equal(1, masq.GetProperty("packets").GetInt64());
        Assert.Equal(1, masq.GetProperty("reply_packets").GetInt64());
        Assert.Equal("syn-recv", masq.GetProperty("state").GetString());
        Assert.Equal(1_022_000_000_000, masq.GetProperty("end_ns").GetInt64());
    }

    [Fact]
    public void AConnectionThatTimesOutIsLoggedWithItsCounters()
    {
        var ring = new FlowRing(64);
        var table = new ConntrackTable(16, seed: 1) { FlowLog = ring };
        var key = new FlowKey(IpAddr.FromV4(0x0AF4_010A), IpAddr.FromV4(0x0808_0808), 4000, 53, IpProtocol.Udp);
        int index = table.Insert(key, key.Reverse(), now: 0);
        table.Observe(index, isReply: false, 0, 60, now: 0);
        table.Observe(index, isReply: true, 0, 90, now: 1_000_000);
        Assert.False(ring.TryRead(out _));

        Assert.Equal(1, table.Sweep(now: long.MaxValue / 2, budget: 16));
        Assert.True(ring.TryRead(out var r));
        Assert.Equal(FlowEvent.End, r.Event);
        Assert.Equal(key, r.Original);
        Assert.Equal((0L, 1_000_000L), (r.Start, r.End));
        Assert.Equal((1L, 60L, 1L, 90L), (r.PacketsOriginal, r.BytesOriginal, r.PacketsReply, r.BytesReply));
        Assert.Equal(ConntrackState.Replied, r.State);
        Assert.False(ring.TryRead(out _));
    }

    [Fact]
    public void AFullRingCountsLostRecordsInsteadOfWaiting()
    {
        var ring = new FlowRing(16);
        var key = new FlowKey(IpAddr.FromV4(1), IpAddr.FromV4(2), 3, 4, IpProtocol.Udp);
        for (int i = 0; i < 20; i++) ring.Dropped(key, DropReason.NoRoute, 2, i, 60);
        Assert.Equal(4, ring.Lost);
        int read = 0;
        while (ring.TryRead(out var r))
        {
            Assert.Equal(read, r.Start); // oldest first, none overwritten
            read++;
        }
        Assert.Equal(16, read);
    }

    [Fact]
    public void SamplingKeepsAboutOneFlowInN()
    {
        var ring = new FlowRing(1 << 16, sampleEvery: 16);
        int kept = 0;
        for (int i = 0; i < 16_000; i++)
            if (ring.Sampled(new FlowKey(IpAddr.FromV4(0x0AF4_010A), IpAddr.FromV4(0x0808_0808), (ushort)(1024 + i), 53, IpProtocol.Udp))) kept++;
        Assert.InRange(kept, 800, 1200);
    }
}

/// <summary>The flow-logged packet path allocates nothing either.</summary>
[Collection(AllocationCollection.Name)]
public class FlowLogAllocationTests
{
    [Fact]
    public void FlowLoggedForwardingAllocatesNothing()
    {
        var h = new EngineHarness(EngineHarness.ClusterRoutes());
        var ring = new FlowRing(1 << 10);
        h.Engine.Conntrack!.FlowLog = ring;
        var observer = new FlowLogObserver(ring);
        byte[][] frames =
        [
            EngineHarness.FromClient(Ipv4("10.244.1.10", "10.244.1.11", 6, Tcp(40000, 8080))),
            EngineHarness.FromClient(Ipv4("10.244.1.10", "10.244.1.11", 17, Udp(1, 2), ttl: 1)),  // drop record
            EngineHarness.FromClient(Ipv4("10.244.1.10", "203.0.113.5", 6, Tcp(40000, 443))),    // masquerade start, then hits
            [1, 2, 3, 4],                                                                          // malformed: drop without a tuple
        ];
        var batch = new PacketBatch(64);
        void RunBatches(int batches)
        {
            for (int b = 0; b < batches; b++)
            {
                for (int i = 0; i < batch.Capacity; i++)
                {
                    var f = frames[i % frames.Length];
                    f.CopyTo(batch.ReceiveArea(i));
                    batch.SetReceived(i, f.Length, b * 1_000_000L + i, i + 1, h.Client);
                }
                batch.Count = batch.Capacity;
                h.Engine.Process(batch, ref observer);
                while (ring.TryRead(out _)) { } // the consumer, on this thread for the measurement
            }
        }
        RunBatches(1000);
        Assert.Equal(0, Allocations.Measure(() => RunBatches(1_048_576 / 64)));
        Assert.Equal(0, ring.Lost);
        Assert.True(h.Engine.Counters.Drops(DropReason.TtlExceeded) > 0);
    }
}
