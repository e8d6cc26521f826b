using System.Buffers.Binary;

namespace FastPath.DataPlane.Packets;

/// <summary>View of an Ethernet/IPv4 ARP packet (RFC 826). Other hardware/protocol types are not ours to answer.</summary>
public readonly ref struct ArpPacket(Span<byte> bytes)
{
    public const int Length = 28;
    public const ushort OpRequest = 1;
    public const ushort OpReply = 2;

    private readonly Span<byte> _b = bytes;

    public ushort HardwareType => BinaryPrimitives.ReadUInt16BigEndian(_b);
    public ushort ProtocolType => BinaryPrimitives.ReadUInt16BigEndian(_b[2..]);
    public byte HardwareLength => _b[4];
    public byte ProtocolLength => _b[5];
    public ushort Operation { get => BinaryPrimitives.ReadUInt16BigEndian(_b[6..]); set => BinaryPrimitives.WriteUInt16BigEndian(_b[6..], value); }
    public MacAddress SenderHardware { get => MacAddress.Read(_b[8..]); set => value.Write(_b[8..]); }
    public uint SenderProtocol { get => BinaryPrimitives.ReadUInt32BigEndian(_b[14..]); set => BinaryPrimitives.WriteUInt32BigEndian(_b[14..], value); }
    public MacAddress TargetHardware { get => MacAddress.Read(_b[18..]); set => value.Write(_b[18..]); }
    public uint TargetProtocol { get => BinaryPrimitives.ReadUInt32BigEndian(_b[24..]); set => BinaryPrimitives.WriteUInt32BigEndian(_b[24..], value); }

    /// <summary>True for the only form we handle: Ethernet (1) hardware, IPv4 protocol, 6- and 4-byte addresses.</summary>
    public static bool IsEthernetIpv4(ReadOnlySpan<byte> b) =>
        b.Length >= Length && BinaryPrimitives.ReadUInt16BigEndian(b) == 1 &&
        BinaryPrimitives.ReadUInt16BigEndian(b[2..]) == EtherType.Ipv4 && b[4] == 6 && b[5] == 4;
}
