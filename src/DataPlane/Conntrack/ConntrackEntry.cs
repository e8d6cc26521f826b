using System.Runtime.InteropServices;

namespace FastPath.DataPlane.Conntrack;

/// <summary>
/// One tracked connection as readers see it (Linux's struct nf_conn): both tuples, state, clocks and counters, plus
/// the NAT fields the Services and masquerade stages own. <see cref="Reply"/> is what the reply direction looks like
/// on the wire, so it differs from <c>Original.Reverse()</c> exactly when NAT rewrites the flow.
/// </summary>
/// <remarks>
/// A copy assembled by <see cref="ConntrackTable"/>'s indexer from the two places the table keeps a connection: one
/// <see cref="ConntrackDirection"/> line per direction (what a hit reads) and one <see cref="ConntrackCold"/> record
/// (what it only writes). For traces, flow logs, metrics and tests; the packet path reads the parts in place.
/// Times are nanoseconds of the capture clock (<see cref="Pipeline.PacketMeta.Timestamp"/>).
/// </remarks>
public struct ConntrackEntry
{
    /// <summary>The connection is dead once <c>now ≥ Expires</c>.</summary>
    public long Expires;
    public FlowKey Original;
    public FlowKey Reply;
    public ConntrackState State;
    public ConntrackStatus Status;
    /// <summary>Which rewrite applies (none, SNAT, DNAT...), set by the NAT stages; the table never reads it.</summary>
    public byte NatKind;
    public int NatTag;
    /// <summary>The precomputed IPv4 TCP/UDP rewrite of each direction (<see cref="Nat.NatRewrite4"/>).</summary>
    public Nat.NatRewrite4 RewriteOriginal;
    public Nat.NatRewrite4 RewriteReply;
    public long Created;
    public long LastSeen;
    public long PacketsOriginal;
    public long BytesOriginal;
    public long PacketsReply;
    public long BytesReply;

    public readonly bool InUse => (Status & ConntrackStatus.InUse) != 0;
    public readonly bool Assured => (Status & ConntrackStatus.Assured) != 0;
}

/// <summary>
/// What a conntrack hit in one direction reads, in one 64-byte cache line (the table aligns them): that direction's
/// tuple, the connection's state and status, the expiry this direction last set, and the precomputed rewrite of its
/// packets. A connection has two, adjacent (original at an even index, reply at the next), like the two
/// nf_conntrack_tuple_hash nodes of Linux's nf_conn; Cilium's and Katran's per-flow entries are likewise one line.
/// </summary>
/// <remarks>
/// <para>
/// <b>State and status</b> live in both lines and are written to both when they change (a few times per connection),
/// so a packet reads its own line only. <b>Expiry</b> is written per packet to the packet's own line only; the
/// connection's expiry is the later of the two (every packet sets its line to now + the current state's timeout, and
/// a state change sets both), so a lookup whose own line has lapsed looks at the other before declaring the
/// connection dead (<see cref="ConntrackTable"/>).
/// </para>
/// <para>
/// <see cref="State"/> and <see cref="Status"/> sit in <see cref="FlowKey"/>'s two bytes of tail padding (its fields
/// end at byte 38 of 40): the tuple is written first, once, at insert, and never again, so the padding copy cannot
/// overwrite them afterwards (ConntrackLayoutTests).
/// </para>
/// </remarks>
[StructLayout(LayoutKind.Explicit, Size = 64)]
public struct ConntrackDirection
{
    [FieldOffset(0)] public FlowKey Tuple;
    [FieldOffset(38)] public ConntrackState State;
    [FieldOffset(39)] public ConntrackStatus Status;
    /// <summary>now + timeout when this direction last saw a packet (or the state last changed).</summary>
    [FieldOffset(40)] public long Expires;
    [FieldOffset(48)] public Nat.NatRewrite4 Rewrite;
}

/// <summary>
/// What a conntrack hit only writes, or only control paths read: the NAT stage's tag, clocks and counters. One per
/// connection, in an array parallel to the <see cref="ConntrackDirection"/> lines (64 bytes, aligned).
/// </summary>
[StructLayout(LayoutKind.Sequential, Size = 64)]
public struct ConntrackCold
{
    public long Created;
    public long LastSeen;
    public long PacketsOriginal;
    public long BytesOriginal;
    public long PacketsReply;
    public long BytesReply;
    /// <summary>The stage's version check (<see cref="Services.ServiceNat.StillValid"/>).</summary>
    public int NatTag;
    /// <summary>Which rewrite applies (none, SNAT, DNAT...), set by the NAT stages; the table never reads it.</summary>
    public byte NatKind;
}
