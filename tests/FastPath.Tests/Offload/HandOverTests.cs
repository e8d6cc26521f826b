using System.Runtime.CompilerServices;
using FastPath.DataPlane.Conntrack;
using FastPath.DataPlane.Pipeline;
using FastPath.DataPlane.Telemetry;
using FastPath.Tests.Support;
using static FastPath.Tests.Support.TestFrames;

namespace FastPath.Tests.Offload;

/// <summary>
/// Two live workers, each with its own engine and conntrack, sharing a <see cref="FlowOwners"/> map (as `run --workers 2`
/// does): a reply that reaches the worker which did not open its connection is handed to the one that did, which
/// translates it; a packet of no known connection stays where it is.
/// </summary>
public sealed class HandOverTests : IDisposable
{
    private const short ClientPort = 2, Uplink = 0;
    private readonly TempFolder _dir = new();
    private readonly Engine[] _workers;

    public HandOverTests()
    {
        var snapshot = RemoteBackendCluster.Snapshot(_dir);
        var owners = new FlowOwners(2);
        _workers = [new Engine(new SnapshotHolder(snapshot), owners: owners, workerId: 0), new Engine(new SnapshotHolder(snapshot), owners: owners, workerId: 1)];
    }

    public void Dispose() => _dir.Dispose();

    private static PacketMeta Run(Engine engine, short port, byte[] frame, PacketFlags flags = PacketFlags.None)
    {
        var batch = new PacketBatch(1);
        frame.CopyTo(batch.ReceiveArea(0));
        batch.SetReceived(0, frame.Length, 1_000_000_000_000, 1, port);
        batch.Meta[0].Flags = flags;
        batch.Count = 1;
        engine.Process(batch);
        return batch.Meta[0];
    }

    private static byte[] FromClient(byte flags) =>
        Ethernet(GatewayMac, Mac("02:42:0a:f4:01:0a"), 0x0800, Ipv4("10.244.1.10", "10.96.0.20", 6, Tcp(40000, 80, flags)));

    /// <summary>web-3's answer as it comes back from node-b: VXLAN on the uplink, to the client's original port.</summary>
    private static byte[] Reply()
    {
        var inner = Ethernet(Mac("02:00:00:00:01:01"), Mac("02:00:00:00:02:01"), 0x0800, Ipv4("10.244.2.11", "10.244.1.10", 6, Tcp(8080, 40000, 0x12)));
        return Ethernet(Mac("02:00:00:00:01:01"), Mac("02:00:00:00:02:01"), 0x0800,
            Ipv4("192.168.56.12", "192.168.56.11", 17, RemoteBackendCluster.Vxlan(inner), flags: 0));
    }

    [Fact]
    public void AReplyOnTheOtherWorkerIsHandedToTheWorkerThatTracksItsConnection()
    {
        var syn = Run(_workers[0], ClientPort, FromClient(0x02));
        Assert.Equal(Uplink, syn.EgressPort); // DNATed to web-3 and encapsulated by worker 0

        var misrouted = Run(_workers[1], Uplink, Reply());
        Assert.Equal(1, misrouted.HandOverTo); // worker 0 (+ 1): not forwarded, not dropped
        Assert.Equal(DropReason.None, misrouted.Drop);
        Assert.Equal(PortIndex.None, misrouted.EgressPort);

        // The owner forwards the same frame as its own (decapsulated already, as the hand-over copies it).
        var inner = Reply()[50..];
        var owned = Run(_workers[0], Uplink, inner, PacketFlags.HandedOver);
        Assert.Equal(DropReason.None, owned.Drop);
        Assert.Equal(ClientPort, owned.EgressPort);
        Assert.Equal(0, owned.HandOverTo);
    }

    [Fact]
    public void APacketOfNoKnownConnectionStaysOnItsWorker()
    {
        var meta = Run(_workers[1], ClientPort, FromClient(0x02));
        Assert.Equal(0, meta.HandOverTo);
        Assert.Equal(Uplink, meta.EgressPort);
    }

    [Fact]
    public void PacketMetadataStaysWithinOneCacheLine() => Assert.True(Unsafe.SizeOf<PacketMeta>() <= 64, $"{Unsafe.SizeOf<PacketMeta>()} bytes");
}
