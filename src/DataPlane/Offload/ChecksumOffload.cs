using System.Buffers.Binary;
using FastPath.DataPlane.Packets;
using FastPath.DataPlane.Pipeline;
using FastPath.DataPlane.Telemetry;

namespace FastPath.DataPlane.Offload;

/// <summary>
/// Partial checksums (CHECKSUM_PARTIAL, Linux Documentation/networking/checksum-offloads.rst) as they arrive from a TAP
/// with offloads: the sender left the TCP/UDP checksum field holding the pseudo-header sum and said where it is
/// (csum_start, csum_offset). The engine carries such a packet as it is, adjusting only the pseudo-header part on NAT
/// (<see cref="Nat.NatRewriter"/>), and the receiver completes it. <see cref="Admit"/> checks after parsing that the
/// offsets name the packet's own transport checksum, and otherwise completes it in software as the kernel's
/// skb_checksum_help would, so nothing downstream has to understand an odd layout.
/// </summary>
public static class ChecksumOffload
{
    /// <summary>Checks a parsed packet's offload metadata; <see cref="DropReason.Malformed"/> when it cannot be honoured.</summary>
    public static DropReason Admit(Span<byte> frame, ref PacketMeta m)
    {
        if ((m.Offload & OffloadFlags.ChecksumPartial) == 0)
            return m.Gso == GsoKind.None ? DropReason.None : DropReason.Malformed;
        if ((m.Offload & OffloadFlags.Encapsulated) != 0)
            return m.IpProtocol == IpProtocol.Udp && m.ChecksumStart > m.L4Offset ? DropReason.None : DropReason.Malformed;
        if (NamesTransportChecksum(in m)) return DropReason.None;
        // A VXLAN packet whose inner checksum is partial (no GSO: the kernel did not flag a tunnel) is decapsulated
        // with it; the engine re-checks the inner offsets then.
        if (m.Gso == GsoKind.None && m.IpProtocol == IpProtocol.Udp && m.ChecksumStart > m.L4Offset && (m.Flags & PacketFlags.HasL4) != 0)
        {
            m.Offload |= OffloadFlags.Encapsulated;
            return DropReason.None;
        }
        return m.Gso == GsoKind.None && Complete(frame, ref m, m.ChecksumStart) ? DropReason.None : DropReason.Malformed;
    }

    /// <summary>True when the partial checksum is the packet's own TCP or UDP checksum (its header at <see cref="PacketMeta.L4Offset"/>).</summary>
    public static bool NamesTransportChecksum(in PacketMeta m) =>
        m.ChecksumStart == m.L4Offset && (m.Flags & (PacketFlags.HasL4 | PacketFlags.Fragment)) == PacketFlags.HasL4
        && (m.IpProtocol == IpProtocol.Tcp ? m.ChecksumOffset == 16 && m.Gso != GsoKind.UdpL4
            : m.IpProtocol == IpProtocol.Udp && m.ChecksumOffset == 6 && m.Gso is GsoKind.None or GsoKind.UdpL4);

    /// <summary>Where the transport header with the partial checksum starts in a packet the engine processed.</summary>
    public static int TransportStart(in PacketMeta m) =>
        (m.Offload & OffloadFlags.Encapsulated) != 0 ? m.ChecksumStart : m.L4Offset;

    /// <summary>
    /// Finishes a partial checksum in place: the ones'-complement sum from csum_start to the end of the L3 packet
    /// (the field holds the pseudo-header sum already), complemented, written at csum_start + csum_offset.
    /// </summary>
    /// <param name="start">csum_start in the frame (<see cref="TransportStart"/> once the engine has moved the packet).</param>
    /// <returns>False when the offsets lie outside the packet (then nothing is written).</returns>
    public static bool Complete(Span<byte> frame, ref PacketMeta m, int start)
    {
        int end = m.L3Offset + m.L3Length;
        int field = start + m.ChecksumOffset;
        if (m.L3 is not (L3Kind.Ipv4 or L3Kind.Ipv6) || start < m.L3Offset || field + 2 > end || end > frame.Length) return false;
        ushort csum = Checksum.Fold(Checksum.Sum(frame[start..end]));
        // A UDP checksum that comes out 0 is sent as 0xFFFF (RFC 768); for TCP the two zeros are equivalent.
        BinaryPrimitives.WriteUInt16BigEndian(frame[field..], csum == 0 ? (ushort)0xFFFF : csum);
        m.Offload &= ~(OffloadFlags.ChecksumPartial | OffloadFlags.Encapsulated);
        return true;
    }
}
