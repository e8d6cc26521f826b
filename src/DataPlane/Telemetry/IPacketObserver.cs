using FastPath.DataPlane.Conntrack;
using FastPath.DataPlane.Packets;
using FastPath.DataPlane.Pipeline;
using FastPath.DataPlane.Services;

namespace FastPath.DataPlane.Telemetry;

/// <summary>How a Service connection got its backend.</summary>
public enum BackendChoice : byte
{
    /// <summary>The Maglev table slot of the flow hash.</summary>
    Maglev,
    /// <summary>sessionAffinity: ClientIP remembered this client's backend.</summary>
    Affinity,
}

/// <summary>
/// Sees each stage's decision for every packet the engine processes. The engine's per-packet code is generic over a
/// struct observer (<c>where TObserver : struct, IPacketObserver</c>), so the JIT compiles one copy per observer
/// type: with <see cref="NoObserver"/> every call is an empty inlined method and disappears from the fast path
/// (measured in docs/BENCHMARKS.md), while <c>fastpath trace</c> runs the very same code with a recording observer.
/// Arguments are what the stage already holds (indices, tuples, entries), never anything built for the observer.
/// </summary>
public interface IPacketObserver
{
    /// <summary>
    /// The packet's parse result (<see cref="PacketMeta.Drop"/> non-None when the parser rejected it) and resolved
    /// ingress port; the frame is <c>arena[m.Offset..(m.Offset + m.Length)]</c>, unmodified yet.
    /// </summary>
    void OnIngress(byte[] arena, in PacketMeta m, int ingress);

    /// <summary>A VXLAN packet for this node was decapsulated; <paramref name="inner"/> describes the inner frame.</summary>
    void OnDecapsulated(in PacketMeta inner, uint vni);

    /// <summary>The packet's tuple is tracked by no connection.</summary>
    void OnConntrackMiss(in FlowKey key);

    /// <summary>
    /// The packet belongs to <paramref name="entry"/> (state already advanced by this packet), in the reply direction
    /// when <paramref name="isReply"/>; <paramref name="created"/> when this packet opened the connection;
    /// <paramref name="related"/> when the packet is an ICMP error about it.
    /// </summary>
    void OnConntrack(in ConntrackEntry entry, bool isReply, bool created, bool related);

    /// <summary>The packet's destination is Service frontend <paramref name="frontend"/> (index into <see cref="ServiceTable.Frontends"/>).</summary>
    void OnServiceFrontend(int frontend);

    /// <summary>A new Service connection goes to <paramref name="backend"/>; <paramref name="flowHash"/> is what Maglev indexed with.</summary>
    void OnServiceBackend(int frontend, in ServiceBackend backend, BackendChoice choice, ulong flowHash);

    /// <summary>A policy decided about the packet: NetworkPolicy, or a Service's loadBalancerSourceRanges.</summary>
    void OnPolicy(string policy, bool allowed);

    /// <summary>The destination went through the route table: <paramref name="hop"/> indexes <see cref="Routing.RouteTable.NextHops"/> (-1: no route).</summary>
    void OnRoute(IpAddr destination, int hop);

    /// <summary>The packet was wrapped in VXLAN towards <paramref name="remote"/>.</summary>
    void OnEncapsulated(uint remote, uint vni);

    /// <summary>The verdict: <see cref="PacketMeta.EgressPort"/> and <see cref="PacketMeta.Drop"/> (both set when an ICMP error answers a drop).</summary>
    void OnVerdict(in PacketMeta m);
}

/// <summary>The observer of the fast path: every method is empty, so the JIT removes the calls.</summary>
public struct NoObserver : IPacketObserver
{
    public readonly void OnIngress(byte[] arena, in PacketMeta m, int ingress) { }
    public readonly void OnDecapsulated(in PacketMeta inner, uint vni) { }
    public readonly void OnConntrackMiss(in FlowKey key) { }
    public readonly void OnConntrack(in ConntrackEntry entry, bool isReply, bool created, bool related) { }
    public readonly void OnServiceFrontend(int frontend) { }
    public readonly void OnServiceBackend(int frontend, in ServiceBackend backend, BackendChoice choice, ulong flowHash) { }
    public readonly void OnPolicy(string policy, bool allowed) { }
    public readonly void OnRoute(IpAddr destination, int hop) { }
    public readonly void OnEncapsulated(uint remote, uint vni) { }
    public readonly void OnVerdict(in PacketMeta m) { }
}
