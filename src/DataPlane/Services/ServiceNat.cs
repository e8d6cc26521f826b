using FastPath.DataPlane.Conntrack;
using FastPath.DataPlane.Nat;
using FastPath.DataPlane.Packets;
using FastPath.DataPlane.Pipeline;
using FastPath.DataPlane.Telemetry;

namespace FastPath.DataPlane.Services;

/// <summary>
/// Load-balances connections to Service frontends, as kube-proxy's DNAT does: the first packet of a flow picks a
/// backend by Maglev and creates a conntrack entry whose reply tuple is backend → client; every later packet of the
/// flow follows the entry (so a flow keeps its backend when the Maglev table changes), and replies get their source
/// rewritten back to the Service address and port.
/// </summary>
public static class ServiceNat
{
    /// <summary><see cref="ConntrackEntry.NatKind"/> of a load-balanced connection.</summary>
    public const byte NatKind = 2;

    /// <summary>Seed of the flow hash Maglev indexes with: fixed, so every node picks the same backend for a flow.</summary>
    private const ulong FlowSeed = MaglevTable.DefaultSeed;

    /// <summary>
    /// Translates the packet if it belongs to a Service connection or opens one. Returns None when the packet may go
    /// on (translated or not), <see cref="DropReason.NoEndpoints"/> for a frontend without backends,
    /// <see cref="DropReason.UnknownServicePort"/> for a Service address on a port it does not serve (both
    /// rejected with ICMP port unreachable by the caller, like kube-proxy's REJECT), or ConntrackFull.
    /// </summary>
    public static DropReason Translate(ServiceTable services, ConntrackTable table, Span<byte> arena, ref PacketMeta m, long now)
    {
        var frame = arena.Slice(m.Offset, m.Length);
        if (!FlowKey.TryFromPacket(frame, in m, out var key))
            return services.VirtualIps.Lookup(PacketAddresses.Destination(frame, in m)) >= 0 ? DropReason.UnknownServicePort : DropReason.None;

        int index = table.Lookup(key, now, out bool isReply);
        if (index >= 0)
        {
            ref var entry = ref table[index];
            if (entry.NatKind != NatKind) return DropReason.None; // another translation (masquerade) owns it
            table.Observe(index, isReply, Masquerade.TcpFlags(frame, in m), m.Length, now);
            bool ok = isReply
                ? NatRewriter.RewriteSource(frame, ref m, entry.Original.Destination, entry.Original.DestinationPort)
                : NatRewriter.RewriteDestination(frame, ref m, entry.Reply.Source, entry.Reply.SourcePort);
            return ok ? DropReason.None : DropReason.Malformed;
        }

        int frontend = services.Lookup(key.Destination, key.DestinationPort, key.Protocol);
        if (frontend < 0)
            return services.VirtualIps.Lookup(key.Destination) >= 0 ? DropReason.UnknownServicePort : DropReason.None;
        if (!services.TrySelect(frontend, key.Hash(FlowSeed), out var backend)) return DropReason.NoEndpoints;

        var reply = new FlowKey(backend.Address, key.Source, backend.Port, key.SourcePort, key.Protocol);
        index = table.Insert(key, reply, now);
        // A clash means the backend already has a connection from this client address and port (through another
        // Service address); without a source-port translation that would mix two flows, so it is refused.
        if (index < 0) return DropReason.ConntrackFull;
        ref var created = ref table[index];
        created.NatKind = NatKind;
        created.NatTag = frontend;
        table.Observe(index, isReply: false, Masquerade.TcpFlags(frame, in m), m.Length, now);
        return NatRewriter.RewriteDestination(frame, ref m, backend.Address, backend.Port) ? DropReason.None : DropReason.Malformed;
    }
}
