using System.Buffers.Binary;
using FastPath.DataPlane.Pipeline;
using FastPath.DataPlane.Telemetry;
using FastPath.Tests.Support;
using static FastPath.Tests.Support.TestFrames;

namespace FastPath.Tests.Pipeline;

/// <summary>Routed forwarding: VXLAN encapsulation details, ICMP error rate limiting, masquerade port choice.</summary>
public class RoutingTests
{
    private static byte[] ToNodeB(ushort sport, byte[]? payload = null) =>
        EngineHarness.FromClient(Ipv4("10.244.1.10", "10.244.2.11", 17, Udp(sport, 8080, payload?.Length ?? 8)));

    [Fact]
    public void VxlanEncapsulationIsWellFormedAndTheSourcePortFollowsTheFlow()
    {
        var h = new EngineHarness(EngineHarness.ClusterRoutes());
        var r = h.Run((h.Client, ToNodeB(1000)), (h.Client, ToNodeB(1000)), (h.Client, ToNodeB(1001)),
            (h.Client, EngineHarness.FromClient(Ipv4("10.244.1.10", "10.244.2.11", 1, IcmpEcho()))),
            (h.Client, EngineHarness.FromClient(Ipv6("fd00:244:1::a", "fd00:10:244:2::b", 6, Tcp(1, 2, payload: 33)), 0x86DD)),
            (h.Client, EngineHarness.FromClient(Ipv4("10.244.1.10", "10.244.2.11", 17, Udp(1, 2, 9), flags: 0x2000))));
        foreach (var x in r)   // LCO (TCP/UDP/ICMP, v4/v6) and the full sum (a first fragment) both verify
            Assert.Equal(0, SlowChecksum(x.Frame.AsSpan(34), PseudoSum(Ip("192.168.56.11"), Ip("192.168.56.12"), 17, x.Frame.Length - 34)));
        Assert.All(r, x => Assert.Equal(PortIndex.Uplink, x.Egress));
        var f = r[0].Frame;
        Assert.Equal(Mac(EngineHarness.NodeBMac), f[..6]);
        Assert.Equal(Mac(EngineHarness.NodeMac), f[6..12]);
        Assert.Equal(Ip("192.168.56.11"), f[26..30]);
        Assert.Equal(Ip("192.168.56.12"), f[30..34]);
        Assert.Equal(0, SlowChecksum(f.AsSpan(14, 20)));                     // outer IPv4 header checksum
        Assert.Equal(0, BinaryPrimitives.ReadUInt16BigEndian(f.AsSpan(14 + 6)) & 0x4000); // DF clear
        ushort sport = BinaryPrimitives.ReadUInt16BigEndian(f.AsSpan(34));
        Assert.InRange(sport, 49152, 65535);
        Assert.Equal(8472, BinaryPrimitives.ReadUInt16BigEndian(f.AsSpan(36)));
        Assert.Equal(f.Length - 34, BinaryPrimitives.ReadUInt16BigEndian(f.AsSpan(38)));
        Assert.Equal([0x08, 0, 0, 0, 0, 0, 1, 0], f[42..50]);               // I flag, VNI 1
        Assert.NotEqual(0, BinaryPrimitives.ReadUInt16BigEndian(f.AsSpan(40)));  // outer UDP checksum present, as Linux's udpcsum default
        Assert.Equal(0, SlowChecksum(f.AsSpan(34), PseudoSum(Ip("192.168.56.11"), Ip("192.168.56.12"), 17, f.Length - 34)));
        Assert.Equal(63, f[50 + 14 + 8]);                                   // inner TTL
        Assert.True(ChecksumsValid(f[50..]));                               // inner checksums untouched by the tunnel
        Assert.Equal(sport, BinaryPrimitives.ReadUInt16BigEndian(r[1].Frame.AsSpan(34)));     // same flow, same port
        Assert.NotEqual(BinaryPrimitives.ReadUInt16BigEndian(f.AsSpan(18)), BinaryPrimitives.ReadUInt16BigEndian(r[1].Frame.AsSpan(18))); // IP ID varies
    }

    /// <summary>The outer source port of the prebuilt-template path equals the byte-wise symmetric FNV-1a of the
    /// flow (the seedless hash both directions and every node share), for either address order and equal addresses.</summary>
    [Theory]
    [InlineData("10.244.1.10", "10.244.2.11", 1000, 8080)]
    [InlineData("10.244.2.11", "10.244.1.10", 8080, 1000)]
    [InlineData("192.168.0.1", "10.0.0.1", 53, 53)]
    [InlineData("10.0.0.7", "10.0.0.7", 9000, 80)]
    [InlineData("10.0.0.7", "10.0.0.7", 80, 9000)]
    public void VxlanSourcePortIsTheSymmetricByteWiseFlowHash(string src, string dst, ushort sport, ushort dport)
    {
        byte[] frame = Ethernet(Mac("02:00:00:00:00:01"), Mac("02:00:00:00:00:02"), 0x0800, Ipv4(src, dst, 17, Udp(sport, dport)));
        var arena = new byte[128 + frame.Length];
        frame.CopyTo(arena, 128);
        var m = new PacketMeta { Offset = 128, Length = frame.Length };
        Assert.Equal(DropReason.None, FastPath.DataPlane.Packets.PacketParser.Parse(arena.AsSpan(128, frame.Length), ref m));
        FastPath.DataPlane.Overlay.VxlanTunnel.Encapsulate(arena, ref m, 0xC0A8380B, 0xC0A8380C,
            new FastPath.DataPlane.Packets.MacAddress(0x02_00_00_00_00_0A), new FastPath.DataPlane.Packets.MacAddress(0x02_00_00_00_00_0B), 8472, 1, 7);
        byte[] a = Ip(src), b = Ip(dst);
        ushort pa = sport, pb = dport;
        int order = a.AsSpan().SequenceCompareTo(b);
        if (order > 0 || (order == 0 && pa > pb)) { (a, b) = (b, a); (pa, pb) = (pb, pa); }
        ulong h = 0xCBF2_9CE4_8422_2325UL;
        foreach (byte x in a.Concat(b)) h = (h ^ x) * 0x0000_0100_0000_01B3UL;
        h ^= (17UL << 32) | ((ulong)pa << 16) | pb;
        h *= 0x9E37_79B9_7F4A_7C15UL;
        ushort want = (ushort)(49152 + (uint)(h >> 32) % (65536 - 49152));
        Assert.Equal(want, BinaryPrimitives.ReadUInt16BigEndian(arena.AsSpan(m.Offset + 34)));
        Assert.Equal(0, SlowChecksum(arena.AsSpan(m.Offset + 14, 20)));
        Assert.Equal(0, SlowChecksum(arena.AsSpan(m.Offset + 34, m.Length - 34), PseudoSum(Ip("192.168.56.11"), Ip("192.168.56.12"), 17, m.Length - 34)));
    }

    /// <summary>The fixed-offset encapsulation of plain IPv4 TCP/UDP (what the engine runs for them) writes the bytes and
    /// metadata of the general one, for random addresses, ports, lengths (odd ones too), TTLs and payloads; a UDP
    /// datagram without a checksum is not admitted to it (its outer checksum sums the datagram).</summary>
    [Fact]
    public unsafe void PlainIpv4EncapsulationWritesWhatTheGeneralOneWrites()
    {
        var rng = new Random(1616);
        var outer = FastPath.DataPlane.Overlay.VxlanTemplate.Create(0xC0A8380B, 0xC0A8380C,
            new FastPath.DataPlane.Packets.MacAddress(0x02_00_00_00_00_0A), new FastPath.DataPlane.Packets.MacAddress(0x02_00_00_00_00_0B), 8472, 1);
        int admitted = 0;
        for (int n = 0; n < 2000; n++)
        {
            string Addr() => $"{rng.Next(1, 255)}.{rng.Next(256)}.{rng.Next(256)}.{rng.Next(1, 255)}";
            string src = Addr(), dst = n % 50 == 0 ? src : Addr();
            ushort sport = (ushort)rng.Next(65536), dport = (ushort)rng.Next(65536);
            bool tcp = n % 2 == 0;
            int payload = rng.Next(0, n % 10 == 0 ? 1400 : 40);
            byte[] l4 = tcp ? Tcp(sport, dport, (byte)rng.Next(256), payload) : Udp(sport, dport, payload);
            rng.NextBytes(l4.AsSpan(tcp ? 20 : 8));
            var ip = Ipv4(src, dst, tcp ? (byte)6 : (byte)17, l4, ttl: (byte)rng.Next(1, 256), flags: n % 3 == 0 ? (ushort)0 : (ushort)0x4000);
            if (!tcp && n % 7 == 1) ip[20 + 6] = ip[20 + 7] = 0; // no UDP checksum
            byte[] frame = Ethernet(Mac("02:00:00:00:00:0b"), Mac("02:00:00:00:00:0a"), 0x0800, ip);
            var general = new byte[128 + frame.Length + 64];
            frame.CopyTo(general, 128);
            var plain = (byte[])general.Clone();
            var m = new PacketMeta { Offset = 128, Length = frame.Length };
            Assert.Equal(DropReason.None, FastPath.DataPlane.Packets.PacketParser.Parse(general.AsSpan(128, frame.Length), ref m));
            var p = m;
            FastPath.DataPlane.Overlay.VxlanTunnel.Encapsulate(general, ref m, in outer, (ushort)n);
            fixed (byte* a = plain)
            {
                bool can = FastPath.DataPlane.Overlay.VxlanTunnel.CanEncapsulatePlain4(a + 128, in p);
                Assert.Equal(tcp || ip[26] != 0 || ip[27] != 0, can);
                if (!can) continue;
                FastPath.DataPlane.Overlay.VxlanTunnel.EncapsulatePlain4(a + 128, ref p, in outer, (ushort)n);
            }
            admitted++;
            Assert.Equal(Convert.ToHexString(general), Convert.ToHexString(plain));
            Assert.Equal((m.Offset, m.Length, m.L3, m.L3Offset, m.L3Length, m.L4Offset), (p.Offset, p.Length, p.L3, p.L3Offset, p.L3Length, p.L4Offset));
            Assert.Equal((m.IpProtocol, m.SourcePort, m.DestinationPort, m.Flags, m.Offload), (p.IpProtocol, p.SourcePort, p.DestinationPort, p.Flags, p.Offload));
        }
        Assert.InRange(admitted, 1800, 1950);
    }

    [Fact]
    public void IcmpErrorsAreRateLimitedPerDestinationButPathMtuNeverIs()
    {
        var h = new EngineHarness(EngineHarness.ClusterRoutes());
        var expired = EngineHarness.FromClient(Ipv4("10.244.1.10", "10.244.2.11", 17, Udp(1, 2), ttl: 1));
        var frames = Enumerable.Repeat((h.Client, expired), 10).ToArray();
        var r = h.RunAt(1_000_000_000L * 5000, 1_000_000, frames);          // 10 within 10 ms
        Assert.All(r, x => Assert.Equal(DropReason.TtlExceeded, x.Drop));
        Assert.Equal(6, r.Count(x => x.Egress >= 0));                       // Linux: burst of 6 per destination
        var later = h.RunAt(1_000_000_000L * 5002, 1, (h.Client, expired)); // two seconds later: tokens again
        Assert.Equal(h.Client, later[0].Egress);

        var tooBig = EngineHarness.FromClient(Ipv4("10.244.1.10", "10.244.2.11", 17, Udp(1, 2, 1470)));
        var pmtu = h.RunAt(1_000_000_000L * 5003, 1000, Enumerable.Repeat((h.Client, tooBig), 20).ToArray());
        Assert.All(pmtu, x => { Assert.Equal(DropReason.MtuExceeded, x.Drop); Assert.Equal(h.Client, x.Egress); });
        Assert.Equal(4, h.Engine.IcmpLimiter.Limited);
    }

    [Fact]
    public void MasqueradeKeepsTheSourcePortUnlessAnotherConnectionHoldsIt()
    {
        var h = new EngineHarness(EngineHarness.ClusterRoutes());
        byte[] From(string src, short _) => Ethernet(GatewayMac, Mac(src == "10.244.1.10" ? EngineHarness.ClientMac : EngineHarness.Web1Mac), 0x0800,
            Ipv4(src, "203.0.113.5", 6, Tcp(40000, 443)));
        var r = h.Run((h.Client, From("10.244.1.10", 0)), (h.Web1, From("10.244.1.11", 0)));
        Assert.All(r, x => { Assert.Equal(DropReason.None, x.Drop); Assert.Equal(PortIndex.Uplink, x.Egress); });
        Assert.All(r, x => Assert.Equal(Ip("192.168.56.11"), x.Frame[26..30]));
        ushort p0 = BinaryPrimitives.ReadUInt16BigEndian(r[0].Frame.AsSpan(34));
        ushort p1 = BinaryPrimitives.ReadUInt16BigEndian(r[1].Frame.AsSpan(34));
        Assert.Equal(40000, p0);
        Assert.NotEqual(p0, p1);                                             // the second pod got another port
        Assert.All(r, x => Assert.True(ChecksumsValid(x.Frame)));

        // The reply to the second connection reaches web-1 on its own port.
        var reply = Ethernet(Mac(EngineHarness.NodeMac), Mac(EngineHarness.RouterMac), 0x0800, Ipv4("203.0.113.5", "192.168.56.11", 6, Tcp(443, p1, 0x12)));
        var back = h.RunOne(PortIndex.Uplink, reply);
        Assert.Equal(h.Web1, back.Egress);
        Assert.Equal(Ip("10.244.1.11"), back.Frame[30..34]);
        Assert.Equal(40000, BinaryPrimitives.ReadUInt16BigEndian(back.Frame.AsSpan(36)));
        Assert.True(ChecksumsValid(back.Frame));
    }

    [Fact]
    public void MasqueradedPingsWithTheSameIdentifierGetTheirOwnIdentifierAndTheirOwnReplies()
    {
        // Two pods ping one external host with the same echo identifier (a pod's first process often has the same
        // pid): the second request leaves with another identifier, and each reply finds its own pod.
        var h = new EngineHarness(EngineHarness.ClusterRoutes());
        byte[] From(string src, string mac) => Ethernet(GatewayMac, Mac(mac), 0x0800, Ipv4(src, "203.0.113.5", 1, IcmpEcho(8, id: 7)));
        var r = h.Run((h.Client, From("10.244.1.10", EngineHarness.ClientMac)), (h.Web1, From("10.244.1.11", EngineHarness.Web1Mac)));
        Assert.All(r, x => { Assert.Equal(DropReason.None, x.Drop); Assert.Equal(PortIndex.Uplink, x.Egress); });
        ushort id0 = BinaryPrimitives.ReadUInt16BigEndian(r[0].Frame.AsSpan(38));
        ushort id1 = BinaryPrimitives.ReadUInt16BigEndian(r[1].Frame.AsSpan(38));
        Assert.Equal(7, id0);
        Assert.NotEqual(id0, id1);
        Assert.All(r, x => Assert.True(ChecksumsValid(x.Frame)));

        foreach (var (id, port, pod) in new[] { (id0, h.Client, "10.244.1.10"), (id1, h.Web1, "10.244.1.11") })
        {
            var reply = Ethernet(Mac(EngineHarness.NodeMac), Mac(EngineHarness.RouterMac), 0x0800, Ipv4("203.0.113.5", "192.168.56.11", 1, IcmpEcho(0, id: id)));
            var back = h.RunOne(PortIndex.Uplink, reply);
            Assert.Equal(DropReason.None, back.Drop);
            Assert.Equal(port, back.Egress);
            Assert.Equal(Ip(pod), back.Frame[30..34]);
            Assert.Equal(7, BinaryPrimitives.ReadUInt16BigEndian(back.Frame.AsSpan(38)));
            Assert.True(ChecksumsValid(back.Frame));
        }
    }

    [Fact]
    public void AFullConntrackTableEvictsUnrepliedFlowsFirstThenDropsWithAReason()
    {
        var h = new EngineHarness(EngineHarness.ClusterRoutes(), conntrackCapacity: 4);
        byte[] Out(ushort sport, byte flags) => EngineHarness.FromClient(Ipv4("10.244.1.10", "203.0.113.5", 6, Tcp(sport, 443, flags)));
        byte[] In(ushort dport, byte flags) => Ethernet(Mac(EngineHarness.NodeMac), Mac(EngineHarness.RouterMac), 0x0800, Ipv4("203.0.113.5", "192.168.56.11", 6, Tcp(443, dport, flags)));

        // Unreplied SYNs are evicted to make room (Linux early_drop): a fifth SYN still gets through.
        var syns = h.Run(Enumerable.Range(0, 5).Select(i => (h.Client, Out((ushort)(30000 + i), 0x02))).ToArray());
        Assert.All(syns, x => Assert.Equal(DropReason.None, x.Drop));
        Assert.True(h.Engine.Conntrack!.Evictions > 0);

        // Four established (assured) connections are never evicted: the next new flow is dropped.
        for (ushort p = 31000; p < 31004; p++)
        {
            var r = h.Run((h.Client, Out(p, 0x02)), (PortIndex.Uplink, In(p, 0x12)), (h.Client, Out(p, 0x10)));
            Assert.All(r, x => Assert.Equal(DropReason.None, x.Drop));
        }
        var refused = h.RunOne(h.Client, Out(32000, 0x02));
        Assert.Equal(DropReason.ConntrackFull, refused.Drop);
        Assert.Equal(-1, refused.Egress);
        var established = h.RunOne(h.Client, Out(31001, 0x10));
        Assert.Equal(DropReason.None, established.Drop);                  // established flows keep working
    }

    [Fact]
    public void DirectRoutingRewritesMacsWithoutATunnel()
    {
        var h = new EngineHarness(EngineHarness.ClusterRoutes(), TunnelMode.Direct);
        var r = h.RunOne(h.Client, ToNodeB(5));
        Assert.Equal(PortIndex.Uplink, r.Egress);
        Assert.Equal(Mac(EngineHarness.NodeBMac), r.Frame[..6]);
        Assert.Equal(Ip("10.244.2.11"), r.Frame[30..34]);
        Assert.Equal(63, r.Frame[22]);
    }
}
