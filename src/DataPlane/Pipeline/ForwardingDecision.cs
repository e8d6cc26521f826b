using System.Runtime.CompilerServices;

namespace FastPath.DataPlane.Pipeline;

/// <summary>
/// What <see cref="Engine"/>'s general path decided for one direction of a tracked connection after its translation —
/// the port, and for a routed packet the next hop (its MAC and VXLAN template) — kept in the conntrack entry
/// (<see cref="Conntrack.ConntrackEntry.DecisionOriginal"/>, <see cref="Conntrack.ConntrackEntry.DecisionReply"/>) and
/// stamped with the engine's snapshot generation, so the connection's next packets take a short path (the flow cache of
/// VPP's and OVS's fast paths: classify once, then replay the result per packet).
/// </summary>
/// <remarks>
/// <para>
/// Everything that decision read is fixed for a given tuple, ingress port and snapshot: the source check (address
/// owned by the ingress port), broadcast and multicast rules (destination), the Service lookup (skipped: the packet is
/// tracked), NetworkPolicy (skipped: established), the translated destination (the entry's tuples never change) and
/// its port or route. So a packet whose entry holds a decision with the current <see cref="Stamp"/> and its own
/// ingress port gets that decision; what varies per packet — TTL, length against the path MTU, the learned MACs of
/// pods, checksums, the connection's state and counters — is still done per packet. A new snapshot gets a new
/// generation (never reused in a process), which invalidates every decision at once without touching the table.
/// </para>
/// <para>
/// Not cached: next hops whose MAC comes from the neighbour cache (it changes without a snapshot), anything the
/// general path drops or answers with an ICMP error, and decapsulated packets. Eight bytes, so both directions add
/// 16 bytes to the entry.
/// </para>
/// </remarks>
public struct ForwardingDecision
{
    /// <summary>The engine generation it was made under; 0 = none (a new or restored entry).</summary>
    public uint Stamp;
    /// <summary>The ingress port of the packets it was made for.</summary>
    public ushort Ingress;
    // Kind in the top two bits, the port (Local) or next-hop index (Routed, Tunnel) in the rest.
    private ushort _target;

    private const int KindShift = 14;
    /// <summary>Largest port or next-hop index a decision can hold.</summary>
    public const int MaxTarget = (1 << KindShift) - 1;

    /// <summary>The decision's kind: <see cref="Local"/>, <see cref="Routed"/> or <see cref="Tunnel"/>.</summary>
    public readonly int Kind => _target >> KindShift;
    /// <summary>The egress port (<see cref="Local"/>) or next-hop index (<see cref="Routed"/>, <see cref="Tunnel"/>).</summary>
    public readonly int Target => _target & MaxTarget;

    /// <summary>Delivered to a port of the node: a pod (TTL decremented) or the host stack (left alone).</summary>
    public const int Local = 1;
    /// <summary>Out of the uplink to a next hop with a configured MAC.</summary>
    public const int Routed = 2;
    /// <summary>Encapsulated in VXLAN to another node's next hop.</summary>
    public const int Tunnel = 3;

    /// <summary>A decision of <paramref name="kind"/> for <paramref name="target"/>, or none (<see cref="Stamp"/> 0) when
    /// the ingress port or target does not fit.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static ForwardingDecision Of(uint stamp, int ingress, int kind, int target) =>
        (uint)ingress > ushort.MaxValue || (uint)target > MaxTarget ? default
            : new ForwardingDecision { Stamp = stamp, Ingress = (ushort)ingress, _target = (ushort)(kind << KindShift | target) };
}
