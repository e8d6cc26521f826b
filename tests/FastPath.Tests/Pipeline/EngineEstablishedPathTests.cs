using System.Buffers.Binary;
using FastPath.DataPlane.Packets;
using FastPath.DataPlane.Pipeline;
using FastPath.DataPlane.Telemetry;
using FastPath.Tests.Support;
using static FastPath.Tests.Support.TestFrames;

namespace FastPath.Tests.Pipeline;

/// <summary>
/// The lean path for plain IPv4 TCP/UDP packets of tracked connections (Engine.Established.cs): in a batch mixing them
/// with packets it must hand to the general path — IPv4 options, VLAN tags, a bad header checksum, a cut TCP header,
/// Ethernet padding, a FIN, a zero UDP checksum, an expiring TTL, a packet too large for the tunnel — and packets whose
/// decision is a VXLAN or routed next hop, every packet leaves with the bytes, verdict and
/// metadata the general path (an observed engine) gives it, and the counters and connections end the same.
/// </summary>
public class EngineEstablishedPathTests
{
    private const long Start = 1_000_000_000_000;

    private static byte[] WithIpv4Byte(byte[] frame, int offset, byte value)
    {
        var copy = (byte[])frame.Clone();
        copy[EthernetHeader.Length + offset] = value;
        return copy;
    }

    /// <summary>Packets of the connections <see cref="ForwardingDecisionTests.Openings"/> opens that are not all plain.</summary>
    private static (short Port, byte[] Frame)[] Variants(ForwardingSnapshot s)
    {
        short client = (short)s.FindPort("default/client"), web1 = (short)s.FindPort("default/web-1");
        var plain = EngineHarness.FromClient(Ipv4("10.244.1.10", "10.96.0.10", 6, Tcp(40000, 80, 0x10, payload: 10)));
        var badChecksum = WithIpv4Byte(plain, 10, (byte)(plain[EthernetHeader.Length + 10] ^ 0x40));
        var cutTcp = EngineHarness.FromClient(Ipv4("10.244.1.10", "10.96.0.10", 6, Tcp(40000, 80, 0x10).AsSpan(0, 12).ToArray()));
        var dataOffsetPastEnd = EngineHarness.FromClient(Ipv4("10.244.1.10", "10.96.0.10", 6, Tcp(40000, 80, 0x10)));
        dataOffsetPastEnd[EthernetHeader.Length + 20 + 12] = 0xF0; // 60-byte TCP header in a 20-byte segment
        var zeroUdpChecksum = EngineHarness.FromClient(Ipv4("10.244.1.10", "10.96.0.11", 17, Udp(5000, 53)));
        BinaryPrimitives.WriteUInt16BigEndian(zeroUdpChecksum.AsSpan(EthernetHeader.Length + 20 + 6), 0);
        var zeroUdpToRemote = EngineHarness.FromClient(Ipv4("10.244.1.10", "10.244.2.11", 17, Udp(5002, 53)));
        BinaryPrimitives.WriteUInt16BigEndian(zeroUdpToRemote.AsSpan(EthernetHeader.Length + 20 + 6), 0);
        var traffic = ForwardingDecisionTests.Traffic(s);
        return
        [
            (client, plain),
            (client, EngineHarness.FromClient(Ipv4("10.244.1.10", "10.96.0.10", 6, Tcp(40000, 80, 0x10, payload: 4), options: [1, 1, 1, 0]))),
            (client, Ethernet(GatewayMac, Mac(EngineHarness.ClientMac), 0x0800, Ipv4("10.244.1.10", "10.96.0.10", 6, Tcp(40000, 80, 0x18, payload: 2)), 0x8100)),
            (client, badChecksum),
            (client, cutTcp),
            (client, dataOffsetPastEnd),
            (client, [.. plain, 0, 0, 0, 0, 0, 0]), // Ethernet padding past the IPv4 total length
            (client, zeroUdpChecksum),
            (web1, Ethernet(GatewayMac, Mac(EngineHarness.Web1Mac), 0x0800, Ipv4("10.244.1.11", "10.244.1.10", 17, Udp(5353, 5000)))),
            (client, EngineHarness.FromClient(Ipv4("10.244.1.10", "10.96.0.10", 6, Tcp(40000, 80, 0x10), ttl: 1))),
            (client, EngineHarness.FromClient(Ipv4("10.244.1.10", "10.96.0.10", 6, Tcp(40000, 80, 0x10), flags: 0x2000))), // MF: a fragment
            (client, EngineHarness.FromClient(Ipv4("10.244.1.10", "10.96.0.20", 6, Tcp(40001, 80, 0x10, payload: 100)))),
            (web1, Ethernet(GatewayMac, Mac(EngineHarness.Web1Mac), 0x0800, Ipv4("10.244.1.11", "10.244.1.10", 6, Tcp(8080, 40000, 0x11)))), // FIN from the backend
            (client, EngineHarness.FromClient(Ipv4("10.244.1.10", "10.96.0.10", 6, Tcp(40000, 80, 0x11)))),                                  // and from the client
            (client, plain),
            // Uplink decisions: VXLAN to the remote backend (with padding, an expiring TTL, too large for the tunnel),
            // pod to remote pod over VXLAN with and without a UDP checksum, NodePort from the uplink, masquerade out.
            (client, [.. EngineHarness.FromClient(Ipv4("10.244.1.10", "10.96.0.20", 6, Tcp(40001, 80, 0x10, payload: 100))), 0, 0, 0, 0]),
            (client, EngineHarness.FromClient(Ipv4("10.244.1.10", "10.96.0.20", 6, Tcp(40001, 80, 0x10), ttl: 1))),
            (client, EngineHarness.FromClient(Ipv4("10.244.1.10", "10.96.0.20", 6, Tcp(40001, 80, 0x10, payload: 1440)))),
            (client, EngineHarness.FromClient(Ipv4("10.244.1.10", "10.244.2.11", 17, Udp(5001, 53, payload: 9)))),
            (client, zeroUdpToRemote),
            traffic[5],
            traffic[6],
            (client, EngineHarness.FromClient(Ipv4("10.244.1.10", "10.96.0.20", 6, Tcp(40001, 80, 0x10, payload: 30)))),
        ];
    }

    private static PacketMeta[] Run(Engine engine, (short Port, byte[] Frame)[] frames, long start, bool observed, List<string> bytes)
    {
        var batch = ForwardingDecisionTests.RunBatch(engine, frames, start, observed);
        for (int i = 0; i < frames.Length; i++) bytes.Add(batch.Meta[i].EgressPort >= 0 ? Convert.ToHexString(batch.Frame(i)) : "");
        return batch.Meta[..frames.Length];
    }

    [Fact]
    public void PlainAndOtherPacketsOfTrackedConnectionsLeaveAsTheGeneralPathSendsThem()
    {
        var snap = ForwardingDecisionTests.Node();
        var lean = new Engine(new SnapshotHolder(snap), conntrackSeed: 11);
        var general = new Engine(new SnapshotHolder(snap), conntrackSeed: 11); // observed: every packet takes the general path
        long t = Start;
        List<string> leanBytes = [], generalBytes = [];
        Run(general, ForwardingDecisionTests.Openings(snap), t, observed: true, generalBytes);
        Run(lean, ForwardingDecisionTests.Openings(snap), t, observed: false, leanBytes);
        // The decisions are made by the first round of ordinary traffic, then the mixed batches take them.
        t += 1_000_000;
        Run(general, ForwardingDecisionTests.Traffic(snap), t, observed: true, generalBytes);
        Run(lean, ForwardingDecisionTests.Traffic(snap), t, observed: false, leanBytes);
        Assert.True(ForwardingDecisionTests.Decisions(lean.Conntrack!) > 0);

        var drops = new HashSet<DropReason>();
        int tunnelled = 0;
        for (int round = 0; round < 2; round++)
        {
            t += 1_000_000_000;
            var expected = Run(general, Variants(snap), t, observed: true, generalBytes);
            var actual = Run(lean, Variants(snap), t, observed: false, leanBytes);
            for (int i = 0; i < expected.Length; i++)
            {
                var (e, a) = (expected[i], actual[i]);
                Assert.Equal((e.Drop, e.EgressPort, e.Offset, e.Length), (a.Drop, a.EgressPort, a.Offset, a.Length));
                Assert.Equal((e.L3, e.L3Offset, e.L3Length, e.L4Offset, e.Flags), (a.L3, a.L3Offset, a.L3Length, a.L4Offset, a.Flags));
                Assert.Equal((e.IpProtocol, e.SourcePort, e.DestinationPort), (a.IpProtocol, a.SourcePort, a.DestinationPort));
                drops.Add(a.Drop);
                if (round == 1 && a.EgressPort == PortIndex.Uplink && a.DestinationPort == snap.Node.VxlanPort) tunnelled++;
            }
        }
        Assert.Equal(generalBytes, leanBytes);
        // The batches reached the drops the lean path must leave to the general one.
        Assert.Superset(new HashSet<DropReason> { DropReason.None, DropReason.BadChecksum, DropReason.Malformed, DropReason.TtlExceeded, DropReason.MtuExceeded }, drops);
        Assert.True(tunnelled >= 4, $"{tunnelled} packets left over VXLAN in the second round");

        for (int p = 0; p < snap.PortCount; p++)
        {
            Assert.Equal(general.Counters.RxPackets(p), lean.Counters.RxPackets(p));
            Assert.Equal(general.Counters.RxBytes(p), lean.Counters.RxBytes(p));
            Assert.Equal(general.Counters.TxPackets(p), lean.Counters.TxPackets(p));
            Assert.Equal(general.Counters.TxBytes(p), lean.Counters.TxBytes(p));
            foreach (var reason in Enum.GetValues<DropReason>())
                Assert.Equal(general.Counters.Drops(p, reason), lean.Counters.Drops(p, reason));
        }
        var (lt, gt) = (lean.Conntrack!, general.Conntrack!);
        Assert.Equal(gt.Count, lt.Count);
        for (int i = 0; i < gt.Capacity; i++)
        {
            Assert.Equal((gt[i].State, gt[i].Status, gt[i].Expires, gt[i].LastSeen), (lt[i].State, lt[i].Status, lt[i].Expires, lt[i].LastSeen));
            Assert.Equal((gt[i].PacketsOriginal, gt[i].BytesOriginal, gt[i].PacketsReply, gt[i].BytesReply),
                (lt[i].PacketsOriginal, lt[i].BytesOriginal, lt[i].PacketsReply, lt[i].BytesReply));
        }
    }

    [Fact]
    public void TheOptionlessHeaderCheckAgreesWithTheGeneralOne()
    {
        var rng = new Random(16);
        var header = new byte[20];
        int valid = 0;
        for (int n = 0; n < 200_000; n++)
        {
            rng.NextBytes(header);
            // Half of them with a correct checksum, some all-zero or all-ones words (the folds' edge cases).
            if (n % 2 == 0)
            {
                header[10] = header[11] = 0;
                BinaryPrimitives.WriteUInt16BigEndian(header.AsSpan(10), SlowChecksum(header));
            }
            if (n % 97 == 0) Array.Fill(header, (byte)0);
            if (n % 89 == 0) Array.Fill(header, (byte)0xFF);
            bool expected = Checksum.Ipv4HeaderValid(header);
            Assert.Equal(expected, Checksum.Ipv4HeaderValid20(ref header[0]));
            if (expected) valid++;
        }
        Assert.InRange(valid, 90_000, 110_000);
    }
}
