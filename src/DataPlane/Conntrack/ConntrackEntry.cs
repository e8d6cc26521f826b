using System.Runtime.InteropServices;

namespace FastPath.DataPlane.Conntrack;

/// <summary>
/// One tracked connection (Linux's struct nf_conn): both tuples, state, clocks and counters, plus opaque NAT
/// fields the Services and masquerade stages own. <see cref="Reply"/> is what the reply direction looks like on
/// the wire, so it differs from <c>Original.Reverse()</c> exactly when NAT rewrites the flow.
/// </summary>
/// <remarks>
/// The fields a lookup touches (expiry, both tuples) come first; counters and NAT fields after them. 192 bytes: three
/// cache lines, and the table keeps the records 64-byte aligned, so a record is exactly those three lines.
/// Times are nanoseconds of the capture clock (<see cref="Pipeline.PacketMeta.Timestamp"/>).
/// </remarks>
[StructLayout(LayoutKind.Sequential)]
public struct ConntrackEntry
{
    /// <summary>
    /// Bumped when a field's meaning changes without its shape (a state file's records are then not restored); a
    /// change of shape is caught by the layout fingerprint anyway (<see cref="State.StateFile.LayoutHash"/>).
    /// </summary>
    public const uint LayoutVersion = 1;

    /// <summary>The entry is dead once <c>now ≥ Expires</c>.</summary>
    public long Expires;
    public FlowKey Original;
    public FlowKey Reply;
    public ConntrackState State;
    public ConntrackStatus Status;
    /// <summary>Which rewrite applies (none, SNAT, DNAT...), set by the NAT stages; the table never reads it.</summary>
    public byte NatKind;
    public int NatTag;
    /// <summary>The precomputed IPv4 TCP/UDP rewrite of each direction (<see cref="Nat.NatRewrite4"/>), set by
    /// <see cref="ConntrackTable.Insert"/> for a translated connection; right after the tuples and state so a hit
    /// reads it from the lines the lookup already brought in.</summary>
    public Nat.NatRewrite4 RewriteOriginal;
    public Nat.NatRewrite4 RewriteReply;
    /// <summary>The engine's forwarding decision of each direction after translation (<see cref="Pipeline.ForwardingDecision"/>),
    /// valid while its stamp is the engine's current generation; zero in a new or restored entry.</summary>
    public Pipeline.ForwardingDecision DecisionOriginal;
    public Pipeline.ForwardingDecision DecisionReply;
    public long Created;
    public long LastSeen;
    public long PacketsOriginal;
    public long BytesOriginal;
    public long PacketsReply;
    public long BytesReply;

    public readonly bool InUse => (Status & ConntrackStatus.InUse) != 0;
    public readonly bool Assured => (Status & ConntrackStatus.Assured) != 0;
}
