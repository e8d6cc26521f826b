using System.Buffers.Binary;
using FastPath.DataPlane.Packets;
using FastPath.DataPlane.Pipeline;

namespace FastPath.DataPlane.Ports;

/// <summary>
/// The virtio-net header a TAP opened with IFF_VNET_HDR puts in front of every frame (include/uapi/linux/virtio_net.h,
/// little-endian as TUN's default on little-endian hosts): flags, gso_type, hdr_len, gso_size, csum_start, csum_offset,
/// num_buffers (virtio_net_hdr_v1, 12 bytes); then hash_value, hash_report, padding, outer_th_offset and
/// inner_nh_offset (virtio_net_hdr_v1_hash_tunnel, 24 bytes) for GSO over UDP tunnels. It is the packet's offload
/// metadata: <see cref="Read"/> moves it into <see cref="PacketMeta"/>, <see cref="Write"/> rebuilds it from there.
/// </summary>
public static class VirtioNetHeader
{
    public const int Length = 12;
    public const int TunnelLength = 24;

    public const byte FlagNeedsChecksum = 1, FlagDataValid = 2, FlagUdpTunnelChecksum = 8;
    public const byte GsoEcn = 0x80, GsoUdpTunnelV4 = 0x20, GsoUdpTunnelV6 = 0x40;

    /// <summary>Reads <paramref name="header"/> into the offload fields of <paramref name="m"/>.</summary>
    /// <returns>False for a header the engine cannot honour (an unknown GSO type, a GSO frame without a partial
    /// checksum, a tunnel over IPv6): the frame is dropped as malformed.</returns>
    public static bool Read(ReadOnlySpan<byte> header, ref PacketMeta m)
    {
        if (header.Length < Length) return true; // no header: an ordinary frame
        byte flags = header[0];
        byte type = header[1];
        m.Offload = OffloadFlags.None;
        if ((flags & FlagNeedsChecksum) != 0)
        {
            m.Offload |= OffloadFlags.ChecksumPartial;
            m.ChecksumStart = BinaryPrimitives.ReadUInt16LittleEndian(header[6..]);
            m.ChecksumOffset = BinaryPrimitives.ReadUInt16LittleEndian(header[8..]);
        }
        if ((flags & FlagDataValid) != 0) m.Offload |= OffloadFlags.DataValid;
        if (type == 0) return true;
        if ((type & GsoEcn) != 0) m.Offload |= OffloadFlags.GsoEcn;
        if ((type & GsoUdpTunnelV6) != 0) return false; // the underlay here is IPv4
        if ((type & GsoUdpTunnelV4) != 0) m.Offload |= OffloadFlags.Encapsulated;
        m.Gso = (GsoKind)(type & ~(GsoEcn | GsoUdpTunnelV4));
        m.GsoSize = BinaryPrimitives.ReadUInt16LittleEndian(header[4..]);
        return m.Gso is GsoKind.TcpV4 or GsoKind.TcpV6 or GsoKind.UdpL4 && m.GsoSize > 0
            && (m.Offload & OffloadFlags.ChecksumPartial) != 0;
    }

    /// <summary>
    /// Writes the header for the processed packet <paramref name="m"/> (offsets relative to its frame) into
    /// <paramref name="header"/>, whose length is the device's header length (12 or 24).
    /// </summary>
    public static void Write(Span<byte> header, in PacketMeta m)
    {
        header.Clear();
        if ((m.Offload & OffloadFlags.ChecksumPartial) == 0)
        {
            if ((m.Offload & OffloadFlags.DataValid) != 0) header[0] = FlagDataValid;
            return;
        }
        bool encapsulated = (m.Offload & OffloadFlags.Encapsulated) != 0;
        int start = encapsulated ? m.ChecksumStart : m.L4Offset;
        header[0] = FlagNeedsChecksum;
        BinaryPrimitives.WriteUInt16LittleEndian(header[6..], (ushort)start);
        BinaryPrimitives.WriteUInt16LittleEndian(header[8..], m.ChecksumOffset);
        if (m.Gso == GsoKind.None) return;
        byte type = (byte)m.Gso;
        if ((m.Offload & OffloadFlags.GsoEcn) != 0) type |= GsoEcn;
        if (encapsulated)
        {
            type |= GsoUdpTunnelV4;
            // Outer UDP right after the outer IPv4 header; the inner IP header after UDP, VXLAN and inner Ethernet.
            BinaryPrimitives.WriteUInt16LittleEndian(header[20..], m.L4Offset);
            BinaryPrimitives.WriteUInt16LittleEndian(header[22..], (ushort)(m.L4Offset + UdpHeader.Length + VxlanHeader.Length + EthernetHeader.Length));
        }
        header[1] = type;
        BinaryPrimitives.WriteUInt16LittleEndian(header[2..], (ushort)(start + m.ChecksumOffset + 2));
        BinaryPrimitives.WriteUInt16LittleEndian(header[4..], m.GsoSize);
    }

    /// <summary>
    /// Whether a device opened with <paramref name="offloads"/> takes the processed packet as it is. The kernel
    /// accepts partial checksums and TCP/UDP super-frames from any device with a header (TUNSETOFFLOAD only governs
    /// what it hands us); encapsulated super-frames need the tunnel header.
    /// </summary>
    public static bool Fits(TapOffloads offloads, in PacketMeta m)
    {
        if (m.Offload == OffloadFlags.None) return true;
        if (offloads == TapOffloads.None) return (m.Offload & OffloadFlags.ChecksumPartial) == 0 && m.Gso == GsoKind.None;
        return m.Gso == GsoKind.None || (m.Offload & OffloadFlags.Encapsulated) == 0 || (offloads & TapOffloads.UdpTunnelGso) != 0;
    }
}
