using FastPath.DataPlane.Packets;

namespace FastPath.DataPlane.Conntrack;

/// <summary>
/// The TCP state machine conntrack runs per packet: a reduced form of Linux's tcp_conntracks table
/// (net/netfilter/nf_conntrack_proto_tcp.c) without sequence-window tracking. Like Linux with
/// nf_conntrack_tcp_loose=1, a connection first seen mid-stream is picked up as ESTABLISHED.
/// </summary>
public static class ConntrackTcp
{
    /// <summary>The state after a packet with <paramref name="flags"/> in the given direction; updates FIN/assured bits.</summary>
    public static ConntrackState Next(ConntrackState state, ref ConntrackStatus status, bool isReply, byte flags)
    {
        bool syn = (flags & TcpHeader.Syn) != 0, ack = (flags & TcpHeader.Ack) != 0, fin = (flags & TcpHeader.Fin) != 0;
        if ((flags & TcpHeader.Rst) != 0) return ConntrackState.TcpClose;
        switch (state)
        {
            case ConntrackState.TcpNew:
                if (syn && !ack) return ConntrackState.TcpSynSent;
                if (syn) return state; // SYN-ACK as the first packet: not a connection we saw open
                return Established(ref status);
            case ConntrackState.TcpSynSent:
                // SYN-ACK answers; a bare SYN from the other side is a simultaneous open (RFC 9293 §3.5 figure 8).
                return isReply && syn ? ConntrackState.TcpSynRecv : state;
            case ConntrackState.TcpSynRecv:
                return ack && !syn ? Established(ref status) : state;
            case ConntrackState.TcpEstablished:
            case ConntrackState.TcpFinWait:
            case ConntrackState.TcpCloseWait:
            case ConntrackState.TcpLastAck:
                if (fin)
                {
                    var mine = isReply ? ConntrackStatus.FinReply : ConntrackStatus.FinOriginal;
                    var other = isReply ? ConntrackStatus.FinOriginal : ConntrackStatus.FinReply;
                    status |= mine;
                    if ((status & other) == 0) return isReply ? ConntrackState.TcpCloseWait : ConntrackState.TcpFinWait;
                    if (state != ConntrackState.TcpLastAck)
                    {
                        if (isReply) status |= ConntrackStatus.LastFinReply;
                        return ConntrackState.TcpLastAck;
                    }
                    return state; // FIN retransmission
                }
                if (state == ConntrackState.TcpLastAck && ack
                    && isReply != ((status & ConntrackStatus.LastFinReply) != 0))
                    return ConntrackState.TcpTimeWait;
                if (state == ConntrackState.TcpEstablished && isReply) status |= ConntrackStatus.Assured;
                return state;
            case ConntrackState.TcpTimeWait:
            case ConntrackState.TcpClose:
                // A new SYN from the client reuses the tuple (port reuse in TIME_WAIT, RFC 6191): start over. The
                // translation belongs to the tuple pair, not to the TCP state, so it stays: clearing it sent the new
                // connection's packets on untranslated (a ClusterIP SYN routed as is and dropped as no-route; the soak
                // of issue 21 found it, one short connection in ~350 through a Service).
                if (syn && !ack && !isReply)
                {
                    status &= ConntrackStatus.InUse | ConntrackStatus.Translated;
                    return ConntrackState.TcpSynSent;
                }
                return state;
            default:
                return state;
        }
    }

    private static ConntrackState Established(ref ConntrackStatus status)
    {
        // Assured once the connection is known to be two-way: always after a handshake; for a loose pick-up only
        // when a reply arrives (handled in the ESTABLISHED case).
        if ((status & ConntrackStatus.SeenReply) != 0) status |= ConntrackStatus.Assured;
        return ConntrackState.TcpEstablished;
    }
}
