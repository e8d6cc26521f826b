using System.Buffers.Binary;

namespace FastPath.DataPlane.Packets;

// Placeholder until the vectorised implementation lands (branch csum); same API.
public static class Checksum
{
    public static uint Sum(ReadOnlySpan<byte> data, uint initial = 0)
    {
        ulong sum = initial;
        int i = 0;
        for (; i + 1 < data.Length; i += 2) sum += BinaryPrimitives.ReadUInt16BigEndian(data[i..]);
        if (i < data.Length) sum += (uint)data[i] << 8;
        while ((sum >> 32) != 0) sum = (sum & 0xFFFF_FFFF) + (sum >> 32);
        return (uint)sum;
    }

    public static ushort Fold(uint sum)
    {
        while ((sum >> 16) != 0) sum = (sum & 0xFFFF) + (sum >> 16);
        return (ushort)~sum;
    }

    public static uint PseudoHeaderV4(uint src, uint dst, byte protocol, int l4Length) =>
        (src >> 16) + (src & 0xFFFF) + (dst >> 16) + (dst & 0xFFFF) + protocol + (uint)l4Length;

    public static uint PseudoHeaderV6(ReadOnlySpan<byte> src16, ReadOnlySpan<byte> dst16, byte nextHeader, int l4Length) =>
        Sum(dst16, Sum(src16)) + nextHeader + (uint)l4Length;

    public static ushort Ipv4Header(ReadOnlySpan<byte> header) => Fold(Sum(header));

    public static ushort TransportV4(uint src, uint dst, byte protocol, ReadOnlySpan<byte> l4) =>
        Fold(Sum(l4, PseudoHeaderV4(src, dst, protocol, l4.Length)));

    public static ushort TransportV6(ReadOnlySpan<byte> src16, ReadOnlySpan<byte> dst16, byte nextHeader, ReadOnlySpan<byte> l4) =>
        Fold(Sum(l4, PseudoHeaderV6(src16, dst16, nextHeader, l4.Length)));

    public static ushort Update16(ushort checksum, ushort oldWord, ushort newWord)
    {
        uint sum = (uint)(ushort)~checksum + (ushort)~oldWord + newWord;
        return Fold(sum);
    }
}
