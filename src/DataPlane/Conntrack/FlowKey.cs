using System.Buffers.Binary;
using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics.X86;
using FastPath.DataPlane.Packets;
using FastPath.DataPlane.Pipeline;

namespace FastPath.DataPlane.Conntrack;

/// <summary>Which ICMP / ICMPv6 echo message a tuple is (Linux keeps the type in the ICMP tuple): none for other packets.</summary>
public enum EchoKind : byte { None, Request, Reply }

/// <summary>
/// One direction of a connection: the 5-tuple Linux conntrack calls a tuple (nf_conntrack_tuple). For ICMP and
/// ICMPv6 echo the identifier stands in for both ports, as Linux's icmp_pkt_to_tuple does, and the message type is
/// part of the tuple: the echo reply (same identifier) is found as the <see cref="Reverse"/> of the request, while a
/// request in the opposite direction with the same identifier is a connection of its own (Linux's
/// icmp_invert_tuple maps request to reply only). Other ICMP messages have ports 0.
/// </summary>
/// <remarks>
/// The addresses are kept as four <c>ulong</c> halves rather than two <see cref="IpAddr"/> values: <see cref="UInt128"/>
/// is 16-byte aligned on x64, which would pad the key to 48 bytes; as ulongs it is 40 (32 + ports + protocol), so a
/// <see cref="ConntrackEntry"/> holding both tuples, state, rewrites, decisions and counters stays at three cache lines.
/// </remarks>
public readonly struct FlowKey : IEquatable<FlowKey>
{
    private readonly ulong _srcHi, _srcLo, _dstHi, _dstLo;
    public readonly ushort SourcePort;
    public readonly ushort DestinationPort;
    public readonly byte Protocol;
    public readonly EchoKind Echo;

    public FlowKey(IpAddr source, IpAddr destination, ushort sourcePort, ushort destinationPort, byte protocol, EchoKind echo = EchoKind.None)
    {
        _srcHi = (ulong)(source.Value >> 64);
        _srcLo = (ulong)source.Value;
        _dstHi = (ulong)(destination.Value >> 64);
        _dstLo = (ulong)destination.Value;
        SourcePort = sourcePort;
        DestinationPort = destinationPort;
        Protocol = protocol;
        Echo = echo;
    }

    // An IPv4 tuple straight from the two addresses (IpAddr's v4-mapped form: high halves zero), without building
    // and splitting UInt128 values; the same key as the public constructor makes for IpAddr.FromV4 addresses.
    private FlowKey(uint source, uint destination, ushort sourcePort, ushort destinationPort, byte protocol, EchoKind echo)
    {
        _srcLo = IpAddr.V4MappedLow | source;
        _dstLo = IpAddr.V4MappedLow | destination;
        SourcePort = sourcePort;
        DestinationPort = destinationPort;
        Protocol = protocol;
        Echo = echo;
    }

    /// <summary>An IPv4 TCP/UDP tuple from its two addresses (host order), as the public constructor makes it for
    /// <see cref="IpAddr.FromV4"/> addresses.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static FlowKey Ipv4(uint source, uint destination, ushort sourcePort, ushort destinationPort, byte protocol) =>
        new(source, destination, sourcePort, destinationPort, protocol, EchoKind.None);

    public IpAddr Source => new(new UInt128(_srcHi, _srcLo));
    public IpAddr Destination => new(new UInt128(_dstHi, _dstLo));

    /// <summary>The tuple of the other direction when nothing is rewritten: addresses and ports swapped.</summary>
    public FlowKey Reverse() => new(Destination, Source, DestinationPort, SourcePort, Protocol, Opposite(Echo));

    /// <summary>The echo message answering <paramref name="echo"/>: request ↔ reply.</summary>
    public static EchoKind Opposite(EchoKind echo) => echo switch
    {
        EchoKind.Request => EchoKind.Reply,
        EchoKind.Reply => EchoKind.Request,
        _ => EchoKind.None,
    };

    public bool Equals(FlowKey other) => Same(in this, in other);

    /// <summary>Equality by reference to both keys: the lookup loops compare a table's tuple in place, without copying 40 bytes.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static bool Same(in FlowKey a, in FlowKey b)
        => ((a._srcHi ^ b._srcHi) | (a._srcLo ^ b._srcLo) | (a._dstHi ^ b._dstHi) | (a._dstLo ^ b._dstLo)) == 0
            && a.SourcePort == b.SourcePort && a.DestinationPort == b.DestinationPort && a.Protocol == b.Protocol && a.Echo == b.Echo;

    public override bool Equals(object? obj) => obj is FlowKey k && Equals(k);
    public static bool operator ==(FlowKey a, FlowKey b) => a.Equals(b);
    public static bool operator !=(FlowKey a, FlowKey b) => !a.Equals(b);

    /// <summary>An unseeded hash for general-purpose collections (tests, the control plane); tables use <see cref="Hash(ulong)"/>.</summary>
    public override int GetHashCode() => (int)Hash(0x243F_6A88_85A3_08D3UL);

    /// <summary>
    /// A 64-bit hash for open-addressing tables: three 64×64→128-bit multiply-folds (the "mum" step of wyhash),
    /// about 3 ns. Not cryptographic. Each table draws its own <paramref name="seed"/> at start-up, so the slot a
    /// flow lands in cannot be computed offline and an attacker cannot pre-build a set of flows that all collide
    /// (the hash-flooding attack Linux answers with a random nf_conntrack_hash_rnd and SipHash). An attacker who can
    /// time lookups could still learn collisions adaptively; the table's eviction policy and bounded probe window
    /// limit what that costs.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public ulong Hash(ulong seed)
    {
        ulong tail = (ulong)Echo << 40 | (ulong)SourcePort << 24 | (ulong)DestinationPort << 8 | Protocol;
        ulong a = Mum(_srcHi ^ seed ^ 0xA076_1D64_78BD_642FUL, _srcLo ^ 0xE703_7ED1_A0B4_28DBUL);
        ulong b = Mum(_dstHi ^ 0x8EBC_6AF0_9C88_C6E3UL, _dstLo ^ seed ^ 0x5899_65CC_7537_4CC3UL);
        return Mum(a ^ tail ^ 0x1D8E_4E27_C47D_124FUL, b ^ seed);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static ulong Mum(ulong x, ulong y)
    {
        // MULX for the high half and a plain multiply for the low one: the same two halves as Math.BigMul, whose low
        // half the JIT passes through memory (a store and a reload on the hash's dependency chain).
        if (Bmi2.X64.IsSupported) return Bmi2.X64.MultiplyNoFlags(x, y) ^ (x * y);
        ulong hi = Math.BigMul(x, y, out ulong lo);
        return hi ^ lo;
    }

    /// <summary>
    /// The tuple of a parsed packet (see <see cref="PacketParser"/>): addresses from the IP header, ports from
    /// <paramref name="m"/>, and for ICMP/ICMPv6 echo request/reply the identifier as both ports. False for
    /// non-IP packets, non-first fragments (no ports: Linux reassembles before conntrack; we do not track them)
    /// and a frame too short for what the metadata claims.
    /// </summary>
    public static bool TryFromPacket(ReadOnlySpan<byte> frame, in PacketMeta m, out FlowKey key)
    {
        key = default;
        if ((m.Flags & PacketFlags.NonFirstFragment) != 0) return false;
        int l3 = m.L3Offset;
        IpAddr src, dst;
        if (m.L3 == L3Kind.Ipv4 && m.IpProtocol is IpProtocol.Tcp or IpProtocol.Udp)
        {
            if (frame.Length < l3 + Ipv4Header.MinLength) return false;
            var addresses = frame.Slice(l3 + 12, 8);
            key = new FlowKey(BinaryPrimitives.ReadUInt32BigEndian(addresses), BinaryPrimitives.ReadUInt32BigEndian(addresses[4..]),
                m.SourcePort, m.DestinationPort, m.IpProtocol, EchoKind.None);
            return true;
        }
        if (m.L3 == L3Kind.Ipv4)
        {
            if (frame.Length < l3 + Ipv4Header.MinLength) return false;
            src = IpAddr.ReadV4(frame[(l3 + 12)..]);
            dst = IpAddr.ReadV4(frame[(l3 + 16)..]);
        }
        else if (m.L3 == L3Kind.Ipv6)
        {
            if (frame.Length < l3 + Ipv6Header.Length) return false;
            src = IpAddr.ReadV6(frame[(l3 + 8)..]);
            dst = IpAddr.ReadV6(frame[(l3 + 24)..]);
        }
        else return false;

        ushort sport = m.SourcePort, dport = m.DestinationPort;
        byte proto = m.IpProtocol;
        var echo = EchoKind.None;
        if ((proto == IpProtocol.Icmp || proto == IpProtocol.Icmpv6) && (m.Flags & PacketFlags.HasL4) != 0)
        {
            sport = dport = 0;
            int l4 = m.L4Offset;
            if (frame.Length >= l4 + IcmpHeader.Length && (echo = EchoOf(proto, frame[l4])) != EchoKind.None)
                sport = dport = BinaryPrimitives.ReadUInt16BigEndian(frame[(l4 + 4)..]);
        }
        key = new FlowKey(src, dst, sport, dport, proto, echo);
        return true;
    }

    /// <summary>Echo request or reply: the ICMP messages whose identifier makes a flow (RFC 792, RFC 4443 §4).</summary>
    public static bool IsEcho(byte protocol, byte icmpType) => EchoOf(protocol, icmpType) != EchoKind.None;

    /// <summary>Which echo message an ICMP (<paramref name="protocol"/> 1) or ICMPv6 (58) type is, if any.</summary>
    public static EchoKind EchoOf(byte protocol, byte icmpType) => (protocol, icmpType) switch
    {
        (IpProtocol.Icmp, IcmpHeader.EchoRequest) or (IpProtocol.Icmpv6, Icmpv6.EchoRequest) => EchoKind.Request,
        (IpProtocol.Icmp, IcmpHeader.EchoReply) or (IpProtocol.Icmpv6, Icmpv6.EchoReply) => EchoKind.Reply,
        _ => EchoKind.None,
    };

    public override string ToString() => $"{Protocol} {Source}:{SourcePort} -> {Destination}:{DestinationPort}";
}
