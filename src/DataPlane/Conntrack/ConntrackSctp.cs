using FastPath.DataPlane.Packets;
using static FastPath.DataPlane.Conntrack.ConntrackState;
using Chunk = FastPath.DataPlane.Packets.SctpPacket.ChunkSet;

namespace FastPath.DataPlane.Conntrack;

/// <summary>
/// The SCTP state machine conntrack runs per packet: Linux's sctp_conntracks table (net/netfilter/
/// nf_conntrack_proto_sctp.c, as of Linux 6.x: INIT leaves the entry CLOSED, the INIT ACK reply moves it to COOKIE_WAIT,
/// COOKIE ECHO to COOKIE_ECHOED, the COOKIE ACK reply to ESTABLISHED and assured; SHUTDOWN / SHUTDOWN ACK / SHUTDOWN
/// COMPLETE close it, ABORT at once; a HEARTBEAT opens a secondary path's entry in HEARTBEAT_SENT, its HEARTBEAT ACK
/// reply establishes it). DATA, SACK and ERROR change nothing.
/// </summary>
/// <remarks>
/// Not copied: verification-tag checks (an association's vtags are not kept, so a packet with a wrong vtag is not
/// marked invalid) and Linux's refusal to open an entry for a first packet that is not INIT, HEARTBEAT or SHUTDOWN
/// ACK: such a packet opens the entry in CLOSED (10 s), like the TCP tracker's loose pick-up. A packet's control
/// chunks are applied in a fixed order (INIT, INIT ACK, COOKIE ECHO, COOKIE ACK, HEARTBEAT, HEARTBEAT ACK, SHUTDOWN,
/// SHUTDOWN ACK, SHUTDOWN COMPLETE, ABORT), which equals packet order for every bundling RFC 9260 §6.10 allows.
/// </remarks>
public static class ConntrackSctp
{
    private const int States = 9; // sNO, sCL, sCW, sCE, sES, sSS, sSR, sSA, sHS
    private const ConntrackState Iv = None; // sIV: invalid, the state is kept

    // [chunk][state] per direction, rows in Linux's order: init, init_ack, abort, shutdown, shutdown_ack, cookie_echo,
    // cookie_ack, shutdown_comp, heartbeat, heartbeat_ack (error changes nothing but COOKIE_ECHOED → CLOSED in reply,
    // which needs the error cause; omitted).
    private static readonly ConntrackState[] Original =
    [
        /* init          */ SctpClosed, SctpClosed, SctpCookieWait, SctpCookieEchoed, SctpEstablished, SctpClosed, SctpClosed, SctpShutdownAckSent, SctpCookieWait,
        /* init_ack      */ SctpClosed, SctpClosed, SctpCookieWait, SctpCookieEchoed, SctpEstablished, SctpShutdownSent, SctpShutdownRecd, SctpShutdownAckSent, SctpClosed,
        /* abort         */ SctpClosed, SctpClosed, SctpClosed, SctpClosed, SctpClosed, SctpClosed, SctpClosed, SctpClosed, SctpClosed,
        /* shutdown      */ SctpClosed, SctpClosed, SctpCookieWait, SctpCookieEchoed, SctpShutdownSent, SctpShutdownSent, SctpShutdownRecd, SctpShutdownAckSent, SctpClosed,
        /* shutdown_ack  */ SctpShutdownAckSent, SctpClosed, SctpCookieWait, SctpCookieEchoed, SctpEstablished, SctpShutdownAckSent, SctpShutdownAckSent, SctpShutdownAckSent, SctpShutdownAckSent,
        /* cookie_echo   */ SctpClosed, SctpClosed, SctpCookieEchoed, SctpCookieEchoed, SctpEstablished, SctpShutdownSent, SctpShutdownRecd, SctpShutdownAckSent, SctpClosed,
        /* cookie_ack    */ SctpClosed, SctpClosed, SctpCookieWait, SctpEstablished, SctpEstablished, SctpShutdownSent, SctpShutdownRecd, SctpShutdownAckSent, SctpClosed,
        /* shutdown_comp */ SctpClosed, SctpClosed, SctpCookieWait, SctpCookieEchoed, SctpEstablished, SctpShutdownSent, SctpShutdownRecd, SctpClosed, SctpClosed,
        /* heartbeat     */ SctpHeartbeatSent, SctpClosed, SctpCookieWait, SctpCookieEchoed, SctpEstablished, SctpShutdownSent, SctpShutdownRecd, SctpShutdownAckSent, SctpHeartbeatSent,
        /* heartbeat_ack */ SctpClosed, SctpClosed, SctpCookieWait, SctpCookieEchoed, SctpEstablished, SctpShutdownSent, SctpShutdownRecd, SctpShutdownAckSent, SctpHeartbeatSent,
    ];

    private static readonly ConntrackState[] Reply =
    [
        /* init          */ Iv, SctpClosed, SctpCookieWait, SctpCookieEchoed, SctpEstablished, SctpShutdownSent, SctpShutdownRecd, SctpShutdownAckSent, Iv,
        /* init_ack      */ Iv, SctpCookieWait, SctpCookieWait, SctpCookieEchoed, SctpEstablished, SctpShutdownSent, SctpShutdownRecd, SctpShutdownAckSent, Iv,
        /* abort         */ Iv, SctpClosed, SctpClosed, SctpClosed, SctpClosed, SctpClosed, SctpClosed, SctpClosed, Iv,
        /* shutdown      */ Iv, SctpClosed, SctpCookieWait, SctpCookieEchoed, SctpShutdownRecd, SctpShutdownSent, SctpShutdownRecd, SctpShutdownAckSent, Iv,
        /* shutdown_ack  */ Iv, SctpClosed, SctpCookieWait, SctpCookieEchoed, SctpEstablished, SctpShutdownAckSent, SctpShutdownAckSent, SctpShutdownAckSent, Iv,
        /* cookie_echo   */ Iv, SctpClosed, SctpCookieEchoed, SctpCookieEchoed, SctpEstablished, SctpShutdownSent, SctpShutdownRecd, SctpShutdownAckSent, Iv,
        /* cookie_ack    */ Iv, SctpClosed, SctpCookieWait, SctpEstablished, SctpEstablished, SctpShutdownSent, SctpShutdownRecd, SctpShutdownAckSent, Iv,
        /* shutdown_comp */ Iv, SctpClosed, SctpCookieWait, SctpCookieEchoed, SctpEstablished, SctpShutdownSent, SctpShutdownRecd, SctpClosed, Iv,
        /* heartbeat     */ Iv, SctpClosed, SctpCookieWait, SctpCookieEchoed, SctpEstablished, SctpShutdownSent, SctpShutdownRecd, SctpShutdownAckSent, SctpHeartbeatSent,
        /* heartbeat_ack */ Iv, SctpClosed, SctpCookieWait, SctpCookieEchoed, SctpEstablished, SctpShutdownSent, SctpShutdownRecd, SctpShutdownAckSent, SctpEstablished,
    ];

    // The rows above, in the order chunks are applied.
    private static ReadOnlySpan<ushort> Order =>
    [
        (ushort)Chunk.Init, (ushort)Chunk.InitAck, (ushort)Chunk.CookieEcho, (ushort)Chunk.CookieAck, (ushort)Chunk.Heartbeat,
        (ushort)Chunk.HeartbeatAck, (ushort)Chunk.Shutdown, (ushort)Chunk.ShutdownAck, (ushort)Chunk.ShutdownComplete, (ushort)Chunk.Abort,
    ];

    private static ReadOnlySpan<byte> Row => [0, 1, 5, 6, 8, 9, 3, 4, 7, 2];

    /// <summary>The state after a packet carrying <paramref name="chunks"/> in the given direction; sets the assured
    /// bit when the association becomes ESTABLISHED (as Linux does on that transition).</summary>
    public static ConntrackState Next(ConntrackState state, ref ConntrackStatus status, bool isReply, Chunk chunks)
    {
        var table = isReply ? Reply : Original;
        for (int i = 0; i < Order.Length; i++)
        {
            if (((ushort)chunks & Order[i]) == 0) continue;
            var next = table[Row[i] * States + (state - SctpNew)];
            if (next == Iv) continue; // invalid for this state: Linux leaves the entry as it is
            if (next == SctpEstablished && state != SctpEstablished) status |= ConntrackStatus.Assured;
            state = next;
        }
        // A first packet without a control chunk (DATA picked up mid-association): CLOSED, not NONE (see remarks).
        return state == SctpNew ? SctpClosed : state;
    }
}
