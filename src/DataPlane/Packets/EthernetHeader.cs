using System.Buffers.Binary;

namespace FastPath.DataPlane.Packets;

/// <summary>View of an Ethernet II header (IEEE 802.3 §3.2.6). VLAN tags are walked by <see cref="PacketParser"/>.</summary>
public readonly ref struct EthernetHeader(Span<byte> bytes)
{
    public const int Length = 14;
    public const int VlanTagLength = 4;

    private readonly Span<byte> _b = bytes;

    public MacAddress Destination { get => MacAddress.Read(_b); set => value.Write(_b); }
    public MacAddress Source { get => MacAddress.Read(_b[6..]); set => value.Write(_b[6..]); }
    public ushort EtherType { get => BinaryPrimitives.ReadUInt16BigEndian(_b[12..]); set => BinaryPrimitives.WriteUInt16BigEndian(_b[12..], value); }

    /// <summary>Writes a complete untagged header in one go.</summary>
    public static void Write(Span<byte> frame, MacAddress destination, MacAddress source, ushort etherType)
    {
        destination.Write(frame);
        source.Write(frame[6..]);
        BinaryPrimitives.WriteUInt16BigEndian(frame[12..], etherType);
    }
}

/// <summary>View of an 802.1Q / 802.1ad tag (the 4 bytes after the MAC addresses or the previous tag).</summary>
public readonly ref struct VlanTag(Span<byte> bytes)
{
    private readonly Span<byte> _b = bytes;

    public ushort Tci => BinaryPrimitives.ReadUInt16BigEndian(_b);
    public ushort VlanId => (ushort)(Tci & 0x0FFF);
    public byte Priority => (byte)(Tci >> 13);
    public ushort InnerEtherType => BinaryPrimitives.ReadUInt16BigEndian(_b[2..]);
}
