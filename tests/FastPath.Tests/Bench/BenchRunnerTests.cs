using FastPath.Bench;
using FastPath.DataPlane.Ports;
using FastPath.Tests.Support;

namespace FastPath.Tests.Bench;

/// <summary>
/// Every `fastpath bench` scenario runs (a few milliseconds: no timing is asserted), forwards every packet it
/// generated and allocates nothing on the packet threads while measuring.
/// </summary>
[Collection(AllocationCollection.Name)]
public class BenchRunnerTests
{
    private static readonly TrafficParameters Small = new() { Flows = 512, Services = 200, Endpoints = 4, Routes = 16 };

    public static TheoryData<TrafficScenario> Scenarios => new(Enum.GetValues<TrafficScenario>());

    private static BenchResult Run(TrafficScenario s, int workers = 1, BenchDispatch dispatch = BenchDispatch.Rss) =>
        BenchRunner.Run(new BenchOptions(s, Small, workers, TimeSpan.FromMilliseconds(40), TimeSpan.FromMilliseconds(20), dispatch));

    [Theory]
    [MemberData(nameof(Scenarios))]
    public void EveryScenarioForwardsEveryPacketWithoutAllocating(TrafficScenario scenario)
    {
        var r = Run(scenario);
        Assert.Equal(0, r.AllocatedBytes);
        Assert.True(r.Packets >= 64, $"{r.Packets} packets in {r.Seconds:F3} s");
        Assert.Equal(0, r.Packets % 64); // whole batches of 64
        Assert.Equal(0, r.Dropped);
        Assert.Equal(r.Packets, r.Forwarded);
        Assert.InRange(r.Seconds, 0.02, 5);
    }

    [Theory]
    [InlineData(TrafficScenario.ClusterIpEstablished, BenchDispatch.Rss)]
    [InlineData(TrafficScenario.ClusterIpEstablished, BenchDispatch.Software)]
    [InlineData(TrafficScenario.Mixed, BenchDispatch.Software)]
    public void TwoWorkersForwardEveryPacketWithoutAllocating(TrafficScenario scenario, BenchDispatch dispatch)
    {
        var r = Run(scenario, workers: 2, dispatch);
        Assert.Equal(0, r.AllocatedBytes);
        Assert.True(r.Packets >= 64, $"{r.Packets} packets");
        Assert.Equal(0, r.Dropped);
        Assert.Equal(r.Packets, r.Forwarded);
        Assert.Equal(dispatch == BenchDispatch.Software ? 3 : 2, r.Cores);
    }

    [Theory]
    [InlineData(1)]
    [InlineData(2)]
    public void NewFlowsAreNewConnections(int workers)
    {
        // The new-flow scenario spaces each queue's packets so a tuple's earlier connection has expired when it comes
        // round again: inserts keep pace with packets instead of stopping after the first round.
        var traffic = TrafficGenerator.Generate(TrafficScenario.ClusterIpNewFlows, Small);
        var batch = new DataPlane.Pipeline.PacketBatch(1);
        foreach (var queue in workers == 1 ? [traffic.Source()] : traffic.Queues(workers))
        {
            var engine = new DataPlane.Pipeline.Engine(new DataPlane.Pipeline.SnapshotHolder(traffic.Snapshot));
            for (int i = 0; i < 3 * Small.Flows / workers; i++)
            {
                queue.Receive(batch);
                engine.Process(batch);
            }
            Assert.Equal(3 * Small.Flows / workers, engine.Conntrack!.Inserts);
            Assert.InRange(engine.Conntrack.Count, 1, Small.Flows);
        }
    }

    [Fact]
    public void NewFlowsAtTheLimits_StayInTheTable_LoseFlowRecordsAtAFullRing_AndAllocateNothing()
    {
        // conntrackMaxEntries far below the flows and a flow-log ring nobody drains: the table stays at its capacity by
        // evicting unassured (SYN_SENT) entries, every record past the ring's capacity is counted as lost, and the
        // packet path still allocates nothing.
        var limited = Small with { Flows = 4096, ConntrackMaxEntries = 512 };
        var r = BenchRunner.Run(new BenchOptions(TrafficScenario.ClusterIpNewFlows, limited, 1, TimeSpan.FromMilliseconds(60),
            TimeSpan.FromMilliseconds(20), FlowLogRing: 64));
        var l = r.Limits!;
        Assert.Equal(0, r.AllocatedBytes);
        Assert.Equal(r.Packets, r.Forwarded);
        Assert.Equal(512, l.ConntrackCapacity);
        Assert.Equal(512, l.ConntrackEntries);
        Assert.True(l.Evictions >= l.Inserts - 512, $"{l.Inserts} inserts, {l.Evictions} evictions");
        Assert.Equal(0, l.ConntrackFullDrops);
        // Every packet measured is a SYN of a new connection, and every one was accepted: offered = accepted.
        Assert.Equal(r.Packets, l.InsertsMeasured);
        Assert.Equal(0, l.InsertFailures);
        Assert.Equal(64, l.FlowRingCapacity);
        Assert.True(l.FlowRecordsLost >= l.Inserts - 64, $"{l.Inserts} connections started, {l.FlowRecordsLost} records lost");
        Assert.InRange(l.RssAtStart, 1, l.RssPeak);
        Assert.True(l.GcHeapPeak > 0);
    }

    [Fact]
    public void IsolatedPodToPodFlowsPassByTheirPolicyEntries()
    {
        // The scenario measures the established-flow cost of NetworkPolicy: after one round every flow has a plain
        // (untranslated) policy entry, and later rounds hit it instead of opening anything.
        var traffic = TrafficGenerator.Generate(TrafficScenario.PodToPodIsolated, Small);
        var engine = new DataPlane.Pipeline.Engine(new DataPlane.Pipeline.SnapshotHolder(traffic.Snapshot));
        var source = traffic.Source();
        var batch = new DataPlane.Pipeline.PacketBatch(64);
        for (int round = 0; round < 2 * Small.Flows / 64; round++)
        {
            source.Receive(batch);
            engine.Process(batch);
            for (int i = 0; i < batch.Count; i++) Assert.Equal(DataPlane.Telemetry.DropReason.None, batch.Meta[i].Drop);
        }
        var table = engine.Conntrack!;
        Assert.Equal(Small.Flows, table.Inserts);
        Assert.Equal(Small.Flows, table.Count);
        for (int i = 0; i < table.Capacity; i++)
            if (table[i].InUse)
            {
                Assert.Equal(DataPlane.Policy.PolicyEnforcer.NatKind, table[i].NatKind);
                Assert.Equal(DataPlane.Conntrack.ConntrackStatus.None, table[i].Status & DataPlane.Conntrack.ConntrackStatus.Translated);
            }
    }
}
