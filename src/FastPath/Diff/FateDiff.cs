using FastPath.DataPlane.Conntrack;
using FastPath.DataPlane.Pipeline;
using FastPath.DataPlane.Routing;
using FastPath.DataPlane.Telemetry;

namespace FastPath.Diff;

/// <summary>How one packet's fate differs between the two clusters; one kind per packet, the most telling first.</summary>
public enum FateChangeKind
{
    /// <summary>Forwarded before, dropped after (a policy-denied drop names the denying policy).</summary>
    Denied,
    /// <summary>Dropped before, forwarded after.</summary>
    Allowed,
    /// <summary>Dropped on both sides, for different reasons.</summary>
    DropReason,
    /// <summary>A new Service connection picks another backend.</summary>
    Backend,
    /// <summary>Leaves through another port.</summary>
    EgressPort,
    /// <summary>Same port, another route next hop (another node, the gateway instead of a tunnel, ...).</summary>
    NextHop,
    /// <summary>Same port and hop, translated to another tuple (SNAT, a rewritten port).</summary>
    Nat,
}

/// <summary>A packet's fate and the snapshot it ran against (which names its ports, frontends and next hops).</summary>
public readonly record struct SideFate(PacketFate Fate, ForwardingSnapshot Snapshot)
{
    public string? Egress => PortName(Snapshot, Fate.EgressPort);

    public string? Ingress => PortName(Snapshot, Fate.IngressPort);

    public string? Service => Fate.Frontend >= 0 ? Snapshot.Services.Frontend(Fate.Frontend).Name : null;

    public NextHop? Hop => HopOf(Snapshot, Fate.RouteHop);

    public static string? PortName(ForwardingSnapshot s, int port) => (uint)port < (uint)s.PortCount ? s.Ports[port].Name : null;

    public static NextHop? HopOf(ForwardingSnapshot s, int hop) => (uint)hop < (uint)s.Routes.NextHops.Length ? s.Routes.NextHops[hop] : null;
}

/// <summary>One kind of change within a flow: the first packet that showed it (both sides' fates) and how many did.</summary>
public sealed class FateChange(FateChangeKind kind, SideFate before, SideFate after)
{
    public FateChangeKind Kind { get; } = kind;
    public SideFate Before { get; } = before;
    public SideFate After { get; } = after;
    public long FirstPacket => Before.Fate.InputIndex;
    public long Packets { get; internal set; } = 1;
}

/// <summary>A flow (both directions of a tuple, as the capture has them) whose packets changed fate.</summary>
public sealed class FlowDiff(FlowKey tuple, bool hasTuple, long firstPacket)
{
    /// <summary>The tuple of the flow's first changed packet, as it arrived.</summary>
    public FlowKey Tuple { get; } = tuple;
    public bool HasTuple { get; } = hasTuple;
    public long FirstPacket { get; } = firstPacket;
    public long ChangedPackets { get; internal set; }
    public List<FateChange> Changes { get; } = [];
}

/// <summary>
/// Compares the two sides of <c>fastpath diff</c> packet by packet (the same input index, processed by both clusters)
/// and groups the packets whose fate changed by flow. Unchanged packets cost one comparison of two records.
/// </summary>
public sealed class FateDiff
{
    private readonly Dictionary<FlowKey, FlowDiff> _flows = [];

    public long Packets { get; private set; }
    public long ChangedPackets { get; private set; }

    /// <summary>The changed flows in order of their first changed packet.</summary>
    public IEnumerable<FlowDiff> Flows => _flows.Values.OrderBy(f => f.FirstPacket);

    public int ChangedFlows => _flows.Count;

    /// <summary>Compares the first <paramref name="count"/> fates of both sides (slot i of each is the same input packet).</summary>
    public void Compare(PacketFate[] before, ForwardingSnapshot beforeSnapshot, PacketFate[] after, ForwardingSnapshot afterSnapshot, int count)
    {
        Packets += count;
        for (int i = 0; i < count; i++)
        {
            ref var b = ref before[i];
            ref var a = ref after[i];
            if (Kind(in b, beforeSnapshot, in a, afterSnapshot) is not { } kind) continue;
            Record(kind, new SideFate(b, beforeSnapshot), new SideFate(a, afterSnapshot));
        }
    }

    /// <summary>What changed between the two fates of one packet, or null when nothing did.</summary>
    public static FateChangeKind? Kind(in PacketFate b, ForwardingSnapshot bs, in PacketFate a, ForwardingSnapshot @as)
    {
        if (b.Forwarded != a.Forwarded) return b.Forwarded ? FateChangeKind.Denied : FateChangeKind.Allowed;
        if (!b.Forwarded) return b.Drop != a.Drop ? FateChangeKind.DropReason : null;
        if (b.HasBackend != a.HasBackend || b.Backend != a.Backend) return FateChangeKind.Backend;
        if (!string.Equals(SideFate.PortName(bs, b.EgressPort), SideFate.PortName(@as, a.EgressPort), StringComparison.Ordinal))
            return FateChangeKind.EgressPort;
        if (SideFate.HopOf(bs, b.RouteHop) != SideFate.HopOf(@as, a.RouteHop)) return FateChangeKind.NextHop;
        if (b.HasKey && a.HasKey && !FlowKey.Same(in b.Translated, in a.Translated)) return FateChangeKind.Nat;
        return null;
    }

    private void Record(FateChangeKind kind, SideFate before, SideFate after)
    {
        ChangedPackets++;
        var f = before.Fate;
        var key = f.HasKey ? Canonical(f.Key) : default;
        if (!_flows.TryGetValue(key, out var flow)) _flows[key] = flow = new FlowDiff(f.Key, f.HasKey, f.InputIndex);
        flow.ChangedPackets++;
        foreach (var c in flow.Changes)
        {
            if (c.Kind != kind) continue;
            c.Packets++;
            return;
        }
        flow.Changes.Add(new FateChange(kind, before, after));
    }

    /// <summary>Both directions of a flow as one key: the (address, port) ends in order.</summary>
    private static FlowKey Canonical(in FlowKey k)
    {
        int order = k.Source.Value.CompareTo(k.Destination.Value);
        return order < 0 || (order == 0 && k.SourcePort <= k.DestinationPort) ? k : k.Reverse();
    }
}
