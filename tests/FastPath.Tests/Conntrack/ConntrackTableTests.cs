using System.Diagnostics;
using System.Runtime.CompilerServices;
using CsCheck;
using FastPath.DataPlane.Conntrack;
using FastPath.DataPlane.Packets;
using FastPath.Tests.Support;

namespace FastPath.Tests.Conntrack;

[Collection(AllocationCollection.Name)]
public class ConntrackTableTests
{
    private const long Second = 1_000_000_000L;
    private const byte Syn = TcpHeader.Syn, Ack = TcpHeader.Ack, Fin = TcpHeader.Fin, Rst = TcpHeader.Rst;

    private static FlowKey Tcp(int client, ushort sport = 40000) =>
        new(IpAddr.FromV4(0x0AF4_0000u + (uint)client), IpAddr.FromV4(0x0A60_0001u), sport, 443, IpProtocol.Tcp);

    [Fact]
    public void FlowKeyIsAtMost40BytesAndReverses()
    {
        Assert.True(Unsafe.SizeOf<FlowKey>() <= 40, $"FlowKey is {Unsafe.SizeOf<FlowKey>()} bytes");
        var k = new FlowKey(IpAddr.FromV4(0x0A000001), IpAddr.FromV4(0x0A000002), 1234, 80, IpProtocol.Udp);
        var r = k.Reverse();
        Assert.Equal(k.Destination, r.Source);
        Assert.Equal(k.Source, r.Destination);
        Assert.Equal((ushort)80, r.SourcePort);
        Assert.Equal(k, r.Reverse());
        Assert.NotEqual(k, r);
        Assert.NotEqual(k.Hash(1), r.Hash(1));
        Assert.NotEqual(k.Hash(1), k.Hash(2)); // seeded

        // ICMP echo: the identifier is both ports and the type is part of the tuple, so the reply is the request's
        // reverse while a request the other way with the same identifier is another connection.
        var ping = new FlowKey(IpAddr.FromV4(0x0A000001), IpAddr.FromV4(0x0A000002), 7, 7, IpProtocol.Icmp, EchoKind.Request);
        Assert.Equal(EchoKind.Reply, ping.Reverse().Echo);
        var pingBack = new FlowKey(IpAddr.FromV4(0x0A000002), IpAddr.FromV4(0x0A000001), 7, 7, IpProtocol.Icmp, EchoKind.Request);
        Assert.NotEqual(ping.Reverse(), pingBack);
        Assert.NotEqual(ping.Reverse().Hash(1), pingBack.Hash(1));
    }

    [Fact]
    public void LookupFindsBothDirectionsOfANattedConnection()
    {
        var t = new ConntrackTable(16, seed: 7);
        var original = new FlowKey(IpAddr.FromV4(0x0AF40105), IpAddr.FromV4(0x0A600001), 40000, 80, IpProtocol.Tcp);
        // DNAT to a backend: the reply comes from the backend, not the Service IP.
        var reply = new FlowKey(IpAddr.FromV4(0x0AF40207), IpAddr.FromV4(0x0AF40105), 8080, 40000, IpProtocol.Tcp);
        int i = t.Insert(original, reply, 0);
        Assert.True(i >= 0);
        Assert.True((t[i].Status & ConntrackStatus.Translated) != 0);
        var other = new FlowKey(IpAddr.FromV4(0x0AF40105), IpAddr.FromV4(0x0AF40207), 40001, 8080, IpProtocol.Tcp);
        int plain = t.Insert(other, other.Reverse(), 0); // tracked without NAT (policy): hits leave packets alone
        Assert.Equal(ConntrackStatus.InUse, t[plain].Status);
        t.Remove(plain);
        Assert.Equal(i, t.Lookup(original, 1, out bool r1));
        Assert.False(r1);
        Assert.Equal(i, t.Lookup(reply, 1, out bool r2));
        Assert.True(r2);
        Assert.Equal(-1, t.Lookup(original.Reverse(), 1, out _));
        Assert.Equal(ConntrackTable.Clash, t.Insert(reply.Reverse(), reply, 1)); // reply tuple taken
        Assert.Equal(ConntrackTable.Clash, t.Insert(original, original, 1));
        t.Remove(i);
        Assert.Equal(-1, t.Lookup(original, 1, out _));
        Assert.Equal(-1, t.Lookup(reply, 1, out _));
        Assert.Equal(0, t.Count);
    }

    private static (ConntrackTable Table, int Index) Connection(byte proto = IpProtocol.Tcp)
    {
        var t = new ConntrackTable(8, seed: 1);
        var k = new FlowKey(IpAddr.FromV4(0x0A000001), IpAddr.FromV4(0x0A000002), 1000, 53, proto);
        return (t, t.Insert(k, k.Reverse(), 0));
    }

    private static void Step(ConntrackTable t, int i, bool reply, byte flags, ConntrackState expected, long now = 0)
    {
        t.Observe(i, reply, flags, 60, now);
        Assert.Equal(expected, t[i].State);
        Assert.Equal(now + t.Timeouts.Nanoseconds(expected), t[i].Expires);
    }

    [Fact]
    public void TcpHandshakeAndClientFirstClose()
    {
        var (t, i) = Connection();
        Assert.Equal(ConntrackState.TcpNew, t[i].State);
        Step(t, i, false, Syn, ConntrackState.TcpSynSent);
        Step(t, i, true, Syn | Ack, ConntrackState.TcpSynRecv);
        Assert.False(t[i].Assured);
        Step(t, i, false, Ack, ConntrackState.TcpEstablished);
        Assert.True(t[i].Assured);
        Assert.Equal(24 * 3600 * Second, t[i].Expires);
        Step(t, i, true, Ack, ConntrackState.TcpEstablished);
        Step(t, i, false, Fin | Ack, ConntrackState.TcpFinWait);
        Step(t, i, true, Ack, ConntrackState.TcpFinWait);
        Step(t, i, true, Fin | Ack, ConntrackState.TcpLastAck);
        Step(t, i, true, Ack, ConntrackState.TcpLastAck); // same side as the last FIN: not the closing ACK
        Step(t, i, false, Ack, ConntrackState.TcpTimeWait, 5 * Second);
        Assert.Equal(125 * Second, t[i].Expires);
        Assert.Equal(4, t[i].PacketsOriginal);
        Assert.Equal(5, t[i].PacketsReply);
        Assert.Equal(300, t[i].BytesReply);
    }

    [Fact]
    public void TcpServerFirstClose()
    {
        var (t, i) = Connection();
        Step(t, i, false, Syn, ConntrackState.TcpSynSent);
        Step(t, i, true, Syn | Ack, ConntrackState.TcpSynRecv);
        Step(t, i, false, Ack, ConntrackState.TcpEstablished);
        Step(t, i, true, Fin | Ack, ConntrackState.TcpCloseWait);
        Assert.Equal(3600 * Second, t[i].Expires);
        Step(t, i, false, Fin | Ack, ConntrackState.TcpLastAck);
        Step(t, i, true, Ack, ConntrackState.TcpTimeWait);
    }

    [Fact]
    public void TcpSimultaneousClose()
    {
        var (t, i) = Connection();
        Step(t, i, false, Syn, ConntrackState.TcpSynSent);
        Step(t, i, true, Syn | Ack, ConntrackState.TcpSynRecv);
        Step(t, i, false, Ack, ConntrackState.TcpEstablished);
        Step(t, i, false, Fin | Ack, ConntrackState.TcpFinWait);
        Step(t, i, true, Fin | Ack, ConntrackState.TcpLastAck); // crossed FINs
        Step(t, i, true, Ack, ConntrackState.TcpLastAck);
        Step(t, i, false, Ack, ConntrackState.TcpTimeWait);
    }

    [Fact]
    public void TcpResetClosesFromAnyState()
    {
        foreach (int steps in new[] { 1, 2, 3 })
        {
            var (t, i) = Connection();
            byte[] flags = [Syn, Syn | Ack, Ack];
            for (int s = 0; s < steps; s++) t.Observe(i, s == 1, flags[s], 40, 0);
            Step(t, i, steps % 2 == 0, Rst, ConntrackState.TcpClose, Second);
            Assert.Equal(11 * Second, t[i].Expires);
        }
    }

    [Fact]
    public void TcpPickedUpMidStreamIsAssuredOnlyAfterAReply()
    {
        var (t, i) = Connection();
        Step(t, i, false, Ack, ConntrackState.TcpEstablished);
        Assert.False(t[i].Assured);
        Step(t, i, true, Ack, ConntrackState.TcpEstablished);
        Assert.True(t[i].Assured);
    }

    [Fact]
    public void UdpBecomesAssuredWhenTheReplyIsSeen()
    {
        var (t, i) = Connection(IpProtocol.Udp);
        Step(t, i, false, 0, ConntrackState.Unreplied, Second);
        Assert.Equal(31 * Second, t[i].Expires);
        Assert.False(t[i].Assured);
        Step(t, i, true, 0, ConntrackState.Replied, 2 * Second);
        Assert.True(t[i].Assured);
        Assert.Equal(122 * Second, t[i].Expires);
        var (ti, ii) = Connection(IpProtocol.Icmp);
        Step(ti, ii, true, 0, ConntrackState.IcmpReplied);
        Assert.False(ti[ii].Assured); // ICMP is never assured, as in Linux
    }

    [Fact]
    public void AFloodEvictsTheOldestUnrepliedConnectionsFirstAndKeepsAssuredOnes()
    {
        // 1,000 records: 300 assured connections first (a run longer than the eviction window), then 700 SYNs, one per
        // millisecond; then 2,000 more SYNs. Each takes the place of the oldest unreplied one, so at the end the table
        // holds the assured ones and the last 700 SYNs, and no insert was refused on the way.
        var t = new ConntrackTable(1000, seed: 5);
        long now = 0;
        for (int c = 0; c < 300; c++)
        {
            int i = t.Insert(Tcp(c), Tcp(c).Reverse(), now);
            t.Observe(i, false, Syn, 60, now);
            t.Observe(i, true, Syn | Ack, 60, now);
            t.Observe(i, false, Ack, 60, now);
        }
        for (int c = 300; c < 3000; c++)
        {
            now += 1_000_000;
            int i = t.Insert(Tcp(c), Tcp(c).Reverse(), now);
            Assert.True(i >= 0, $"SYN {c} refused");
            t.Observe(i, false, Syn, 60, now);
        }
        Assert.Equal(2000, t.Evictions);
        Assert.Equal(0, t.InsertFailures);
        for (int c = 0; c < 3000; c++)
            Assert.Equal(c < 300 || c >= 2300, t.Lookup(Tcp(c), now, out _) >= 0);
    }

    [Fact]
    public void FullTablePolicy()
    {
        // Window covering the whole index so the victim choice is the documented one, not a matter of layout.
        var t = new ConntrackTable(4, seed: 3, evictionWindow: int.MaxValue);
        int Open(int client, long now, bool assure)
        {
            int i = t.Insert(Tcp(client), Tcp(client).Reverse(), now);
            Assert.True(i >= 0);
            t.Observe(i, false, Syn, 60, now);
            if (assure) { t.Observe(i, true, Syn | Ack, 60, now); t.Observe(i, false, Ack, 60, now); }
            return i;
        }
        Open(1, 0, true);
        Open(2, 0, true);
        Open(3, 0, false);            // SYN_SENT, expires at 60 s
        Open(4, Second, false);       // SYN_SENT, expires at 61 s
        Assert.Equal(4, t.Count);

        // 1. Nothing expired: the non-assured entry closest to expiry (client 3) is early-dropped.
        Open(5, 2 * Second, false);   // expires at 62 s
        Assert.Equal(1, t.Evictions);
        Assert.Equal(-1, t.Lookup(Tcp(3), 2 * Second, out _));
        Assert.True(t.Lookup(Tcp(4), 2 * Second, out _) >= 0);

        // 2. Client 4 has expired: reclaimed, nothing evicted.
        long now = 61 * Second + 1;
        Open(6, now, false);
        Assert.Equal(1, t.Evictions);
        Assert.Equal(1, t.Expired);
        Assert.True(t.Lookup(Tcp(5), now, out _) >= 0);

        // 3. Every entry assured (ESTABLISHED): never evicted, the insert fails.
        foreach (int c in new[] { 5, 6 })
        {
            int i = t.Lookup(Tcp(c), now, out _);
            t.Observe(i, true, Syn | Ack, 60, now);
            t.Observe(i, false, Ack, 60, now);
        }
        Assert.Equal(ConntrackTable.Full, t.Insert(Tcp(7), Tcp(7).Reverse(), now));
        Assert.Equal(1, t.InsertFailures);
        Assert.Equal(1, t.Evictions);
        foreach (int c in new[] { 1, 2, 5, 6 }) Assert.True(t.Lookup(Tcp(c), now, out _) >= 0);
    }

    [Fact]
    public void SweepRespectsItsBudget()
    {
        var t = new ConntrackTable(1000, seed: 5);
        for (int c = 0; c < 1000; c++) Assert.True(t.Insert(Tcp(c), Tcp(c).Reverse(), 0) >= 0);
        long later = 61 * Second;
        Assert.Equal(100, t.Sweep(later, 100));
        Assert.Equal(900, t.Count);
        Assert.Equal(0, t.Sweep(later / 2, 5000)); // nothing expired yet at 30 s
        int total = 100;
        for (int k = 0; k < 9; k++)
        {
            int n = t.Sweep(later, 100);
            Assert.True(n <= 100);
            total += n;
        }
        Assert.Equal(1000, total);
        Assert.Equal(0, t.Count);
        Assert.Equal(1000, t.Expired);
    }

    [Fact]
    public void ChurnDoesNotDegradeProbeLengths()
    {
        const int capacity = 1 << 16;
        var t = new ConntrackTable(capacity, seed: 11);
        var rng = new Random(42);
        var live = new FlowKey[capacity];
        var index = new int[capacity];
        int n = 0;
        FlowKey Fresh() => new(IpAddr.FromV4((uint)rng.Next()), IpAddr.FromV4((uint)rng.Next()),
            (ushort)rng.Next(65536), (ushort)rng.Next(65536), IpProtocol.Udp);
        while (n < capacity * 9 / 10)
        {
            var k = Fresh();
            int i = t.Insert(k, k.Reverse(), 0);
            if (i < 0) continue;
            live[n] = k; index[n] = i; n++;
        }
        var (max0, mean0) = t.ProbeDistances();

        const int cycles = 2_000_000;
        var sw = Stopwatch.StartNew();
        for (int c = 0; c < cycles; c++)
        {
            int victim = rng.Next(n);
            t.Remove(index[victim]);
            FlowKey k;
            int i;
            do { k = Fresh(); i = t.Insert(k, k.Reverse(), 0); } while (i < 0);
            live[victim] = k; index[victim] = i;
        }
        sw.Stop();
        var (max1, mean1) = t.ProbeDistances();
        Assert.Equal(n, t.Count);
        for (int j = 0; j < n; j++)
        {
            Assert.Equal(index[j], t.Lookup(live[j], 0, out bool r1));
            Assert.False(r1);
            Assert.Equal(index[j], t.Lookup(live[j].Reverse(), 0, out bool r2));
            Assert.True(r2);
        }
        // Backward-shift deletion: the distribution after churn is that of a fresh table at the same load (0.45).
        Assert.True(mean1 < mean0 * 1.25 + 0.1, $"mean probe distance {mean0:F3} -> {mean1:F3}");
        Assert.True(max1 < 64, $"max probe distance {max0} -> {max1}");
    }

    [Fact]
    public void LookupBatchAgreesWithLookupAndAllocatesNothing()
    {
        // Two tables built by the same operations (same seed): one answers key by key, the other in batches, and
        // both must give the same answers and reclaim the same expired connections.
        var rng = new Random(77);
        var keys = new FlowKey[5000];
        for (int k = 0; k < keys.Length; k++)
            keys[k] = new FlowKey(IpAddr.FromV4((uint)rng.Next()), IpAddr.FromV4((uint)rng.Next()),
                (ushort)rng.Next(65536), (ushort)rng.Next(65536), k % 3 == 0 ? IpProtocol.Udp : IpProtocol.Tcp);
        ConntrackTable Build()
        {
            var t = new ConntrackTable(4096, seed: 31);
            for (int k = 0; k < 3000; k++)
            {
                // Every third connection is NATed (its reply tuple is not the reverse); some expire at t = 100 s.
                var reply = k % 3 == 0 ? keys[k + 2000 - k % 7] : keys[k].Reverse();
                int e = t.Insert(keys[k], reply, k % 5 == 0 ? 0 : 200 * Second);
                if (e >= 0 && k % 11 == 0) t.Remove(e);
            }
            return t;
        }
        var single = Build();
        var batched = Build();
        var queries = new FlowKey[keys.Length * 2 + 7]; // not a multiple of the group size
        for (int q = 0; q < queries.Length; q++)
        {
            var k = keys[rng.Next(keys.Length)];
            queries[q] = q % 2 == 0 ? k : k.Reverse();
        }
        var results = new int[queries.Length];
        var isReply = new bool[queries.Length];
        long now = 250 * Second;
        batched.LookupBatch(queries, now, results, isReply);
        int hits = 0;
        for (int q = 0; q < queries.Length; q++)
        {
            int want = single.Lookup(queries[q], now, out bool wantReply);
            Assert.True(want == results[q] && (want < 0 || wantReply == isReply[q]), $"query {q} ({queries[q]}): batch {results[q]}/{isReply[q]}, single {want}/{wantReply}");
            if (want >= 0) hits++;
        }
        Assert.True(hits > queries.Length / 4, $"only {hits} hits");
        Assert.True(batched.Expired > 0);
        Assert.Equal(single.Expired, batched.Expired);
        Assert.Equal(single.Count, batched.Count);

        long before = GC.GetAllocatedBytesForCurrentThread();
        for (int r = 0; r < 200; r++) batched.LookupBatch(queries, now, results, isReply);
        Assert.Equal(0, GC.GetAllocatedBytesForCurrentThread() - before);
    }

    [Fact]
    public void LookupInsertObserveAllocateNothing()
    {
        var t = new ConntrackTable(1 << 16, seed: 13);
        var keys = new FlowKey[100_000];
        var rng = new Random(9);
        for (int k = 0; k < keys.Length; k++)
            keys[k] = new FlowKey(IpAddr.FromV4((uint)rng.Next()), IpAddr.FromV4((uint)rng.Next()),
                (ushort)rng.Next(65536), 80, k % 2 == 0 ? IpProtocol.Tcp : IpProtocol.Udp);

        long Run(int ops, long now)
        {
            long hits = 0;
            for (int n = 0; n < ops; n++)
            {
                ref readonly FlowKey k = ref keys[n % keys.Length];
                now += 1000;
                int i = t.Lookup(k, now, out bool reply);
                if (i < 0) i = t.Insert(k, k.Reverse(), now);
                else hits++;
                if (i >= 0)
                {
                    t.Observe(i, reply, Ack, 100, now);
                    if ((n & 7) == 0) t.Remove(i);
                }
                if ((n & 63) == 0) t.Sweep(now, 32);
            }
            return hits;
        }

        Run(200_000, 0);
        long hits = 0;
        long allocated = Allocations.Measure(() => hits = Run(1_048_576, 1L << 40));
        Assert.Equal(0, allocated);
        Assert.True(hits > 0);
    }

    /// <summary>An IPv4 TCP/UDP packet's tuple (built from the two address words, without IpAddr) is the key the
    /// public constructor makes from its addresses: equal, same hash, IPv4 addresses back.</summary>
    [Theory]
    [InlineData(6)]
    [InlineData(17)]
    public void AnIpv4PacketsTupleIsTheKeyOfItsAddresses(byte protocol)
    {
        byte[] l4 = protocol == 6 ? TestFrames.Tcp(40000, 8080, 0x10) : TestFrames.Udp(5353, 53);
        var frame = TestFrames.Ethernet(TestFrames.GatewayMac, TestFrames.Mac("02:00:00:00:00:01"), 0x0800,
            TestFrames.Ipv4("10.244.1.10", "192.0.2.200", protocol, l4));
        var m = new DataPlane.Pipeline.PacketMeta();
        Assert.Equal(DataPlane.Telemetry.DropReason.None, PacketParser.Parse(frame, ref m));
        Assert.True(FlowKey.TryFromPacket(frame, m, out var key));
        var expected = new FlowKey(EngineHarness.Addr("10.244.1.10"), EngineHarness.Addr("192.0.2.200"),
            protocol == 6 ? (ushort)40000 : (ushort)5353, protocol == 6 ? (ushort)8080 : (ushort)53, protocol);
        Assert.Equal(expected, key);
        Assert.Equal(expected.Hash(12345), key.Hash(12345));
        Assert.True(key.Source.IsV4 && key.Destination.IsV4);
        Assert.Equal("192.0.2.200", key.Destination.ToString());
    }

    /// <summary>A record is three cache lines (the table starts them on one, so a hit touches exactly three lines).</summary>
    [Fact]
    public void RecordsAreThreeCacheLines() => Assert.Equal(192, Unsafe.SizeOf<ConntrackEntry>());
}
