using System.Buffers.Binary;
using System.Runtime.CompilerServices;
using FastPath.DataPlane.Conntrack;
using FastPath.DataPlane.Offload;
using FastPath.DataPlane.Packets;
using FastPath.DataPlane.Pipeline;

namespace FastPath.DataPlane.Nat;

/// <summary>
/// One direction of an IPv4 TCP/UDP connection's translation, worked out once when the connection is tracked: the
/// addresses and ports its packets leave with, and the RFC 1624 checksum deltas (Σ ~m + m') of that change. Every
/// later packet is then rewritten with two stores (addresses, ports) and one add-and-fold per checksum, instead of
/// <see cref="NatRewriter"/>'s field-by-field walk (which stays the path for everything else: IPv6, ICMP, SCTP,
/// malformed packets).
/// </summary>
/// <remarks>
/// The deltas are exactly the terms <see cref="NatRewriter"/> would sum for the same rewrite (each side that changes
/// contributes its address and port words), and one's complement addition is associative, so the checksums come out
/// bit for bit the same (NatRewrite4Tests compare both paths and a full recomputation).
/// </remarks>
public struct NatRewrite4
{
    /// <summary>Source and destination address the packet leaves with, as one big-endian store; 0 = no precomputed
    /// rewrite for this direction (0.0.0.0 is never a translation target), the general path applies.</summary>
    public ulong Addresses;
    /// <summary>Source and destination port, as one big-endian store.</summary>
    public uint Ports;
    /// <summary>Σ ~m + m' over the address words of the rewritten sides, folded to 16 bits (one's complement, so
    /// folding first changes nothing): the IPv4 header checksum's change, and the part of a transport checksum the
    /// pseudo-header carries (all a partial, offloaded checksum takes).</summary>
    public ushort AddressDelta;
    /// <summary>Σ ~m + m' over the port words of the rewritten sides, folded.</summary>
    public ushort PortDelta;

    /// <summary>Whether this direction has a precomputed rewrite. (16 bytes: both directions take a quarter of
    /// <see cref="ConntrackEntry"/>'s first 128 bytes.)</summary>
    public readonly bool IsSet => Addresses != 0;

    /// <summary>The rewrite taking packets whose tuple is <paramref name="from"/> to <paramref name="to"/>; an empty one
    /// (<see cref="IsSet"/> false) unless both are IPv4 TCP/UDP tuples.</summary>
    public static NatRewrite4 Between(in FlowKey from, in FlowKey to)
    {
        if (from.Protocol is not (IpProtocol.Tcp or IpProtocol.Udp) || to.Protocol != from.Protocol) return default;
        IpAddr fs = from.Source, fd = from.Destination, ts = to.Source, td = to.Destination;
        if (!fs.IsV4 || !fd.IsV4 || !ts.IsV4 || !td.IsV4) return default;
        return Plan(fs.V4, fd.V4, from.SourcePort, from.DestinationPort, ts.V4, td.V4, to.SourcePort, to.DestinationPort);
    }

    /// <summary>
    /// Both directions' rewrites of a connection tracked as <paramref name="original"/> one way and
    /// <paramref name="reply"/> the other (nf_nat's rule: each direction becomes the reverse of the other's tuple):
    /// <see cref="Between"/>(original, reply.Reverse()) and (reply, original.Reverse()), without building the reversed
    /// tuples — it runs on every connection opening.
    /// </summary>
    public static void ForConnection(in FlowKey original, in FlowKey reply, out NatRewrite4 forOriginal, out NatRewrite4 forReply)
    {
        forOriginal = forReply = default;
        if (original.Protocol is not (IpProtocol.Tcp or IpProtocol.Udp) || reply.Protocol != original.Protocol) return;
        IpAddr os = original.Source, od = original.Destination, rs = reply.Source, rd = reply.Destination;
        if (!os.IsV4 || !od.IsV4 || !rs.IsV4 || !rd.IsV4) return;
        ushort osp = original.SourcePort, odp = original.DestinationPort, rsp = reply.SourcePort, rdp = reply.DestinationPort;
        forOriginal = Plan(os.V4, od.V4, osp, odp, rd.V4, rs.V4, rdp, rsp);
        forReply = Plan(rs.V4, rd.V4, rsp, rdp, od.V4, os.V4, odp, osp);
    }

    private static NatRewrite4 Plan(uint fromSource, uint fromDestination, ushort fromSourcePort, ushort fromDestinationPort,
        uint toSource, uint toDestination, ushort toSourcePort, ushort toDestinationPort)
    {
        ulong addresses = 0, ports = 0;
        // As NatRewriter: a side is rewritten (address and port words both summed) when its address or port differs.
        if (fromSource != toSource || fromSourcePort != toSourcePort)
        {
            addresses += Checksum.Delta32(fromSource, toSource);
            ports += Checksum.Delta16(fromSourcePort, toSourcePort);
        }
        if (fromDestination != toDestination || fromDestinationPort != toDestinationPort)
        {
            addresses += Checksum.Delta32(fromDestination, toDestination);
            ports += Checksum.Delta16(fromDestinationPort, toDestinationPort);
        }
        return new NatRewrite4
        {
            Addresses = (ulong)toSource << 32 | toDestination,
            Ports = (uint)toSourcePort << 16 | toDestinationPort,
            AddressDelta = Fold(addresses),
            PortDelta = Fold(ports),
        };
    }

    // One's complement end-around-carry fold of a small positive sum: the value in 1..0xFFFF congruent to it mod 0xFFFF
    // (0 only for 0), which is what UpdateBy would reduce it to anyway.
    private static ushort Fold(ulong sum)
    {
        while (sum > 0xFFFF) sum = (sum & 0xFFFF) + (sum >> 16);
        return (ushort)sum;
    }

    /// <summary>
    /// Applies the rewrite to a parsed packet of this direction (its tuple is the <c>from</c> of <see cref="Between"/>).
    /// Returns false, changing nothing, when the packet is not the plain IPv4 TCP/UDP packet the plan is for; the caller
    /// then takes the general path, which decides what such a packet gets.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public readonly unsafe bool TryApply(Span<byte> frame, ref PacketMeta m)
    {
        // The packet's tuple is the plan's (the lookup matched it), so its protocol is the plan's TCP or UDP.
        byte proto = m.IpProtocol;
        if (Addresses == 0 || m.L3 != L3Kind.Ipv4 || proto is not (IpProtocol.Tcp or IpProtocol.Udp)
            || (m.Flags & (PacketFlags.HasL4 | PacketFlags.NonFirstFragment)) != PacketFlags.HasL4) return false;
        int l3 = m.L3Offset, l4 = m.L4Offset, end = l3 + m.L3Length;
        bool udp = proto == IpProtocol.Udp;
        if ((uint)end > (uint)frame.Length || m.L3Length < Ipv4Header.MinLength || l4 < l3
            || l4 + (udp ? UdpHeader.Length : TcpHeader.MinLength) > end) return false;

        fixed (byte* f = frame) ApplyAt(f + l3, f + l4, udp, (m.Offload & OffloadFlags.ChecksumPartial) != 0);
        m.SourcePort = (ushort)(Ports >> 16);
        m.DestinationPort = (ushort)Ports;
        return true;
    }

    /// <summary>
    /// The rewrite itself, on a packet already checked to fit it (<see cref="TryApply"/>'s checks, or the engine's plain
    /// IPv4 parse, <c>Engine.ProcessTracked</c>): <paramref name="ip"/> is its IPv4 header, <paramref name="l4"/> its
    /// TCP or UDP header, both complete in the frame; <paramref name="partial"/> when its transport checksum is an
    /// offloaded partial one. The caller updates the metadata's ports.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal readonly unsafe void ApplyAt(byte* ip, byte* l4, bool udp, bool partial)
    {
        Unsafe.WriteUnaligned(ip + 12, BigEndian(Addresses));
        ushort* ipc = (ushort*)(ip + 10);
        // The deltas are folded to 16 bits, so each update is Checksum.UpdateBy with the sum already below 2^18: one
        // 32-bit fold gives the same bits (Checksum.Fold), without UpdateBy's 64-bit steps.
        Unsafe.WriteUnaligned(ipc, BigEndian(Checksum.Fold((uint)(ushort)~BigEndian(Unsafe.ReadUnaligned<ushort>(ipc)) + AddressDelta)));
        Unsafe.WriteUnaligned(l4, BigEndian(Ports));

        ushort* l4c = (ushort*)(l4 + (udp ? 6 : 16));
        ushort csum = BigEndian(Unsafe.ReadUnaligned<ushort>(l4c));
        // A partial (offloaded) checksum holds the uncomplemented pseudo-header sum: only the addresses enter it.
        if (partial)
        {
            if (AddressDelta != 0) Unsafe.WriteUnaligned(l4c, BigEndian((ushort)~Checksum.Fold((uint)csum + AddressDelta)));
        }
        // RFC 768: a zero UDP checksum over IPv4 was never computed, and must not become one.
        else if (!(udp && csum == 0))
        {
            uint delta = (uint)AddressDelta + PortDelta;
            if (delta != 0)
            {
                csum = Checksum.Fold((uint)(ushort)~csum + delta);
                if (udp) csum = Checksum.UdpTransmitted(csum);
                Unsafe.WriteUnaligned(l4c, BigEndian(csum));
            }
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static ulong BigEndian(ulong v) => BitConverter.IsLittleEndian ? BinaryPrimitives.ReverseEndianness(v) : v;
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static uint BigEndian(uint v) => BitConverter.IsLittleEndian ? BinaryPrimitives.ReverseEndianness(v) : v;
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static ushort BigEndian(ushort v) => BitConverter.IsLittleEndian ? BinaryPrimitives.ReverseEndianness(v) : v;
}
