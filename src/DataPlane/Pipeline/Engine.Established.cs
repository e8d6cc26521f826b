using System.Buffers.Binary;
using System.Runtime.CompilerServices;
using FastPath.DataPlane.Conntrack;
using FastPath.DataPlane.Offload;
using FastPath.DataPlane.Overlay;
using FastPath.DataPlane.Packets;
using FastPath.DataPlane.Telemetry;

namespace FastPath.DataPlane.Pipeline;

/// <summary>
/// The lean path for packets of established IPv4 TCP/UDP connections (issue 16): an untraced batch, once connections
/// are tracked, is parsed and keyed in one pass, and a plain IPv4 packet (untagged Ethernet, a 20-byte header, TCP or
/// UDP, no fragment, no offloads) whose connection holds a current forwarding decision is forwarded by
/// <see cref="ForwardPlain4"/> over raw pointers at fixed offsets. Everything else takes the general path unchanged.
/// </summary>
public sealed partial class Engine
{
    // Which packets of the current batch the plain IPv4 parse took (ParsePlain4): their tuple is in _keys.
    private bool[] _plain = [];

    /// <summary>
    /// <see cref="Process{TObserver}"/> without an observer, with connections tracked: the parse, the tuples and
    /// hashes in one pass (a plain IPv4 TCP/UDP packet is parsed at fixed offsets and its tuple built from the words
    /// just read; any other packet goes through <see cref="PacketParser"/> and <see cref="TakeKey"/>), the batch's
    /// prefetches, then each packet in order: a plain one through <see cref="ForwardPlain4"/>, a keyed one through
    /// <see cref="ForwardTracked"/>, the rest through <see cref="Forward{TObserver}"/>. The verdicts, counters and bytes
    /// are the general path's (the conformance and engine tests run both).
    /// </summary>
    [SkipLocalsInit]
    private unsafe void ProcessTracked(ForwardingSnapshot snap, PacketBatch batch, ConntrackTable table)
    {
        var meta = batch.Meta;
        var arena = batch.Arena;
        int count = batch.Count;
        SizeBatchKeys(count);
        var none = default(NoObserver);
        var counters = Counters;
        // The batch arrays in locals: SizeBatchKeys made them at least count long, and nothing replaces them in the loops.
        var keys = _keys;
        var tags = _tags;
        var keyTaken = _keyTaken;
        var plain = _plain;
        var opens = _opening;
        fixed (byte* a = arena)
        {
            bool openings = false;
            for (int i = 0; i < count; i++)
            {
                ref var m = ref meta[i];
                if (m.Drop == DropReason.None && m.Offload == OffloadFlags.None && m.Gso == GsoKind.None
                    && (uint)m.Length <= (uint)arena.Length && (uint)m.Offset <= (uint)(arena.Length - m.Length)
                    && ParsePlain4(a + m.Offset, m.Length, ref m))
                {
                    byte* ip = a + m.Offset + EthernetHeader.Length;
                    var key = FlowKey.Ipv4(BinaryPrimitives.ReverseEndianness(Unsafe.ReadUnaligned<uint>(ip + 12)),
                        BinaryPrimitives.ReverseEndianness(Unsafe.ReadUnaligned<uint>(ip + 16)), m.SourcePort, m.DestinationPort, m.IpProtocol);
                    keys[i] = key;
                    tags[i] = table.Tag(key);
                    keyTaken[i] = true;
                    plain[i] = true;
                    bool opening = m.IpProtocol == IpProtocol.Tcp
                        && (ip[Ipv4Header.MinLength + 13] & (TcpHeader.Syn | TcpHeader.Ack)) == TcpHeader.Syn;
                    opens[i] = opening;
                    openings |= opening;
                    continue;
                }
                plain[i] = false;
                if (m.Drop == DropReason.None) m.Drop = PacketParser.Parse(arena.AsSpan(m.Offset, m.Length), ref m);
                if (m.Offload != OffloadFlags.None && m.Drop == DropReason.None) m.Drop = ChecksumOffload.Admit(arena.AsSpan(m.Offset, m.Length), ref m);
                openings |= TakeKey(table, arena, ref m, i);
            }
            PrefetchBatch(table, snap.Services, count, openings);

            for (int i = 0; i < count; i++)
            {
                ref var m = ref meta[i];
                int ingress = ResolveIngress(snap, arena, ref m);
                if (ingress < 0)
                {
                    m.Drop = DropReason.UnknownPort;
                    continue;
                }
                if ((m.Flags & PacketFlags.HandedOver) == 0) counters.CountRx(ingress, m.Length);
                if (m.Drop == DropReason.None)
                    m.Drop = plain[i] ? ForwardPlain4(snap, a, arena, ref m, i, ingress, table)
                        : keyTaken[i] ? ForwardTracked(snap, arena, ref m, i, ingress)
                        : Forward(snap, arena, ref m, i, ingress, ref none, NotLookedUp, false);
                if (m.Drop != DropReason.None) counters.CountDrop(ingress, m.Drop);
                if (m.EgressPort >= 0) counters.CountTx(m.EgressPort, m.Length);
            }
        }
    }

    /// <summary>
    /// Parses <paramref name="frame"/> when it is a plain IPv4 TCP/UDP packet — untagged Ethernet, version 4 with a
    /// 20-byte header whose checksum verifies, total length within the frame, not a fragment, a complete TCP header
    /// (data offset within the packet) or UDP header (length within the packet) — recording exactly what
    /// <see cref="PacketParser.Parse"/> records for it. Anything else returns false with <paramref name="m"/> untouched,
    /// and the general parser decides what it is.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static unsafe bool ParsePlain4(byte* frame, int length, ref PacketMeta m)
    {
        const int l3 = EthernetHeader.Length, l4 = l3 + Ipv4Header.MinLength;
        if (length < l4 || Unsafe.ReadUnaligned<ushort>(frame + 12) != BigEndian(EtherType.Ipv4)) return false;
        byte* ip = frame + l3;
        if (ip[0] != 0x45) return false;
        int total = ip[2] << 8 | ip[3];
        if (total < Ipv4Header.MinLength || total > length - l3 || !Checksum.Ipv4HeaderValid20(ref *ip)) return false;
        int frag = ip[6] << 8 | ip[7];
        if ((frag & (Ipv4Header.FlagMoreFragments | Ipv4Header.FragmentOffsetMask)) != 0) return false;
        byte proto = ip[9];
        int avail = total - Ipv4Header.MinLength;
        byte* t = ip + Ipv4Header.MinLength;
        if (proto == IpProtocol.Tcp)
        {
            int hl = (t[12] >> 4) * 4;
            if (avail < TcpHeader.MinLength || hl < TcpHeader.MinLength || hl > avail) return false;
        }
        else if (proto == IpProtocol.Udp)
        {
            if (avail < UdpHeader.Length) return false;
            int ul = t[4] << 8 | t[5];
            if (ul < UdpHeader.Length || ul > avail) return false;
        }
        else return false;

        var flags = m.Flags | PacketFlags.HasL4;
        if ((frame[0] & 1) != 0) flags |= PacketFlags.L2Multicast;
        if ((frag & Ipv4Header.FlagDontFragment) != 0) flags |= PacketFlags.DontFragment;
        m.Flags = flags;
        m.L3Offset = l3;
        m.L3 = L3Kind.Ipv4;
        m.L3Length = (ushort)total;
        m.IpProtocol = proto;
        m.L4Offset = l4;
        m.SourcePort = (ushort)(t[0] << 8 | t[1]);
        m.DestinationPort = (ushort)(t[2] << 8 | t[3]);
        return true;
    }

    /// <summary>
    /// <see cref="ForwardTracked"/> for a packet <see cref="ParsePlain4"/> took: the lookup, and when the connection holds
    /// a decision of this snapshot for the packet's ingress port, the per-packet steps at fixed offsets — the frame's
    /// admission, the connection's state and counters, the precomputed rewrite, then for a local delivery the TTL and
    /// the Ethernet addresses written in place (the header is already untagged IPv4), for the uplink the general
    /// emit. A miss, another decision, an expiring TTL or a rewrite that is not precomputed take the general steps.
    /// </summary>
    private unsafe DropReason ForwardPlain4(ForwardingSnapshot snap, byte* a, byte[] arena, ref PacketMeta m, int index, int ingress,
        ConntrackTable table)
    {
        var none = default(NoObserver);
        int found = table.Lookup(_keys[index], _tags[index], m.Timestamp, out bool isReply);
        if (found < 0) return Forward(snap, arena, ref m, index, ingress, ref none, found, isReply);
        ref var entry = ref table[found];
        var decision = isReply ? entry.DecisionReply : entry.DecisionOriginal;
        if (decision.Stamp != _generation || decision.Ingress != ingress) return Forward(snap, arena, ref m, index, ingress, ref none, found, isReply);

        byte* frame = a + m.Offset;
        if (ingress >= PortIndex.FirstPod)
        {
            // AdmitFrame's pod case on the frame in place: the pod's source MAC is learned.
            ulong sourceMac = (ulong)BigEndian(Unsafe.ReadUnaligned<ushort>(frame + 6)) << 32 | BigEndian(Unsafe.ReadUnaligned<uint>(frame + 8));
            if (!new MacAddress(sourceMac).IsMulticast) _learnedMacs[ingress] = sourceMac;
        }
        else
        {
            var admitted = AdmitFrame(snap, arena, in m, ingress);
            if (admitted != DropReason.None) return admitted;
        }
        byte* ip = frame + EthernetHeader.Length;
        byte* l4 = ip + Ipv4Header.MinLength;
        bool udp = m.IpProtocol == IpProtocol.Udp;
        table.Observe(found, isReply, udp ? (ushort)0 : l4[13], m.Length, m.Timestamp);
        if ((entry.Status & ConntrackStatus.Translated) != 0)
        {
            ref readonly var plan = ref isReply ? ref entry.RewriteReply : ref entry.RewriteOriginal;
            if (plan.IsSet)
            {
                plan.ApplyAt(ip, l4, udp, partial: false);
                m.SourcePort = (ushort)(plan.Ports >> 16);
                m.DestinationPort = (ushort)plan.Ports;
            }
            else if (!Nat.ConntrackNat.Translate(arena.AsSpan(m.Offset, m.Length), ref m, _keys[index], entry, isReply)) return DropReason.Malformed;
        }
        int target = decision.Target;
        if (decision.Kind == ForwardingDecision.Local)
        {
            byte ttl = ip[8];
            // The host stack's TTL is left alone; an expiring one is the general path's (ICMP time exceeded).
            if (target != PortIndex.Host)
            {
                if (ttl <= 1) return DeliverLocal(snap, arena, ref m, ingress, target);
                DecrementTtl4(ip, ttl);
            }
            ulong mac = PortMac(snap, target);
            if (mac == 0) return DropReason.NeighborUnknown;
            WriteMacs(frame, ref m, mac, snap.Node.GatewayMac.Value, target);
            return DropReason.None;
        }
        return ForwardPlain4Uplink(snap, frame, arena, ref m, ingress, decision);
    }

    /// <summary>
    /// <see cref="ForwardDecidedUplink"/> for a packet of <see cref="ForwardPlain4"/>, at fixed offsets: TTL
    /// decremented, the two MACs written, and for a tunnel the next hop's VXLAN template copied in front and patched
    /// (<see cref="VxlanTunnel.EncapsulatePlain4"/>). An expiring TTL, a packet over the path MTU or an unresolved
    /// next hop take the general steps (ICMP errors and drops), before anything is written.
    /// </summary>
    private unsafe DropReason ForwardPlain4Uplink(ForwardingSnapshot snap, byte* frame, byte[] arena, ref PacketMeta m, int ingress,
        ForwardingDecision decision)
    {
        int hop = decision.Target;
        ref readonly var nh = ref snap.Routes.NextHops[hop];
        bool tunnel = decision.Kind == ForwardingDecision.Tunnel;
        byte* ip = frame + EthernetHeader.Length;
        byte ttl = ip[8];
        ulong mac = nh.Mac.Value;
        // CheckForwardable's limits: the path MTU (a tunnel's less its overhead, and the outer length within 16 bits).
        int pathMtu = Math.Min(snap.Node.Mtu, ushort.MaxValue) - (tunnel ? VxlanTunnel.Overhead : 0);
        if (ttl <= 1 || m.L3Length > pathMtu || mac == 0) return ForwardDecidedUplink(snap, arena, ref m, ingress, decision);
        DecrementTtl4(ip, ttl);
        var uplinkMac = snap.Node.UplinkMac;
        WriteMacs(frame, ref m, mac, uplinkMac.Value, PortIndex.Uplink);
        if (!tunnel) return DropReason.None;
        ref var outer = ref _vxlan[hop];
        if (!outer.Ready) outer = VxlanTemplate.Create(snap.UnderlayV4, nh.Underlay.V4, uplinkMac, nh.Mac, snap.Node.VxlanPort, snap.Node.Vni);
        if (VxlanTunnel.CanEncapsulatePlain4(frame, in m)) VxlanTunnel.EncapsulatePlain4(frame, ref m, in outer, _ipId++);
        else VxlanTunnel.Encapsulate(arena, ref m, in outer, _ipId++);
        return DropReason.None;
    }

    /// <summary>The TTL of the IPv4 header at <paramref name="ip"/> (<paramref name="ttl"/>, above 1) decremented, its checksum updated.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static unsafe void DecrementTtl4(byte* ip, byte ttl)
    {
        ip[8] = (byte)(ttl - 1);
        ushort* sum = (ushort*)(ip + 10);
        Unsafe.WriteUnaligned(sum, BigEndian(Checksum.UpdateTtl(BigEndian(Unsafe.ReadUnaligned<ushort>(sum)), ttl, (byte)(ttl - 1))));
    }

    /// <summary>RewriteL2 on a frame whose IPv4 header already follows an untagged Ethernet header: the two addresses,
    /// the length trimmed to the IPv4 packet, the egress port.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static unsafe void WriteMacs(byte* frame, ref PacketMeta m, ulong destination, ulong source, int egress)
    {
        Unsafe.WriteUnaligned(frame, BigEndian((uint)(destination >> 16)));
        Unsafe.WriteUnaligned(frame + 4, BigEndian((ushort)destination));
        Unsafe.WriteUnaligned(frame + 6, BigEndian((ushort)(source >> 32)));
        Unsafe.WriteUnaligned(frame + 8, BigEndian((uint)source));
        m.Length = EthernetHeader.Length + m.L3Length;
        m.EgressPort = (short)egress;
    }

    /// <summary>A kept <see cref="ForwardingDecision.Routed"/> or <see cref="ForwardingDecision.Tunnel"/> decision taken:
    /// TTL and MTU checked, TTL decremented, out of the uplink to the decision's next hop (encapsulated for a tunnel).</summary>
    private DropReason ForwardDecidedUplink(ForwardingSnapshot snap, byte[] arena, ref PacketMeta m, int ingress, ForwardingDecision decision)
    {
        var none = default(NoObserver);
        int hop = decision.Target;
        ref readonly var nh = ref snap.Routes.NextHops[hop];
        bool tunnel = decision.Kind == ForwardingDecision.Tunnel;
        var drop = CheckForwardable(snap, arena, ref m, ingress, tunnel);
        if (drop != DropReason.None) return drop;
        DecrementTtl(arena, ref m);
        return EmitUplink(snap, arena, ref m, hop, in nh, nh.Mac.Value, tunnel, ref none);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static uint BigEndian(uint v) => BitConverter.IsLittleEndian ? BinaryPrimitives.ReverseEndianness(v) : v;
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static ushort BigEndian(ushort v) => BitConverter.IsLittleEndian ? BinaryPrimitives.ReverseEndianness(v) : v;
}
