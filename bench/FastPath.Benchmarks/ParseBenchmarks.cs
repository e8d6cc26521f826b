using BenchmarkDotNet.Attributes;
using FastPath.DataPlane.Packets;
using FastPath.DataPlane.Pipeline;
using FastPath.DataPlane.Ports;
using FastPath.DataPlane.Telemetry;
using PacketDotNet;

namespace FastPath.Benchmarks;

/// <summary>
/// 5-tuple extraction from a batch of frames: FastPath's one-pass parser vs PacketDotNet's Packet.ParsePacket on the
/// same bytes in the same run. Results read as ns/frame (OperationsPerInvoke = frames per batch).
/// </summary>
[MemoryDiagnoser]
public class ParseBenchmarks
{
    private const int Frames = 256;

    public enum FrameKind { Ipv4Tcp, Ipv6Udp, Vxlan }

    [Params(FrameKind.Ipv4Tcp, FrameKind.Ipv6Udp, FrameKind.Vxlan)]
    public FrameKind Kind { get; set; }

    private byte[][] _frames = [];
    private PacketMeta[] _meta = new PacketMeta[Frames];

    public readonly record struct FiveTuple(UInt128 Source, UInt128 Destination, ushort SourcePort, ushort DestinationPort, byte Protocol);

    [GlobalSetup]
    public void Setup()
    {
        var rng = new Random(42);
        _frames = new byte[Frames][];
        for (int i = 0; i < Frames; i++)
        {
            ushort sport = (ushort)rng.Next(1024, 65535);
            _frames[i] = Kind switch
            {
                FrameKind.Ipv4Tcp => SyntheticFrames.Ipv4Tcp(sport, 8080, 64),
                FrameKind.Ipv6Udp => SyntheticFrames.Ipv6Udp(sport, 53, 64),
                _ => SyntheticFrames.Vxlan(SyntheticFrames.Ipv4Tcp(sport, 8080, 64)),
            };
        }
    }

    [Benchmark(OperationsPerInvoke = Frames)]
    public ulong FastPathParser()
    {
        ulong acc = 0;
        for (int i = 0; i < Frames; i++)
        {
            var t = Extract(_frames[i], ref _meta[i]);
            acc += (ulong)t.Source ^ t.SourcePort;
        }
        return acc;
    }

    private static FiveTuple Extract(byte[] frame, ref PacketMeta m)
    {
        m = default;
        if (PacketParser.Parse(frame, ref m) != DropReason.None) return default;
        if (m.IpProtocol == IpProtocol.Udp && m.DestinationPort == SyntheticFrames.VxlanPort)
        {
            int inner = m.L4Offset + UdpHeader.Length + VxlanHeader.Length;
            m = default;
            if (PacketParser.Parse(frame.AsSpan(inner), ref m) != DropReason.None) return default;
            return Tuple(frame.AsSpan(inner), in m);
        }
        return Tuple(frame, in m);
    }

    private static FiveTuple Tuple(ReadOnlySpan<byte> f, in PacketMeta m)
    {
        var l3 = f[m.L3Offset..];
        return m.L3 == L3Kind.Ipv4
            ? new FiveTuple(IpAddr.ReadV4(l3[12..]).Value, IpAddr.ReadV4(l3[16..]).Value, m.SourcePort, m.DestinationPort, m.IpProtocol)
            : new FiveTuple(IpAddr.ReadV6(l3[8..]).Value, IpAddr.ReadV6(l3[24..]).Value, m.SourcePort, m.DestinationPort, m.IpProtocol);
    }

    [Benchmark(Baseline = true, OperationsPerInvoke = Frames)]
    public ulong PacketDotNet()
    {
        ulong acc = 0;
        for (int i = 0; i < Frames; i++)
        {
            var packet = Packet.ParsePacket(LinkLayers.Ethernet, _frames[i]);
            var udp = packet.Extract<UdpPacket>();
            if (udp is not null && udp.DestinationPort == SyntheticFrames.VxlanPort)
                packet = Packet.ParsePacket(LinkLayers.Ethernet, udp.PayloadData.AsSpan(VxlanHeader.Length).ToArray());
            var ip = packet.Extract<IPPacket>();
            var transport = packet.Extract<TransportPacket>();
            if (ip is null || transport is null) continue;
            acc += (ulong)ip.SourceAddress.GetHashCode() ^ transport.SourcePort;
        }
        return acc;
    }
}
