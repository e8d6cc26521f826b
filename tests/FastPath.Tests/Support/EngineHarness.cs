using FastPath.DataPlane.Packets;
using FastPath.DataPlane.Pipeline;
using FastPath.DataPlane.Telemetry;

namespace FastPath.Tests.Support;

/// <summary>A small node (node-a) with three pods, and a way to push frames through a real <see cref="Engine"/>.</summary>
public sealed class EngineHarness
{
    public const string ClientMac = "02:42:0a:f4:01:0a", Web1Mac = "02:42:0a:f4:01:0b", Web3Mac = "02:42:0a:f4:01:0d", NodeMac = "02:00:00:00:01:01";

    public EngineHarness()
    {
        var node = new NodeSettings
        {
            NodeName = "node-a",
            UplinkMac = Parse(NodeMac),
            HostAddresses = [Addr("192.168.56.11"), Addr("fd00:56::11")],
        };
        Snapshot = new ForwardingSnapshot(node,
        [
            new PortDefinition("default/client", PortKind.Pod, Parse(ClientMac), [Addr("10.244.1.10"), Addr("fd00:244:1::a")]),
            new PortDefinition("default/web-1", PortKind.Pod, Parse(Web1Mac), [Addr("10.244.1.11"), Addr("fd00:244:1::b")]),
            new PortDefinition("default/web-3", PortKind.Pod, MacAddress.Zero, [Addr("10.244.1.13")]),
        ]);
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
    public List<Result> Run(params (short Port, byte[] Frame)[] frames)
    {
        var batch = new PacketBatch(Math.Max(1, frames.Length));
        for (int i = 0; i < frames.Length; i++)
        {
            var (port, frame) = frames[i];
            frame.CopyTo(batch.ReceiveArea(i));
            batch.SetReceived(i, frame.Length, 1_000_000_000L * (1000 + i), i + 1, port);
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
