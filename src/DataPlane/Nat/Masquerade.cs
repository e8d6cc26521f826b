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
    /// Opens a masqueraded connection for a pod's packet that belongs to none yet (packets of known connections are
    /// translated by <see cref="ConntrackNat.TryTranslateTracked"/>, replies included) and rewrites its source to
    /// <paramref name="nodeAddress"/>; the source port is kept unless it is taken (<see cref="ConntrackNat.InsertUnique"/>).
    /// </summary>
    public static DropReason Open<TObserver>(ConntrackTable table, Span<byte> arena, ref PacketMeta m, IpAddr nodeAddress, long now,
        ref TObserver observer) where TObserver : struct, IPacketObserver
    {
        var frame = arena.Slice(m.Offset, m.Length);
        // Without ports (non-first fragments, ICMP errors) the flow cannot be told apart after rewriting.
        if (!FlowKey.TryFromPacket(frame, in m, out var original)) return DropReason.UnsupportedProtocol;
        int index = ConntrackNat.InsertUnique(table, original, original.Destination, original.DestinationPort, nodeAddress, now);
        if (index < 0) return DropReason.ConntrackFull;
        ref var entry = ref table[index];
        entry.NatKind = NatKind;
        table.Observe(index, isReply: false, ConntrackNat.StateInput(frame, in m), m.Length, now);
        observer.OnConntrack(entry, isReply: false, created: true, related: false);
        return ConntrackNat.Translate(frame, ref m, original, entry, isReply: false) ? DropReason.None : DropReason.Malformed;
    }
}
