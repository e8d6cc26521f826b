using CsCheck;
using FastPath.DataPlane.Conntrack;
using FastPath.DataPlane.Packets;

namespace FastPath.Tests.Conntrack;

/// <summary>
/// <see cref="ConntrackTable"/> against a reference built from a <see cref="Dictionary{TKey,TValue}"/> keyed by both
/// tuples, with the timeout and full-table rules written out directly. The TCP transition function is shared
/// (<see cref="ConntrackTcp.Next"/>, tested transition by transition in <see cref="ConntrackTableTests"/>); everything
/// else (indexing, expiry, reclaim, sweep order, eviction choice, counters) is modelled independently.
/// </summary>
public class ConntrackModelTests
{
    private const long Second = 1_000_000_000L;

    private static readonly ConntrackTimeouts Timeouts = new()
    {
        TcpEstablished = TimeSpan.FromSeconds(400),
        TcpCloseWait = TimeSpan.FromSeconds(200),
    };

    private static readonly byte[] TcpFlagChoices =
        [TcpHeader.Syn, TcpHeader.Syn | TcpHeader.Ack, TcpHeader.Ack, TcpHeader.Ack, TcpHeader.Fin | TcpHeader.Ack,
         TcpHeader.Rst, TcpHeader.Psh | TcpHeader.Ack, TcpHeader.Ack];

    private static readonly FlowKey[] Pool = BuildPool();

    private static FlowKey[] BuildPool()
    {
        var p = new FlowKey[24];
        byte[] protos = [IpProtocol.Tcp, IpProtocol.Udp, IpProtocol.Icmp];
        for (int i = 0; i < p.Length; i++)
            p[i] = new FlowKey(IpAddr.FromV4(0x0A00_0001u + (uint)(i % 4)), IpAddr.FromV4(0x0A00_0101u + (uint)(i / 8)),
                (ushort)(1000 + i % 3), 80, protos[i % 3]);
        return p;
    }

    private static FlowKey KeyOf(int a) => a < Pool.Length ? Pool[a] : Pool[a - Pool.Length].Reverse();

    private sealed class Conn
    {
        public FlowKey Original, Reply;
        public ConntrackState State;
        public ConntrackStatus Status;
        public long Expires;
        public long Packets;
        public int Index;
    }

    private sealed class Model(int capacity)
    {
        public readonly Dictionary<FlowKey, (Conn Conn, bool Reply)> ByKey = new();
        public readonly Conn?[] ByIndex = new Conn?[capacity];
        public int Cursor;
        public long Expired, Evictions, Failures, Clashes, Inserts;
        public int Count => ByKey.Count / 2;

        public void Drop(Conn c)
        {
            ByKey.Remove(c.Original);
            ByKey.Remove(c.Reply);
            ByIndex[c.Index] = null;
        }

        public Conn? Find(FlowKey k, long now, out bool reply)
        {
            reply = false;
            if (!ByKey.TryGetValue(k, out var hit)) return null;
            if (now >= hit.Conn.Expires) { Drop(hit.Conn); Expired++; return null; }
            reply = hit.Reply;
            return hit.Conn;
        }

        public static long Timeout(ConntrackState s) => s switch
        {
            ConntrackState.TcpNew or ConntrackState.TcpSynSent => 60 * Second,
            ConntrackState.TcpSynRecv => 60 * Second,
            ConntrackState.TcpEstablished => 400 * Second,
            ConntrackState.TcpFinWait => 120 * Second,
            ConntrackState.TcpCloseWait => 200 * Second,
            ConntrackState.TcpLastAck => 30 * Second,
            ConntrackState.TcpTimeWait => 120 * Second,
            ConntrackState.TcpClose => 10 * Second,
            ConntrackState.Unreplied => 30 * Second,
            ConntrackState.Replied => 120 * Second,
            _ => 30 * Second, // ICMP
        };
    }

    // op: 0 insert, 1 insert with NAT reply, 2 lookup, 3 observe, 4 remove, 5 sweep, 6-7 advance time
    private static readonly Gen<(int Op, int A, int B, int C)[]> Ops =
        Gen.Select(Gen.Int[0, 7], Gen.Int[0, 47], Gen.Int[0, 47], Gen.Int[0, 255]).Array[1, 400];

    [Fact]
    public void MatchesReferenceWithEvictionWindowOverWholeTable()
    {
        long evictions = 0, failures = 0, expired = 0;
        Gen.Select(Gen.Int[1, 8], Ops).Sample(t =>
        {
            var table = Run(t.Item1, t.Item2);
            Interlocked.Add(ref evictions, table.Evictions);
            Interlocked.Add(ref failures, table.InsertFailures);
            Interlocked.Add(ref expired, table.Expired);
        }, iter: 400);
        // The runs must reach every branch of the full-table policy, not only the easy path.
        Assert.True(evictions > 0 && failures > 0 && expired > 0, $"evictions {evictions}, failures {failures}, expired {expired}");
    }

    private static ConntrackTable Run(int capacity, (int Op, int A, int B, int C)[] ops)
    {
        var table = new ConntrackTable(capacity, Timeouts, seed: (ulong)capacity * 977, evictionWindow: int.MaxValue);
        var model = new Model(capacity);
        long now = 1;
        foreach (var (op, a, b, c) in ops)
        {
            switch (op)
            {
                case 0:
                case 1:
                {
                    var o = KeyOf(a);
                    var r = op == 0 ? o.Reverse() : KeyOf(b);
                    int got = table.Insert(o, r, now);
                    int want = ModelInsert(model, table, o, r, now, got);
                    Assert.Equal(want, got < 0 ? got : 0);
                    break;
                }
                case 2:
                case 3:
                case 4:
                {
                    var k = KeyOf(a);
                    int got = table.Lookup(k, now, out bool gotReply);
                    var conn = model.Find(k, now, out bool wantReply);
                    Assert.Equal(conn?.Index ?? -1, got);
                    if (conn is null) break;
                    Assert.Equal(wantReply, gotReply);
                    if (op == 3)
                    {
                        byte flags = TcpFlagChoices[c & 7];
                        table.Observe(got, gotReply, flags, c, now);
                        ModelObserve(conn, gotReply, flags, now);
                        ref var e = ref table[got];
                        Assert.Equal(conn.State, e.State);
                        Assert.Equal(conn.Status & ConntrackStatus.Assured, e.Status & ConntrackStatus.Assured);
                        Assert.Equal(conn.Expires, e.Expires);
                    }
                    else if (op == 4)
                    {
                        table.Remove(got);
                        model.Drop(conn);
                    }
                    break;
                }
                case 5:
                {
                    int budget = 1 + c % (capacity + 3);
                    int want = 0;
                    for (int k = 0; k < Math.Min(budget, capacity); k++)
                    {
                        var conn = model.ByIndex[model.Cursor];
                        if (conn is not null && now >= conn.Expires) { model.Drop(conn); want++; }
                        model.Cursor = (model.Cursor + 1) % capacity;
                    }
                    model.Expired += want;
                    Assert.Equal(want, table.Sweep(now, budget));
                    break;
                }
                default:
                    now += c > 250 ? 1000 * Second : (long)c * Second / 16; // 0–16 s steps, now and then a long idle gap
                    break;
            }
            Assert.Equal(model.Count, table.Count);
            Assert.Equal(model.Expired, table.Expired);
            Assert.Equal(model.Evictions, table.Evictions);
            Assert.Equal(model.Failures, table.InsertFailures);
            Assert.Equal(model.Clashes, table.Clashes);
            Assert.Equal(model.Inserts, table.Inserts);
        }
        var (max, _) = table.ProbeDistances();
        Assert.True(max < table.SlotCount);
        return table;
    }

    // Returns the expected result class (0 success, Full, Clash) and brings the model in line with the table.
    private static int ModelInsert(Model model, ConntrackTable table, FlowKey o, FlowKey r, long now, int got)
    {
        if (o.Equals(r)) { model.Clashes++; return ConntrackTable.Clash; }
        if (model.Find(o, now, out _) is not null || model.Find(r, now, out _) is not null)
        {
            model.Clashes++;
            return ConntrackTable.Clash;
        }
        if (model.Count == table.Capacity)
        {
            var all = model.ByIndex.Where(c => c is not null).Select(c => c!).ToList();
            var expired = all.Where(c => now >= c.Expires).ToList();
            var evictable = all.Where(c => (c.Status & ConntrackStatus.Assured) == 0).ToList();
            if (expired.Count == 0 && evictable.Count == 0)
            {
                model.Failures++;
                return ConntrackTable.Full;
            }
            Assert.True(got >= 0, "the table refused an insert although it had something to reclaim or evict");
            // Which one went: the connection whose record no longer holds its tuple.
            var gone = all.Single(c => c.Index == got);
            if (expired.Count > 0)
            {
                Assert.Contains(gone, expired);
                model.Expired++;
            }
            else
            {
                long soonest = evictable.Min(c => c.Expires);
                Assert.Contains(gone, evictable);
                Assert.Equal(soonest, gone.Expires);
                model.Evictions++;
            }
            model.Drop(gone);
        }
        Assert.True(got >= 0);
        Assert.Null(model.ByIndex[got]);
        var state = o.Protocol switch
        {
            IpProtocol.Tcp => ConntrackState.TcpNew,
            IpProtocol.Icmp => ConntrackState.IcmpRequest,
            _ => ConntrackState.Unreplied,
        };
        var conn = new Conn { Original = o, Reply = r, State = state, Expires = now + Model.Timeout(state), Index = got };
        model.ByKey[o] = (conn, false);
        model.ByKey[r] = (conn, true);
        model.ByIndex[got] = conn;
        model.Inserts++;
        return 0;
    }

    private static void ModelObserve(Conn c, bool reply, byte flags, long now)
    {
        c.Packets++;
        if (reply) c.Status |= ConntrackStatus.SeenReply;
        switch (c.Original.Protocol)
        {
            case IpProtocol.Tcp:
                c.State = ConntrackTcp.Next(c.State, ref c.Status, reply, flags);
                break;
            case IpProtocol.Icmp:
                if (reply) c.State = ConntrackState.IcmpReplied;
                break;
            default:
                if (reply) { c.State = ConntrackState.Replied; c.Status |= ConntrackStatus.Assured; }
                break;
        }
        c.Expires = now + Model.Timeout(c.State);
    }
}
