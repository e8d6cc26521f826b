using System.Buffers.Binary;
using System.Runtime.CompilerServices;
using FastPath.DataPlane.Conntrack;
using FastPath.DataPlane.Packets;
using FastPath.DataPlane.Pipeline;
using FastPath.DataPlane.Services;
using FastPath.DataPlane.Telemetry;

namespace FastPath.DataPlane.Nat;

/// <summary>
/// NAT expressed the way Linux nf_nat does it: a connection's two tuples say everything. A packet of the original
/// direction is rewritten to look like the reverse of the reply tuple, a reply to look like the reverse of the
/// original tuple; whichever of source and destination differ get rewritten (DNAT, SNAT, or both for full NAT).
/// </summary>
public static class ConntrackNat
{
    private const int PortAttempts = 64;
    private const int PortRangeFirst = 1024;
    private const int PortRangeSize = 65536 - PortRangeFirst;

    /// <summary>
    /// Inserts a connection whose reply comes from <paramref name="replySource"/>:<paramref name="replySourcePort"/>
    /// to <paramref name="replyDestination"/>. The reply's destination port starts as the original source port and is
    /// remapped only when another connection already holds that reply tuple (a second pod masqueraded to the same
    /// peer, or one backend behind several Service addresses reached from the same client port), by a hash-ordered
    /// probe over 1024–65535 — nf_nat's unique-tuple rule. Returns the entry index, or Full / a failure.
    /// </summary>
    public static int InsertUnique(ConntrackTable table, in FlowKey original, IpAddr replySource, ushort replySourcePort,
        IpAddr replyDestination, long now)
    {
        bool hasPorts = original.SourcePort != 0 || original.Protocol is IpProtocol.Tcp or IpProtocol.Udp or IpProtocol.Sctp;
        ushort port = original.SourcePort;
        uint step = (uint)(original.GetHashCode() | 1);
        for (int attempt = 0; attempt < PortAttempts; attempt++)
        {
            // An echo identifier is both "ports" of its tuples: a new one replaces both.
            ushort replyPort = original.Echo == EchoKind.None ? replySourcePort : port;
            var reply = new FlowKey(replySource, replyDestination, replyPort, port, original.Protocol, FlowKey.Opposite(original.Echo));
            int index = table.Insert(original, reply, now);
            if (index != ConntrackTable.Clash || !hasPorts) return index;
            port = (ushort)(PortRangeFirst + (uint)(step * (uint)(attempt + 1)) % PortRangeSize);
        }
        return ConntrackTable.Full;
    }

    /// <summary>Rewrites the packet (whose tuple is <paramref name="current"/>) so its tuple becomes <paramref name="target"/>.</summary>
    public static bool Rewrite(Span<byte> frame, ref PacketMeta m, in FlowKey current, in FlowKey target)
    {
        if ((current.Source != target.Source || current.SourcePort != target.SourcePort)
            && !NatRewriter.RewriteSource(frame, ref m, target.Source, target.SourcePort)) return false;
        if ((current.Destination != target.Destination || current.DestinationPort != target.DestinationPort)
            && !NatRewriter.RewriteDestination(frame, ref m, target.Destination, target.DestinationPort)) return false;
        return true;
    }

    /// <summary>
    /// The step every packet takes once connections are tracked: a packet of a known connection, in either direction,
    /// is counted into the connection's state and translated (a masqueraded flow's packets and replies, a Service
    /// flow's packets and replies alike). Returns false when the packet belongs to no connection.
    /// </summary>
    /// <param name="services">The snapshot's Services: a Service connection opened under an older table is checked
    /// against it first (<see cref="ServiceNat.StillValid"/>) and released when its frontend or backend is gone.</param>
    public static bool TryTranslateTracked<TObserver>(ConntrackTable table, ServiceTable services, Span<byte> frame, ref PacketMeta m, long now,
        out bool malformed, ref TObserver observer) where TObserver : struct, IPacketObserver
    {
        malformed = false;
        return FlowKey.TryFromPacket(frame, in m, out var key)
            && TranslateTracked(table, services, frame, ref m, key, table.Tag(key), now, out malformed, ref observer);
    }

    /// <summary>
    /// <see cref="TryTranslateTracked"/> for a packet whose tuple <paramref name="key"/> and its <paramref name="tag"/>
    /// (<see cref="ConntrackTable.Tag"/>) were taken before (the engine does it for a whole batch, prefetching).
    /// </summary>
    public static bool TranslateTracked<TObserver>(ConntrackTable table, ServiceTable services, Span<byte> frame, ref PacketMeta m, in FlowKey key,
        uint tag, long now, out bool malformed, ref TObserver observer) where TObserver : struct, IPacketObserver
    {
        int index = table.Lookup(key, tag, now, out bool isReply);
        return Track(table, services, frame, ref m, key, index, isReply, now, out malformed, ref observer);
    }

    /// <summary>
    /// The rest of <see cref="TranslateTracked"/> once the lookup of <paramref name="key"/> found
    /// <paramref name="index"/> (-1: nothing) in the direction <paramref name="isReply"/>: the Services check, the
    /// state and counters, the translation.
    /// </summary>
    public static bool Track<TObserver>(ConntrackTable table, ServiceTable services, Span<byte> frame, ref PacketMeta m, in FlowKey key,
        int index, bool isReply, long now, out bool malformed, ref TObserver observer) where TObserver : struct, IPacketObserver
    {
        malformed = false;
        if (index < 0 || !ServiceNat.StillValid(services, table, index))
        {
            observer.OnConntrackMiss(key);
            return false;
        }
        table.Observe(index, isReply, StateInput(frame, in m), m.Length, now);
        ref var entry = ref table[index];
        observer.OnConntrack(entry, isReply, created: false, related: false);
        if ((entry.Status & ConntrackStatus.Translated) != 0) malformed = !Translate(frame, ref m, key, entry, isReply);
        return true;
    }

    /// <summary>Conntrack's state machine input for a parsed packet: its TCP flags, its SCTP control chunks
    /// (<see cref="SctpPacket.Chunks"/>), 0 for anything else.</summary>
    public static ushort StateInput(ReadOnlySpan<byte> frame, in PacketMeta m)
    {
        if ((m.Flags & PacketFlags.HasL4) == 0) return 0;
        if (m.IpProtocol == IpProtocol.Tcp) return frame[m.L4Offset + 13];
        if (m.IpProtocol != IpProtocol.Sctp || (m.Flags & PacketFlags.Fragment) != 0) return 0;
        int end = m.L3Offset + m.L3Length;
        return end <= frame.Length ? (ushort)SctpPacket.Chunks(frame[m.L4Offset..end]) : (ushort)0;
    }

    /// <summary>Applies a connection's translation to one of its packets, in the direction the lookup found.</summary>
    /// <remarks>An IPv4 TCP/UDP packet takes the rewrite precomputed at insert (<see cref="NatRewrite4"/>: two stores and
    /// one add-and-fold per checksum); anything else, or a packet that plan does not fit, the general field-by-field path.</remarks>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static bool Translate(Span<byte> frame, ref PacketMeta m, in FlowKey packet, in ConntrackEntry entry, bool isReply)
    {
        ref readonly var plan = ref isReply ? ref entry.RewriteReply : ref entry.RewriteOriginal;
        return plan.TryApply(frame, ref m) || TranslateGeneral(frame, ref m, packet, in entry, isReply);
    }

    private static bool TranslateGeneral(Span<byte> frame, ref PacketMeta m, in FlowKey packet, in ConntrackEntry entry, bool isReply) =>
        Rewrite(frame, ref m, packet, isReply ? entry.Original.Reverse() : entry.Reply.Reverse());

    /// <summary>
    /// Translates an ICMP / ICMPv6 error about a NATed connection (RFC 5508 §4.2, Linux nf_nat_icmp_reply_translation):
    /// the quoted packet's tuple, reversed, finds the connection; the quote is rewritten to what the other side
    /// originally sent and the outer header is translated like any packet of the error's direction. Returns false
    /// when the error is about no tracked connection (the packet is left alone).
    /// </summary>
    public static bool TranslateIcmpError<TObserver>(ConntrackTable table, Span<byte> frame, ref PacketMeta m, long now,
        out bool malformed, ref TObserver observer) where TObserver : struct, IPacketObserver
    {
        malformed = false;
        if (!TryQuotedTuple(frame, in m, out var quoted)) return false;
        // The quote is a packet that went the other way: reversed, it is the tuple the error travels on.
        int index = table.Lookup(quoted.Reverse(), now, out bool isReply);
        if (index < 0)
        {
            observer.OnConntrackMiss(quoted.Reverse());
            return false;
        }
        ref var entry = ref table[index];
        observer.OnConntrack(entry, isReply, created: false, related: true);
        // What the quoted packet looked like before translation: the opposite direction's pre-NAT tuple.
        var wanted = isReply ? entry.Original : entry.Reply;
        bool ok = true;
        if (quoted.Source != wanted.Source || quoted.SourcePort != wanted.SourcePort)
            ok &= NatRewriter.RewriteIcmpErrorInner(frame, ref m, innerSource: true, wanted.Source, wanted.SourcePort);
        if (ok && (quoted.Destination != wanted.Destination || quoted.DestinationPort != wanted.DestinationPort))
            ok &= NatRewriter.RewriteIcmpErrorInner(frame, ref m, innerSource: false, wanted.Destination, wanted.DestinationPort);
        // Outer: the error's destination is the quoted packet's (translated back) source, its source the peer the
        // other side believes it talks to.
        var outerSource = PacketAddresses.Source(frame, in m);
        var outerDestination = PacketAddresses.Destination(frame, in m);
        if (ok && outerDestination != wanted.Source) ok &= NatRewriter.RewriteDestination(frame, ref m, wanted.Source, 0);
        if (ok && outerSource == quoted.Destination && outerSource != wanted.Destination)
            ok &= NatRewriter.RewriteSource(frame, ref m, wanted.Destination, 0);
        malformed = !ok;
        return true;
    }

    /// <summary>The 5-tuple of the packet an ICMP error quotes (ports from the first 8 bytes of its transport header).</summary>
    private static bool TryQuotedTuple(ReadOnlySpan<byte> frame, in PacketMeta m, out FlowKey tuple)
    {
        tuple = default;
        int inner = m.L4Offset + IcmpHeader.Length;
        int end = m.L3Offset + m.L3Length;
        if (inner >= end || end > frame.Length) return false;
        var q = frame[inner..end];
        IpAddr src, dst;
        byte proto;
        int l4;
        if (m.L3 == L3Kind.Ipv4)
        {
            if (q.Length < Ipv4Header.MinLength || q[0] >> 4 != 4) return false;
            l4 = (q[0] & 0x0F) * 4;
            if (l4 < Ipv4Header.MinLength) return false;
            (src, dst, proto) = (IpAddr.ReadV4(q[12..]), IpAddr.ReadV4(q[16..]), q[9]);
        }
        else
        {
            if (q.Length < Ipv6Header.Length || q[0] >> 4 != 6) return false;
            l4 = Ipv6Header.Length;
            (src, dst, proto) = (IpAddr.ReadV6(q[8..]), IpAddr.ReadV6(q[24..]), q[6]);
        }
        if (q.Length < l4 + 8) return false;
        var t = q[l4..];
        ushort sport, dport;
        var echo = EchoKind.None;
        if (proto is IpProtocol.Tcp or IpProtocol.Udp or IpProtocol.Sctp)
            (sport, dport) = (BinaryPrimitives.ReadUInt16BigEndian(t), BinaryPrimitives.ReadUInt16BigEndian(t[2..]));
        else if ((echo = FlowKey.EchoOf(proto, t[0])) != EchoKind.None)
            sport = dport = BinaryPrimitives.ReadUInt16BigEndian(t[4..]);
        else return false;
        tuple = new FlowKey(src, dst, sport, dport, proto, echo);
        return true;
    }
}
