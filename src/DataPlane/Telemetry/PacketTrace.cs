using FastPath.DataPlane.Conntrack;
using FastPath.DataPlane.Packets;
using FastPath.DataPlane.Pipeline;
using FastPath.DataPlane.Services;

namespace FastPath.DataPlane.Telemetry;

/// <summary>
/// What the engine decided for one traced packet, stage by stage, as <see cref="TraceObserver"/> recorded it while
/// the packet went through <see cref="Engine.Process{TObserver}"/>. Trace path only: it may allocate.
/// </summary>
public sealed class PacketTrace
{
    /// <summary>The metadata after parsing and ingress resolution (offsets relative to the input frame).</summary>
    public PacketMeta Parsed { get; internal set; }
    /// <summary>The resolved ingress port, or -1 when the packet named a port the node does not have.</summary>
    public int Ingress { get; internal set; } = -1;

    public bool Decapsulated { get; internal set; }
    /// <summary>The inner frame's metadata after VXLAN decapsulation.</summary>
    public PacketMeta Inner { get; internal set; }
    public uint DecapsulatedVni { get; internal set; }

    /// <summary>The tuple no connection tracked, when conntrack was consulted and missed.</summary>
    public FlowKey? ConntrackMiss { get; internal set; }
    /// <summary>The connection the packet belongs to (copied when the stage saw it, state already advanced).</summary>
    public ConntrackEntry? Connection { get; internal set; }
    public bool ConnectionIsReply { get; internal set; }
    public bool ConnectionCreated { get; internal set; }
    /// <summary>The packet is an ICMP error about <see cref="Connection"/>.</summary>
    public bool ConnectionRelated { get; internal set; }

    /// <summary>Index into <see cref="ServiceTable.Frontends"/>, or -1.</summary>
    public int Frontend { get; internal set; } = -1;
    public ServiceBackend? Backend { get; internal set; }
    public BackendChoice Choice { get; internal set; }
    public ulong FlowHash { get; internal set; }

    public List<(string Policy, bool Allowed)> Policies { get; } = [];

    public bool Routed { get; internal set; }
    public IpAddr RouteDestination { get; internal set; }
    /// <summary>Index into <see cref="Routing.RouteTable.NextHops"/>, -1 for no route.</summary>
    public int Hop { get; internal set; } = -1;

    public bool Encapsulated { get; internal set; }
    public uint TunnelRemote { get; internal set; }
    public uint TunnelVni { get; internal set; }

    /// <summary>The final metadata: egress port, drop reason, offsets of the emitted frame.</summary>
    public PacketMeta Verdict { get; internal set; }
    public bool Finished { get; internal set; }
}

/// <summary>Records every stage of the packets it sees into a <see cref="PacketTrace"/> (trace one packet per trace).</summary>
public readonly struct TraceObserver(PacketTrace trace) : IPacketObserver
{
    public void OnIngress(byte[] arena, in PacketMeta m, int ingress)
    {
        trace.Parsed = m;
        trace.Ingress = ingress;
    }

    public void OnDecapsulated(in PacketMeta inner, uint vni)
    {
        trace.Decapsulated = true;
        trace.Inner = inner;
        trace.DecapsulatedVni = vni;
    }

    public void OnConntrackMiss(in FlowKey key) => trace.ConntrackMiss = key;

    public void OnConntrack(in ConntrackEntry entry, bool isReply, bool created, bool related)
    {
        trace.Connection = entry;
        trace.ConnectionIsReply = isReply;
        trace.ConnectionCreated = created;
        trace.ConnectionRelated = related;
    }

    public void OnServiceFrontend(int frontend) => trace.Frontend = frontend;

    public void OnServiceBackend(int frontend, in ServiceBackend backend, BackendChoice choice, ulong flowHash)
    {
        trace.Backend = backend;
        trace.Choice = choice;
        trace.FlowHash = flowHash;
    }

    public void OnPolicy(string policy, bool allowed) => trace.Policies.Add((policy, allowed));

    public void OnRoute(IpAddr destination, int hop)
    {
        trace.Routed = true;
        trace.RouteDestination = destination;
        trace.Hop = hop;
    }

    public void OnEncapsulated(uint remote, uint vni)
    {
        trace.Encapsulated = true;
        trace.TunnelRemote = remote;
        trace.TunnelVni = vni;
    }

    public void OnVerdict(in PacketMeta m)
    {
        trace.Verdict = m;
        trace.Finished = true;
    }
}
