using BenchmarkDotNet.Attributes;
using FastPath.DataPlane.Packets;
using FastPath.DataPlane.Pipeline;
using FastPath.DataPlane.Ports;
using FastPath.DataPlane.Routing;

namespace FastPath.Benchmarks;

/// <summary>
/// The whole loop on one core: receive from an in-memory port into batch slots (a copy per frame, as a NIC ring
/// would), Engine.Process (parse, ingress, source check, lookup, TTL + incremental checksum, MAC rewrite, tunnel),
/// transmit to a null port. ns/packet (OperationsPerInvoke = packets per invoke); batches of 64.
/// </summary>
[MemoryDiagnoser]
public class PipelineBenchmarks
{
    private const int Packets = 64 * 1024;

    public enum Scenario { SameNode, VxlanEncap, VxlanDecap }

    [Params(Scenario.SameNode, Scenario.VxlanEncap, Scenario.VxlanDecap)]
    public Scenario Traffic { get; set; }

    [Params(64, 1400)]
    public int FrameLength { get; set; }

    private Engine _engine = null!;
    private MemorySource _source = null!;
    private NullSink _sink = null!;
    private PacketBatch _batch = null!;

    [GlobalSetup]
    public void Setup()
    {
        var node = new NodeSettings { NodeName = "node-a", UplinkMac = new MacAddress(0x0200_0000_0101UL), HostAddresses = [IpAddr.FromV4(0xC0A8_380B)] };
        var routes = new RouteTable([new Route(IpAddr.FromV4(0x0AF4_0200), 24, new NextHop(NextHopKind.RemoteNode, IpAddr.FromV4(0xC0A8_380C), new MacAddress(0x0200_0000_0201UL)))]);
        var snapshot = new ForwardingSnapshot(node,
        [
            new PortDefinition("default/client", PortKind.Pod, SampleFrames.Client, [IpAddr.FromV4(0x0AF4_010A)]),
            new PortDefinition("default/web-1", PortKind.Pod, new MacAddress(0x0242_0AF4_010BUL), [IpAddr.FromV4(0x0AF4_010B)]),
        ], routes: routes);
        _engine = new Engine(new SnapshotHolder(snapshot));
        var rng = new Random(1);
        var frames = new List<byte[]>();
        for (int i = 0; i < 1024; i++)
        {
            ushort sport = (ushort)rng.Next(1024, 65535);
            frames.Add(Traffic switch
            {
                Scenario.SameNode => SampleFrames.Ipv4Tcp(sport, 8080, FrameLength),
                Scenario.VxlanEncap => SampleFrames.Ipv4Tcp(sport, 8080, FrameLength, dst: 0x0AF4_020B),
                _ => SampleFrames.Vxlan(SampleFrames.Ipv4Tcp(sport, 8080, FrameLength - 50, src: 0x0AF4_020B)),
            });
        }
        short ingress = Traffic == Scenario.VxlanDecap ? PortIndex.Uplink : (short)snapshot.FindPort("default/client");
        _source = new MemorySource(frames, repeat: int.MaxValue, ingressPort: ingress);
        _sink = new NullSink();
        _batch = new PacketBatch(64);
    }

    [Benchmark(OperationsPerInvoke = Packets)]
    public long Forward() => EngineLoop.Forward(_source, _engine, _sink, _batch, Packets, Traffic.ToString());
}
