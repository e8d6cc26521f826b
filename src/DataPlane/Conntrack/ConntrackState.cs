namespace FastPath.DataPlane.Conntrack;

/// <summary>
/// Where a connection is in its protocol's life, after Linux's nf_conntrack_proto_tcp.c (tcp_conntracks) and
/// the UDP/ICMP trackers; each state has its own timeout in <see cref="ConntrackTimeouts"/>.
/// </summary>
public enum ConntrackState : byte
{
    /// <summary>Slot unused.</summary>
    None = 0,
    /// <summary>TCP entry created, first packet not yet observed.</summary>
    TcpNew,
    TcpSynSent,
    TcpSynRecv,
    TcpEstablished,
    /// <summary>The original direction (the client) sent the first FIN.</summary>
    TcpFinWait,
    /// <summary>The reply direction (the server) sent the first FIN.</summary>
    TcpCloseWait,
    /// <summary>Both sides sent FIN; waiting for the ACK of the second.</summary>
    TcpLastAck,
    TcpTimeWait,
    /// <summary>Reset seen.</summary>
    TcpClose,
    /// <summary>UDP and other protocols without a state machine: only the original direction seen so far.</summary>
    Unreplied,
    /// <summary>UDP and others: the reply direction seen (Linux's "stream" timeout applies).</summary>
    Replied,
    IcmpRequest,
    IcmpReplied,
    /// <summary>SCTP entry created, first packet not yet observed (Linux's SCTP_CONNTRACK_NONE).</summary>
    SctpNew,
    /// <summary>SCTP states of nf_conntrack_proto_sctp.c, in its order (see <see cref="ConntrackSctp"/>).</summary>
    SctpClosed,
    SctpCookieWait,
    SctpCookieEchoed,
    SctpEstablished,
    SctpShutdownSent,
    SctpShutdownRecd,
    SctpShutdownAckSent,
    SctpHeartbeatSent,
}

/// <summary>Status bits, after Linux's IPS_* bits in ct->status.</summary>
[Flags]
public enum ConntrackStatus : byte
{
    None = 0,
    InUse = 1,
    /// <summary>A packet in the reply direction was seen (IPS_SEEN_REPLY).</summary>
    SeenReply = 2,
    /// <summary>
    /// The connection proved two-way (IPS_ASSURED): TCP reached ESTABLISHED with a reply seen, UDP saw a reply.
    /// Assured entries are never evicted when the table is full; ICMP never becomes assured, as in Linux.
    /// </summary>
    Assured = 4,
    FinOriginal = 8,
    FinReply = 16,
    /// <summary>The second FIN came from the reply direction (so the closing ACK comes from the original).</summary>
    LastFinReply = 32,
    /// <summary>
    /// The reply tuple is not the original reversed, so the connection's packets are rewritten (Linux's IPS_SRC_NAT |
    /// IPS_DST_NAT); without it (a flow tracked for NetworkPolicy) a hit leaves the packet as it is.
    /// </summary>
    Translated = 64,
}
