using BenchmarkDotNet.Attributes;
using FastPath.DataPlane.Pipeline;
using FastPath.DataPlane.Ports;
using SharpPcap;
using SharpPcap.LibPcap;

namespace FastPath.Benchmarks;

/// <summary>
/// Reading a whole pcap of 100k Ethernet frames (64–1500 bytes) into a frame buffer: FastPath's
/// <see cref="CaptureReader"/> against SharpPcap's <see cref="CaptureFileReaderDevice"/> (libpcap's pcap_next_ex),
/// same file, same run. Both copy each frame into the buffer a batch slot would be, so the work is the same.
/// Each invocation opens the file and reads it to the end; results are per packet.
/// </summary>
[MemoryDiagnoser]
public class CaptureReadBenchmarks
{
    private const int Packets = 100_000;

    private string _directory = "";
    private string _path = "";
    private readonly byte[] _frame = new byte[PacketBatch.MaxFrameLength];

    [GlobalSetup]
    public void WriteCapture()
    {
        _directory = Directory.CreateTempSubdirectory("fastpath-bench-").FullName;
        _path = Path.Combine(_directory, "mixed.pcap");
        var random = new Random(20240601);
        var frame = new byte[1500];
        random.NextBytes(frame);
        frame[12] = 0x08;
        frame[13] = 0x00;
        using var writer = new PcapWriter(_path);
        for (int i = 0; i < Packets; i++)
            writer.Write(frame.AsSpan(0, random.Next(64, 1501)), 1_700_000_000_000_000_000L + i * 1_000L);
    }

    [GlobalCleanup]
    public void DeleteCapture() => Directory.Delete(_directory, recursive: true);

    [Benchmark(Baseline = true, OperationsPerInvoke = Packets)]
    public long FastPathCaptureReader()
    {
        long bytes = 0;
        using var reader = new CaptureReader(_path);
        while (reader.TryRead(_frame, out var record))
            bytes += record.Length + record.Timestamp;
        return bytes;
    }

    [Benchmark(OperationsPerInvoke = Packets)]
    public long SharpPcapFileReader()
    {
        long bytes = 0;
        using var device = new CaptureFileReaderDevice(_path);
        device.Open();
        while (device.GetNextPacket(out PacketCapture packet) == GetPacketStatus.PacketRead)
        {
            var data = packet.Data;
            data.CopyTo(_frame);
            bytes += data.Length + (long)packet.Header.Timeval.Seconds;
        }
        device.Close();
        return bytes;
    }
}
