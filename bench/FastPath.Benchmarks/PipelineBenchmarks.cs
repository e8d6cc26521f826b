using BenchmarkDotNet.Attributes;
using FastPath.DataPlane.Pipeline;
using FastPath.DataPlane.Ports;

namespace FastPath.Benchmarks;

/// <summary>
/// The whole loop on one core for the `fastpath bench` scenarios (same generator, <see cref="TrafficGenerator"/>):
/// receive from an in-memory port into batch slots (a copy per frame, as a NIC ring would), Engine.Process,
/// transmit to a null port. ns/packet (OperationsPerInvoke = packets per invoke), batches of 64, 1024 flows,
/// 10k Services × 10 endpoints, 256 routes. Add `--disasm` to read the JIT's code of the loop (docs/BENCHMARKS.md).
/// </summary>
[MemoryDiagnoser]
public class PipelineBenchmarks
{
    [Params(TrafficScenario.PodToPod, TrafficScenario.VxlanEncap, TrafficScenario.VxlanDecap, TrafficScenario.ClusterIpEstablished,
        TrafficScenario.ClusterIpNewFlows, TrafficScenario.NodePortSnat, TrafficScenario.Mixed)]
    public TrafficScenario Scenario { get; set; }

    [Params(64)]
    public int FrameLength { get; set; }

    private EngineLoop _loop = null!;

    [GlobalSetup]
    public void Setup()
    {
        var traffic = TrafficGenerator.Generate(Scenario, new TrafficParameters { FrameLength = FrameLength });
        _loop = new EngineLoop(traffic.Source(), new Engine(new SnapshotHolder(traffic.Snapshot)), Scenario.ToString());
        if (traffic.OpensConnections) _loop.Forward(traffic.Frames.Count);
    }

    [Benchmark(OperationsPerInvoke = EngineLoop.Packets)]
    public long Forward() => _loop.Forward();
}
