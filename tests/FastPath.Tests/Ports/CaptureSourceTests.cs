using FastPath.DataPlane.Pipeline;
using FastPath.DataPlane.Ports;
using FastPath.DataPlane.Telemetry;
using Xunit;

using FastPath.Tests.Support;

namespace FastPath.Tests.Ports;

[Collection(AllocationCollection.Name)]
public sealed class CaptureSourceTests
{
    /// <summary>A 60-byte frame whose last byte identifies it.</summary>
    private static byte[] Marked(byte mark)
    {
        var frame = new byte[60];
        frame[12] = 0x08;
        frame[59] = mark;
        return frame;
    }

    private static string WriteCapture(TempFolder temp, string name, params (long Time, byte Mark)[] packets)
    {
        string path = temp.File(name);
        using var writer = new PcapWriter(path, nanosecond: true);
        foreach (var (time, mark) in packets)
            writer.Write(Marked(mark), time);
        return path;
    }

    private static List<(long Input, long Time, byte Mark, short Port, DropReason Drop, int Length)> Drain(
        IPacketSource source, int batchSize = 3)
    {
        var batch = new PacketBatch(batchSize);
        var seen = new List<(long, long, byte, short, DropReason, int)>();
        while (source.Receive(batch) > 0)
        {
            for (int i = 0; i < batch.Count; i++)
            {
                ref var m = ref batch.Meta[i];
                var frame = batch.Frame(i);
                seen.Add((m.InputIndex, m.Timestamp, frame.Length > 0 ? frame[^1] : (byte)0, m.IngressPort, m.Drop, m.Length));
            }
        }
        return seen;
    }

    [Fact]
    public void Captures_merge_by_timestamp_and_ties_go_to_the_earlier_argument()
    {
        using var temp = new TempFolder();
        string a = WriteCapture(temp, "a.pcap", (1, 11), (3, 13), (5, 15), (5, 16));
        string b = WriteCapture(temp, "b.pcap", (2, 22), (5, 25), (6, 26));
        string c = WriteCapture(temp, "c.pcap");

        using var source = new CaptureSource([new CaptureInput(a, 7), new CaptureInput(b), new CaptureInput(c, 3)]);
        var seen = Drain(source);

        Assert.Equal([11, 22, 13, 15, 16, 25, 26], seen.Select(s => (int)s.Mark));
        Assert.Equal([1L, 2, 3, 4, 5, 6, 7], seen.Select(s => s.Input));
        Assert.Equal([1L, 2, 3, 5, 5, 5, 6], seen.Select(s => s.Time));
        Assert.Equal([7, PortIndex.Auto, 7, 7, 7, PortIndex.Auto, PortIndex.Auto], seen.Select(s => (int)s.Port));
        Assert.All(seen, s => Assert.Equal(DropReason.None, s.Drop));
        Assert.Equal(7, source.Delivered);
    }

    [Fact]
    public void Pcapng_interface_names_pick_the_ingress_port()
    {
        using var temp = new TempFolder();
        string path = temp.File("named.pcapng");
        File.WriteAllBytes(path, new PcapNgImage()
            .Section(bigEndian: false)
            .Interface(1, name: "uplink")
            .Interface(1, name: "default/web-0")
            .Interface(1, name: "nobody")
            .Interface(1)
            .Enhanced(0, 1, Marked(1))
            .Enhanced(1, 2, Marked(2))
            .Enhanced(2, 3, Marked(3))
            .Enhanced(3, 4, Marked(4))
            .Enhanced(1, 5, Marked(5))
            .Section(bigEndian: true)
            .Interface(1, name: "default/web-0", tsresol: 9)
            .Enhanced(0, 6000, Marked(6))
            .ToArray());

        var lookups = new List<string>();
        short PortByName(string name)
        {
            lookups.Add(name);
            return name switch { "uplink" => PortIndex.Uplink, "default/web-0" => 5, _ => -1 };
        }

        using var source = new CaptureSource([new CaptureInput(path)], PortByName);
        var seen = Drain(source);
        Assert.Equal([PortIndex.Uplink, 5, PortIndex.Auto, PortIndex.Auto, 5, 5], seen.Select(s => s.Port));
        Assert.Equal([1_000L, 2_000, 3_000, 4_000, 5_000, 6_000], seen.Select(s => s.Time));
        // Once per interface, not per record; the unnamed interface is never looked up.
        Assert.Equal(["uplink", "default/web-0", "nobody", "default/web-0"], lookups);

        // An explicit port wins over the interface name.
        using var pinned = new CaptureSource([new CaptureInput(path, 9)], PortByName);
        Assert.All(Drain(pinned), s => Assert.Equal(9, s.Port));
    }

    [Fact]
    public void Truncated_and_oversize_records_are_delivered_with_a_drop_reason()
    {
        string truncated = RepositoryFiles.ExternalCapture("tcpdump_arp-too-long-tha.pcap");
        string jumbo = RepositoryFiles.ExternalCapture("tcpdump_ipv6_jumbogram_1.pcap");
        string normal = RepositoryFiles.ExternalCapture("tcpdump_dns_udp.pcap");
        using var source = new CaptureSource(
            [new CaptureInput(truncated), new CaptureInput(jumbo), new CaptureInput(normal)]);
        var seen = Drain(source, batchSize: 64);

        // Merged by time: dns (2020), jumbogram (2022), arp (2033).
        Assert.Equal(4, seen.Count);
        Assert.Equal([DropReason.None, DropReason.None, DropReason.FrameTooLarge, DropReason.CaptureTruncated],
            seen.Select(s => s.Drop));
        Assert.Equal([1591780794_740079000L, 1591780794_870361000L, 1659344995_627421000L, 1994721059_680304000L],
            seen.Select(s => s.Time));
        Assert.InRange(seen[2].Length, 0, PacketBatch.MaxFrameLength);
        Assert.Equal(64, seen[3].Length);
    }

    [Fact]
    public void Memory_source_replays_frames_round_after_round()
    {
        var source = new MemorySource([Marked(1), Marked(2), new byte[PacketBatch.MaxFrameLength + 1]], repeat: 3,
            ingressPort: 4, firstTimestamp: 100, intervalNs: 10);
        var seen = Drain(source, batchSize: 4);
        Assert.Equal(9, seen.Count);
        Assert.Equal([1L, 2, 3, 4, 5, 6, 7, 8, 9], seen.Select(s => s.Input));
        Assert.Equal(180, seen[^1].Time);
        Assert.All(seen, s => Assert.Equal(4, s.Port));
        Assert.Equal(3, seen.Count(s => s.Drop == DropReason.FrameTooLarge));
        Assert.Equal([1, 2, 0, 1, 2, 0, 1, 2, 0], seen.Select(s => (int)s.Mark));
        source.Reset();
        Assert.Equal(9, Drain(source).Count);
    }

    [Fact]
    public void Sinks_collect_and_count()
    {
        var memory = new MemorySink();
        var counting = new NullSink();
        foreach (IPacketSink sink in new IPacketSink[] { memory, counting })
        {
            sink.Transmit(2, Marked(1), 10);
            sink.Transmit(0, Marked(2).AsSpan(0, 20), 20);
        }
        Assert.Equal([(2, 60, 10L), (0, 20, 20L)], memory.Frames.Select(f => (f.Port, f.Bytes.Length, f.Timestamp)));
        Assert.Equal(2, counting.Packets);
        Assert.Equal(80, counting.Bytes);
    }

    [Fact]
    public void A_million_records_pass_through_without_allocating()
    {
        using var temp = new TempFolder();
        const int PerFile = 500_000;
        string[] paths = [temp.File("a.pcap"), temp.File("b.pcap")];
        var frame = new byte[64];
        frame[12] = 0x08;
        for (int f = 0; f < paths.Length; f++)
        {
            using var writer = new PcapWriter(paths[f], nanosecond: true);
            long before = GC.GetAllocatedBytesForCurrentThread();
            for (int i = 0; i < PerFile; i++)
            {
                frame[20] = (byte)i;
                writer.Write(frame, 2L * i + f); // interleaved, so every record goes through the merge
            }
            Assert.Equal(before, GC.GetAllocatedBytesForCurrentThread());
        }

        using var source = new CaptureSource([new CaptureInput(paths[0]), new CaptureInput(paths[1], 3)]);
        var batch = new PacketBatch(64);
        long total = 0;
        // Warm up: first batches JIT the loop and fill the read buffers.
        for (int i = 0; i < 64; i++)
            total += source.Receive(batch);
        long allocated = GC.GetAllocatedBytesForCurrentThread();
        long lastTime = -1;
        int received;
        while ((received = source.Receive(batch)) > 0)
        {
            for (int i = 0; i < received; i++)
            {
                if (batch.Meta[i].Timestamp < lastTime)
                    Assert.Fail("merge went back in time");
                lastTime = batch.Meta[i].Timestamp;
            }
            total += received;
        }
        long delta = GC.GetAllocatedBytesForCurrentThread() - allocated;
        Assert.Equal(2L * PerFile, total);
        Assert.Equal(2L * PerFile, source.Delivered);
        Assert.Equal(0, delta);
    }
}
