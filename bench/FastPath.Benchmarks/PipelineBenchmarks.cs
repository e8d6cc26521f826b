using BenchmarkDotNet.Attributes;
using FastPath.DataPlane.Packets;
using FastPath.DataPlane.Pipeline;
using FastPath.DataPlane.Ports;

namespace FastPath.Benchmarks;

/// <summary>
/// The whole loop for same-node pod-to-pod traffic: receive from an in-memory port into batch slots (a copy per
/// frame, as a NIC ring would), parse, forward (TTL, checksum, MAC rewrite), transmit to a null port.
/// ns/packet on one core (OperationsPerInvoke = packets per invoke).
/// </summary>
[MemoryDiagnoser]
public class PipelineBenchmarks
{
    private const int Packets = 64 * 1024;

    [Params(64, 1500)]
    public int FrameLength { get; set; }

    private Engine _engine = null!;
    private MemorySource _source = null!;
    private NullSink _sink = null!;
    private PacketBatch _batch = null!;

    [GlobalSetup]
    public void Setup()
    {
        var node = new NodeSettings { NodeName = "node-a", UplinkMac = new MacAddress(0x0200_0000_0101UL), HostAddresses = [IpAddr.FromV4(0xC0A8_380B)] };
        var snapshot = new ForwardingSnapshot(node,
        [
            new PortDefinition("default/client", PortKind.Pod, SampleFrames.Client, [IpAddr.FromV4(0x0AF4_010A)]),
            new PortDefinition("default/web-1", PortKind.Pod, new MacAddress(0x0242_0AF4_010BUL), [IpAddr.FromV4(0x0AF4_010B)]),
        ]);
        _engine = new Engine(new SnapshotHolder(snapshot));
        var rng = new Random(1);
        var frames = Enumerable.Range(0, 1024).Select(_ => SampleFrames.Ipv4Tcp((ushort)rng.Next(1024, 65535), 8080, FrameLength)).ToList();
        _source = new MemorySource(frames, repeat: int.MaxValue, ingressPort: (short)snapshot.FindPort("default/client"));
        _sink = new NullSink();
        _batch = new PacketBatch(64);
    }

    [Benchmark(OperationsPerInvoke = Packets)]
    public long SameNodeForwarding()
    {
        long forwarded = 0;
        for (int done = 0; done < Packets; done += _batch.Count)
        {
            _source.Receive(_batch);
            _engine.Process(_batch);
            var meta = _batch.Meta;
            for (int i = 0; i < _batch.Count; i++)
            {
                if (meta[i].EgressPort < 0) continue;
                _sink.Transmit(meta[i].EgressPort, _batch.Frame(i), meta[i].Timestamp);
                forwarded++;
            }
        }
        return forwarded;
    }
}
