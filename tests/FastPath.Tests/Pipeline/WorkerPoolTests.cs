using System.Net;
using CsCheck;
using FastPath.DataPlane.Packets;
using FastPath.DataPlane.Pipeline;
using FastPath.DataPlane.Ports;
using static FastPath.Tests.Support.TestFrames;

namespace FastPath.Tests.Pipeline;

/// <summary>Workers: the symmetric flow hash, the SPSC ring, and a pool of engines that forwards like one engine.</summary>
public class WorkerPoolTests
{
    private static uint HashOf(byte[] frame)
    {
        var m = new PacketMeta();
        Assert.Equal(DataPlane.Telemetry.DropReason.None, PacketParser.Parse(frame, ref m));
        return SymmetricFlowHash.Compute(frame, in m);
    }

    private static byte[] Frame(bool v6, byte proto, byte[] a, byte[] b, ushort pa, ushort pb)
    {
        byte[] l4 = proto == 6 ? Tcp(pa, pb) : Udp(pa, pb);
        string sa = new IPAddress(a).ToString(), sb = new IPAddress(b).ToString();
        return v6 ? Ethernet(GatewayMac, GatewayMac, 0x86DD, Ipv6(sa, sb, proto, l4))
                  : Ethernet(GatewayMac, GatewayMac, 0x0800, Ipv4(sa, sb, proto, l4));
    }

    [Fact]
    public void BothDirectionsOfAFlowHashAlike()
    {
        Gen.Select(Gen.Bool, Gen.Bool, Gen.Byte.Array[16], Gen.Byte.Array[16], Gen.UShort, Gen.UShort).Sample((v6, tcp, a, b, pa, pb) =>
        {
            if (!v6)
            {
                a = a[..4];
                b = b[..4];
            }
            else
            {
                a[0] = b[0] = 0xFD; // not multicast or link-local: the parser takes any unicast
            }
            byte proto = tcp ? (byte)6 : (byte)17;
            return HashOf(Frame(v6, proto, a, b, pa, pb)) == HashOf(Frame(v6, proto, b, a, pb, pa));
        });
    }

    [Fact]
    public void FlowsSpreadOverWorkers()
    {
        var counts = new int[2];
        for (ushort port = 1000; port < 3000; port++)
            counts[SymmetricFlowHash.Worker(HashOf(Frame(false, 6, [10, 244, 1, 10], [10, 244, 1, 11], port, 80)), 2)]++;
        Assert.InRange(counts[0], 850, 1150); // 2000 flows: a fair coin stays within ±150 with overwhelming probability
    }

    [Fact]
    public void RingDeliversInOrderAcrossThreads()
    {
        var ring = new SpscRing<object>(8);
        var items = Enumerable.Range(0, 100_000).Select(i => (object)i).ToArray();
        var received = new List<int>(items.Length);
        var consumer = new Thread(() =>
        {
            while (received.Count < items.Length)
                if (ring.TryDequeue(out var item)) received.Add((int)item);
        });
        consumer.Start();
        foreach (var item in items)
            while (!ring.TryEnqueue(item)) Thread.SpinWait(1);
        Assert.True(consumer.Join(TimeSpan.FromSeconds(30)));
        Assert.Equal(Enumerable.Range(0, items.Length), received);
        Assert.Throws<ArgumentOutOfRangeException>(() => new SpscRing<object>(6));
    }

    private readonly record struct Verdict(short Egress, DataPlane.Telemetry.DropReason Drop, string Frame);

    /// <summary>
    /// Mixed traffic (ClusterIP connections, pod to pod, VXLAN both ways) through two workers gives every packet the
    /// verdict and bytes one engine gives it, and each flow's packets complete in input order. The outer IPv4
    /// identification of VXLAN packets (and so its header checksum) counts per worker, so those bytes are masked.
    /// </summary>
    [Fact]
    public void TwoWorkersForwardLikeOneAndKeepEachFlowInOrder()
    {
        const int flows = 300, rounds = 4;
        var traffic = TrafficGenerator.Generate(TrafficScenario.Mixed,
            new TrafficParameters { Flows = flows, Services = 50, Endpoints = 4, Routes = 8 });

        static string Bytes(PacketBatch b, int i)
        {
            var f = b.Frame(i).ToArray();
            if (f.Length > 50 && f[23] == 17 && f[36] == 0x21 && f[37] == 0x18) // outer UDP to 8472: VXLAN
                f[18] = f[19] = f[24] = f[25] = 0;
            return Convert.ToHexString(f);
        }

        var single = new Dictionary<long, Verdict>();
        var engine = new Engine(new SnapshotHolder(traffic.Snapshot), conntrackSeed: 1);
        var source = new MemorySource(traffic.Frames, rounds, traffic.IngressPort);
        var batch = new PacketBatch(64);
        while (source.Receive(batch) > 0)
        {
            engine.Process(batch);
            for (int i = 0; i < batch.Count; i++) single[batch.Meta[i].InputIndex] = new Verdict(batch.Meta[i].EgressPort, batch.Meta[i].Drop, Bytes(batch, i));
        }

        var pooled = new Dictionary<long, Verdict>();
        var completionOrder = new List<long>();
        using (var pool = new WorkerPool(new SnapshotHolder(traffic.Snapshot), 2, 64, b =>
        {
            for (int i = 0; i < b.Count; i++)
            {
                pooled[b.Meta[i].InputIndex] = new Verdict(b.Meta[i].EgressPort, b.Meta[i].Drop, Bytes(b, i));
                completionOrder.Add(b.Meta[i].InputIndex);
            }
        }, conntrackSeed: 1))
        {
            source.Reset();
            while (source.Receive(batch) > 0) pool.Dispatch(batch);
            pool.Flush();
            Assert.True(pool.Engine(0).Counters.RxPackets(PortIndex.FirstPod) > 0 && pool.Engine(1).Counters.RxPackets(PortIndex.FirstPod) > 0,
                "both workers got traffic");
        }

        Assert.Equal(flows * rounds, single.Count);
        Assert.All(single.Values, v => Assert.True(v.Egress >= 0, v.Drop.ToString()));
        Assert.Equal(single.Count, pooled.Count);
        foreach (var (index, verdict) in single) Assert.Equal(verdict, pooled[index]);
        // Frame i of the generator is flow i: input index n belongs to flow (n - 1) % flows.
        foreach (var flow in completionOrder.GroupBy(n => (n - 1) % flows))
            Assert.Equal(flow.Order(), flow);
        Assert.NotEqual(completionOrder.Order(), completionOrder); // the workers really interleaved
    }
}
