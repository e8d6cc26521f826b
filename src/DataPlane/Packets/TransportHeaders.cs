using System.Buffers.Binary;

namespace FastPath.DataPlane.Packets;

/// <summary>View of a TCP header (RFC 9293 §3.1).</summary>
public readonly ref struct TcpHeader(Span<byte> bytes)
{
    public const int MinLength = 20;
    public const byte Fin = 0x01, Syn = 0x02, Rst = 0x04, Psh = 0x08, Ack = 0x10, Urg = 0x20;

    private readonly Span<byte> _b = bytes;

    public ushort SourcePort { get => BinaryPrimitives.ReadUInt16BigEndian(_b); set => BinaryPrimitives.WriteUInt16BigEndian(_b, value); }
    public ushort DestinationPort { get => BinaryPrimitives.ReadUInt16BigEndian(_b[2..]); set => BinaryPrimitives.WriteUInt16BigEndian(_b[2..], value); }
    public uint SequenceNumber => BinaryPrimitives.ReadUInt32BigEndian(_b[4..]);
    public uint AcknowledgmentNumber => BinaryPrimitives.ReadUInt32BigEndian(_b[8..]);
    /// <summary>Header length in bytes (data offset × 4).</summary>
    public int HeaderLength => (_b[12] >> 4) * 4;
    public byte Flags => _b[13];
    public ushort Window => BinaryPrimitives.ReadUInt16BigEndian(_b[14..]);
    public ushort Checksum { get => BinaryPrimitives.ReadUInt16BigEndian(_b[16..]); set => BinaryPrimitives.WriteUInt16BigEndian(_b[16..], value); }
    public Span<byte> Options => _b[MinLength..HeaderLength];

    /// <summary>
    /// Finds option <paramref name="kind"/> (RFC 9293 §3.2) and returns its data; false when absent or when the
    /// option list is malformed (a length that runs past the header), which ends the walk as Linux's
    /// tcp_parse_options does.
    /// </summary>
    public bool TryGetOption(byte kind, out ReadOnlySpan<byte> data)
    {
        data = default;
        ReadOnlySpan<byte> o = Options;
        int i = 0;
        while (i < o.Length)
        {
            byte k = o[i];
            if (k == 0) return false;
            if (k == 1) { i++; continue; }
            if (i + 1 >= o.Length) return false;
            int len = o[i + 1];
            if (len < 2 || i + len > o.Length) return false;
            if (k == kind) { data = o.Slice(i + 2, len - 2); return true; }
            i += len;
        }
        return false;
    }
}

/// <summary>View of a UDP header (RFC 768).</summary>
public readonly ref struct UdpHeader(Span<byte> bytes)
{
    public const int Length = 8;

    private readonly Span<byte> _b = bytes;

    public ushort SourcePort { get => BinaryPrimitives.ReadUInt16BigEndian(_b); set => BinaryPrimitives.WriteUInt16BigEndian(_b, value); }
    public ushort DestinationPort { get => BinaryPrimitives.ReadUInt16BigEndian(_b[2..]); set => BinaryPrimitives.WriteUInt16BigEndian(_b[2..], value); }
    /// <summary>Header plus payload, in bytes.</summary>
    public ushort TotalLength { get => BinaryPrimitives.ReadUInt16BigEndian(_b[4..]); set => BinaryPrimitives.WriteUInt16BigEndian(_b[4..], value); }
    public ushort Checksum { get => BinaryPrimitives.ReadUInt16BigEndian(_b[6..]); set => BinaryPrimitives.WriteUInt16BigEndian(_b[6..], value); }
}

/// <summary>View of an ICMPv4 (RFC 792) or ICMPv6 (RFC 4443) header: both share type, code, checksum and a 32-bit rest.</summary>
public readonly ref struct IcmpHeader(Span<byte> bytes)
{
    public const int Length = 8;

    // ICMPv4 types (RFC 792)
    public const byte EchoReply = 0, DestinationUnreachable = 3, SourceQuench = 4, Redirect = 5, EchoRequest = 8,
        TimeExceeded = 11, ParameterProblem = 12;
    // ICMPv4 destination-unreachable codes
    public const byte CodeNetUnreachable = 0, CodeHostUnreachable = 1, CodeProtocolUnreachable = 2, CodePortUnreachable = 3,
        CodeFragmentationNeeded = 4, CodeAdminProhibited = 13;

    private readonly Span<byte> _b = bytes;

    public byte Type { get => _b[0]; set => _b[0] = value; }
    public byte Code { get => _b[1]; set => _b[1] = value; }
    public ushort Checksum { get => BinaryPrimitives.ReadUInt16BigEndian(_b[2..]); set => BinaryPrimitives.WriteUInt16BigEndian(_b[2..], value); }
    public uint Rest { get => BinaryPrimitives.ReadUInt32BigEndian(_b[4..]); set => BinaryPrimitives.WriteUInt32BigEndian(_b[4..], value); }
    /// <summary>Echo identifier (the "port" of an ICMP echo flow).</summary>
    public ushort Identifier => BinaryPrimitives.ReadUInt16BigEndian(_b[4..]);
    public ushort Sequence => BinaryPrimitives.ReadUInt16BigEndian(_b[6..]);

    /// <summary>True for ICMPv4 error messages, which must never trigger another error (RFC 1122 §3.2.2).</summary>
    public static bool IsV4Error(byte type) =>
        type is DestinationUnreachable or SourceQuench or Redirect or TimeExceeded or ParameterProblem;
}

/// <summary>ICMPv6 and Neighbor Discovery constants (RFC 4443, RFC 4861).</summary>
public static class Icmpv6
{
    public const byte DestinationUnreachable = 1, PacketTooBig = 2, TimeExceeded = 3, ParameterProblem = 4;
    public const byte EchoRequest = 128, EchoReply = 129;
    public const byte MldQuery = 130, MldReport = 131, MldDone = 132;
    public const byte RouterSolicitation = 133, RouterAdvertisement = 134, NeighborSolicitation = 135,
        NeighborAdvertisement = 136, Redirect = 137, MldV2Report = 143;
    public const byte CodeNoRoute = 0, CodeAdminProhibited = 1, CodeBeyondScope = 2, CodeAddressUnreachable = 3, CodePortUnreachable = 4;
    public const byte OptionSourceLinkLayer = 1, OptionTargetLinkLayer = 2;

    /// <summary>Types 0–127 are errors (RFC 4443 §2.1); errors never trigger errors (§2.4 e.1).</summary>
    public static bool IsError(byte type) => type < 128;
}

/// <summary>View of a Neighbor Solicitation / Advertisement body (RFC 4861 §4.3, §4.4): after the 4-byte ICMPv6 header.</summary>
public readonly ref struct NeighborMessage(Span<byte> icmp)
{
    /// <summary>ICMPv6 header + reserved/flags + target address.</summary>
    public const int Length = 24;
    public const uint FlagRouter = 0x8000_0000, FlagSolicited = 0x4000_0000, FlagOverride = 0x2000_0000;

    private readonly Span<byte> _b = icmp;

    public uint Flags { get => BinaryPrimitives.ReadUInt32BigEndian(_b[4..]); set => BinaryPrimitives.WriteUInt32BigEndian(_b[4..], value); }
    public IpAddr Target { get => IpAddr.ReadV6(_b[8..]); set => value.WriteV6(_b[8..]); }
    public Span<byte> Options => _b[Length..];

    /// <summary>
    /// Checks the options are well formed (RFC 4861 §4.6: length in units of 8 octets, never 0) and returns the
    /// link-layer address option of <paramref name="type"/> if present.
    /// </summary>
    public bool TryGetLinkLayerOption(byte type, out MacAddress mac, out bool malformed)
    {
        mac = MacAddress.Zero;
        malformed = false;
        bool found = false;
        ReadOnlySpan<byte> o = Options;
        while (o.Length > 0)
        {
            if (o.Length < 2 || o[1] == 0 || o[1] * 8 > o.Length) { malformed = true; return false; }
            int len = o[1] * 8;
            if (o[0] == type && len >= 8 && !found) { mac = MacAddress.Read(o[2..]); found = true; }
            o = o[len..];
        }
        return found;
    }
}

/// <summary>View of a VXLAN header (RFC 7348 §5).</summary>
public readonly ref struct VxlanHeader(Span<byte> bytes)
{
    public const int Length = 8;
    /// <summary>The I flag: the VNI is valid.</summary>
    public const byte FlagVniValid = 0x08;

    private readonly Span<byte> _b = bytes;

    public byte Flags => _b[0];
    public bool VniValid => (_b[0] & FlagVniValid) != 0;
    public uint Vni { get => BinaryPrimitives.ReadUInt32BigEndian(_b[4..]) >> 8; }

    public static void Write(Span<byte> b, uint vni)
    {
        BinaryPrimitives.WriteUInt32BigEndian(b, (uint)FlagVniValid << 24);
        BinaryPrimitives.WriteUInt32BigEndian(b[4..], vni << 8);
    }
}
