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
    private const int Packets = 64 * 1024;

    [Params(TrafficScenario.PodToPod, TrafficScenario.VxlanEncap, TrafficScenario.VxlanDecap, TrafficScenario.ClusterIpEstablished,
        TrafficScenario.ClusterIpNewFlows, TrafficScenario.NodePortSnat, TrafficScenario.Mixed)]
    public TrafficScenario Scenario { get; set; }

    [Params(64)]
    public int FrameLength { get; set; }

    private Engine _engine = null!;
    private MemorySource _source = null!;
    private NullSink _sink = null!;
    private PacketBatch _batch = null!;

    [GlobalSetup]
    public void Setup()
    {
        var traffic = TrafficGenerator.Generate(Scenario, new TrafficParameters { FrameLength = FrameLength });
        _engine = new Engine(new SnapshotHolder(traffic.Snapshot));
        _source = traffic.Source();
        _sink = new NullSink();
        _batch = new PacketBatch(64);
        if (traffic.OpensConnections) EngineLoop.Forward(_source, _engine, _sink, _batch, traffic.Frames.Count, Scenario.ToString());
    }

    [Benchmark(OperationsPerInvoke = Packets)]
    public long Forward() => EngineLoop.Forward(_source, _engine, _sink, _batch, Packets, Scenario.ToString());
}
