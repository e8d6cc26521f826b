using System.Numerics;
using System.Runtime.CompilerServices;
using System.Text;

namespace FastPath.DataPlane.Services;

/// <summary>
/// One backend as the Maglev table sees it. <see cref="Identity"/> is what places the backend in the table, so it must be
/// the same on every node: the control plane derives it from the backend's name (e.g. "10.244.1.11:8080") with
/// <see cref="IdentityOf"/>, never from a list position (Maglev paper, Eisenbud et al., NSDI 2016, §3.4: the permutation
/// depends only on the backend's name, which is what keeps tables equal across machines and disruption small).
/// <see cref="Index"/> is the caller's backend slot that <see cref="MaglevTable.Lookup"/> returns.
/// </summary>
public readonly struct MaglevBackend
{
    public MaglevBackend(ulong identity, int index, int weight = 1)
    {
        Identity = identity;
        Index = index;
        Weight = weight;
    }

    /// <summary>Stable 64-bit name of the backend; equal on every node.</summary>
    public ulong Identity { get; }

    /// <summary>What a lookup returns: the caller's backend slot (≥ 0).</summary>
    public int Index { get; }

    /// <summary>Relative share of the table (≥ 1); a backend of weight 2 gets about twice the slots of weight 1.</summary>
    public int Weight { get; }

    /// <summary>A backend named by the control plane, e.g. <c>MaglevBackend.Named("10.244.1.11:8080", 3)</c>.</summary>
    public static MaglevBackend Named(string name, int index, int weight = 1) => new(IdentityOf(name), index, weight);

    /// <summary>
    /// Stable 64-bit identity of a backend name: FNV-1a 64 over the name's UTF-8 bytes, then the MurmurHash3 fmix64
    /// finaliser so nearby names ("...:8080", "...:8081") differ in every bit. Fixed constants, no per-process
    /// randomisation (unlike <see cref="string.GetHashCode()"/>), so every node computes the same value. Control path.
    /// </summary>
    public static ulong IdentityOf(string name)
    {
        ArgumentNullException.ThrowIfNull(name);
        return IdentityOf(name.AsSpan());
    }

    /// <summary><see cref="IdentityOf(string)"/> of a name formatted into a span (no string built for it).</summary>
    public static ulong IdentityOf(ReadOnlySpan<char> name)
    {
        const ulong FnvOffset = 0xCBF29CE484222325UL;
        const ulong FnvPrime = 0x100000001B3UL;
        int max = Encoding.UTF8.GetMaxByteCount(name.Length);
        Span<byte> bytes = max <= 256 ? stackalloc byte[256] : new byte[max];
        int length = Encoding.UTF8.GetBytes(name, bytes);
        ulong h = FnvOffset;
        foreach (byte b in bytes[..length]) h = (h ^ b) * FnvPrime;
        return Mix64(h ^ (ulong)length);
    }

    /// <summary>MurmurHash3's fmix64 (Appleby, public domain): a bijective 64-bit avalanche.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static ulong Mix64(ulong x)
    {
        x ^= x >> 33;
        x *= 0xFF51AFD7ED558CCDUL;
        x ^= x >> 33;
        x *= 0xC4CEB9FE1A85EC53UL;
        x ^= x >> 33;
        return x;
    }

    /// <summary>
    /// The two independent hashes of §3.4 (offset and skip) for this identity and seed. Katran (MaglevBase.cpp) hashes
    /// the endpoint with MurmurHash3 under two different seed pairs; we do the same with two keyed rounds of fmix64, each
    /// keyed by a different function of the seed, so the two values are unrelated.
    /// </summary>
    internal static (ulong OffsetHash, ulong SkipHash) PermutationHashes(ulong identity, ulong seed)
    {
        ulong k1 = Mix64(seed ^ 0x6F66667365740000UL); // "offset"
        ulong k2 = Mix64(BitOperations.RotateLeft(seed, 32) ^ 0x736B697000000000UL); // "skip"
        return (Mix64(Mix64(identity ^ k1) + k1), Mix64(Mix64(identity ^ k2) + k2));
    }
}
