using System.Runtime.CompilerServices;
using FastPath.DataPlane.Packets;

namespace FastPath.DataPlane.Overlay;

/// <summary>
/// The outer headers of every packet tunnelled to one remote node, built once: Ethernet, IPv4 (DF clear, TTL 64, UDP)
/// with the partial sum of its constant words, UDP to the VXLAN port and the VXLAN header, plus the partial sum of the
/// outer UDP checksum's constant part (pseudo-header addresses and protocol, destination port, VXLAN header). A packet
/// then costs one 50-byte copy and the fields that vary — total length, identification, header checksum, source port,
/// UDP length and checksum — as Linux's and DPDK's tunnel paths precompute per destination.
/// </summary>
public struct VxlanTemplate
{
    [InlineArray(VxlanTunnel.Overhead)]
    internal struct OuterBytes
    {
        private byte _first;
    }

    internal OuterBytes Bytes;
    /// <summary>One's complement sum of the outer IPv4 header with total length, identification and checksum 0.</summary>
    internal uint IpSum;
    /// <summary>One's complement sum of the outer UDP checksum's constant words (pseudo-header without its length,
    /// destination port, VXLAN header).</summary>
    internal uint UdpSum;
    /// <summary>False for the default value: not built yet.</summary>
    public bool Ready;

    public static VxlanTemplate Create(uint localUnderlay, uint remoteUnderlay, MacAddress localMac, MacAddress remoteMac, ushort udpPort, uint vni)
    {
        var t = new VxlanTemplate { Ready = true };
        Span<byte> outer = t.Bytes;
        EthernetHeader.Write(outer, remoteMac, localMac, EtherType.Ipv4);
        var ip = outer.Slice(EthernetHeader.Length, Ipv4Header.MinLength);
        Ipv4Header.Write(ip, 0, 0, 0, 0, VxlanTunnel.OuterTtl, IpProtocol.Udp, localUnderlay, remoteUnderlay);
        ip[10] = ip[11] = 0;
        t.IpSum = Checksum.Sum(ip);
        var udp = outer[(EthernetHeader.Length + Ipv4Header.MinLength)..];
        System.Buffers.Binary.BinaryPrimitives.WriteUInt16BigEndian(udp[2..], udpPort);
        VxlanHeader.Write(udp[UdpHeader.Length..], vni);
        t.UdpSum = Checksum.Sum(udp, Checksum.PseudoHeaderV4(localUnderlay, remoteUnderlay, IpProtocol.Udp, 0));
        return t;
    }
}
