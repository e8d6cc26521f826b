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
    public ushort Reserved;
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
