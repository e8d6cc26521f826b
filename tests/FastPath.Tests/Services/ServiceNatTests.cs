using System.Buffers.Binary;
using FastPath.DataPlane.Packets;
using FastPath.DataPlane.Pipeline;
using FastPath.DataPlane.Services;
using FastPath.DataPlane.Telemetry;
using FastPath.Tests.Support;
using static FastPath.Tests.Support.TestFrames;

namespace FastPath.Tests.Services;

/// <summary>ClusterIP load balancing through the engine: DNAT, reverse NAT, stickiness across Maglev changes.</summary>
public class ServiceNatTests
{
    private static IpAddr A(string s) => EngineHarness.Addr(s);

    private static ForwardingSnapshot Snapshot(EngineHarness h, params string[] backends) =>
        new(h.Snapshot.Node, h.Snapshot.Ports.Skip(PortIndex.FirstPod).ToList(), h.Snapshot.Generation + 1, null,
            new ServiceTable([new ServiceFrontend("default/web:http", A("10.96.0.10"), 80, IpProtocol.Tcp,
                backends.Select(b => new ServiceBackend(A(b), 8080)).ToList())]));

    private static byte[] Syn(ushort sport, byte flags = 0x02) => EngineHarness.FromClient(Ipv4("10.244.1.10", "10.96.0.10", 6, Tcp(sport, 80, flags)));

    [Fact]
    public void FlowsKeepTheirBackendWhenTheBackendSetChanges()
    {
        var h = new EngineHarness();
        var holder = new SnapshotHolder(Snapshot(h, "10.244.1.11", "10.244.1.13"));
        var engine = new Engine(holder, conntrackSeed: 1);
        var batch = new PacketBatch(64);

        byte[] Run(byte[] frame, out DropReason drop)
        {
            frame.CopyTo(batch.ReceiveArea(0));
            batch.SetReceived(0, frame.Length, 1_000_000_000, 1, h.Client);
            batch.Count = 1;
            engine.Process(batch);
            drop = batch.Meta[0].Drop;
            return batch.Meta[0].EgressPort >= 0 ? batch.Frame(0).ToArray() : [];
        }

        // web-3 has no configured MAC: one frame from it teaches the engine (as a real pod's ARP would).
        var hello = Ethernet(GatewayMac, Mac(EngineHarness.Web3Mac), 0x0800, Ipv4("10.244.1.13", "10.244.1.10", 17, Udp(1, 2)));
        hello.CopyTo(batch.ReceiveArea(0));
        batch.SetReceived(0, hello.Length, 1, 1, h.Web3);
        batch.Count = 1;
        engine.Process(batch);

        var chosen = new Dictionary<ushort, string>();
        for (ushort p = 42000; p < 42032; p++)
        {
            var f = Run(Syn(p), out var d);
            Assert.Equal(DropReason.None, d);
            Assert.True(ChecksumsValid(f));
            Assert.Equal(8080, BinaryPrimitives.ReadUInt16BigEndian(f.AsSpan(36)));
            chosen[p] = new System.Net.IPAddress(f[30..34]).ToString();
        }
        Assert.Equal(2, chosen.Values.Distinct().Count()); // Maglev spread 32 flows over both backends

        holder.Publish(Snapshot(h, "10.244.1.11", "10.244.1.13", "10.244.1.12")); // a third backend joins
        foreach (var (p, backend) in chosen)
        {
            var f = Run(Syn(p, 0x10), out var d);
            Assert.Equal(DropReason.None, d);
            Assert.Equal(backend, new System.Net.IPAddress(f[30..34]).ToString()); // established flows stay put
        }
    }

    [Fact]
    public void UdpFlowsToARemovedEndpointAreFlushedAtOnce()
    {
        var h = new EngineHarness();
        ForwardingSnapshot Udp(params string[] backends) =>
            new(h.Snapshot.Node, h.Snapshot.Ports.Skip(PortIndex.FirstPod).ToList(), 1, null,
                new ServiceTable([new ServiceFrontend("default/dns:dns", A("10.96.0.10"), 53, IpProtocol.Udp,
                    backends.Select(b => new ServiceBackend(A(b), 5353)).ToList())]));
        var holder = new SnapshotHolder(Udp("10.244.1.11"));
        var engine = new Engine(holder);
        var batch = new PacketBatch(1);
        var query = EngineHarness.FromClient(Ipv4("10.244.1.10", "10.96.0.10", 17, TestFrames.Udp(44000, 53)));
        string Send()
        {
            query.CopyTo(batch.ReceiveArea(0));
            batch.SetReceived(0, query.Length, 1_000_000_000, 1, h.Client);
            batch.Count = 1;
            engine.Process(batch);
            Assert.Equal(DropReason.None, batch.Meta[0].Drop);
            return new System.Net.IPAddress(batch.Frame(0)[30..34]).ToString();
        }

        Assert.Equal("10.244.1.11", Send());
        holder.Publish(Udp("10.244.1.10")); // the endpoint moved (web-1 gone, client now serves)
        Assert.Equal("10.244.1.10", Send()); // same 5-tuple, new backend: the stale entry did not survive the publish
        Assert.Equal(1, engine.Conntrack!.Count);
    }

    [Fact]
    public void RepliesAreReverseTranslatedToTheServiceAddress()
    {
        var h = new EngineHarness();
        var engine = new Engine(new SnapshotHolder(Snapshot(h, "10.244.1.11")));
        var batch = new PacketBatch(2);
        var reply = Ethernet(GatewayMac, Mac(EngineHarness.Web1Mac), 0x0800, Ipv4("10.244.1.11", "10.244.1.10", 6, Tcp(8080, 43000, 0x12)));
        byte[][] frames = [Syn(43000), reply];
        short[] ports = [h.Client, h.Web1];
        for (int i = 0; i < 2; i++)
        {
            frames[i].CopyTo(batch.ReceiveArea(i));
            batch.SetReceived(i, frames[i].Length, 1_000_000_000 + i, i + 1, ports[i]);
        }
        batch.Count = 2;
        engine.Process(batch);
        var back = batch.Frame(1).ToArray();
        Assert.Equal(h.Client, batch.Meta[1].EgressPort);
        Assert.Equal(Ip("10.96.0.10"), back[26..30]);
        Assert.Equal(80, BinaryPrimitives.ReadUInt16BigEndian(back.AsSpan(34)));
        Assert.True(ChecksumsValid(back));
    }
}
