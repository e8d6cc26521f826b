using System.Runtime.InteropServices;
using FastPath.DataPlane.Packets;
using FastPath.DataPlane.Telemetry;

namespace FastPath.DataPlane.Pipeline;

/// <summary>Facts the parser records about a packet, so later stages never parse again.</summary>
[Flags]
public enum PacketFlags : byte
{
    None = 0,
    /// <summary>IPv4 MF/offset or an IPv6 fragment header: L4 may be absent.</summary>
    Fragment = 1,
    /// <summary>A fragment other than the first: no L4 header at all (never answered with ICMP, RFC 1812 §4.3.2.7).</summary>
    NonFirstFragment = 2,
    /// <summary>IPv4 don't-fragment bit set.</summary>
    DontFragment = 4,
    /// <summary>L2 destination is broadcast or multicast.</summary>
    L2Multicast = 8,
    /// <summary>The L4 header is present and complete (<see cref="PacketMeta.L4Offset"/> valid).</summary>
    HasL4 = 16,
    /// <summary>The packet is itself an ICMP/ICMPv6 error (never answered with another error, RFC 1122 §3.2.2).</summary>
    IcmpError = 32,
    /// <summary>Another worker handed the packet over (live runs with several workers): never handed on again.</summary>
    HandedOver = 64,
    /// <summary>The ingress port was not given but resolved (<see cref="PortIndex.Auto"/>): the frame's L2 addresses
    /// are the capture's, not necessarily ones the port would have received.</summary>
    IngressResolved = 128,
}

/// <summary>Where a parsed packet's L3 protocol is.</summary>
public enum L3Kind : byte { None = 0, Arp, Ipv4, Ipv6 }

/// <summary>
/// Per-packet metadata, one struct per batch slot: where the frame is, what the parser found (offsets relative to
/// the frame start) and the verdict. Kept to one cache line.
/// </summary>
[StructLayout(LayoutKind.Sequential)]
public struct PacketMeta
{
    /// <summary>Capture clock, nanoseconds since the Unix epoch; emitted packets carry the input's timestamp.</summary>
    public long Timestamp;
    /// <summary>1-based index of the packet in the input (drops.jsonl names it).</summary>
    public long InputIndex;
    /// <summary>Frame start in the batch arena (moves when the pipeline strips or prepends headers).</summary>
    public int Offset;
    /// <summary>Frame length in bytes.</summary>
    public int Length;
    /// <summary>Ingress port index, or <see cref="PortIndex.Auto"/> to resolve from the source address.</summary>
    public short IngressPort;
    /// <summary>Egress port index, or <see cref="PortIndex.None"/>.</summary>
    public short EgressPort;
    public DropReason Drop;
    public L3Kind L3;
    public PacketFlags Flags;
    /// <summary>IP protocol of the transport header (after IPv6 extension headers).</summary>
    public byte IpProtocol;
    public ushort L3Offset;
    public ushort L4Offset;
    /// <summary>Bytes of L3 packet (IPv4 total length / IPv6 40 + payload length), trailing L2 padding excluded.</summary>
    public ushort L3Length;
    public ushort SourcePort;
    public ushort DestinationPort;
    /// <summary>With <see cref="OffloadFlags.ChecksumPartial"/>: where the checksum field is from the transport header
    /// (virtio-net csum_offset: 16 for TCP, 6 for UDP).</summary>
    public ushort ChecksumOffset;
    /// <summary>Offloads the packet arrived with (a TAP's virtio-net header); none for captures and generated traffic.</summary>
    public OffloadFlags Offload;
    /// <summary>A GSO super-frame's kind (<see cref="GsoKind.None"/> for an ordinary frame).</summary>
    public GsoKind Gso;
    /// <summary>Payload bytes per segment of a GSO super-frame (virtio-net gso_size): what the MTU applies to.</summary>
    public ushort GsoSize;
    /// <summary>With <see cref="OffloadFlags.ChecksumPartial"/>: where the transport header whose checksum is partial
    /// starts in the frame (virtio-net csum_start). The engine keeps it current only while the packet is
    /// <see cref="OffloadFlags.Encapsulated"/>; otherwise that header is at <see cref="L4Offset"/>.</summary>
    public ushort ChecksumStart;
    /// <summary>Set by the engine instead of a verdict: the worker (+ 1) whose conntrack holds the packet's connection
    /// (<see cref="Conntrack.FlowOwners"/>); 0 for none.</summary>
    public byte HandOverTo;

    /// <summary>Copies the offload fields (<see cref="Offload"/>, <see cref="Gso"/>, <see cref="GsoSize"/>,
    /// <see cref="ChecksumStart"/>, <see cref="ChecksumOffset"/>) of <paramref name="from"/>, where a packet's metadata is
    /// rebuilt around the same bytes.</summary>
    public void CopyOffloads(in PacketMeta from) =>
        (Offload, Gso, GsoSize, ChecksumStart, ChecksumOffset) = (from.Offload, from.Gso, from.GsoSize, from.ChecksumStart, from.ChecksumOffset);
}

/// <summary>Checksum facts a packet carries past the engine (virtio-net header flags, Linux's ip_summed).</summary>
[Flags]
public enum OffloadFlags : byte
{
    None = 0,
    /// <summary>
    /// CHECKSUM_PARTIAL: the TCP/UDP checksum field holds only the folded pseudo-header sum, uncomplemented; the
    /// receiver (or a NIC) completes it over the payload. NAT then adjusts only the pseudo-header part: an address
    /// change moves it, a port change does not (Linux inet_proto_csum_replace4 with pseudohdr).
    /// </summary>
    ChecksumPartial = 1,
    /// <summary>The sender vouched for the checksums (virtio-net DATA_VALID); passed on as such.</summary>
    DataValid = 2,
    /// <summary>The engine wrapped the packet in VXLAN: the offloaded checksum and segmentation are the inner packet's.</summary>
    Encapsulated = 4,
    /// <summary>A TCP super-frame whose segments carry ECN's CWR (virtio-net GSO_ECN): kept when it is passed on.</summary>
    GsoEcn = 8,
}

/// <summary>GSO super-frame kinds, numbered as virtio-net's gso_type (include/uapi/linux/virtio_net.h).</summary>
public enum GsoKind : byte
{
    None = 0,
    TcpV4 = 1,
    TcpV6 = 4,
    /// <summary>UDP segmentation offload (USO): each segment a datagram of <see cref="PacketMeta.GsoSize"/> bytes.</summary>
    UdpL4 = 5,
}

/// <summary>Reads a parsed packet's IP addresses (IPv4 ones as IPv4-mapped <see cref="IpAddr"/>).</summary>
public static class PacketAddresses
{
    /// <param name="frame">The packet's frame: offsets in <paramref name="m"/> are relative to its start.</param>
    public static IpAddr Source(ReadOnlySpan<byte> frame, in PacketMeta m) =>
        m.L3 == L3Kind.Ipv4 ? IpAddr.ReadV4(frame[(m.L3Offset + 12)..]) : IpAddr.ReadV6(frame[(m.L3Offset + 8)..]);

    public static IpAddr Destination(ReadOnlySpan<byte> frame, in PacketMeta m) =>
        m.L3 == L3Kind.Ipv4 ? IpAddr.ReadV4(frame[(m.L3Offset + 16)..]) : IpAddr.ReadV6(frame[(m.L3Offset + 24)..]);
}

/// <summary>Well-known port indices. Pod ports start at <see cref="FirstPod"/>.</summary>
public static class PortIndex
{
    public const short None = -1;
    /// <summary>Ingress unknown: the engine picks the pod port owning the source address, else the uplink.</summary>
    public const short Auto = -2;
    public const short Uplink = 0;
    public const short Host = 1;
    public const short FirstPod = 2;
}
