using System.Buffers.Binary;
using FastPath.DataPlane.Pipeline;
using FastPath.DataPlane.Ports;
using Xunit;

using FastPath.Tests.Support;

namespace FastPath.Tests.Ports;

public sealed class CaptureReaderTests
{
    // Packet counts and link types from pcaps/external/SOURCES.md (tshark).
    [Theory]
    [InlineData("tcpdump_802.1ad_QinQ.pcap", 2, LinkType.Ethernet)]
    [InlineData("tcpdump_gso-ipv4-vxlan-ipv4.pcap", 1, LinkType.Ethernet)]
    [InlineData("tcpdump_gso-ipv6-vxlan-ipv6.pcap", 1, LinkType.Ethernet)]
    [InlineData("tcpdump_geneve.pcap", 39, LinkType.Ethernet)]
    [InlineData("tcpdump_icmpv6.pcap", 5, LinkType.Ethernet)]
    [InlineData("tcpdump_icmpv6-ns-nonce.pcap", 1, LinkType.Ethernet)]
    [InlineData("tcpdump_ipv4_tcp_http_xml.pcap", 1, LinkType.Ethernet)]
    [InlineData("tcpdump_tcp-handshake-nano.pcap", 3, LinkType.LinuxSll)]
    [InlineData("tcpdump_dns_udp.pcap", 2, LinkType.Ethernet)]
    [InlineData("tcpdump_ipv6-routing-header.pcap", 4, LinkType.Ethernet)]
    [InlineData("tcpdump_ipv6_no_next_header.pcap", 1, LinkType.Ethernet)]
    [InlineData("tcpdump_ipv4_invalid_hdr_length.pcap", 1, LinkType.Ethernet)]
    [InlineData("tcpdump_ipv4_invalid_total_length.pcap", 1, LinkType.Ethernet)]
    [InlineData("tcpdump_ipv6_invalid_length.pcap", 1, LinkType.Ethernet)]
    [InlineData("tcpdump_ip6_frag_asan.pcap", 1, LinkType.Ethernet)]
    [InlineData("tcpdump_ipv6_frag6_negative_len.pcap", 1, LinkType.Ethernet)]
    [InlineData("tcpdump_tcp_header_heapoverflow.pcap", 1, LinkType.Ethernet)]
    [InlineData("tcpdump_arp-too-long-tha.pcap", 1, LinkType.Ethernet)]
    [InlineData("tcpdump_heapoverflow-ip_demux_print.pcap", 2, LinkType.Ethernet)]
    [InlineData("tcpdump_empty.pcapng", 0, LinkType.Ethernet)]
    [InlineData("tcpdump_LINKTYPE_RAW_ipv4.pcap", 1, LinkType.Raw)]
    [InlineData("tcpdump_ipv6_jumbogram_1.pcap", 1, LinkType.Ethernet)]
    public void External_capture_yields_every_record(string name, int packets, LinkType linkType)
    {
        string path = RepositoryFiles.ExternalCapture(name);
        Assert.Equal(packets, CaptureReader.Validate(path));

        using var reader = new CaptureReader(path);
        Assert.Equal(linkType, reader.InterfaceLinkType(0));
        Assert.Null(reader.InterfaceName(0));
        var frame = new byte[PacketBatch.MaxFrameLength];
        int read = 0;
        while (reader.TryRead(frame, out var record))
        {
            read++;
            Assert.InRange(record.Length, 0, frame.Length);
            Assert.Equal(0, record.InterfaceIndex);
            Assert.Equal(read, reader.RecordsRead);
        }
        Assert.Equal(packets, read);
        Assert.False(reader.TryRead(frame, out _));
    }

    [Fact]
    public void Ethernet_records_are_the_file_bytes_with_tshark_timestamps()
    {
        string path = RepositoryFiles.ExternalCapture("tcpdump_dns_udp.pcap");
        byte[] file = File.ReadAllBytes(path);
        using var reader = new CaptureReader(path);
        Assert.False(reader.IsNanosecond);
        Assert.False(reader.IsPcapNg);
        var frame = new byte[2048];

        Assert.True(reader.TryRead(frame, out var first));
        Assert.Equal(1591780794_740079000L, first.Timestamp); // tshark frame.time_epoch 1591780794.740079000
        Assert.Equal(98, first.Length);
        Assert.Equal(98, first.OriginalLength);
        Assert.False(first.IsTruncated);
        Assert.False(first.IsOversize);
        Assert.Equal(file.AsSpan(24 + 16, 98).ToArray(), frame.AsSpan(0, 98).ToArray());

        Assert.True(reader.TryRead(frame, out var second));
        Assert.Equal(1591780794_870361000L, second.Timestamp);
        Assert.Equal(266, second.Length);
        Assert.Equal(file.AsSpan(24 + 16 + 98 + 16, 266).ToArray(), frame.AsSpan(0, 266).ToArray());
    }

    [Fact]
    public void Linux_cooked_nanosecond_capture_becomes_Ethernet_IPv4()
    {
        string path = RepositoryFiles.ExternalCapture("tcpdump_tcp-handshake-nano.pcap");
        byte[] file = File.ReadAllBytes(path);
        using var reader = new CaptureReader(path);
        Assert.True(reader.IsNanosecond);
        var frame = new byte[2048];

        // tshark: 1418145369.924505488, 1418145370.052027262, 1418145370.052115157; frame.len 76, 76, 68 with SLL.
        long[] times = [1418145369_924505488L, 1418145370_052027262L, 1418145370_052115157L];
        int[] sllLengths = [76, 76, 68];
        int fileOffset = 24;
        for (int i = 0; i < 3; i++)
        {
            Assert.True(reader.TryRead(frame, out var record));
            Assert.Equal(times[i], record.Timestamp);
            int length = sllLengths[i] - 16 + 14;
            Assert.Equal(length, record.Length);
            Assert.Equal(length, record.OriginalLength);
            Assert.Equal(new byte[12], frame.AsSpan(0, 12).ToArray());
            Assert.Equal(0x0800, BinaryPrimitives.ReadUInt16BigEndian(frame.AsSpan(12)));
            Assert.Equal(0x45, frame[14]);
            // The IP packet is the file's bytes after the 16-byte SLL header.
            Assert.Equal(file.AsSpan(fileOffset + 16 + 16, length - 14).ToArray(), frame.AsSpan(14, length - 14).ToArray());
            fileOffset += 16 + sllLengths[i];
        }
        Assert.False(reader.TryRead(frame, out _));
    }

    [Fact]
    public void Raw_IP_capture_gains_an_Ethernet_header()
    {
        string path = RepositoryFiles.ExternalCapture("tcpdump_LINKTYPE_RAW_ipv4.pcap");
        byte[] file = File.ReadAllBytes(path);
        using var reader = new CaptureReader(path);
        var frame = new byte[2048];
        Assert.True(reader.TryRead(frame, out var record));
        Assert.Equal(1751997551_951226000L, record.Timestamp); // tshark 1751997551.951226000, 57 bytes
        Assert.Equal(57 + 14, record.Length);
        Assert.Equal(0x0800, BinaryPrimitives.ReadUInt16BigEndian(frame.AsSpan(12)));
        Assert.Equal(file.AsSpan(40, 57).ToArray(), frame.AsSpan(14, 57).ToArray());
    }

    [Fact]
    public void Snap_length_truncation_is_reported()
    {
        // tshark: frame.len 262144, frame.cap_len 64.
        using var reader = new CaptureReader(RepositoryFiles.ExternalCapture("tcpdump_arp-too-long-tha.pcap"));
        var frame = new byte[2048];
        Assert.True(reader.TryRead(frame, out var record));
        Assert.True(record.IsTruncated);
        Assert.False(record.IsOversize);
        Assert.Equal(64, record.Length);
        Assert.Equal(262144, record.OriginalLength);
    }

    [Fact]
    public void Record_larger_than_the_span_is_cut_reported_and_skipped()
    {
        // Jumbogram: one 65590-byte frame, not truncated by the capture.
        using var reader = new CaptureReader(RepositoryFiles.ExternalCapture("tcpdump_ipv6_jumbogram_1.pcap"));
        var frame = new byte[PacketBatch.MaxFrameLength + 16];
        frame.AsSpan(PacketBatch.MaxFrameLength).Fill(0xEE);
        Assert.True(reader.TryRead(frame.AsSpan(0, PacketBatch.MaxFrameLength), out var record));
        Assert.True(record.IsOversize);
        Assert.False(record.IsTruncated);
        Assert.Equal(65590, record.CapturedLength);
        Assert.Equal(PacketBatch.MaxFrameLength, record.Length);
        Assert.Equal(0x86DD, BinaryPrimitives.ReadUInt16BigEndian(frame.AsSpan(12)));
        Assert.All(frame.AsSpan(PacketBatch.MaxFrameLength).ToArray(), b => Assert.Equal(0xEE, b));
        Assert.False(reader.TryRead(frame, out _));
    }

    [Fact]
    public void Small_read_buffer_streams_records_across_refills()
    {
        // A 4 KiB buffer forces the jumbogram and every later record across buffer refills and seeks.
        string path = RepositoryFiles.ExternalCapture("tcpdump_ipv6_jumbogram_1.pcap");
        byte[] file = File.ReadAllBytes(path);
        using var reader = new CaptureReader(path, bufferSize: 4096);
        var frame = new byte[70000];
        Assert.True(reader.TryRead(frame, out var record));
        Assert.Equal(65590, record.Length);
        Assert.Equal(file.AsSpan(40, 65590).ToArray(), frame.AsSpan(0, 65590).ToArray());
    }

    [Fact]
    public void Garbage_is_refused_naming_the_file()
    {
        using var temp = new TempFolder();
        string path = temp.File("garbage.pcap");
        File.WriteAllText(path, "this is not a capture, just some text that goes on for a while");
        var error = Assert.Throws<CaptureFormatException>(() => CaptureReader.Validate(path));
        Assert.Contains(path, error.Message);
        Assert.Contains("not a pcap or pcapng", error.Message);
        Assert.DoesNotContain('\n', error.Message);
        Assert.Throws<CaptureFormatException>(() => new CaptureReader(path));

        string empty = temp.File("empty.pcap");
        File.WriteAllBytes(empty, []);
        Assert.Contains(empty, Assert.Throws<CaptureFormatException>(() => CaptureReader.Validate(empty)).Message);
    }

    [Fact]
    public void File_cut_mid_record_is_refused_with_record_number_and_offset()
    {
        using var temp = new TempFolder();
        string path = temp.File("cut.pcap");
        byte[] file = File.ReadAllBytes(RepositoryFiles.ExternalCapture("tcpdump_dns_udp.pcap"));
        File.WriteAllBytes(path, file.AsSpan(0, file.Length - 10).ToArray());

        var error = Assert.Throws<CaptureFormatException>(() => CaptureReader.Validate(path));
        Assert.Contains(path, error.Message);
        Assert.Equal(2, error.RecordNumber);
        Assert.Equal(24 + 16 + 98, error.Offset);
        Assert.Contains("record 2 at byte offset 138", error.Message);
        Assert.Contains("mid-record", error.Message);

        // Reading (not only validating) stops at the same place, after delivering record 1.
        using var reader = new CaptureReader(path);
        var frame = new byte[2048];
        Assert.True(reader.TryRead(frame, out _));
        Assert.Throws<CaptureFormatException>(() => reader.TryRead(frame, out _));

        // Cut inside a record header.
        File.WriteAllBytes(path, file.AsSpan(0, 24 + 16 + 98 + 7).ToArray());
        Assert.Contains("record header", Assert.Throws<CaptureFormatException>(() => CaptureReader.Validate(path)).Message);
    }

    [Fact]
    public void Impossible_captured_length_is_refused()
    {
        using var temp = new TempFolder();
        string path = temp.File("huge.pcap");
        byte[] file = File.ReadAllBytes(RepositoryFiles.ExternalCapture("tcpdump_dns_udp.pcap"));
        BinaryPrimitives.WriteUInt32LittleEndian(file.AsSpan(24 + 8), 0x7FFFFFF0);
        File.WriteAllBytes(path, file);
        var error = Assert.Throws<CaptureFormatException>(() => CaptureReader.Validate(path));
        Assert.Contains(path, error.Message);
        Assert.Contains("record 1 at byte offset 24", error.Message);
        Assert.Contains("captured length 2147483632", error.Message);
    }

    [Fact]
    public void Unknown_link_type_is_refused_at_open()
    {
        using var temp = new TempFolder();
        string path = temp.File("wifi.pcap");
        byte[] file = File.ReadAllBytes(RepositoryFiles.ExternalCapture("tcpdump_dns_udp.pcap"));
        BinaryPrimitives.WriteUInt32LittleEndian(file.AsSpan(20), 105); // IEEE 802.11
        File.WriteAllBytes(path, file);
        var error = Assert.Throws<CaptureFormatException>(() => new CaptureReader(path));
        Assert.Contains(path, error.Message);
        Assert.Contains("link type 105 is not supported", error.Message);
        Assert.Throws<CaptureFormatException>(() => CaptureReader.Validate(path));
    }

    [Fact]
    public void Big_endian_pcap_reads_like_little_endian()
    {
        // Byte-swap every header field of a real capture: same records, same timestamps.
        byte[] le = File.ReadAllBytes(RepositoryFiles.ExternalCapture("tcpdump_dns_udp.pcap"));
        byte[] be = (byte[])le.Clone();
        static void Swap32(byte[] b, int at) =>
            BinaryPrimitives.WriteUInt32BigEndian(b.AsSpan(at), BinaryPrimitives.ReadUInt32LittleEndian(b.AsSpan(at)));
        static void Swap16(byte[] b, int at) =>
            BinaryPrimitives.WriteUInt16BigEndian(b.AsSpan(at), BinaryPrimitives.ReadUInt16LittleEndian(b.AsSpan(at)));
        Swap32(be, 0);
        Swap16(be, 4);
        Swap16(be, 6);
        Swap32(be, 16);
        Swap32(be, 20);
        for (int at = 24; at < be.Length;)
        {
            int captured = BinaryPrimitives.ReadInt32LittleEndian(le.AsSpan(at + 8));
            for (int f = 0; f < 4; f++)
                Swap32(be, at + 4 * f);
            at += 16 + captured;
        }
        using var temp = new TempFolder();
        string path = temp.File("be.pcap");
        File.WriteAllBytes(path, be);
        using var reader = new CaptureReader(path);
        var frame = new byte[2048];
        Assert.True(reader.TryRead(frame, out var first));
        Assert.Equal(1591780794_740079000L, first.Timestamp);
        Assert.Equal(98, first.Length);
        Assert.Equal(le.AsSpan(40, 98).ToArray(), frame.AsSpan(0, 98).ToArray());
        Assert.True(reader.TryRead(frame, out var second));
        Assert.Equal(266, second.Length);
        Assert.False(reader.TryRead(frame, out _));
    }
}
