using BenchmarkDotNet.Attributes;
using FastPath.DataPlane.Packets;
using FastPath.DataPlane.Pipeline;
using FastPath.DataPlane.Ports;
using FastPath.DataPlane.Services;

namespace FastPath.Benchmarks;

/// <summary>
/// The whole loop for ClusterIP traffic with 10,000 Services × 10 endpoints loaded: established flows (conntrack hit,
/// DNAT, forward to a local backend) and new connections (SYNs: frontend lookup, Maglev, conntrack insert, DNAT).
/// 64-byte frames from an in-memory port into a null port, batches of 64, one core; ns/packet.
/// Maglev tables are 1021 slots here (10k × the default 16381 would need 655 MB).
/// </summary>
[MemoryDiagnoser]
public class ServicePipelineBenchmarks
{
    private const int Packets = 64 * 1024;
    private const int Services = 10_000, Endpoints = 10;

    public enum Scenario { Established, NewConnections }

    [Params(Scenario.Established, Scenario.NewConnections)]
    public Scenario Traffic { get; set; }

    private Engine _engine = null!;
    private MemorySource _source = null!;
    private NullSink _sink = null!;
    private PacketBatch _batch = null!;
    private ForwardingSnapshot _snapshot = null!;

    [GlobalSetup]
    public void Setup()
    {
        var node = new NodeSettings { NodeName = "node-a", UplinkMac = new MacAddress(0x0200_0000_0101UL), HostAddresses = [IpAddr.FromV4(0xC0A8_380B)], ConntrackCapacity = 1 << 18 };
        // Backends are 10 local pods (10.244.1.20-29) shared by every Service, so every choice is deliverable.
        var pods = new List<PortDefinition> { new("default/client", PortKind.Pod, SampleFrames.Client, [IpAddr.FromV4(0x0AF4_010A)]) };
        for (int e = 0; e < Endpoints; e++)
            pods.Add(new PortDefinition($"default/web-{e}", PortKind.Pod, new MacAddress(0x0242_0AF4_0114UL + (ulong)e), [IpAddr.FromV4(0x0AF4_0114u + (uint)e)]));
        var frontends = new List<ServiceFrontend>();
        for (int s = 0; s < Services; s++)
            frontends.Add(new ServiceFrontend($"default/svc-{s}", IpAddr.FromV4(0x0A60_0000u + (uint)s), 80, IpProtocol.Tcp,
                Enumerable.Range(0, Endpoints).Select(e => new ServiceBackend(IpAddr.FromV4(0x0AF4_0114u + (uint)e), 8080)).ToList()));
        var snapshot = new ForwardingSnapshot(node, pods, services: new ServiceTable(frontends, maglevTableSize: 1021));
        _engine = new Engine(new SnapshotHolder(snapshot));

        var rng = new Random(3);
        // New connections: every packet of an invocation is a distinct 5-tuple (source port × VIP), and each
        // iteration starts from a fresh engine (IterationSetup), so every SYN misses conntrack and inserts.
        int distinct = Traffic == Scenario.Established ? 1024 : Packets;
        var frames = new List<byte[]>(distinct);
        for (int i = 0; i < distinct; i++)
            frames.Add(SampleFrames.Ipv4Tcp((ushort)(1024 + i % 60000), 80, 64, dst: 0x0A60_0000u + (uint)rng.Next(Services)));
        _snapshot = snapshot;
        _source = new MemorySource(frames, repeat: int.MaxValue, ingressPort: (short)snapshot.FindPort("default/client"));
        _sink = new NullSink();
        _batch = new PacketBatch(64);
        if (Traffic == Scenario.Established) Forward(); // open the connections once
    }

    [IterationSetup(Target = nameof(Forward))]
    public void FreshConntrack()
    {
        if (Traffic == Scenario.NewConnections) _engine = new Engine(new SnapshotHolder(_snapshot));
    }

    [Benchmark(OperationsPerInvoke = Packets)]
    public long Forward() => EngineLoop.Forward(_source, _engine, _sink, _batch, Packets, Traffic.ToString());
}
