using FastPath.DataPlane.Conntrack;
using FastPath.DataPlane.Pipeline;
using FastPath.DataPlane.Services;

namespace FastPath.DataPlane.Telemetry;

/// <summary>
/// What became of one input packet, as <see cref="FateObserver"/> saw the stages decide it: its tuple before and after
/// NAT, the Service frontend and backend, the policies that judged it, the route and the verdict. Indices
/// (<see cref="Frontend"/>, <see cref="RouteHop"/>, ports) refer to the snapshot the packet's batch ran against.
/// </summary>
public struct PacketFate
{
    /// <summary>1-based input index.</summary>
    public long InputIndex;
    /// <summary>The packet's tuple as it arrived (the inner one of a decapsulated VXLAN packet); valid when <see cref="HasKey"/>.</summary>
    public FlowKey Key;
    /// <summary>The tuple as forwarded: <see cref="Key"/> rewritten by the connection's NAT (equal to it without NAT).</summary>
    public FlowKey Translated;
    public bool HasKey;
    public short IngressPort;
    public short EgressPort;
    public DropReason Drop;
    /// <summary>Service frontend index, or -1.</summary>
    public int Frontend;
    /// <summary>The backend a new Service connection chose (valid when <see cref="HasBackend"/>).</summary>
    public ServiceBackend Backend;
    public bool HasBackend;
    /// <summary>The first policy of the last decision (the denying set when <see cref="PolicyAllowed"/> is false), or null.</summary>
    public string? Policy;
    /// <summary>How many policies took part in that decision (a denial is their union).</summary>
    public int PolicyCount;
    public bool PolicyAllowed;
    /// <summary>Route table next-hop index, or -1 when the packet did not go through the route table.</summary>
    public int RouteHop;

    /// <summary>Forwarded, i.e. not dropped (an answered drop, e.g. ttl-exceeded with its ICMP error, is a drop).</summary>
    public readonly bool Forwarded => Drop == DropReason.None;
}

/// <summary>
/// Records a <see cref="PacketFate"/> per packet of a batch into an array the caller owns (<c>fates[i]</c> for batch
/// slot i), for <c>fastpath diff</c> and the verdict capture of <c>replay --pcapng</c>. Copies what the stages pass;
/// allocates nothing.
/// </summary>
public struct FateObserver(PacketFate[] fates) : IPacketObserver
{
    private byte[]? _arena;
    private int _slot = -1;

    /// <summary>The recorded fates; slot i of the last batch is <c>Fates[i]</c>.</summary>
    public readonly PacketFate[] Fates => fates;

    /// <summary>Call before each batch: the next packet seen is slot 0.</summary>
    public void Begin() => _slot = -1;

    public void OnIngress(byte[] arena, in PacketMeta m, int ingress)
    {
        _arena = arena;
        ref var f = ref fates[++_slot];
        f = default;
        f.InputIndex = m.InputIndex;
        f.IngressPort = (short)ingress;
        f.EgressPort = PortIndex.None;
        f.Frontend = -1;
        f.RouteHop = -1;
        if (m.Drop == DropReason.None) f.HasKey = FlowKey.TryFromPacket(arena.AsSpan(m.Offset, m.Length), in m, out f.Key);
        f.Translated = f.Key;
    }

    public readonly void OnDecapsulated(in PacketMeta inner, uint vni)
    {
        ref var f = ref fates[_slot];
        f.HasKey = FlowKey.TryFromPacket(_arena.AsSpan(inner.Offset, inner.Length), in inner, out f.Key);
        f.Translated = f.Key;
    }

    public readonly void OnConntrackMiss(in FlowKey key) { }

    public readonly void OnConntrack(in ConntrackEntry entry, bool isReply, bool created, bool related)
    {
        // nf_nat's rule: the original direction leaves as the reverse of the reply tuple, and vice versa. An ICMP error
        // about a connection keeps its own tuple.
        if (related) return;
        fates[_slot].Translated = isReply ? entry.Original.Reverse() : entry.Reply.Reverse();
    }

    public readonly void OnServiceFrontend(int frontend) => fates[_slot].Frontend = frontend;

    public readonly void OnServiceBackend(int frontend, in ServiceBackend backend, BackendChoice choice, ulong flowHash)
    {
        ref var f = ref fates[_slot];
        f.Backend = backend;
        f.HasBackend = true;
    }

    public readonly void OnPolicy(string policy, bool allowed)
    {
        // Each isolating policy of a direction reports the union's verdict; a later direction's decision replaces an
        // earlier allowing one, so a denial names the policies that denied.
        ref var f = ref fates[_slot];
        if (f.Policy is null || f.PolicyAllowed != allowed)
        {
            f.Policy = policy;
            f.PolicyAllowed = allowed;
            f.PolicyCount = 1;
        }
        else f.PolicyCount++;
    }

    public readonly void OnRoute(Packets.IpAddr destination, int hop) => fates[_slot].RouteHop = hop;

    public readonly void OnEncapsulated(uint remote, uint vni) { }

    public readonly void OnVerdict(in PacketMeta m)
    {
        ref var f = ref fates[_slot];
        f.EgressPort = m.EgressPort;
        f.Drop = m.Drop;
    }
}

/// <summary>Two observers as one (e.g. flow logging and the verdict capture of one replay); both see every call.</summary>
public struct ObserverPair<TFirst, TSecond>(TFirst first, TSecond second) : IPacketObserver
    where TFirst : struct, IPacketObserver
    where TSecond : struct, IPacketObserver
{
    public TFirst First = first;
    public TSecond Second = second;

    public void OnIngress(byte[] arena, in PacketMeta m, int ingress) { First.OnIngress(arena, m, ingress); Second.OnIngress(arena, m, ingress); }
    public void OnDecapsulated(in PacketMeta inner, uint vni) { First.OnDecapsulated(inner, vni); Second.OnDecapsulated(inner, vni); }
    public void OnConntrackMiss(in FlowKey key) { First.OnConntrackMiss(key); Second.OnConntrackMiss(key); }
    public void OnConntrack(in ConntrackEntry entry, bool isReply, bool created, bool related)
    {
        First.OnConntrack(entry, isReply, created, related);
        Second.OnConntrack(entry, isReply, created, related);
    }
    public void OnServiceFrontend(int frontend) { First.OnServiceFrontend(frontend); Second.OnServiceFrontend(frontend); }
    public void OnServiceBackend(int frontend, in ServiceBackend backend, BackendChoice choice, ulong flowHash)
    {
        First.OnServiceBackend(frontend, backend, choice, flowHash);
        Second.OnServiceBackend(frontend, backend, choice, flowHash);
    }
    public void OnPolicy(string policy, bool allowed) { First.OnPolicy(policy, allowed); Second.OnPolicy(policy, allowed); }
    public void OnRoute(Packets.IpAddr destination, int hop) { First.OnRoute(destination, hop); Second.OnRoute(destination, hop); }
    public void OnEncapsulated(uint remote, uint vni) { First.OnEncapsulated(remote, vni); Second.OnEncapsulated(remote, vni); }
    public void OnVerdict(in PacketMeta m) { First.OnVerdict(m); Second.OnVerdict(m); }
}
