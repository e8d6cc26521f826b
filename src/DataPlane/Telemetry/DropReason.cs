namespace FastPath.DataPlane.Telemetry;

/// <summary>
/// Why the engine did not forward an input packet. The wire names (<see cref="DropReasons.Name"/>) are part of
/// the command-line contract: they appear in drops.jsonl and summary.json and never change once shipped.
/// </summary>
public enum DropReason : byte
{
    None = 0,
    /// <summary>Headers are inconsistent: lengths, versions, header lengths or options that do not fit.</summary>
    Malformed,
    /// <summary>The capture kept fewer bytes than the packet had on the wire (snap length), so it cannot be forwarded.</summary>
    CaptureTruncated,
    /// <summary>The frame is larger than a packet buffer (jumbograms beyond <see cref="Pipeline.PacketBatch.MaxFrameLength"/>).</summary>
    FrameTooLarge,
    /// <summary>An EtherType or protocol the node does not forward (LLDP, STP, MPLS, ...).</summary>
    UnsupportedProtocol,
    /// <summary>IPv4 TTL or IPv6 hop limit would reach zero; an ICMP time exceeded is sent back.</summary>
    TtlExceeded,
    /// <summary>No route or local port for the destination.</summary>
    NoRoute,
    /// <summary>A Service frontend matched but it has no ready endpoints.</summary>
    NoEndpoints,
    /// <summary>A NetworkPolicy denies the flow.</summary>
    PolicyDenied,
    /// <summary>A pod sent a packet whose source address is not one of its own.</summary>
    SpoofedSource,
    /// <summary>The connection tracking table is full and nothing could be evicted.</summary>
    ConntrackFull,
    /// <summary>The packet does not fit the egress MTU and may not be fragmented.</summary>
    MtuExceeded,
    /// <summary>The packet entered on a port the snapshot does not know.</summary>
    UnknownPort,
    /// <summary>Arrived on the uplink but is addressed to neither this node, its pods nor its Services (or to another station's MAC).</summary>
    NotForNode,
    /// <summary>The destination pod's MAC is neither configured nor learned yet.</summary>
    NeighborUnknown,
    /// <summary>The IPv4 header checksum is wrong (RFC 1812 §5.2.2: a router must verify it).</summary>
    BadChecksum,
    /// <summary>A Service with traffic policy Local has no endpoint on this node: dropped without an ICMP error, as
    /// kube-proxy does.</summary>
    NoLocalEndpoints,
    /// <summary>To a Service address on a port or protocol the Service does not serve (rejected, as kube-proxy does).</summary>
    UnknownServicePort,
    /// <summary>VXLAN for this node with a VNI it does not own.</summary>
    UnknownVni,
    /// <summary>Handled by the engine itself and not forwarded: ARP replies, NDP advertisements, gratuitous ARP.</summary>
    Consumed,
}

/// <summary>Wire names and helpers for <see cref="DropReason"/>.</summary>
public static class DropReasons
{
    /// <summary>Number of enum values, for sizing counter arrays.</summary>
    public const int Count = (int)DropReason.Consumed + 1;

    private static readonly string[] Names =
    [
        "none", "malformed", "capture-truncated", "frame-too-large", "unsupported-protocol", "ttl-exceeded",
        "no-route", "no-endpoints", "policy-denied", "spoofed-source", "conntrack-full", "mtu-exceeded",
        "unknown-port", "not-for-node", "neighbor-unknown", "bad-checksum", "no-local-endpoints", "unknown-service-port", "unknown-vni", "consumed",
    ];

    public static string Name(DropReason reason) => Names[(int)reason];
}
