using System.Runtime.CompilerServices;

namespace FastPath.DataPlane.Pipeline;

/// <summary>
/// Spreads packets over workers the way a NIC's RSS with a symmetric key does: both directions of a connection hash
/// alike, so one worker sees all of a flow's packets and its conntrack needs no locks. The (address, port) ends are
/// put in order before hashing. Fragments hash on the addresses only (later fragments carry no ports), non-IP
/// frames (ARP) all go to worker 0.
/// </summary>
/// <remarks>
/// The hash sees the packet as it arrives. A connection whose reply carries other addresses because of NAT (Service
/// DNAT, masquerade) is symmetric only before translation, so its replies may land on another worker: that is why
/// the bench's Service scenarios send one direction and why <c>replay</c> runs one worker (docs/BENCHMARKS.md).
/// </remarks>
public static class SymmetricFlowHash
{
    /// <summary>The hash of a parsed packet; <paramref name="frame"/> is the packet's frame (offsets of <paramref name="m"/>).</summary>
    public static uint Compute(ReadOnlySpan<byte> frame, in PacketMeta m)
    {
        if (m.L3 is not (L3Kind.Ipv4 or L3Kind.Ipv6)) return 0;
        UInt128 a = PacketAddresses.Source(frame, in m).Value, b = PacketAddresses.Destination(frame, in m).Value;
        bool ports = (m.Flags & (PacketFlags.HasL4 | PacketFlags.Fragment)) == PacketFlags.HasL4;
        uint pa = ports ? m.SourcePort : 0u, pb = ports ? m.DestinationPort : 0u;
        if (a > b || (a == b && pa > pb))
        {
            (a, b) = (b, a);
            (pa, pb) = (pb, pa);
        }
        ulong h = Mix((ulong)a ^ Mix((ulong)(a >> 64) ^ 0x9E37_79B9_7F4A_7C15UL));
        h = Mix(h ^ (ulong)b ^ Mix((ulong)(b >> 64) + m.IpProtocol));
        return (uint)Mix(h ^ (pa << 16 | pb));
    }

    /// <summary>Worker index in [0, <paramref name="workers"/>) for a hash (multiply-shift, no division).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static int Worker(uint hash, int workers) => (int)(((ulong)hash * (uint)workers) >> 32);

    /// <summary>The 64-bit finalizer of MurmurHash3 (fmix64): every input bit affects every output bit.</summary>
    private static ulong Mix(ulong x)
    {
        x ^= x >> 33;
        x *= 0xFF51_AFD7_ED55_8CCDUL;
        x ^= x >> 33;
        x *= 0xC4CE_B9FE_1A85_EC53UL;
        return x ^ (x >> 33);
    }
}
