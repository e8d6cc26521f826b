using FastPath.DataPlane.Conntrack;
using FastPath.DataPlane.Packets;
using FastPath.DataPlane.Pipeline;

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
            var reply = new FlowKey(replySource, replyDestination, replySourcePort, port, original.Protocol);
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

    /// <summary>Applies a connection's translation to one of its packets, in the direction the lookup found.</summary>
    public static bool Translate(Span<byte> frame, ref PacketMeta m, in FlowKey packet, in ConntrackEntry entry, bool isReply) =>
        Rewrite(frame, ref m, packet, isReply ? entry.Original.Reverse() : entry.Reply.Reverse());
}
