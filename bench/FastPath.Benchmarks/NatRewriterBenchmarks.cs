using BenchmarkDotNet.Attributes;
using FastPath.DataPlane.Nat;
using FastPath.DataPlane.Packets;
using FastPath.DataPlane.Pipeline;
using FastPath.DataPlane.Ports;

namespace FastPath.Benchmarks;

/// <summary>
/// DNAT of a parsed 64-byte frame in place (<see cref="NatRewriter.RewriteDestination"/>: address, port, RFC 1624
/// incremental IPv4 header and TCP/UDP checksum updates) over a batch of 256 distinct frames, each rewritten to the
/// other of two backends every time so the checksum arithmetic never sees a no-op. Per frame (OperationsPerInvoke).
/// Peer in the same class: the TTL-only incremental update every forwarded packet pays, as the floor.
/// </summary>
[MemoryDiagnoser]
public class NatRewriterBenchmarks
{
    private const int Batch = 256;
    private readonly byte[][] _v4 = new byte[Batch][];
    private readonly byte[][] _v6 = new byte[Batch][];
    private readonly PacketMeta[] _m4 = new PacketMeta[Batch];
    private readonly PacketMeta[] _m6 = new PacketMeta[Batch];
    private static readonly IpAddr[] Backends4 = [IpAddr.FromV4(0x0AF4_010B), IpAddr.FromV4(0x0AF4_020C)];
    private static readonly IpAddr[] Backends6 =
        [new(new UInt128(0xFD00_0010_0244_0001UL, 0xB)), new(new UInt128(0xFD00_0010_0244_0002UL, 0xC))];
    private int _flip;

    [GlobalSetup]
    public void Setup()
    {
        for (int i = 0; i < Batch; i++)
        {
            _v4[i] = SyntheticFrames.Ipv4Tcp((ushort)(40000 + i), 80, 64, dst: 0x0A60_000A);
            _v6[i] = SyntheticFrames.Ipv6Udp((ushort)(40000 + i), 7000, 64);
            if (PacketParser.Parse(_v4[i], ref _m4[i]) != default || PacketParser.Parse(_v6[i], ref _m6[i]) != default)
                throw new InvalidOperationException("sample frame does not parse");
        }
    }

    [Benchmark(OperationsPerInvoke = Batch)]
    public int RewriteDestinationV4Tcp() => RewriteAll(_v4, _m4, Backends4[_flip ^= 1], 8080);

    [Benchmark(OperationsPerInvoke = Batch)]
    public int RewriteDestinationV6Udp() => RewriteAll(_v6, _m6, Backends6[_flip ^= 1], 7007);

    private static int RewriteAll(byte[][] frames, PacketMeta[] metas, IpAddr to, ushort port)
    {
        int ok = 0;
        for (int i = 0; i < Batch; i++)
            if (NatRewriter.RewriteDestination(frames[i], ref metas[i], to, port)) ok++;
        return ok;
    }

    [Benchmark(Baseline = true, OperationsPerInvoke = Batch)]
    public int TtlDecrementV4()
    {
        int s = 0;
        for (int i = 0; i < Batch; i++)
        {
            var h = _v4[i].AsSpan(14, 20);
            byte ttl = h[8], next = ttl == 1 ? (byte)255 : (byte)(ttl - 1);
            h[8] = next;
            ushort c = System.Buffers.Binary.BinaryPrimitives.ReadUInt16BigEndian(h[10..]);
            System.Buffers.Binary.BinaryPrimitives.WriteUInt16BigEndian(h[10..], Checksum.UpdateTtl(c, ttl, next));
            s += next;
        }
        return s;
    }
}
