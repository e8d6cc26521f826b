using FastPath.DataPlane.Pipeline;
using FastPath.DataPlane.Telemetry;
using FastPath.Diff;
using FastPath.Replay;
using FastPath.Tests.Support;
using static FastPath.Tests.Support.TestFrames;

namespace FastPath.Tests.Diff;

/// <summary>
/// `fastpath diff` and `replay --pcapng` per packet: copying the batch, the engine with <see cref="FateObserver"/>,
/// comparing two unchanged fates, and writing the commented verdict capture allocate nothing over ≥ 1M packets.
/// </summary>
[Collection(AllocationCollection.Name)]
public class FateAllocationTests
{
    [Fact]
    public void OneMillionPackets_DiffedAndWrittenToTheVerdictCapture_AllocateNothing()
    {
        var before = new EngineHarness(EngineHarness.ClusterRoutes());
        var after = new EngineHarness(EngineHarness.ClusterRoutes());
        byte[][] frames =
        [
            EngineHarness.FromClient(Ipv4("10.244.1.10", "10.244.1.11", 6, Tcp(40000, 8080))),
            EngineHarness.FromClient(Ipv4("10.244.1.10", "10.244.1.11", 6, Tcp(1, 2), ttl: 1)),          // dropped, ICMP error
            EngineHarness.FromClient(Ipv4("10.244.1.10", "10.244.2.11", 6, Tcp(40000, 8080))),         // VXLAN
            EngineHarness.FromClient(Ipv4("10.244.1.10", "203.0.113.5", 6, Tcp(40000, 443, 0x10))),   // masquerade
            EngineHarness.FromClient(Ipv4("10.244.1.99", "10.244.1.11", 17, Udp(1, 2))),              // spoofed
        ];
        using var tmp = new TempFolder();
        var input = new PacketBatch(64);
        var copy = new PacketBatch(64);
        var third = new PacketBatch(64);
        var beforeFates = new FateObserver(new PacketFate[64]);
        var afterFates = new FateObserver(new PacketFate[64]);
        var diff = new FateDiff();
        using var verdicts = new VerdictCapture(tmp.File("v.pcapng"), before.Snapshot, input.Capacity);

        void RunBatches(int batches)
        {
            for (int b = 0; b < batches; b++)
            {
                for (int i = 0; i < input.Capacity; i++)
                {
                    var f = frames[i % frames.Length];
                    f.CopyTo(input.ReceiveArea(i));
                    input.SetReceived(i, f.Length, i, i + 1, before.Client);
                }
                input.Count = input.Capacity;
                copy.CopyFrom(input);
                third.CopyFrom(input);
                beforeFates.Begin();
                before.Engine.Process(input, ref beforeFates);
                afterFates.Begin();
                after.Engine.Process(copy, ref afterFates);
                diff.Compare(beforeFates.Fates, before.Engine.Snapshot, afterFates.Fates, after.Engine.Snapshot, input.Count);
                // The verdict capture: the same packets once more, through its own observer.
                verdicts.Keep(third);
                var fates = verdicts.Observer();
                before.Engine.Process(third, ref fates);
                verdicts.Write(third, before.Engine.Snapshot);
            }
        }

        RunBatches(1000); // warm up
        long allocated = Allocations.Measure(() => RunBatches(1_048_576 / input.Capacity));
        Assert.Equal(0, allocated);
        Assert.Equal(0, diff.ChangedPackets);
        Assert.True(verdicts.Packets > 1_048_576);
    }
}
