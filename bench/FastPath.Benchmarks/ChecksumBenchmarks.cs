using System.Buffers.Binary;
using BenchmarkDotNet.Attributes;
using FastPath.DataPlane.Packets;

namespace FastPath.Benchmarks;

/// <summary>
/// The vectorised RFC 1071 sum against its scalar reference, at a minimum Ethernet frame's worth, the classic
/// 576-byte datagram (RFC 791) and a full 1500-byte MTU.
/// </summary>
[MemoryDiagnoser]
public class ChecksumSumBenchmarks
{
    private byte[] _data = [];

    [Params(64, 576, 1500)]
    public int Length { get; set; }

    [GlobalSetup]
    public void Setup()
    {
        _data = new byte[Length];
        new Random(1071).NextBytes(_data);
    }

    [Benchmark(Baseline = true)]
    public uint SumScalar() => Checksum.SumScalar(_data);

    [Benchmark]
    public uint Sum() => Checksum.Sum(_data);
}

/// <summary>
/// Forwarding's TTL decrement over a batch of 20-byte IPv4 headers: RFC 1624 incremental update against a full
/// header recomputation. Results are per header (OperationsPerInvoke = batch size).
/// </summary>
[MemoryDiagnoser]
public class ChecksumTtlBenchmarks
{
    private const int Batch = 256;
    private readonly byte[] _headers = new byte[Batch * 20];

    [GlobalSetup]
    public void Setup()
    {
        var rng = new Random(1624);
        rng.NextBytes(_headers);
        for (int i = 0; i < Batch; i++)
        {
            var h = _headers.AsSpan(i * 20, 20);
            h[0] = 0x45;
            h[8] = (byte)rng.Next(2, 256);
            BinaryPrimitives.WriteUInt16BigEndian(h[10..], Checksum.Ipv4Header(h));
        }
    }

    // TTL wraps from 1 back to 255 so both variants keep forwarding valid headers forever.
    private static byte Next(byte ttl) => ttl == 1 ? (byte)255 : (byte)(ttl - 1);

    [Benchmark(Baseline = true, OperationsPerInvoke = Batch)]
    public void FullRecompute()
    {
        for (int i = 0; i < Batch; i++)
        {
            var h = _headers.AsSpan(i * 20, 20);
            h[8] = Next(h[8]);
            BinaryPrimitives.WriteUInt16BigEndian(h[10..], Checksum.Ipv4Header(h));
        }
    }

    [Benchmark(OperationsPerInvoke = Batch)]
    public void Incremental()
    {
        for (int i = 0; i < Batch; i++)
        {
            var h = _headers.AsSpan(i * 20, 20);
            byte ttl = h[8], next = Next(ttl);
            h[8] = next;
            ushort c = BinaryPrimitives.ReadUInt16BigEndian(h[10..]);
            BinaryPrimitives.WriteUInt16BigEndian(h[10..], Checksum.UpdateTtl(c, ttl, next));
        }
    }
}
