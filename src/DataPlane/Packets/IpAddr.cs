using System.Buffers.Binary;
using System.Net;
using System.Net.Sockets;
using System.Runtime.CompilerServices;

namespace FastPath.DataPlane.Packets;

/// <summary>
/// An IPv4 or IPv6 address as one 128-bit value, IPv4 stored IPv4-mapped (::ffff:a.b.c.d, RFC 4291 §2.5.5.2),
/// so one table and one hash serve both families without boxing or <see cref="IPAddress"/> objects.
/// </summary>
public readonly record struct IpAddr(UInt128 Value) : ISpanFormattable
{
    // The ::ffff:0:0/96 prefix as constants, not static readonly UInt128 fields: a static struct field is read
    // through its boxed storage, which kept FromV4 and IsV4 from inlining on the packet path (seen in perf:
    // both as separate hot functions); as constants they fold into the callers (docs/BENCHMARKS.md).
    internal const ulong V4MappedLow = 0x0000_FFFF_0000_0000UL;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static IpAddr FromV4(uint address) => new(new UInt128(0, V4MappedLow | address));
    public static IpAddr ReadV4(ReadOnlySpan<byte> s) => FromV4(BinaryPrimitives.ReadUInt32BigEndian(s));
    public static IpAddr ReadV6(ReadOnlySpan<byte> s) => new(BinaryPrimitives.ReadUInt128BigEndian(s));

    public bool IsV4
    {
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        get => (ulong)(Value >> 64) == 0 && ((ulong)Value & 0xFFFF_FFFF_0000_0000UL) == V4MappedLow;
    }
    public uint V4 => (uint)Value;

    /// <summary>
    /// The 128-bit mask of a prefix of <paramref name="length"/> bits in the family's own terms (0–32 for IPv4, whose
    /// addresses sit in the low 32 bits of the mapped form, 0–128 for IPv6).
    /// </summary>
    public static UInt128 PrefixMask(bool v4, int length)
    {
        int bits = v4 ? 96 + length : length;
        return bits == 0 ? UInt128.Zero : UInt128.MaxValue << (128 - bits);
    }

    public void WriteV6(Span<byte> s) => BinaryPrimitives.WriteUInt128BigEndian(s, Value);

    /// <summary>A 64-bit mix of the address for open-addressing tables (not cryptographic).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public ulong Hash()
    {
        ulong h = (ulong)(Value >> 64) * 0x9E37_79B9_7F4A_7C15UL ^ (ulong)Value;
        h ^= h >> 29; h *= 0xBF58_476D_1CE4_E5B9UL; h ^= h >> 32;
        return h;
    }

    public static IpAddr From(IPAddress address)
    {
        if (address.AddressFamily == AddressFamily.InterNetwork)
        {
            Span<byte> b = stackalloc byte[4];
            address.TryWriteBytes(b, out _);
            return ReadV4(b);
        }
        Span<byte> b6 = stackalloc byte[16];
        address.TryWriteBytes(b6, out _);
        return ReadV6(b6);
    }

    public static bool TryParse(string? text, out IpAddr addr)
    {
        addr = default;
        if (text is null) return false;
        // Plain dotted quads (what Kubernetes writes) without an IPAddress object; anything else — leading zeros
        // (octal to IPAddress), fewer parts, IPv6 — takes IPAddress's parser.
        if (TryParseDottedQuad(text, out uint v4))
        {
            addr = FromV4(v4);
            return true;
        }
        if (!IPAddress.TryParse(text, out var ip)) return false;
        if (ip.IsIPv4MappedToIPv6) ip = ip.MapToIPv4();
        addr = From(ip);
        return true;
    }

    public IPAddress ToIPAddress()
    {
        if (IsV4)
        {
            Span<byte> b = stackalloc byte[4];
            BinaryPrimitives.WriteUInt32BigEndian(b, V4);
            return new IPAddress(b);
        }
        Span<byte> b6 = stackalloc byte[16];
        WriteV6(b6);
        return new IPAddress(b6);
    }

    /// <summary>"a.b.c.d" with four decimal parts 0–255, none with a leading zero; false for anything else.</summary>
    private static bool TryParseDottedQuad(ReadOnlySpan<char> text, out uint value)
    {
        value = 0;
        int parts = 0, i = 0;
        while (parts < 4)
        {
            int start = i, part = 0;
            while (i < text.Length && i - start < 3 && char.IsAsciiDigit(text[i])) part = part * 10 + (text[i++] - '0');
            int digits = i - start;
            if (digits == 0 || part > 255 || (digits > 1 && text[start] == '0')) return false;
            value = (value << 8) | (uint)part;
            if (++parts < 4)
            {
                if (i >= text.Length || text[i] != '.') return false;
                i++;
            }
        }
        return i == text.Length;
    }

    public override string ToString() => IsV4 ? string.Create(null, stackalloc char[15], $"{this}") : ToIPAddress().ToString();

    public string ToString(string? format, IFormatProvider? formatProvider) => ToString();

    /// <summary>Formats without a string or an <see cref="IPAddress"/> for IPv4 (compilers name 100,000 backends).</summary>
    public bool TryFormat(Span<char> destination, out int charsWritten, ReadOnlySpan<char> format, IFormatProvider? provider)
    {
        if (!IsV4) return ToIPAddress().TryFormat(destination, out charsWritten);
        uint v = V4;
        return destination.TryWrite(System.Globalization.CultureInfo.InvariantCulture,
            $"{v >> 24}.{(v >> 16) & 0xFF}.{(v >> 8) & 0xFF}.{v & 0xFF}", out charsWritten);
    }
}
