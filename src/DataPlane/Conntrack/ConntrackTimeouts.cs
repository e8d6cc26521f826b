namespace FastPath.DataPlane.Conntrack;

/// <summary>
/// How long a connection lives after its last packet, per state. Defaults are Linux's nf_conntrack sysctls
/// (Documentation/networking/nf_conntrack-sysctl.rst) with the two values kube-proxy overrides at start-up
/// (its --conntrack-tcp-timeout-established 24h and --conntrack-tcp-timeout-close-wait 1h flags).
/// </summary>
public sealed record ConntrackTimeouts
{
    /// <summary>nf_conntrack_tcp_timeout_syn_sent is 120 s; 60 s (syn_recv's value, and Cilium's SYN timeout) bounds half-open floods tighter.</summary>
    public TimeSpan TcpSynSent { get; init; } = TimeSpan.FromSeconds(60);
    /// <summary>nf_conntrack_tcp_timeout_syn_recv.</summary>
    public TimeSpan TcpSynRecv { get; init; } = TimeSpan.FromSeconds(60);
    /// <summary>kube-proxy's 24 h (Linux's nf_conntrack_tcp_timeout_established is 5 days).</summary>
    public TimeSpan TcpEstablished { get; init; } = TimeSpan.FromHours(24);
    /// <summary>nf_conntrack_tcp_timeout_fin_wait.</summary>
    public TimeSpan TcpFinWait { get; init; } = TimeSpan.FromSeconds(120);
    /// <summary>kube-proxy's 1 h (Linux's nf_conntrack_tcp_timeout_close_wait is 60 s): a server may hold a half-closed socket.</summary>
    public TimeSpan TcpCloseWait { get; init; } = TimeSpan.FromHours(1);
    /// <summary>nf_conntrack_tcp_timeout_last_ack.</summary>
    public TimeSpan TcpLastAck { get; init; } = TimeSpan.FromSeconds(30);
    /// <summary>nf_conntrack_tcp_timeout_time_wait: 2·MSL (RFC 9293 §3.6.1).</summary>
    public TimeSpan TcpTimeWait { get; init; } = TimeSpan.FromSeconds(120);
    /// <summary>nf_conntrack_tcp_timeout_close (after RST).</summary>
    public TimeSpan TcpClose { get; init; } = TimeSpan.FromSeconds(10);
    /// <summary>nf_conntrack_udp_timeout.</summary>
    public TimeSpan UdpUnreplied { get; init; } = TimeSpan.FromSeconds(30);
    /// <summary>nf_conntrack_udp_timeout_stream (120 s since Linux 5.x).</summary>
    public TimeSpan UdpReplied { get; init; } = TimeSpan.FromSeconds(120);
    /// <summary>nf_conntrack_icmp_timeout / nf_conntrack_icmpv6_timeout.</summary>
    public TimeSpan Icmp { get; init; } = TimeSpan.FromSeconds(30);

    /// <summary>nf_conntrack_sctp_timeout_closed (also the timeout of a new entry, as Linux's timeouts[0]).</summary>
    public TimeSpan SctpClosed { get; init; } = TimeSpan.FromSeconds(10);
    /// <summary>nf_conntrack_sctp_timeout_cookie_wait, _cookie_echoed, _shutdown_sent, _shutdown_recd, _shutdown_ack_sent.</summary>
    public TimeSpan SctpHandshake { get; init; } = TimeSpan.FromSeconds(3);
    /// <summary>nf_conntrack_sctp_timeout_established (210 s since Linux 6.3: heartbeats keep a live association fresh).</summary>
    public TimeSpan SctpEstablished { get; init; } = TimeSpan.FromSeconds(210);
    /// <summary>nf_conntrack_sctp_timeout_heartbeat_sent.</summary>
    public TimeSpan SctpHeartbeatSent { get; init; } = TimeSpan.FromSeconds(30);

    public static ConntrackTimeouts Default { get; } = new();

    /// <summary>The timeout of <paramref name="state"/> (TcpNew uses the SYN timeout), in nanoseconds.</summary>
    public long Nanoseconds(ConntrackState state) => state switch
    {
        ConntrackState.TcpNew or ConntrackState.TcpSynSent => Ns(TcpSynSent),
        ConntrackState.TcpSynRecv => Ns(TcpSynRecv),
        ConntrackState.TcpEstablished => Ns(TcpEstablished),
        ConntrackState.TcpFinWait => Ns(TcpFinWait),
        ConntrackState.TcpCloseWait => Ns(TcpCloseWait),
        ConntrackState.TcpLastAck => Ns(TcpLastAck),
        ConntrackState.TcpTimeWait => Ns(TcpTimeWait),
        ConntrackState.TcpClose => Ns(TcpClose),
        ConntrackState.Unreplied => Ns(UdpUnreplied),
        ConntrackState.Replied => Ns(UdpReplied),
        ConntrackState.IcmpRequest or ConntrackState.IcmpReplied => Ns(Icmp),
        ConntrackState.SctpNew or ConntrackState.SctpClosed => Ns(SctpClosed),
        ConntrackState.SctpCookieWait or ConntrackState.SctpCookieEchoed or ConntrackState.SctpShutdownSent
            or ConntrackState.SctpShutdownRecd or ConntrackState.SctpShutdownAckSent => Ns(SctpHandshake),
        ConntrackState.SctpEstablished => Ns(SctpEstablished),
        ConntrackState.SctpHeartbeatSent => Ns(SctpHeartbeatSent),
        _ => 0,
    };

    private static long Ns(TimeSpan t) => t.Ticks * 100;
}
