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


    /// <summary>
    /// Rewrites the packet's source to <paramref name="nodeAddress"/>, keeping the connection's mapping; a new
    /// connection keeps its source port unless it is taken (<see cref="ConntrackNat.InsertUnique"/>).
    /// </summary>
    public static DropReason Apply(ConntrackTable table, Span<byte> arena, ref PacketMeta m, IpAddr nodeAddress, long now)
    {
        var frame = arena.Slice(m.Offset, m.Length);
        // Without ports (non-first fragments, ICMP errors) the flow cannot be told apart after rewriting.
        if (!FlowKey.TryFromPacket(frame, in m, out var original)) return DropReason.UnsupportedProtocol;

        int index = table.Lookup(original, now, out bool isReply);
        if (index < 0 || isReply)
        {
            index = ConntrackNat.InsertUnique(table, original, original.Destination, original.DestinationPort, nodeAddress, now);
            if (index < 0) return DropReason.ConntrackFull;
            table[index].NatKind = NatKind;
            isReply = false;
        }
        table.Observe(index, isReply: false, TcpFlags(frame, in m), m.Length, now);
        return ConntrackNat.Translate(frame, ref m, original, table[index], isReply: false) ? DropReason.None : DropReason.Malformed;
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
        if (!ConntrackNat.Translate(frame, ref m, key, table[index], isReply: true)) drop = DropReason.Malformed;
        return true;
    }

    /// <summary>The TCP flags of a parsed packet, 0 for anything else (conntrack's state machine input).</summary>
    internal static byte TcpFlags(ReadOnlySpan<byte> frame, in PacketMeta m) =>
        m.IpProtocol == IpProtocol.Tcp && (m.Flags & PacketFlags.HasL4) != 0 ? frame[m.L4Offset + 13] : (byte)0;
}
