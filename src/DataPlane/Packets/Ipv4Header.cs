using System.Buffers.Binary;

namespace FastPath.DataPlane.Packets;

/// <summary>View of an IPv4 header (RFC 791). Validation lives in <see cref="PacketParser"/>; the view only reads and writes.</summary>
public readonly ref struct Ipv4Header(Span<byte> bytes)
{
    public const int MinLength = 20;
    public const ushort FlagDontFragment = 0x4000;
    public const ushort FlagMoreFragments = 0x2000;
    public const ushort FragmentOffsetMask = 0x1FFF;

    private readonly Span<byte> _b = bytes;

    public byte Version => (byte)(_b[0] >> 4);
    /// <summary>Header length in bytes (IHL × 4).</summary>
    public int HeaderLength => (_b[0] & 0x0F) * 4;
    public byte TypeOfService { get => _b[1]; set => _b[1] = value; }
    public ushort TotalLength { get => BinaryPrimitives.ReadUInt16BigEndian(_b[2..]); set => BinaryPrimitives.WriteUInt16BigEndian(_b[2..], value); }
    public ushort Identification { get => BinaryPrimitives.ReadUInt16BigEndian(_b[4..]); set => BinaryPrimitives.WriteUInt16BigEndian(_b[4..], value); }
    public ushort FlagsAndFragmentOffset { get => BinaryPrimitives.ReadUInt16BigEndian(_b[6..]); set => BinaryPrimitives.WriteUInt16BigEndian(_b[6..], value); }
    public bool DontFragment => (FlagsAndFragmentOffset & FlagDontFragment) != 0;
    public bool MoreFragments => (FlagsAndFragmentOffset & FlagMoreFragments) != 0;
    /// <summary>Fragment offset in bytes.</summary>
    public int FragmentOffset => (FlagsAndFragmentOffset & FragmentOffsetMask) * 8;
    public byte Ttl { get => _b[8]; set => _b[8] = value; }
    public byte Protocol { get => _b[9]; set => _b[9] = value; }
    public ushort HeaderChecksum { get => BinaryPrimitives.ReadUInt16BigEndian(_b[10..]); set => BinaryPrimitives.WriteUInt16BigEndian(_b[10..], value); }
    public uint Source { get => BinaryPrimitives.ReadUInt32BigEndian(_b[12..]); set => BinaryPrimitives.WriteUInt32BigEndian(_b[12..], value); }
    public uint Destination { get => BinaryPrimitives.ReadUInt32BigEndian(_b[16..]); set => BinaryPrimitives.WriteUInt32BigEndian(_b[16..], value); }
    public Span<byte> Options => _b[MinLength..HeaderLength];

    /// <summary>Writes a 20-byte header without options and computes its checksum.</summary>
    public static void Write(Span<byte> b, byte tos, ushort totalLength, ushort id, ushort flags, byte ttl, byte protocol, uint source, uint destination)
    {
        b[0] = 0x45;
        b[1] = tos;
        BinaryPrimitives.WriteUInt16BigEndian(b[2..], totalLength);
        BinaryPrimitives.WriteUInt16BigEndian(b[4..], id);
        BinaryPrimitives.WriteUInt16BigEndian(b[6..], flags);
        b[8] = ttl;
        b[9] = protocol;
        b[10] = 0;
        b[11] = 0;
        BinaryPrimitives.WriteUInt32BigEndian(b[12..], source);
        BinaryPrimitives.WriteUInt32BigEndian(b[16..], destination);
        BinaryPrimitives.WriteUInt16BigEndian(b[10..], Checksum.Ipv4Header(b[..MinLength]));
    }

    /// <summary>
    /// Checks the option list is well formed (RFC 791 §3.1: EOL and NOP are single bytes, every other option
    /// carries a length ≥ 2 that stays inside the header), as Linux's ip_options_compile does before forwarding.
    /// </summary>
    public static bool OptionsWellFormed(ReadOnlySpan<byte> options)
    {
        int i = 0;
        while (i < options.Length)
        {
            byte type = options[i];
            if (type == 0) return true;
            if (type == 1) { i++; continue; }
            if (i + 1 >= options.Length) return false;
            int len = options[i + 1];
            if (len < 2 || i + len > options.Length) return false;
            i += len;
        }
        return true;
    }
}
