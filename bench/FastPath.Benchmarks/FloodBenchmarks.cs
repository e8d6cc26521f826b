using System.Buffers.Binary;
using BenchmarkDotNet.Attributes;
using FastPath.DataPlane.Packets;
using FastPath.DataPlane.Pipeline;
using FastPath.DataPlane.Ports;
using FastPath.DataPlane.Services;

namespace FastPath.Benchmarks;

/// <summary>
/// Hostile traffic through the whole loop, ns/packet, with same-node forwarding as the peer in the same class:
/// a SYN flood to a ClusterIP into a full conntrack table (every SYN evicts an unreplied one), TTL-1 packets that
/// each call for an ICMP error (rate-limited), and random garbage (half of it with an IPv4/IPv6 EtherType).
/// </summary>
[MemoryDiagnoser]
public class FloodBenchmarks
{
    public enum Scenario { SameNodePeer, SynFloodFullTable, IcmpErrorFlood, RandomGarbage }

    [Params(Scenario.SameNodePeer, Scenario.SynFloodFullTable, Scenario.IcmpErrorFlood, Scenario.RandomGarbage)]
    public Scenario Traffic { get; set; }

    private EngineLoop _loop = null!;

    [GlobalSetup]
    public void Setup()
    {
        var node = new NodeSettings { NodeName = "node-a", UplinkMac = new MacAddress(0x0200_0000_0101UL), HostAddresses = [IpAddr.FromV4(0xC0A8_380B)], ConntrackCapacity = 4096 };
        var snapshot = new ForwardingSnapshot(node,
        [
            new PortDefinition("default/client", PortKind.Pod, SyntheticFrames.Client, [IpAddr.FromV4(0x0AF4_010A)]),
            new PortDefinition("default/web-1", PortKind.Pod, new MacAddress(0x0242_0AF4_010BUL), [IpAddr.FromV4(0x0AF4_010B)]),
        ], services: new ServiceTable([new ServiceFrontend("default/web:http", IpAddr.FromV4(0x0A60_000A), 80, IpProtocol.Tcp,
            [new ServiceBackend(IpAddr.FromV4(0x0AF4_010B), 8080)])], maglevTableSize: 251));
        var rng = new Random(5);
        var frames = new List<byte[]>();
        for (int i = 0; i < 16384; i++)
        {
            ushort sport = (ushort)(1024 + i);
            frames.Add(Traffic switch
            {
                Scenario.SameNodePeer => SyntheticFrames.Ipv4Tcp(sport, 8080, 64),
                Scenario.SynFloodFullTable => SyntheticFrames.Ipv4Tcp(sport, 80, 64, dst: 0x0A60_000A, tcpFlags: TcpHeader.Syn),
                Scenario.IcmpErrorFlood => WithTtl(SyntheticFrames.Ipv4Tcp(sport, 8080, 64), 1),
                _ => Garbage(rng, i),
            });
        }
        _loop = new EngineLoop(new MemorySource(frames, repeat: int.MaxValue, ingressPort: (short)snapshot.FindPort("default/client")),
            new Engine(new SnapshotHolder(snapshot), conntrackSeed: 1), Traffic.ToString(), mayDropAll: true);
    }

    /// <summary>The synthetic frame with another TTL (header checksum recomputed; TTL is not in the TCP pseudo-header).</summary>
    private static byte[] WithTtl(byte[] frame, byte ttl)
    {
        var ip = frame.AsSpan(14);
        Ipv4Header.Write(ip, 0, (ushort)(frame.Length - 14), 1, Ipv4Header.FlagDontFragment, ttl, IpProtocol.Tcp,
            BinaryPrimitives.ReadUInt32BigEndian(ip[12..]), BinaryPrimitives.ReadUInt32BigEndian(ip[16..]));
        return frame;
    }

    private static byte[] Garbage(Random rng, int i)
    {
        var f = new byte[rng.Next(14, 1515)];
        rng.NextBytes(f);
        if (i % 2 == 0) (f[12], f[13]) = i % 4 == 0 ? ((byte)0x08, (byte)0x00) : ((byte)0x86, (byte)0xDD);
        return f;
    }

    [Benchmark(OperationsPerInvoke = EngineLoop.Packets)]
    public long Forward() => _loop.Forward();
}
