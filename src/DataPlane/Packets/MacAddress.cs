using System.Buffers.Binary;
using System.Globalization;

namespace FastPath.DataPlane.Packets;

/// <summary>A 48-bit Ethernet address held in the low bits of a ulong (network order: first octet highest).</summary>
public readonly record struct MacAddress(ulong Value)
{
    public static readonly MacAddress Broadcast = new(0xFFFF_FFFF_FFFFUL);
    public static readonly MacAddress Zero = new(0);

    public static MacAddress Read(ReadOnlySpan<byte> s) =>
        new(((ulong)BinaryPrimitives.ReadUInt16BigEndian(s) << 32) | BinaryPrimitives.ReadUInt32BigEndian(s[2..]));

    public void Write(Span<byte> s)
    {
        BinaryPrimitives.WriteUInt16BigEndian(s, (ushort)(Value >> 32));
        BinaryPrimitives.WriteUInt32BigEndian(s[2..], (uint)Value);
    }

    public bool IsMulticast => (Value & 0x0100_0000_0000UL) != 0;

    /// <summary>Parses "aa:bb:cc:dd:ee:ff" (or with '-'); false on anything else.</summary>
    public static bool TryParse(string? text, out MacAddress mac)
    {
        mac = Zero;
        if (text is null || text.Length != 17) return false;
        ulong v = 0;
        for (int i = 0; i < 6; i++)
        {
            if (i > 0 && text[i * 3 - 1] != ':' && text[i * 3 - 1] != '-') return false;
            if (!byte.TryParse(text.AsSpan(i * 3, 2), NumberStyles.AllowHexSpecifier, CultureInfo.InvariantCulture, out byte b)) return false;
            v = (v << 8) | b;
        }
        mac = new MacAddress(v);
        return true;
    }

    public override string ToString()
    {
        Span<byte> b = stackalloc byte[6];
        Write(b);
        return string.Create(CultureInfo.InvariantCulture, $"{b[0]:x2}:{b[1]:x2}:{b[2]:x2}:{b[3]:x2}:{b[4]:x2}:{b[5]:x2}");
    }
}
