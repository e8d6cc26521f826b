using System.Buffers.Binary;

namespace FastPath.DataPlane.Packets;

/// <summary>View of the fixed IPv6 header (RFC 8200 §3). Extension headers are walked by <see cref="PacketParser"/>.</summary>
public readonly ref struct Ipv6Header(Span<byte> bytes)
{
    public const int Length = 40;

    private readonly Span<byte> _b = bytes;

    public byte Version => (byte)(_b[0] >> 4);
    public byte TrafficClass => (byte)((BinaryPrimitives.ReadUInt16BigEndian(_b) >> 4) & 0xFF);
    public uint FlowLabel => BinaryPrimitives.ReadUInt32BigEndian(_b) & 0x000F_FFFF;
    public ushort PayloadLength { get => BinaryPrimitives.ReadUInt16BigEndian(_b[4..]); set => BinaryPrimitives.WriteUInt16BigEndian(_b[4..], value); }
    public byte NextHeader { get => _b[6]; set => _b[6] = value; }
    public byte HopLimit { get => _b[7]; set => _b[7] = value; }
    public IpAddr Source { get => IpAddr.ReadV6(_b[8..]); set => value.WriteV6(_b[8..]); }
    public IpAddr Destination { get => IpAddr.ReadV6(_b[24..]); set => value.WriteV6(_b[24..]); }
    public Span<byte> SourceBytes => _b.Slice(8, 16);
    public Span<byte> DestinationBytes => _b.Slice(24, 16);

    /// <summary>Writes a fixed header (version 6, traffic class, flow label 0).</summary>
    public static void Write(Span<byte> b, byte trafficClass, ushort payloadLength, byte nextHeader, byte hopLimit, IpAddr source, IpAddr destination)
    {
        BinaryPrimitives.WriteUInt32BigEndian(b, 0x6000_0000u | ((uint)trafficClass << 20));
        BinaryPrimitives.WriteUInt16BigEndian(b[4..], payloadLength);
        b[6] = nextHeader;
        b[7] = hopLimit;
        source.WriteV6(b[8..]);
        destination.WriteV6(b[24..]);
    }

    public static bool IsLinkLocal(IpAddr a) => (a.Value >> 118) == 0x3FA; // fe80::/10
    public static bool IsMulticast(IpAddr a) => !a.IsV4 && (a.Value >> 120) == 0xFF;
    public static bool IsUnspecified(IpAddr a) => a.Value == UInt128.Zero;
}

/// <summary>View of the IPv6 fragment header (RFC 8200 §4.5).</summary>
public readonly ref struct Ipv6FragmentHeader(Span<byte> bytes)
{
    public const int Length = 8;

    private readonly Span<byte> _b = bytes;

    public byte NextHeader => _b[0];
    /// <summary>Fragment offset in bytes.</summary>
    public int FragmentOffset => BinaryPrimitives.ReadUInt16BigEndian(_b[2..]) & 0xFFF8;
    public bool MoreFragments => (_b[3] & 1) != 0;
    public uint Identification => BinaryPrimitives.ReadUInt32BigEndian(_b[4..]);
}
