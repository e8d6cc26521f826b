using FastPath.DataPlane.Conntrack;
using FastPath.DataPlane.Packets;
using FastPath.DataPlane.Pipeline;
using FastPath.DataPlane.Telemetry;

namespace FastPath.DataPlane.Nat;

/// <summary>
/// Source NAT of pod traffic leaving the cluster to the node's address (what Flannel's and kube-proxy's MASQUERADE
/// rules do), and the reverse rewrite of the replies, through the connection tracking table.
/// </summary>
public static class Masquerade
{
    /// <summary><see cref="ConntrackEntry.NatKind"/> of a masqueraded connection.</summary>
    public const byte NatKind = 1;

    private const int PortAttempts = 64;
    private const int PortRangeFirst = 1024;
    private const int PortRangeSize = 65536 - PortRangeFirst;

    /// <summary>
    /// Rewrites the packet's source to <paramref name="nodeAddress"/>, keeping the connection's mapping. A new
    /// connection keeps its source port when no other connection to the same peer uses it on the node address, else
    /// takes the first free port of a hash-ordered probe over 1024–65535 (Linux nf_nat keeps ports the same way).
    /// </summary>
    public static DropReason Apply(ConntrackTable table, Span<byte> arena, ref PacketMeta m, IpAddr nodeAddress, long now)
    {
        var frame = arena.Slice(m.Offset, m.Length);
        // Without ports (non-first fragments, ICMP errors) the flow cannot be told apart after rewriting.
        if (!FlowKey.TryFromPacket(frame, in m, out var original)) return DropReason.UnsupportedProtocol;

        int index = table.Lookup(original, now, out bool isReply);
        if (index < 0 || isReply)
        {
            index = Insert(table, original, nodeAddress, now);
            if (index < 0) return DropReason.ConntrackFull;
            ref var created = ref table[index];
            created.NatKind = NatKind;
        }
        ref var entry = ref table[index];
        table.Observe(index, isReply: false, TcpFlags(frame, in m), m.Length, now);
        var reply = entry.Reply;
        return NatRewriter.RewriteSource(frame, ref m, reply.Destination, reply.DestinationPort) ? DropReason.None : DropReason.Malformed;
    }

    /// <summary>
    /// For a packet arriving at a node address: if it is the reply of a masqueraded connection, rewrites its
    /// destination back to the pod's address and port and returns true.
    /// </summary>
    public static bool TryReverse(ConntrackTable table, Span<byte> arena, ref PacketMeta m, long now, out DropReason drop)
    {
        drop = DropReason.None;
        var frame = arena.Slice(m.Offset, m.Length);
        if (!FlowKey.TryFromPacket(frame, in m, out var key)) return false;
        int index = table.Lookup(key, now, out bool isReply);
        if (index < 0 || !isReply || table[index].NatKind != NatKind) return false;
        table.Observe(index, isReply: true, TcpFlags(frame, in m), m.Length, now);
        var original = table[index].Original;
        if (!NatRewriter.RewriteDestination(frame, ref m, original.Source, original.SourcePort)) drop = DropReason.Malformed;
        return true;
    }

    private static int Insert(ConntrackTable table, in FlowKey original, IpAddr nodeAddress, long now)
    {
        bool hasPorts = original.SourcePort != 0 || original.Protocol is IpProtocol.Tcp or IpProtocol.Udp or IpProtocol.Sctp;
        ushort port = original.SourcePort;
        uint step = (uint)(original.GetHashCode() | 1);
        for (int attempt = 0; attempt < PortAttempts; attempt++)
        {
            var reply = new FlowKey(original.Destination, nodeAddress, original.DestinationPort, port, original.Protocol);
            int index = table.Insert(original, reply, now);
            if (index != ConntrackTable.Clash || !hasPorts) return index;
            port = (ushort)(PortRangeFirst + (uint)(step * (uint)(attempt + 1)) % PortRangeSize);
        }
        return ConntrackTable.Full;
    }

    /// <summary>The TCP flags of a parsed packet, 0 for anything else (conntrack's state machine input).</summary>
    internal static byte TcpFlags(ReadOnlySpan<byte> frame, in PacketMeta m) =>
        m.IpProtocol == IpProtocol.Tcp && (m.Flags & PacketFlags.HasL4) != 0 ? frame[m.L4Offset + 13] : (byte)0;
}
