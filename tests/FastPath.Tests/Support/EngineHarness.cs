using FastPath.DataPlane.Packets;
using FastPath.DataPlane.Pipeline;
using FastPath.DataPlane.Routing;
using FastPath.DataPlane.Telemetry;

namespace FastPath.Tests.Support;

/// <summary>A small node (node-a) with three pods, and a way to push frames through a real <see cref="Engine"/>.</summary>
public sealed class EngineHarness
{
    public const string ClientMac = "02:42:0a:f4:01:0a", Web1Mac = "02:42:0a:f4:01:0b", Web3Mac = "02:42:0a:f4:01:0d", NodeMac = "02:00:00:00:01:01";

    public const string NodeBMac = "02:00:00:00:02:01", RouterMac = "02:00:00:00:00:fe";

    /// <summary>Routes as the control plane compiles them for node-a: node-b's pod CIDRs over VXLAN, a default route via a router, masqueraded.</summary>
    public static IReadOnlyList<Route> ClusterRoutes() =>
    [
        new Route(Addr("10.244.0.0"), 16, new NextHop(NextHopKind.Unreachable, default, MacAddress.Zero, 0)),
        new Route(Addr("10.244.2.0"), 24, new NextHop(NextHopKind.RemoteNode, Addr("192.168.56.12"), Parse(NodeBMac))),
        new Route(Addr("fd00:10:244:2::"), 64, new NextHop(NextHopKind.RemoteNode, Addr("192.168.56.12"), Parse(NodeBMac))),
        new Route(Addr("0.0.0.0"), 0, new NextHop(NextHopKind.Uplink, default, Parse(RouterMac), Masquerade: true)),
    ];

    public EngineHarness(IReadOnlyList<Route>? routes = null, TunnelMode tunnel = TunnelMode.Vxlan, int conntrackCapacity = 1024)
    {
        var node = new NodeSettings
        {
            NodeName = "node-a",
            UplinkMac = Parse(NodeMac),
            HostAddresses = [Addr("192.168.56.11"), Addr("fd00:56::11")],
            Tunnel = tunnel,
            ConntrackCapacity = conntrackCapacity,
        };
        Snapshot = new ForwardingSnapshot(node,
        [
            new PortDefinition("default/client", PortKind.Pod, Parse(ClientMac), [Addr("10.244.1.10"), Addr("fd00:244:1::a")]),
            new PortDefinition("default/web-1", PortKind.Pod, Parse(Web1Mac), [Addr("10.244.1.11"), Addr("fd00:244:1::b")]),
            new PortDefinition("default/web-3", PortKind.Pod, MacAddress.Zero, [Addr("10.244.1.13")]),
        ], routes: routes is null ? null : new RouteTable(routes));
        Engine = new Engine(new SnapshotHolder(Snapshot));
    }

    public ForwardingSnapshot Snapshot { get; }
    public Engine Engine { get; }
    public short Client => (short)Snapshot.FindPort("default/client");
    public short Web1 => (short)Snapshot.FindPort("default/web-1");
    public short Web3 => (short)Snapshot.FindPort("default/web-3");

    public static IpAddr Addr(string s) => IpAddr.TryParse(s, out var a) ? a : throw new ArgumentException(s);
    public static MacAddress Parse(string s) => MacAddress.TryParse(s, out var m) ? m : throw new ArgumentException(s);

    public sealed record Result(DropReason Drop, short Ingress, short Egress, byte[] Frame);

    /// <summary>Runs the frames as one batch (ingress given per frame) and returns each verdict with the emitted bytes.</summary>
    public List<Result> Run(params (short Port, byte[] Frame)[] frames) => RunAt(1_000_000_000L * 1000, 1_000_000_000L, frames);

    /// <summary>Like <see cref="Run"/>, with packet i at <paramref name="start"/> + i × <paramref name="interval"/> ns.</summary>
    public List<Result> RunAt(long start, long interval, params (short Port, byte[] Frame)[] frames)
    {
        var batch = new PacketBatch(Math.Max(1, frames.Length));
        for (int i = 0; i < frames.Length; i++)
        {
            var (port, frame) = frames[i];
            frame.CopyTo(batch.ReceiveArea(i));
            batch.SetReceived(i, frame.Length, start + interval * i, i + 1, port);
        }
        batch.Count = frames.Length;
        Engine.Process(batch);
        var results = new List<Result>();
        for (int i = 0; i < frames.Length; i++)
        {
            var m = batch.Meta[i];
            results.Add(new Result(m.Drop, m.IngressPort, m.EgressPort, m.EgressPort >= 0 ? batch.Frame(i).ToArray() : []));
        }
        return results;
    }

    public Result RunOne(short port, byte[] frame) => Run((port, frame))[0];

    public static byte[] FromClient(byte[] ipPacket, ushort etherType = 0x0800) =>
        TestFrames.Ethernet(TestFrames.GatewayMac, TestFrames.Mac(ClientMac), etherType, ipPacket);
}
