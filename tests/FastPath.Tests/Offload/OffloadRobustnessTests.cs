using System.Buffers.Binary;
using FastPath.DataPlane.Offload;
using FastPath.DataPlane.Pipeline;
using FastPath.DataPlane.Ports;
using FastPath.DataPlane.Telemetry;
using FastPath.Tests.Support;
using static FastPath.Tests.Support.TestFrames;

namespace FastPath.Tests.Offload;

/// <summary>
/// A TAP's virtio-net header is input like any other: random flags, GSO types, sizes and checksum offsets in front of
/// real frames (TCP/UDP super-frames and small packets, IPv4 and IPv6, to pods, ClusterIPs and other nodes, and VXLAN
/// from node-b) must never throw in the engine, the header writer or software GSO, and whatever the engine emits with
/// offloads must be something the egress path can hand on or cut.
/// </summary>
public sealed class OffloadRobustnessTests : IDisposable
{
    private readonly TempFolder _dir = new();

    public void Dispose() => _dir.Dispose();

    private struct Count : ISegmentSink
    {
        public int Segments;
        public void Emit(ReadOnlySpan<byte> segment) => Segments++;
    }

    [Fact]
    public void RandomVirtioHeadersOnRealFramesNeverThrow()
    {
        var engine = new Engine(new SnapshotHolder(RemoteBackendCluster.Snapshot(_dir)), conntrackSeed: 3);
        var client = Mac("02:42:0a:f4:01:0a");
        byte[][] frames =
        [
            Ethernet(GatewayMac, client, 0x0800, Ipv4("10.244.1.10", "10.96.0.20", 6, Tcp(40000, 80, 0x18, 20_000))),
            Ethernet(GatewayMac, client, 0x0800, Ipv4("10.244.1.10", "10.244.2.11", 17, Udp(5000, 53, 3000))),
            Ethernet(GatewayMac, client, 0x0800, Ipv4("10.244.1.10", "10.244.1.11", 6, Tcp(40001, 8080, 0x10, 100))),
            Ethernet(GatewayMac, client, 0x86DD, Ipv6("fd00:10:244:1::a", "fd00:10:244:2::b", 6, Tcp(40002, 8080, 0x18, 9_000))),
            Ethernet(GatewayMac, client, 0x0800, Ipv4("10.244.1.10", "10.244.2.11", 1, IcmpEcho())),
            Ethernet(Mac("02:00:00:00:01:01"), Mac("02:00:00:00:02:01"), 0x0800, Ipv4("192.168.56.12", "192.168.56.11", 17,
                RemoteBackendCluster.Vxlan(Ethernet(Mac("02:00:00:00:01:01"), Mac("02:00:00:00:02:01"), 0x0800,
                    Ipv4("10.244.2.11", "10.244.1.10", 6, Tcp(8080, 40000, 0x18, 12_000)))), flags: 0)),
        ];
        short[] ports = [2, 2, 2, 2, 2, 0];
        var rng = new Random(15);
        var batch = new PacketBatch(frames.Length, PacketBatch.SuperFrameSlotSize);
        var header = new byte[VirtioNetHeader.TunnelLength];
        var scratch = new byte[PacketBatch.SuperFrameSlotSize];
        int forwardedWithOffloads = 0;
        for (int round = 0; round < 3000; round++)
        {
            for (int i = 0; i < frames.Length; i++)
            {
                frames[i].CopyTo(batch.ReceiveArea(i));
                batch.SetReceived(i, frames[i].Length, 1_000_000_000L * (1000 + round), round * frames.Length + i + 1, ports[i]);
                rng.NextBytes(header);
                // Mostly plausible values, so the checks past the first ones are reached too.
                header[0] &= (byte)(rng.Next(4) == 0 ? 0xFF : 0x03);
                if (rng.Next(3) > 0) header[1] = (byte)new[] { 0, 1, 4, 5, 0x21, 0x81 }[rng.Next(6)];
                if (rng.Next(2) == 0) BinaryPrimitives.WriteUInt16LittleEndian(header.AsSpan(6), (ushort)new[] { 34, 54, 84, 40 }[rng.Next(4)]);
                if (rng.Next(2) == 0) BinaryPrimitives.WriteUInt16LittleEndian(header.AsSpan(8), (ushort)new[] { 6, 16 }[rng.Next(2)]);
                if (rng.Next(2) == 0) BinaryPrimitives.WriteUInt16LittleEndian(header.AsSpan(4), (ushort)rng.Next(1, 2000));
                if (!VirtioNetHeader.Read(header, ref batch.Meta[i])) batch.Meta[i].Drop = DropReason.Malformed;
            }
            batch.Count = frames.Length;
            engine.Process(batch);
            for (int i = 0; i < batch.Count; i++)
            {
                ref var m = ref batch.Meta[i];
                if (m.EgressPort < 0 || m.Offload == OffloadFlags.None) continue;
                forwardedWithOffloads++;
                VirtioNetHeader.Write(header, in m);
                var frame = batch.Frame(i);
                if (m.Gso != GsoKind.None)
                {
                    var sink = new Count();
                    GsoSegmenter.Segment(frame, in m, scratch, ref sink);
                }
                else if ((m.Offload & OffloadFlags.ChecksumPartial) != 0)
                    Assert.True(ChecksumOffload.Complete(frame, ref m, ChecksumOffload.TransportStart(in m)), $"round {round} frame {i}");
            }
        }
        Assert.True(forwardedWithOffloads > 200, $"only {forwardedWithOffloads} offloaded packets reached an egress");
    }
}
