using FastPath.DataPlane.Pipeline;
using FastPath.DataPlane.Telemetry;
using FastPath.Tests.Support;
using static FastPath.Tests.Support.TestFrames;

namespace FastPath.Tests.Pipeline;

/// <summary>Hostile input: every truncation and random byte flips of valid frames never throw, always get a verdict, and never stop the packets behind them.</summary>
public class RobustnessTests
{
    public static IEnumerable<byte[]> ValidFrames()
    {
        yield return EngineHarness.FromClient(Ipv4("10.244.1.10", "10.244.1.11", 6, Tcp(40000, 8080, payload: 30)));
        yield return EngineHarness.FromClient(Ipv4("10.244.1.10", "10.244.1.11", 17, Udp(5000, 53, 12), options: [0x94, 0x04, 0, 0]));
        yield return EngineHarness.FromClient(Ipv4("10.244.1.10", "10.244.1.11", 1, IcmpEcho()));
        yield return EngineHarness.FromClient(Ipv4("10.244.1.10", "10.244.1.11", 6, Tcp(1, 2), ttl: 1));
        // IPv6 with hop-by-hop (PadN) and a destination-options header in front of UDP
        var ext = new byte[] { 60, 0, 1, 4, 0, 0, 0, 0, 17, 0, 1, 4, 0, 0, 0, 0 };
        yield return EngineHarness.FromClient(Ipv6("fd00:244:1::a", "fd00:244:1::b", 0, ext.Concat(Udp(5000, 53)).ToArray(), transportProto: 17, transportOffset: 16), 0x86DD);
        yield return EngineHarness.FromClient(Ipv6("fd00:244:1::a", "ff02::1:ff00:1", 58, NeighborSolicitation("fd00:244:1::1", Mac(EngineHarness.ClientMac)), hopLimit: 255), 0x86DD);
        yield return Ethernet(Mac("ff:ff:ff:ff:ff:ff"), Mac(EngineHarness.ClientMac), 0x0806, Arp(1, Mac(EngineHarness.ClientMac), "10.244.1.10", new byte[6], "10.244.1.1"));
        yield return Ethernet(GatewayMac, Mac(EngineHarness.ClientMac), 0x0800, Ipv4("10.244.1.10", "10.244.1.11", 17, Udp(1, 2)), 0x8100);
    }

    private static readonly byte[] FollowUp = EngineHarness.FromClient(Ipv4("10.244.1.10", "10.244.1.11", 17, Udp(7, 7)));

    [Fact]
    public void EveryTruncationGetsAVerdictAndTheNextPacketStillFlows()
    {
        var h = new EngineHarness();
        int cases = 0;
        foreach (var frame in ValidFrames())
            for (int len = 0; len < frame.Length; len++)
            {
                var results = h.Run((h.Client, frame[..len]), (h.Client, FollowUp));
                AssertVerdict(results[0]);
                Assert.Equal(DropReason.None, results[1].Drop);
                Assert.Equal(h.Web1, results[1].Egress);
                cases++;
            }
        Assert.True(cases > 500);
    }

    [Fact]
    public void RandomByteFlipsGetAVerdictAndTheNextPacketStillFlows()
    {
        var h = new EngineHarness();
        var rng = new Random(20261125);
        var frames = ValidFrames().ToArray();
        for (int n = 0; n < 20_000; n++)
        {
            var frame = (byte[])frames[n % frames.Length].Clone();
            int flips = 1 + rng.Next(4);
            for (int f = 0; f < flips; f++) frame[rng.Next(frame.Length)] ^= (byte)(1 << rng.Next(8));
            short port = (short)rng.Next(-2, h.Snapshot.PortCount + 1); // includes Auto and one unknown index
            var results = h.Run((port, frame), (h.Client, FollowUp));
            AssertVerdict(results[0]);
            Assert.Equal(DropReason.None, results[1].Drop);
        }
    }

    [Fact]
    public void RandomGarbageNeverThrows()
    {
        var h = new EngineHarness();
        var rng = new Random(7);
        for (int n = 0; n < 20_000; n++)
        {
            var frame = new byte[rng.Next(0, 200)];
            rng.NextBytes(frame);
            if (frame.Length > 14 && n % 2 == 0) { frame[12] = 0x08; frame[13] = 0x00; frame[14] = 0x45; }
            AssertVerdict(h.RunOne(h.Client, frame));
        }
    }

    /// <summary>A packet is either forwarded (emitted, no drop) or dropped with a reason (maybe with an ICMP error emitted).</summary>
    private static void AssertVerdict(EngineHarness.Result r)
    {
        if (r.Drop == DropReason.None) Assert.True(r.Egress >= 0, "a packet that is not dropped must be emitted");
        if (r.Egress >= 0) Assert.True(r.Frame.Length >= 14);
    }
}
