using System.Buffers.Binary;
using FastPath.DataPlane.Pipeline;
using FastPath.DataPlane.Ports;
using Xunit;

using FastPath.Tests.Support;

namespace FastPath.Tests.Ports;

public sealed class PcapNgReaderTests
{
    private static byte[] EthernetFrame(byte mark, int length = 60)
    {
        var frame = new byte[length];
        frame[5] = mark;
        frame[12] = 0x08;
        frame[14] = 0x45;
        frame[length - 1] = mark;
        return frame;
    }

    private static byte[] Ipv6Packet(byte mark)
    {
        var packet = new byte[48];
        packet[0] = 0x60;
        packet[47] = mark;
        return packet;
    }

    /// <summary>
    /// Two sections: little-endian (eth0 in µs, pod-a in ns with an if_tsoffset) and big-endian (uplink in 2^-20 s,
    /// raw IPv6 in ms, no name), with every packet block kind and blocks to skip in between.
    /// </summary>
    private static byte[] TwoSections() => new PcapNgImage()
        .Section(bigEndian: false)
        .Interface(1, 0, name: "eth0")
        .Other(4, 16) // Name Resolution Block
        .Interface(1, 0, name: "pod-a", tsresol: 9, tsoffset: 100)
        .Enhanced(0, 1_000_000_000_000_001UL, EthernetFrame(1)) // µs
        .Enhanced(1, 1_000_000_000_000_000_002UL, EthernetFrame(2)) // ns
        .Simple(EthernetFrame(3))
        .Obsolete(1, 1_000_000_000_000_000_004UL, EthernetFrame(4))
        .Other(5, 8) // Interface Statistics Block
        .Section(bigEndian: true)
        .Interface(1, 0, name: "uplink", tsresol: 0x80 | 20)
        .Interface(229, 0, tsresol: 3)
        .Enhanced(0, (3UL << 20) | (1UL << 19), EthernetFrame(5)) // 3.5 s in 2^-20 units
        .Enhanced(1, 1_700_000_000_123UL, Ipv6Packet(6)) // ms
        .Other(0x40000BAD, 20) // custom block
        .Enhanced(0, 5UL << 20, EthernetFrame(7, 100), originalLength: 1500)
        .ToArray();

    [Fact]
    public void Sections_interfaces_and_packet_blocks_of_both_byte_orders()
    {
        using var temp = new TempFolder();
        string path = temp.File("two-sections.pcapng");
        File.WriteAllBytes(path, TwoSections());

        Assert.Equal(7, CaptureReader.Validate(path));
        using var reader = new CaptureReader(path);
        Assert.True(reader.IsPcapNg);
        // Interfaces before the first packet are known right after open.
        Assert.Equal(2, reader.InterfaceCount);
        Assert.True(reader.IsNanosecond);

        var frame = new byte[PacketBatch.MaxFrameLength];
        var records = new List<(CaptureRecord Record, byte Mark, ushort EtherType)>();
        while (reader.TryRead(frame, out var record))
            records.Add((record, frame[record.Length - 1], BinaryPrimitives.ReadUInt16BigEndian(frame.AsSpan(12))));

        Assert.Equal(7, records.Count);
        Assert.Equal([1, 2, 3, 4, 5, 6, 7], records.Select(r => (int)r.Mark));
        Assert.Equal([0, 1, 0, 1, 2, 3, 2], records.Select(r => r.Record.InterfaceIndex));

        Assert.Equal(1_000_000_000_000_001_000L, records[0].Record.Timestamp);
        Assert.Equal(1_000_000_000_000_000_002L + 100_000_000_000L, records[1].Record.Timestamp);
        // A Simple Packet Block has no timestamp: it keeps the previous record's.
        Assert.Equal(records[1].Record.Timestamp, records[2].Record.Timestamp);
        Assert.Equal(1_000_000_000_000_000_004L + 100_000_000_000L, records[3].Record.Timestamp);
        Assert.Equal(3_500_000_000L, records[4].Record.Timestamp);
        Assert.Equal(1_700_000_000_123_000_000L, records[5].Record.Timestamp);
        Assert.Equal(5_000_000_000L, records[6].Record.Timestamp);

        // Raw IPv6 (LINKTYPE_IPV6) comes out as Ethernet with EtherType 0x86DD and the packet after it.
        Assert.Equal(0x86DD, records[5].EtherType);
        Assert.Equal(48 + 14, records[5].Record.Length);
        Assert.True(records[6].Record.IsTruncated);
        Assert.Equal(1500, records[6].Record.OriginalLength);
        Assert.Equal(100, records[6].Record.Length);

        Assert.Equal(4, reader.InterfaceCount);
        Assert.Equal(["eth0", "pod-a", "uplink", null], Enumerable.Range(0, 4).Select(reader.InterfaceName));
        Assert.Equal([LinkType.Ethernet, LinkType.Ethernet, LinkType.Ethernet, LinkType.Ipv6],
            Enumerable.Range(0, 4).Select(reader.InterfaceLinkType));
    }

    [Fact]
    public void Linux_cooked_v2_interface_becomes_Ethernet()
    {
        // SLL2 (LINKTYPE 276): protocol type first, then reserved, ifindex, ARPHRD, packet type, address length, address.
        var sll2 = new byte[20 + 28];
        BinaryPrimitives.WriteUInt16BigEndian(sll2, 0x0806); // ARP
        sll2[20] = 0x00;
        sll2[21] = 0x01;
        sll2[^1] = 0x77;
        using var temp = new TempFolder();
        string path = temp.File("sll2.pcapng");
        File.WriteAllBytes(path, new PcapNgImage()
            .Section(bigEndian: true)
            .Interface(276, 65535, name: "any")
            .Enhanced(0, 42, sll2)
            .ToArray());
        using var reader = new CaptureReader(path);
        var frame = new byte[128];
        Assert.True(reader.TryRead(frame, out var record));
        Assert.Equal(28 + 14, record.Length);
        Assert.Equal(0x0806, BinaryPrimitives.ReadUInt16BigEndian(frame.AsSpan(12)));
        Assert.Equal(0x0001, BinaryPrimitives.ReadUInt16BigEndian(frame.AsSpan(14)));
        Assert.Equal(0x77, frame[record.Length - 1]);
        Assert.Equal(42_000L, record.Timestamp);
        Assert.Equal(LinkType.LinuxSll2, reader.InterfaceLinkType(0));
    }

    [Fact]
    public void Unsupported_interface_link_type_is_refused_at_its_block()
    {
        using var temp = new TempFolder();
        string path = temp.File("wifi.pcapng");
        File.WriteAllBytes(path, new PcapNgImage()
            .Section(bigEndian: false)
            .Interface(1, 0, name: "eth0")
            .Enhanced(0, 1, EthernetFrame(1))
            .Interface(127, 0, name: "wlan0") // radiotap
            .Enhanced(1, 2, EthernetFrame(2))
            .ToArray());
        var error = Assert.Throws<CaptureFormatException>(() => CaptureReader.Validate(path));
        Assert.Contains(path, error.Message);
        Assert.Contains("link type 127 is not supported", error.Message);
        Assert.Equal(2, error.RecordNumber);
    }

    [Fact]
    public void Broken_blocks_are_refused()
    {
        using var temp = new TempFolder();
        byte[] good = new PcapNgImage()
            .Section(bigEndian: false)
            .Interface(1)
            .Enhanced(0, 1, EthernetFrame(1))
            .Enhanced(0, 2, EthernetFrame(2))
            .ToArray();
        string path = temp.File("broken.pcapng");

        // Cut inside the last block.
        File.WriteAllBytes(path, good.AsSpan(0, good.Length - 6).ToArray());
        var cut = Assert.Throws<CaptureFormatException>(() => CaptureReader.Validate(path));
        Assert.Contains("record 2", cut.Message);
        Assert.Contains("mid-record", cut.Message);

        // Trailing length that does not match the leading one.
        byte[] mismatch = (byte[])good.Clone();
        mismatch[^4] ^= 0x04;
        File.WriteAllBytes(path, mismatch);
        Assert.Contains("at the end", Assert.Throws<CaptureFormatException>(() => CaptureReader.Validate(path)).Message);

        // An EPB naming an interface the section does not have.
        File.WriteAllBytes(path, new PcapNgImage().Section(false).Interface(1).Enhanced(3, 1, EthernetFrame(1)).ToArray());
        Assert.Contains("interface id 3", Assert.Throws<CaptureFormatException>(() => CaptureReader.Validate(path)).Message);

        // A bad byte-order magic.
        byte[] badMagic = (byte[])good.Clone();
        badMagic[8] = 0x99;
        File.WriteAllBytes(path, badMagic);
        Assert.Contains("byte-order magic", Assert.Throws<CaptureFormatException>(() => new CaptureReader(path)).Message);
    }
}
