using System.Buffers.Binary;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;

namespace FastPath.DataPlane.Packets;

/// <summary>
/// The Internet checksum (RFC 1071): full computation over packet bytes, the IPv4/IPv6 pseudo-headers, and the
/// incremental update of RFC 1624 used when NAT rewrites an address or port or a hop decrements the TTL.
/// </summary>
/// <remarks>
/// <para>
/// A <em>partial sum</em> (the <c>uint</c> values here) is any unsigned integer congruent modulo 0xFFFF to the
/// ones'-complement sum; it is only meaningful after <see cref="Fold"/> or <see cref="FoldNoComplement"/>.
/// Partial sums chain: <c>Sum(b, Sum(a))</c> is the sum over <c>a</c> then <c>b</c> provided <c>a</c> has even
/// length (an odd trailing byte is padded with zero, RFC 1071 §4.1, so only the last piece may be odd).
/// </para>
/// <para>
/// Folding keeps the one fact that distinguishes the two ones'-complement zeros: a sum over data that is not
/// all zero folds to 0xFFFF (−0), never 0x0000 (+0), exactly as end-around-carry addition does, so every
/// function here gives the same bits as a byte-by-byte RFC 1071 computation.
/// </para>
/// <para>Nothing here allocates or throws for packet contents; a span shorter than a fixed-size field
/// (a 16-byte IPv6 address, a 12-byte IPv4 header prefix) is a caller bug and throws like any span slice.</para>
/// </remarks>
[SkipLocalsInit]
public static class Checksum
{
    public const byte ProtocolIcmp = 1;
    public const byte ProtocolTcp = 6;
    public const byte ProtocolUdp = 17;
    public const byte ProtocolIcmpV6 = 58;

    /// <summary>
    /// The RFC 1071 sum of <paramref name="data"/> as big-endian 16-bit words (an odd trailing byte padded with
    /// zero) added to <paramref name="initial"/>, folded to 16 bits (0..0xFFFF) but not complemented.
    /// Vectorised with <see cref="Vector256"/>/<see cref="Vector128"/>; equal to <see cref="SumScalar"/> bit for bit.
    /// </summary>
    public static uint Sum(ReadOnlySpan<byte> data, uint initial = 0)
    {
        if (!BitConverter.IsLittleEndian || data.Length < 16)
            return SumScalar(data, initial);

        // RFC 1071 §2(B): the sum is byte-order independent, so sum the bytes as host-order (little-endian)
        // words and swap the folded result once, instead of swapping every word. Words of 32 and 64 bits are
        // also fine (§2(C)): 2^16 ≡ 1 (mod 0xFFFF), so any multiple-of-16-bit word size gives the same residue.
        ref byte p = ref MemoryMarshal.GetReference(data);
        nuint n = (nuint)data.Length;
        nuint i = 0;
        ulong acc = 0;

        if (Vector256.IsHardwareAccelerated && n >= 64)
        {
            // Widen 32-bit lanes into 64-bit accumulators: a lane can take 2^32 loads before it could overflow,
            // far beyond any span length, so the loop needs no carry handling. Two accumulators per half keep
            // the adds independent.
            Vector256<ulong> a0 = Vector256<ulong>.Zero, a1 = Vector256<ulong>.Zero;
            Vector256<ulong> a2 = Vector256<ulong>.Zero, a3 = Vector256<ulong>.Zero;
            for (; i + 64 <= n; i += 64)
            {
                var (l0, h0) = Vector256.Widen(Vector256.LoadUnsafe(ref p, i).AsUInt32());
                var (l1, h1) = Vector256.Widen(Vector256.LoadUnsafe(ref p, i + 32).AsUInt32());
                a0 += l0; a1 += h0; a2 += l1; a3 += h1;
            }
            if (i + 32 <= n)
            {
                var (l0, h0) = Vector256.Widen(Vector256.LoadUnsafe(ref p, i).AsUInt32());
                a0 += l0; a1 += h0;
                i += 32;
            }
            // Each lane is < 2^32 · (n/32) < 2^58, so adding the 16 lanes cannot overflow 64 bits.
            acc = Vector256.Sum((a0 + a1) + (a2 + a3));
        }

        if (Vector128.IsHardwareAccelerated && i + 16 <= n)
        {
            Vector128<ulong> b0 = Vector128<ulong>.Zero, b1 = Vector128<ulong>.Zero;
            for (; i + 16 <= n; i += 16)
            {
                var (l, h) = Vector128.Widen(Vector128.LoadUnsafe(ref p, i).AsUInt32());
                b0 += l; b1 += h;
            }
            acc = AddWithCarry(acc, Vector128.Sum(b0 + b1));
        }

        // Scalar tail: at most 15 bytes (more only without SIMD), 64 bits at a time with end-around carry.
        for (; i + 8 <= n; i += 8)
            acc = AddWithCarry(acc, Unsafe.ReadUnaligned<ulong>(ref Unsafe.Add(ref p, i)));
        if (i + 4 <= n) { acc = AddWithCarry(acc, Unsafe.ReadUnaligned<uint>(ref Unsafe.Add(ref p, i))); i += 4; }
        if (i + 2 <= n) { acc = AddWithCarry(acc, Unsafe.ReadUnaligned<ushort>(ref Unsafe.Add(ref p, i))); i += 2; }
        // Odd byte: in host (little-endian) order the zero pad is the high byte.
        if (i < n) acc = AddWithCarry(acc, Unsafe.Add(ref p, i));

        uint swapped = BinaryPrimitives.ReverseEndianness((ushort)Fold64(acc));
        return Fold64((ulong)swapped + initial);
    }

    /// <summary>
    /// The obviously-correct reference for <see cref="Sum"/>: one big-endian 16-bit word at a time into a
    /// 64-bit accumulator, folded at the end (RFC 1071 §4.1). Kept for tests and benchmarks.
    /// </summary>
    public static uint SumScalar(ReadOnlySpan<byte> data, uint initial = 0)
    {
        ulong acc = initial;
        int i = 0;
        for (; i + 1 < data.Length; i += 2)
            acc += (uint)(data[i] << 8 | data[i + 1]);
        if (i < data.Length)
            acc += (uint)data[i] << 8;
        return Fold64(acc);
    }

    /// <summary>The checksum to write into a header: fold the carries of a partial sum, then complement.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static ushort Fold(uint sum) => (ushort)~FoldNoComplement(sum);

    /// <summary>
    /// Fold a partial sum to 16 bits without complementing. A non-zero sum folds to 1..0xFFFF (never 0), as
    /// end-around-carry addition would; zero stays zero.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static ushort FoldNoComplement(uint sum)
    {
        sum = (sum & 0xFFFF) + (sum >> 16);   // ≤ 0x1FFFE
        sum = (sum & 0xFFFF) + (sum >> 16);   // ≤ 0xFFFF
        return (ushort)sum;
    }

    /// <summary>
    /// The IPv4 pseudo-header partial sum for TCP (RFC 9293 §3.1) and UDP (RFC 768): source, destination,
    /// zero + protocol, and the L4 length (header plus data). Pass it as <c>initial</c> to <see cref="Sum"/>.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static uint PseudoHeaderV4(uint src, uint dst, byte protocol, int l4Length)
        => (src >> 16) + (src & 0xFFFF) + (dst >> 16) + (dst & 0xFFFF) + protocol + (uint)(ushort)l4Length;

    /// <summary>
    /// The IPv6 pseudo-header partial sum (RFC 8200 §8.1): source, destination, 32-bit upper-layer packet
    /// length, three zero bytes and the next header of the upper-layer protocol (not of any extension header).
    /// <paramref name="src16"/> and <paramref name="dst16"/> must hold at least 16 bytes.
    /// </summary>
    public static uint PseudoHeaderV6(ReadOnlySpan<byte> src16, ReadOnlySpan<byte> dst16, byte nextHeader, int l4Length)
        => PseudoHeaderV6(BinaryPrimitives.ReadUInt128BigEndian(src16), BinaryPrimitives.ReadUInt128BigEndian(dst16),
            nextHeader, l4Length);

    /// <summary>The IPv6 pseudo-header partial sum with the addresses as 128-bit values (see <see cref="IpAddr"/>).</summary>
    public static uint PseudoHeaderV6(UInt128 src, UInt128 dst, byte nextHeader, int l4Length)
    {
        ulong acc = (ulong)Words128(src) + Words128(dst) + (uint)l4Length + nextHeader;
        return Fold64(acc);
    }

    /// <summary>
    /// The IPv4 header checksum (RFC 791 §3.1) over <paramref name="header"/> (IHL·4 bytes, at least 12),
    /// with the checksum field at bytes 10–11 <em>treated as zero</em> whatever it holds, so the caller can
    /// compute the value to store without clearing the field first.
    /// </summary>
    public static ushort Ipv4Header(ReadOnlySpan<byte> header)
    {
        // IPv4 headers are 20..60 bytes in 32-bit words; summing words into 64 bits beats the SIMD set-up.
        // Word 2 is TTL | protocol | checksum: keep only its upper half.
        ulong acc = BinaryPrimitives.ReadUInt32BigEndian(header)
            + (ulong)BinaryPrimitives.ReadUInt32BigEndian(header[4..])
            + (BinaryPrimitives.ReadUInt32BigEndian(header[8..]) & 0xFFFF_0000u);
        int i = 12;
        for (; i + 4 <= header.Length; i += 4)
            acc += BinaryPrimitives.ReadUInt32BigEndian(header[i..]);
        // An IHL-sized header has no tail; anything else is summed per RFC 1071 rather than dropped.
        uint sum = Fold64(acc);
        if (i < header.Length) sum = SumScalar(header[i..], sum);
        return Fold(sum);
    }

    /// <summary>True when the IPv4 header, checksum field included, sums to −0 (RFC 1071 §1 verification).</summary>
    public static bool Ipv4HeaderValid(ReadOnlySpan<byte> header)
    {
        // The parser verifies every IPv4 header (RFC 1812 §5.2.2). RFC 1071 §2(B): the sum is byte-order
        // independent and a valid header sums to 0xFFFF either way, so add host-order 32-bit words without swapping.
        // ParseBenchmarks: SIMD Sum 31.6 ns → 32-bit big-endian word loop 18.4 ns per Eth/IPv4/TCP parse.
        if ((header.Length & 3) != 0 || header.Length < 20) return FoldNoComplement(Sum(header)) == 0xFFFF;
        ref byte p = ref MemoryMarshal.GetReference(header);
        ulong acc = (ulong)Unsafe.ReadUnaligned<uint>(ref p) + Unsafe.ReadUnaligned<uint>(ref Unsafe.Add(ref p, 4))
            + Unsafe.ReadUnaligned<uint>(ref Unsafe.Add(ref p, 8)) + Unsafe.ReadUnaligned<uint>(ref Unsafe.Add(ref p, 12))
            + Unsafe.ReadUnaligned<uint>(ref Unsafe.Add(ref p, 16));
        for (int i = 20; i < header.Length; i += 4)
            acc += Unsafe.ReadUnaligned<uint>(ref Unsafe.Add(ref p, i));
        return FoldNoComplement(Fold64(acc)) == 0xFFFF;
    }

    /// <summary>
    /// TCP or UDP checksum over IPv4 for <paramref name="l4"/> (header plus data) whose checksum field the
    /// caller has zeroed. For UDP (<paramref name="protocol"/> 17) a computed 0x0000 is returned as 0xFFFF,
    /// because on the wire 0 means "no checksum" (RFC 768); both are −0/+0 of the same value, so receivers
    /// verify it either way. TCP returns 0x0000 as computed.
    /// </summary>
    public static ushort TransportV4(uint src, uint dst, byte protocol, ReadOnlySpan<byte> l4)
    {
        ushort c = Fold(Sum(l4, PseudoHeaderV4(src, dst, protocol, l4.Length)));
        return protocol == ProtocolUdp ? UdpTransmitted(c) : c;
    }

    /// <summary>
    /// TCP, UDP or ICMPv6 checksum over IPv6 (RFC 8200 §8.1) for <paramref name="l4"/> whose checksum field
    /// the caller has zeroed. <paramref name="nextHeader"/> is the upper-layer protocol. For UDP a computed 0
    /// is returned as 0xFFFF (RFC 8200 §8.1: a zero UDP checksum is not allowed over IPv6 except RFC 6935
    /// tunnels).
    /// </summary>
    public static ushort TransportV6(ReadOnlySpan<byte> src16, ReadOnlySpan<byte> dst16, byte nextHeader, ReadOnlySpan<byte> l4)
    {
        ushort c = Fold(Sum(l4, PseudoHeaderV6(src16, dst16, nextHeader, l4.Length)));
        return nextHeader == ProtocolUdp ? UdpTransmitted(c) : c;
    }

    /// <summary>
    /// True when a TCP/UDP segment over IPv4, checksum field in place, verifies. A UDP checksum of 0 means the
    /// sender computed none (RFC 768) and is accepted.
    /// </summary>
    public static bool TransportV4Valid(uint src, uint dst, byte protocol, ReadOnlySpan<byte> l4)
    {
        if (protocol == ProtocolUdp && l4.Length >= 8 && l4[6] == 0 && l4[7] == 0) return true;
        return FoldNoComplement(Sum(l4, PseudoHeaderV4(src, dst, protocol, l4.Length))) == 0xFFFF;
    }

    /// <summary>True when a TCP/UDP/ICMPv6 message over IPv6, checksum field in place, verifies.</summary>
    public static bool TransportV6Valid(ReadOnlySpan<byte> src16, ReadOnlySpan<byte> dst16, byte nextHeader, ReadOnlySpan<byte> l4)
        => FoldNoComplement(Sum(l4, PseudoHeaderV6(src16, dst16, nextHeader, l4.Length))) == 0xFFFF;

    /// <summary>ICMPv4 checksum (RFC 792): over the ICMP message only, no pseudo-header; field zeroed by the caller.</summary>
    public static ushort Icmpv4(ReadOnlySpan<byte> icmp) => Fold(Sum(icmp));

    /// <summary>
    /// ICMPv6 checksum (RFC 4443 §2.3): over the IPv6 pseudo-header with next header 58 and the ICMPv6
    /// message; field zeroed by the caller.
    /// </summary>
    public static ushort Icmpv6(ReadOnlySpan<byte> src16, ReadOnlySpan<byte> dst16, ReadOnlySpan<byte> icmp)
        => TransportV6(src16, dst16, ProtocolIcmpV6, icmp);

    /// <summary>
    /// The value a computed UDP checksum is transmitted as: 0x0000 becomes 0xFFFF (RFC 768, RFC 8200 §8.1),
    /// because a zero field means "no checksum". Apply it after every full or incremental UDP computation.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static ushort UdpTransmitted(ushort checksum) => checksum == 0 ? (ushort)0xFFFF : checksum;

    // Incremental update, RFC 1624 eqn. 3: HC' = ~(~HC + ~m + m').
    //
    // RFC 1624 §3–4: the older eqn. 2 of RFC 1141 (HC' = HC + m + ~m') can produce 0xFFFF (−0) where a full
    // recomputation gives 0x0000 (+0); eqn. 3 complements a sum that is never +0 for non-zero data, so its
    // result is bit-for-bit what a full recomputation would give. We sum in integers and fold, which yields
    // the same bits as end-around-carry addition.
    //
    // UDP over IPv4: a checksum field of 0 means "no checksum" (RFC 768). Callers must NOT update a zero UDP
    // checksum (leave it 0), and must pass the result of an update of a UDP checksum through
    // UdpTransmitted, since the updated value may legitimately come out as 0x0000.

    /// <summary>RFC 1624 eqn. 3 for one 16-bit word (a port, an ICMP identifier, a TTL|protocol word).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static ushort Update16(ushort checksum, ushort oldWord, ushort newWord)
        => Fold((uint)(ushort)~checksum + (ushort)~oldWord + newWord);

    /// <summary>
    /// RFC 1624 eqn. 3 for a 32-bit field, i.e. an IPv4 address: use it for the IPv4 header checksum and for
    /// the TCP/UDP checksum, whose pseudo-header covers the addresses. See the note above on zero UDP checksums.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static ushort Update32(ushort checksum, uint oldValue, uint newValue)
        => UpdateBy(checksum, Delta32(oldValue, newValue));

    /// <summary>RFC 1624 eqn. 3 for a 128-bit field, i.e. an IPv6 address in the TCP/UDP/ICMPv6 pseudo-header.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static ushort Update128(ushort checksum, UInt128 oldValue, UInt128 newValue)
        => UpdateBy(checksum, Delta128(oldValue, newValue));

    /// <summary>
    /// RFC 1624 eqn. 3 for several rewritten fields at once: <paramref name="delta"/> is the sum of their
    /// <see cref="Delta16"/>/<see cref="Delta32"/>/<see cref="Delta128"/> terms (Σ ~m + m'), folded once. One's
    /// complement addition is associative, so this is bit for bit the result of one update per field (and of a full
    /// recomputation), at one fold instead of one per field.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static ushort UpdateBy(ushort checksum, ulong delta) => Fold(Fold64((ulong)(ushort)~checksum + delta));

    /// <summary>The ~m + m' term of one 16-bit field for <see cref="UpdateBy"/>.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static ulong Delta16(ushort oldWord, ushort newWord) => (ulong)(ushort)~oldWord + newWord;

    /// <summary>The ~m + m' terms of a 32-bit field (an IPv4 address) for <see cref="UpdateBy"/>.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static ulong Delta32(uint oldValue, uint newValue)
        => (ulong)(ushort)~(oldValue >> 16) + (ushort)~oldValue + (newValue >> 16) + (newValue & 0xFFFF);

    /// <summary>The ~m + m' terms of a 128-bit field (an IPv6 address) for <see cref="UpdateBy"/>.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static ulong Delta128(UInt128 oldValue, UInt128 newValue)
        // Σ ~m_i over eight words = 8·0xFFFF − Σ m_i; both sides are small enough for 64-bit integers.
        => 8 * 0xFFFFul - Words128(oldValue) + Words128(newValue);

    /// <summary><see cref="Ipv4HeaderValid"/> for an option-less (20-byte) header starting at <paramref name="header"/>.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static bool Ipv4HeaderValid20(ref byte header)
    {
        ulong acc = (ulong)Unsafe.ReadUnaligned<uint>(ref header) + Unsafe.ReadUnaligned<uint>(ref Unsafe.Add(ref header, 4))
            + Unsafe.ReadUnaligned<uint>(ref Unsafe.Add(ref header, 8)) + Unsafe.ReadUnaligned<uint>(ref Unsafe.Add(ref header, 12))
            + Unsafe.ReadUnaligned<uint>(ref Unsafe.Add(ref header, 16));
        // Folding keeps the sum's residue mod 0xFFFF and gives 1..0xFFFF for a non-zero sum: it is 0xFFFF exactly when
        // the sum is a non-zero multiple of 0xFFFF (one multiply instead of four folds).
        return acc != 0 && acc % 0xFFFF == 0;
    }

    /// <summary>
    /// RFC 1624 eqn. 3 for a TTL change. TTL shares a 16-bit word with the protocol (RFC 791 §3.1, bytes 8–9);
    /// the protocol byte cancels in ~m + m', so only the two TTL values are needed.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static ushort UpdateTtl(ushort checksum, byte oldTtl, byte newTtl)
        => Fold((uint)(ushort)~checksum + (0xFFFFu - ((uint)oldTtl << 8)) + ((uint)newTtl << 8));

    /// <summary>
    /// Forwarding's TTL decrement (RFC 1812 §5.3.1) on an IPv4 header in place, with the checksum updated
    /// incrementally (RFC 1624; RFC 1812 §5.3.1 allows it). Returns false and leaves the header untouched when
    /// the TTL is 0 or 1: the packet must be dropped with ICMP Time Exceeded instead.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static bool Ipv4DecrementTtl(Span<byte> header)
    {
        byte ttl = header[8];
        if (ttl <= 1) return false;
        header[8] = (byte)(ttl - 1);
        ushort c = BinaryPrimitives.ReadUInt16BigEndian(header[10..]);
        BinaryPrimitives.WriteUInt16BigEndian(header[10..], UpdateTtl(c, ttl, (byte)(ttl - 1)));
        return true;
    }

    // Sum of the eight 16-bit words of a 128-bit value; ≤ 8·0xFFFF.
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static uint Words128(UInt128 v) => Words64((ulong)(v >> 64)) + Words64((ulong)v);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static uint Words64(ulong v)
        => (uint)(v >> 48) + (uint)(v >> 32 & 0xFFFF) + (uint)(v >> 16 & 0xFFFF) + (uint)(v & 0xFFFF);

    // 64-bit add with end-around carry: 2^64 ≡ 1 (mod 0xFFFF), and the result stays non-zero once non-zero.
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static ulong AddWithCarry(ulong a, ulong b)
    {
        ulong s = a + b;
        return s + (s < b ? 1ul : 0ul);
    }

    // Fold a 64-bit sum to 16 bits (not complemented); zero iff the input is zero.
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static uint Fold64(ulong acc)
    {
        acc = (acc & 0xFFFF_FFFF) + (acc >> 32);   // ≤ 2^33
        acc = (acc & 0xFFFF_FFFF) + (acc >> 32);   // < 2^32
        return FoldNoComplement((uint)acc);
    }
}
