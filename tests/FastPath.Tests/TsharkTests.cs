using System.Buffers.Binary;
using FastPath.DataPlane.Packets;
using Xunit;

using FastPath.Tests.Support;

namespace FastPath.Tests;

/// <summary>Proves <see cref="Tshark.Problems"/> passes good captures and catches bad checksums.</summary>
public sealed class TsharkTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("fastpath-tshark-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    private static void RequireTshark()
    {
        if (!Tshark.Available)
            Assert.Skip("tshark is not on PATH; install it (apt-get install tshark) to check emitted captures");
    }

    [Fact]
    public void CorrectUdpOverIpv4HasNoProblems()
    {
        RequireTshark();
        var problems = Tshark.Problems(Write("good-udp4.pcap", UdpV4Frame()));
        Assert.Empty(problems);
    }

    [Fact]
    public void BrokenIpv4HeaderChecksumIsReported()
    {
        RequireTshark();
        byte[] frame = UdpV4Frame();
        frame[EthLength + 10] ^= 0x01;
        var problems = Tshark.Problems(Write("bad-ip.pcap", frame));
        Assert.Contains(problems, p => p.Contains("checksum", StringComparison.OrdinalIgnoreCase));
    }

    [Fact]
    public void BrokenUdpChecksumIsReported()
    {
        RequireTshark();
        byte[] frame = UdpV4Frame();
        frame[EthLength + 20 + 6] ^= 0x01;
        var problems = Tshark.Problems(Write("bad-udp.pcap", frame));
        Assert.Contains(problems, p => p.Contains("checksum", StringComparison.OrdinalIgnoreCase));
    }

    [Fact]
    public void CorrectIcmpv6EchoHasNoProblems()
    {
        RequireTshark();
        var problems = Tshark.Problems(Write("good-icmpv6.pcap", Icmpv6EchoFrame()));
        Assert.Empty(problems);
    }

    [Fact]
    public void BrokenIcmpv6ChecksumIsReported()
    {
        RequireTshark();
        byte[] frame = Icmpv6EchoFrame();
        frame[^1] ^= 0x01;
        var problems = Tshark.Problems(Write("bad-icmpv6.pcap", frame));
        Assert.Contains(problems, p => p.Contains("checksum", StringComparison.OrdinalIgnoreCase));
    }

    [Fact]
    public void TruncatedPacketIsReported()
    {
        RequireTshark();
        byte[] frame = UdpV4Frame();
        var problems = Tshark.Problems(Write("truncated.pcap", frame[..^3]));
        Assert.NotEmpty(problems);
    }

    [Fact]
    public void UnreadableFileIsReported()
    {
        RequireTshark();
        string path = Path.Combine(_dir, "not-a-pcap.pcap");
        File.WriteAllText(path, "this is not a capture");
        Assert.NotEmpty(Tshark.Problems(path));
    }

    // ---- A deliberately tiny pcap writer (the project's own writer is built elsewhere) ----

    private const int EthLength = 14;

    private string Write(string name, params byte[][] frames)
    {
        string path = Path.Combine(_dir, name);
        using var f = File.Create(path);
        Span<byte> global = stackalloc byte[24];
        // libpcap file format: magic a1b2c3d4 (µs timestamps), version 2.4, thiszone 0, sigfigs 0,
        // snaplen 65535, LINKTYPE_ETHERNET (1); written little-endian, the magic tells readers so.
        BinaryPrimitives.WriteUInt32LittleEndian(global, 0xa1b2c3d4);
        BinaryPrimitives.WriteUInt16LittleEndian(global[4..], 2);
        BinaryPrimitives.WriteUInt16LittleEndian(global[6..], 4);
        BinaryPrimitives.WriteUInt32LittleEndian(global[16..], 65535);
        BinaryPrimitives.WriteUInt32LittleEndian(global[20..], 1);
        f.Write(global);
        Span<byte> record = stackalloc byte[16];
        uint second = 1_700_000_000;
        foreach (var frame in frames)
        {
            record.Clear();
            BinaryPrimitives.WriteUInt32LittleEndian(record, second++);
            BinaryPrimitives.WriteUInt32LittleEndian(record[8..], (uint)frame.Length);  // captured
            BinaryPrimitives.WriteUInt32LittleEndian(record[12..], (uint)frame.Length); // on the wire
            f.Write(record);
            f.Write(frame);
        }
        return path;
    }

    private static void WriteEthernet(Span<byte> frame, ushort etherType)
    {
        byte[] dst = [0x02, 0x00, 0x00, 0x00, 0x00, 0x02], src = [0x02, 0x00, 0x00, 0x00, 0x00, 0x01];
        dst.CopyTo(frame);
        src.CopyTo(frame[6..]);
        BinaryPrimitives.WriteUInt16BigEndian(frame[12..], etherType);
    }

    /// <summary>Eth / IPv4 10.0.0.1 → 10.0.0.2 / UDP 40000 → 40001 with both checksums from <see cref="Checksum"/>.</summary>
    private static byte[] UdpV4Frame()
    {
        byte[] payload = "FastPath checksum test"u8.ToArray();
        int udpLength = 8 + payload.Length;
        byte[] frame = new byte[EthLength + 20 + udpLength];
        WriteEthernet(frame, 0x0800);
        var ip = frame.AsSpan(EthLength, 20);
        ip[0] = 0x45;
        BinaryPrimitives.WriteUInt16BigEndian(ip[2..], (ushort)(20 + udpLength));
        BinaryPrimitives.WriteUInt16BigEndian(ip[4..], 0x1234); // identification
        ip[6] = 0x40;                                           // DF
        ip[8] = 64;
        ip[9] = Checksum.ProtocolUdp;
        uint src = 0x0a000001, dst = 0x0a000002;
        BinaryPrimitives.WriteUInt32BigEndian(ip[12..], src);
        BinaryPrimitives.WriteUInt32BigEndian(ip[16..], dst);
        BinaryPrimitives.WriteUInt16BigEndian(ip[10..], Checksum.Ipv4Header(ip));

        var udp = frame.AsSpan(EthLength + 20);
        BinaryPrimitives.WriteUInt16BigEndian(udp, 40000);
        BinaryPrimitives.WriteUInt16BigEndian(udp[2..], 40001);
        BinaryPrimitives.WriteUInt16BigEndian(udp[4..], (ushort)udpLength);
        payload.CopyTo(udp[8..]);
        BinaryPrimitives.WriteUInt16BigEndian(udp[6..], Checksum.TransportV4(src, dst, Checksum.ProtocolUdp, udp));
        return frame;
    }

    /// <summary>Eth / IPv6 fd00::1 → fd00::2 / ICMPv6 echo request (RFC 4443 §4.1) with its checksum.</summary>
    private static byte[] Icmpv6EchoFrame()
    {
        byte[] data = "ping"u8.ToArray();
        int icmpLength = 8 + data.Length;
        byte[] frame = new byte[EthLength + 40 + icmpLength];
        WriteEthernet(frame, 0x86DD);
        var ip = frame.AsSpan(EthLength, 40);
        ip[0] = 0x60;
        BinaryPrimitives.WriteUInt16BigEndian(ip[4..], (ushort)icmpLength);
        ip[6] = Checksum.ProtocolIcmpV6;
        ip[7] = 64;
        Convert.FromHexString("fd000000000000000000000000000001").CopyTo(ip[8..]);
        Convert.FromHexString("fd000000000000000000000000000002").CopyTo(ip[24..]);

        var icmp = frame.AsSpan(EthLength + 40);
        icmp[0] = 128; // echo request
        BinaryPrimitives.WriteUInt16BigEndian(icmp[4..], 0x4650); // identifier
        BinaryPrimitives.WriteUInt16BigEndian(icmp[6..], 1);      // sequence
        data.CopyTo(icmp[8..]);
        BinaryPrimitives.WriteUInt16BigEndian(icmp[2..], Checksum.Icmpv6(ip.Slice(8, 16), ip.Slice(24, 16), icmp));
        return frame;
    }
}
