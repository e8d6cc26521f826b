using FastPath.DataPlane.Conntrack;
using FastPath.DataPlane.Nat;
using FastPath.DataPlane.Packets;
using FastPath.DataPlane.Pipeline;
using FastPath.DataPlane.Telemetry;

namespace FastPath.DataPlane.Services;

/// <summary>
/// Load-balances connections to Service frontends, as kube-proxy's DNAT does: the first packet of a flow picks a
/// backend by Maglev and creates a conntrack entry whose reply tuple is backend → client; every later packet of the
/// flow, and every reply, is translated by that entry (<see cref="ConntrackNat.TryTranslateTracked"/>), so a flow
/// keeps its backend when the Maglev table changes.
/// </summary>
public static class ServiceNat
{
    /// <summary><see cref="ConntrackEntry.NatKind"/> of a load-balanced connection.</summary>
    public const byte NatKind = 2;

    /// <summary>Seed of the flow hash Maglev indexes with: fixed, so every node picks the same backend for a flow.</summary>
    internal const ulong FlowSeed = MaglevTable.DefaultSeed;

    /// <summary><see cref="Open"/>'s frontend when the caller has not looked it up.</summary>
    public const int NotLookedUp = -2;

    /// <summary>
    /// Opens a Service connection when a packet that belongs to no connection is addressed to a frontend, and DNATs
    /// it. Returns None when the packet may go on (<paramref name="translated"/> says whether it was rewritten), <see cref="DropReason.NoEndpoints"/> for a
    /// frontend without backends, <see cref="DropReason.UnknownServicePort"/> for a Service address on a port it does
    /// not serve (both rejected with ICMP port unreachable by the caller, like kube-proxy's REJECT), PolicyDenied for
    /// a client outside loadBalancerSourceRanges (dropped, as kube-proxy does), or ConntrackFull.
    /// </summary>
    /// <param name="frontend">The packet's frontend when the caller already looked it up in <paramref name="services"/>
    /// (the engine's batch, <see cref="ServiceTable.PrefetchOpen"/>), else <see cref="NotLookedUp"/>.</param>
    public static DropReason Open<TObserver>(ServiceTable services, ConntrackTable table, AffinityTable? affinity, Span<byte> arena,
        ref PacketMeta m, long now, IpAddr nodeV4, IpAddr nodeV6, out bool translated, ref TObserver observer, int frontend = NotLookedUp)
        where TObserver : struct, IPacketObserver
    {
        translated = false;
        var frame = arena.Slice(m.Offset, m.Length);
        if (!FlowKey.TryFromPacket(frame, in m, out var key))
            return services.IsVirtualIp(PacketAddresses.Destination(frame, in m)) ? DropReason.UnknownServicePort : DropReason.None;

        if (frontend == NotLookedUp) frontend = services.Lookup(key.Destination, key.DestinationPort, key.Protocol);
        if (frontend < 0)
            return services.IsVirtualIp(key.Destination) ? DropReason.UnknownServicePort : DropReason.None;
        observer.OnServiceFrontend(frontend);
        if (!services.SourceAllowed(frontend, key.Source))
        {
            observer.OnPolicy("loadBalancerSourceRanges", allowed: false);
            return DropReason.PolicyDenied;
        }
        long stickiness = services.AffinityTimeout(frontend);
        var choice = BackendChoice.Affinity;
        ulong flowHash = 0;
        if (stickiness <= 0 || affinity is null
            || !affinity.TryGet(key.Source, key.Destination, key.DestinationPort, key.Protocol, now, out var backend)
            || !services.Contains(frontend, backend))
        {
            choice = BackendChoice.Maglev;
            flowHash = key.Hash(FlowSeed);
            if (!services.TrySelect(frontend, flowHash, out backend))
                return services.IsLocalPolicy(frontend) ? DropReason.NoLocalEndpoints : DropReason.NoEndpoints;
        }
        observer.OnServiceBackend(frontend, backend, choice, flowHash);
        if (stickiness > 0) affinity?.Set(key.Source, key.Destination, key.DestinationPort, key.Protocol, backend, now, stickiness);

        // SNAT when the frontend requires it (external traffic, policy Cluster) and for hairpin: a pod reaching
        // itself through its Service would otherwise receive a packet from its own address, which Linux drops as a
        // martian (kube-proxy masquerades hairpin traffic for the same reason).
        var node = key.Source.IsV4 ? nodeV4 : nodeV6;
        bool snat = (services.Masquerades(frontend) || backend.Address == key.Source) && node.Value != UInt128.Zero;
        int index = ConntrackNat.InsertUnique(table, key, backend.Address, backend.Port, snat ? node : key.Source, now);
        if (index < 0) return DropReason.ConntrackFull;
        ref var created = ref table[index];
        created.NatKind = NatKind;
        created.NatTag = services.Version;
        table.Observe(index, isReply: false, ConntrackNat.StateInput(frame, in m), m.Length, now);
        observer.OnConntrack(created, isReply: false, created: true, related: false);
        translated = true;
        return ConntrackNat.Translate(frame, ref m, key, created, isReply: false) ? DropReason.None : DropReason.Malformed;
    }

    /// <summary>
    /// Brings tracked Service connections in line with a new <paramref name="services"/> table, as kube-proxy does on
    /// an endpoint or Service change:
    /// <list type="bullet">
    /// <item>The frontend is gone (Service deleted or port removed): the connection is released, any protocol.</item>
    /// <item>UDP whose backend is no longer ready: flushed at once — a UDP client keeps sending to the same tuple, and a
    /// stale entry would keep steering it to an endpoint that is gone (kubernetes#59368; kube-proxy's conntrack -D).</item>
    /// <item>TCP whose backend the Service no longer lists at all: released, so its next segment is a new flow that a
    /// live backend answers with a reset (or, with no backend left, ICMP port unreachable) instead of a black hole.
    /// A TCP connection to a terminating endpoint the Service still lists is kept (graceful termination).</item>
    /// </list>
    /// Applied lazily and exactly: every connection remembers the table (<see cref="ServiceTable.Version"/>) it was
    /// last checked against in <see cref="ConntrackEntry.NatTag"/>, and its first packet under a newer table checks it
    /// (one compare per packet otherwise). A connection whose frontend is the same object in both tables
    /// (<see cref="ServiceTable.UnchangedSince"/>: the older one is a recent ancestor and the frontend's shard or entry
    /// is stamped no later) is only re-tagged, so a change re-checks the connections of the Services it changed, not
    /// every connection, however many tables its packets skipped. <see cref="FlushStale"/> sweeps the rest to release
    /// their memory.
    /// </summary>
    /// <returns>False when the connection was released (the packet then counts as a new flow).</returns>
    public static bool StillValid(ServiceTable services, ConntrackTable table, int index)
    {
        ref var e = ref table[index];
        if (e.NatKind != NatKind || e.NatTag == services.Version) return true;
        if (services.UnchangedSince(e.NatTag, e.Original.Destination, e.Original.DestinationPort, e.Original.Protocol) || Keep(services, in e))
        {
            e.NatTag = services.Version;
            return true;
        }
        table.Remove(index);
        return false;
    }

    private static bool Keep(ServiceTable services, in ConntrackEntry e)
    {
        byte protocol = e.Original.Protocol;
        int frontend = services.Lookup(e.Original.Destination, e.Original.DestinationPort, protocol);
        var backend = new ServiceBackend(e.Reply.Source, e.Reply.SourcePort);
        return frontend >= 0 && (protocol == IpProtocol.Udp ? services.Contains(frontend, backend) : services.Lists(frontend, backend));
    }

    /// <summary>
    /// Applies <see cref="StillValid"/> to every connection (and releases affinity memories of removed frontends or
    /// backends), so connections of a deleted Service free their slots without waiting for a packet or a timeout.
    /// Control path: walks the table; the engine runs it at most once per second of capture time.
    /// </summary>
    /// <returns>The connections released.</returns>
    public static int FlushStale(ServiceTable services, ConntrackTable table, AffinityTable? affinity)
    {
        affinity?.Release(services);
        int flushed = 0;
        for (int i = 0; i < table.Capacity; i++)
            if (table[i].InUse && !StillValid(services, table, i)) flushed++;
        return flushed;
    }
}
