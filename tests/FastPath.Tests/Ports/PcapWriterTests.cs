using System.Buffers.Binary;
using System.Diagnostics;
using FastPath.DataPlane.Pipeline;
using FastPath.DataPlane.Ports;
using Xunit;

using FastPath.Tests.Support;

namespace FastPath.Tests.Ports;

public sealed class PcapWriterTests
{
    private static byte[] Frame(int length, byte seed)
    {
        var frame = new byte[length];
        for (int i = 0; i < length; i++)
            frame[i] = (byte)(seed + i);
        return frame;
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void Written_frames_read_back_with_their_timestamps(bool nanosecond)
    {
        using var temp = new TempFolder();
        string path = temp.File("roundtrip.pcap");
        long[] times = [1_700_000_000_123_456_789L, 1_700_000_000_123_456_999L, 0L, 2_000_000_000_000_000_001L];
        byte[][] frames = [Frame(60, 1), Frame(1514, 2), Frame(14, 3), Frame(9000, 4)];
        using (var writer = new PcapWriter(path, nanosecond))
        {
            for (int i = 0; i < frames.Length; i++)
                writer.Write(frames[i], times[i]);
            Assert.Equal(4, writer.PacketCount);
        }

        byte[] file = File.ReadAllBytes(path);
        Assert.Equal(nanosecond ? 0xA1B23C4Du : 0xA1B2C3D4u, BinaryPrimitives.ReadUInt32LittleEndian(file));
        Assert.Equal(262144u, BinaryPrimitives.ReadUInt32LittleEndian(file.AsSpan(16)));
        Assert.Equal(1u, BinaryPrimitives.ReadUInt32LittleEndian(file.AsSpan(20)));

        using var reader = new CaptureReader(path);
        Assert.Equal(nanosecond, reader.IsNanosecond);
        var buffer = new byte[PacketBatch.MaxFrameLength];
        for (int i = 0; i < frames.Length; i++)
        {
            Assert.True(reader.TryRead(buffer, out var record));
            long expected = nanosecond ? times[i] : times[i] / 1000 * 1000;
            Assert.Equal(expected, record.Timestamp);
            Assert.Equal(frames[i], buffer.AsSpan(0, record.Length).ToArray());
            Assert.False(record.IsTruncated);
        }
        Assert.False(reader.TryRead(buffer, out _));
    }

    [Fact]
    public void Frames_beyond_the_snap_length_keep_their_wire_length()
    {
        using var temp = new TempFolder();
        string path = temp.File("snap.pcap");
        using (var writer = new PcapWriter(path))
        {
            writer.Write(Frame(PcapWriter.SnapLength + 100, 9), 5_000);
            writer.Write(Frame(64, 1), 6_000);
        }
        using var reader = new CaptureReader(path);
        var buffer = new byte[PcapWriter.SnapLength];
        Assert.True(reader.TryRead(buffer, out var big));
        Assert.True(big.IsTruncated);
        Assert.Equal(PcapWriter.SnapLength, big.Length);
        Assert.Equal(PcapWriter.SnapLength + 100, big.OriginalLength);
        Assert.True(reader.TryRead(buffer, out var small));
        Assert.Equal(64, small.Length);
    }

    [Fact]
    public void Writer_output_decodes_in_tshark()
    {
        if (!File.Exists("/usr/bin/tshark"))
            Assert.Skip("tshark is not installed");
        using var temp = new TempFolder();
        string path = temp.File("tshark.pcap");
        // A minimal Ethernet + IPv4 + UDP frame (checksum 0 = none).
        byte[] frame = Convert.FromHexString(
            "0200000000010200000000020800" + "4500001c0001000040110000" + "0a000001" + "0a000002" + "3039003500080000");
        using (var writer = new PcapWriter(path, nanosecond: true))
            writer.Write(frame, 1_700_000_000_000_000_123L);

        var start = new ProcessStartInfo("/usr/bin/tshark", ["-r", path, "-T", "fields", "-e", "frame.time_epoch", "-e", "udp.dstport"])
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
        };
        using var tshark = Process.Start(start)!;
        string output = tshark.StandardOutput.ReadToEnd();
        Assert.True(tshark.WaitForExit(30_000));
        Assert.Equal(0, tshark.ExitCode);
        Assert.Equal("1700000000.000000123\t53", output.Trim());
    }
}
