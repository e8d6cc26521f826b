using System.Buffers.Binary;
using System.Runtime.CompilerServices;
using FastPath.DataPlane.Conntrack;
using FastPath.DataPlane.Icmp;
using FastPath.DataPlane.Nat;
using FastPath.DataPlane.Offload;
using FastPath.DataPlane.Overlay;
using FastPath.DataPlane.Packets;
using FastPath.DataPlane.Policy;
using FastPath.DataPlane.Routing;
using FastPath.DataPlane.Services;
using FastPath.DataPlane.Telemetry;

namespace FastPath.DataPlane.Pipeline;

/// <summary>
/// One forwarding worker: takes a received batch and decides every packet's fate — parse, resolve the ingress
/// port, answer neighbor discovery, check the source, look up the destination, rewrite and emit, or drop with a
/// reason (and an ICMP error where the kernel would send one). Owns its counters and learned MACs, so it needs no
/// locks; it reads the snapshot once per batch.
/// </summary>
public sealed partial class Engine
{
    private readonly SnapshotHolder _snapshots;
    private ForwardingSnapshot? _sized;
    private ulong[] _learnedMacs = [];
    // The current batch's tuples and conntrack hashes, taken before forwarding (TakeBatchKeys), by batch index.
    private FlowKey[] _keys = [];
    private uint[] _tags = [];
    private bool[] _keyTaken = [];
    // Which packets of the batch open a TCP connection, and scratch for ServiceTable.PrefetchOpen.
    private bool[] _opening = [];
    private int[] _frontends = [];
    private bool _batchKeys;
    private VxlanTemplate[] _vxlan = []; // per next hop of the current snapshot, built on first use
    // Stamps the forwarding decisions kept in conntrack entries (ForwardingDecision): one per snapshot this engine
    // runs under, drawn from a process-wide counter so no other engine's (or an earlier snapshot's) decision matches.
    private uint _generation;
    private static int s_generations;
    // The node's uplink MAC as its six bytes read little-endian from a frame (0: not configured), for AdmitFrame.
    private ulong _uplinkMacWire;
    private ushort _ipId; // outer IPv4 identification of encapsulated packets (DF is clear, so it must vary)
    private readonly ulong? _conntrackSeed;
    private readonly FlowOwners? _owners;
    private readonly int _workerId;

    /// <param name="conntrackSeed">Fixed hash seed for replays (deterministic eviction); null draws a random one, as a live node should.</param>
    /// <param name="owners">With several live workers: the shared map of who tracks which connection, and this
    /// worker's number in it. A packet of a connection another worker tracks is handed over
    /// (<see cref="PacketMeta.HandOverTo"/>) instead of being forwarded here.</param>
    /// <param name="neighbors">The uplink gateways' resolved MACs, shared by a node's workers; a fresh cache by default.</param>
    /// <param name="conntrack">A table to use from the start (`run --state-dir`: one restored from its state file)
    /// instead of one created when a snapshot first needs it.</param>
    /// <param name="affinity">Likewise, a session-affinity table to use from the start.</param>
    public Engine(SnapshotHolder snapshots, ulong? conntrackSeed = null, FlowOwners? owners = null, int workerId = 0,
        UplinkNeighbors? neighbors = null, ConntrackTable? conntrack = null, AffinityTable? affinity = null)
    {
        Conntrack = conntrack;
        Affinity = affinity;
        _snapshots = snapshots;
        Neighbors = neighbors ?? new UplinkNeighbors();
        _conntrackSeed = conntrackSeed;
        _owners = owners;
        _workerId = workerId;
        Counters = new PortCounters(0);
        Resize(snapshots.Current);
    }

    public PortCounters Counters { get; private set; }

    private readonly List<RetiredPort> _retired = [];
    private StaleServiceSweep _staleSweep;
    private long _swept; // packet time the conntrack sweep last ran

    /// <summary>Packet time in which the conntrack sweep visits the whole table (nanoseconds).</summary>
    private const long ConntrackSweepPeriod = 10_000_000_000;
    /// <summary>Most entry records one batch's sweep looks at (bounds the batch's extra work).</summary>
    private const int ConntrackSweepMax = 1024;

    /// <summary>Counters of ports that left the node since the last call (deleted pods); reading them forgets them.</summary>
    public List<RetiredPort> TakeRetiredPorts()
    {
        var taken = _retired.ToList();
        _retired.Clear();
        return taken;
    }

    /// <summary>This worker's connection tracking table, created once a snapshot needs one; kept across snapshots.</summary>
    public ConntrackTable? Conntrack { get; private set; }

    /// <summary>This worker's ClientIP session-affinity memory, created once a snapshot has a Service that needs it.</summary>
    public AffinityTable? Affinity { get; private set; }

    /// <summary>This worker's NetworkPolicy verdicts for new flows and its denial counters.</summary>
    public PolicyEnforcer Policy { get; } = new();

    /// <summary>Limits the ICMP errors this worker sends (capture clock).</summary>
    public IcmpRateLimiter IcmpLimiter { get; } = new();

    /// <summary>The uplink gateways this engine resolves by ARP / Neighbor Discovery (shared with the node's other workers).</summary>
    public UplinkNeighbors Neighbors { get; }

    /// <summary>
    /// Packets dropped <c>no-route</c> because no route covers their destination, IPv4 [0] and IPv6 [1]: with the
    /// cluster and service CIDRs routed, these are off-cluster destinations on a node without a default gateway
    /// (neither <c>uplinkGateway</c> nor <c>uplinkGatewayMAC</c> for that family), which replay's summary names.
    /// </summary>
    public long[] NoGatewayDrops { get; } = new long[2];

    /// <summary>The snapshot the last batch ran against.</summary>
    public ForwardingSnapshot Snapshot => _sized!;

    /// <summary>Processes every packet of <paramref name="batch"/>, leaving a verdict in each packet's metadata.</summary>
    public void Process(PacketBatch batch)
    {
        var none = default(NoObserver);
        Process(batch, ref none);
    }

    /// <summary>
    /// Reclaims expired connections in slices, so the table holds the connections that are alive: lookups reclaim only
    /// the entries they meet, and without this a node with many short connections showed every one it ever had as
    /// tracked (the issue-21 soak: entries climbing by the thousand while TIME_WAIT is 120 s) until inserts evicted
    /// them. As the kernel's conntrack gc worker (nf_conntrack_core.c gc_worker) scans its table in budgeted steps,
    /// each batch visits a share of the table proportional to the packet time since the last batch, the whole table
    /// every <see cref="ConntrackSweepPeriod"/>, at most <see cref="ConntrackSweepMax"/> records a batch.
    /// </summary>
    private void SweepConntrack(Conntrack.ConntrackTable table, long now)
    {
        long elapsed = now - _swept;
        if (elapsed <= 0) return;
        long budget = elapsed >= ConntrackSweepPeriod ? ConntrackSweepMax
            : Math.Min(ConntrackSweepMax, table.Capacity * elapsed / ConntrackSweepPeriod);
        if (budget == 0) return; // not enough time for one record yet: it accumulates
        table.Sweep(now, (int)budget);
        _swept = now;
    }

    /// <summary>
    /// Processes the batch and tells <paramref name="observer"/> every stage's decision (<c>fastpath trace</c>). One
    /// copy of this code is compiled per observer type, so <see cref="NoObserver"/> costs nothing.
    /// </summary>
    [SkipLocalsInit]
    public void Process<TObserver>(PacketBatch batch, ref TObserver observer) where TObserver : struct, IPacketObserver
    {
        var snap = _snapshots.Current; // one read per batch: the whole batch sees one snapshot
        if (!ReferenceEquals(snap, _sized)) Resize(snap);
        var meta = batch.Meta;
        var arena = batch.Arena;
        int count = batch.Count;
        if (_staleSweep.Pending && count > 0) _staleSweep.Run(snap.Services, Conntrack, Affinity, meta[0].Timestamp);
        if (Conntrack is { } swept && count > 0) SweepConntrack(swept, meta[0].Timestamp);
        // Untraced batches with connections tracked take the lean path for plain IPv4 TCP/UDP (Engine.Established.cs).
        if (typeof(TObserver) == typeof(NoObserver) && Conntrack is { Count: > 0 } lean)
        {
            ProcessTracked(snap, batch, lean);
            return;
        }

        for (int i = 0; i < count; i++)
        {
            ref var m = ref meta[i];
            if (m.Drop == DropReason.None) m.Drop = PacketParser.Parse(arena.AsSpan(m.Offset, m.Length), ref m);
            // Frames from a TAP with offloads: a partial checksum must name the packet's own TCP/UDP checksum.
            if (m.Offload != OffloadFlags.None && m.Drop == DropReason.None) m.Drop = ChecksumOffload.Admit(arena.AsSpan(m.Offset, m.Length), ref m);
        }
        _batchKeys = false;
        if (Conntrack is { Count: > 0 } tracked) TakeBatchKeys(tracked, snap.Services, arena, meta, count);
        // Packets of tracked connections take the decision kept in their entry (ForwardTracked), unless an observer
        // is watching: `fastpath trace` sees every stage of the general path.
        bool decisions = _batchKeys && typeof(TObserver) == typeof(NoObserver);

        for (int i = 0; i < count; i++)
        {
            ref var m = ref meta[i];
            int ingress = ResolveIngress(snap, arena, ref m);
            observer.OnIngress(arena, m, ingress);
            if (ingress < 0) m.Drop = DropReason.UnknownPort;
            else
            {
                if ((m.Flags & PacketFlags.HandedOver) == 0) Counters.CountRx(ingress, m.Length); // counted where it arrived
                if (m.Drop == DropReason.None)
                    m.Drop = decisions && _keyTaken[i] ? ForwardTracked(snap, arena, ref m, i, ingress)
                        : Forward(snap, arena, ref m, i, ingress, ref observer, NotLookedUp, false);
                if (m.Drop != DropReason.None) Counters.CountDrop(ingress, m.Drop);
                if (m.EgressPort >= 0) Counters.CountTx(m.EgressPort, m.Length);
            }
            observer.OnVerdict(m);
        }
    }

    /// <summary>
    /// Resolves <see cref="PortIndex.Auto"/> as the contract says: the pod owning the source address, else the
    /// uplink. Frames without a routable source (ARP probes from 0.0.0.0, IPv6 link-local or unspecified sources
    /// of neighbor discovery) fall back to the pod whose configured MAC sent them, since no address names a port.
    /// </summary>
    private int ResolveIngress(ForwardingSnapshot snap, byte[] arena, ref PacketMeta m)
    {
        int port = m.IngressPort;
        if (port == PortIndex.Auto)
        {
            port = PortIndex.Uplink;
            var src = SourceAddress(arena, in m, out bool found);
            if (found)
            {
                int owner = snap.LocalAddresses.Lookup(src);
                if (owner >= PortIndex.FirstPod) port = owner;
                else if (owner < 0 && IsLinkScoped(src))
                {
                    int byMac = snap.PodMacs.Lookup(MacAddress.Read(arena.AsSpan(m.Offset + 6)));
                    if (byMac >= 0) port = byMac;
                }
            }
            m.IngressPort = (short)port;
            m.Flags |= PacketFlags.IngressResolved;
        }
        return (uint)port < (uint)snap.PortCount ? port : -1;
    }

    private static bool IsLinkScoped(IpAddr a) =>
        a.IsV4 ? a.V4 == 0 || (a.V4 >> 16) == 0xA9FE : Ipv6Header.IsUnspecified(a) || Ipv6Header.IsLinkLocal(a);

    private static IpAddr SourceAddress(byte[] arena, in PacketMeta m, out bool found)
    {
        found = m.L3 != L3Kind.None;
        return m.L3 switch
        {
            L3Kind.Arp => IpAddr.FromV4(BinaryPrimitives.ReadUInt32BigEndian(arena.AsSpan(m.Offset + m.L3Offset + 14))),
            L3Kind.None => default,
            _ => PacketAddresses.Source(arena.AsSpan(m.Offset, m.Length), in m),
        };
    }

    /// <summary><see cref="Forward"/>'s <c>found</c> when the packet's batch tuple has not been looked up yet.</summary>
    private const int NotLookedUp = -2;

    /// <summary>
    /// A packet whose tuple was taken before the loop: its connection is looked up, and when the entry holds a decision
    /// of this snapshot for the packet's ingress port (<see cref="ForwardingDecision"/>) the packet takes it — the
    /// per-packet steps of <see cref="Forward"/> (MAC learning, state and counters, the precomputed rewrite, TTL, path
    /// MTU, L2 rewrite, encapsulation) without the lookups and checks whose answers the decision holds. Anything
    /// else goes to <see cref="Forward"/> with the lookup's result, so nothing is looked up twice.
    /// </summary>
    private DropReason ForwardTracked(ForwardingSnapshot snap, byte[] arena, ref PacketMeta m, int index, int ingress)
    {
        var none = default(NoObserver);
        var table = Conntrack!; // _batchKeys: the table has connections
        int found = table.Lookup(_keys[index], _tags[index], m.Timestamp, out bool isReply);
        // Offloads, GSO and fragments are judged by the general path (the decision was made without looking at them).
        if (found < 0 || m.Offload != OffloadFlags.None || m.Gso != GsoKind.None || (m.Flags & PacketFlags.Fragment) != 0
            || m.IpProtocol is not (IpProtocol.Tcp or IpProtocol.Udp))
            return Forward(snap, arena, ref m, index, ingress, ref none, found, isReply);
        ref var entry = ref table[found];
        var decision = isReply ? entry.DecisionReply : entry.DecisionOriginal;
        if (decision.Stamp != _generation || decision.Ingress != ingress) return Forward(snap, arena, ref m, index, ingress, ref none, found, isReply);

        var admitted = AdmitFrame(snap, arena, in m, ingress);
        if (admitted != DropReason.None) return admitted;
        var frame = arena.AsSpan(m.Offset, m.Length);
        table.Observe(found, isReply, ConntrackNat.StateInput(frame, in m), m.Length, m.Timestamp);
        if ((entry.Status & ConntrackStatus.Translated) != 0 && !ConntrackNat.Translate(frame, ref m, _keys[index], entry, isReply))
            return DropReason.Malformed;
        if (decision.Kind == ForwardingDecision.Local) return DeliverLocal(snap, arena, ref m, ingress, decision.Target);
        return ForwardDecidedUplink(snap, arena, ref m, ingress, decision);
    }

    /// <summary>Keeps the decision just taken for the connection's direction (see <see cref="ForwardingDecision"/>).</summary>
    private void KeepDecision(int entry, bool isReply, int ingress, int kind, int target)
    {
        ref var e = ref Conntrack![entry];
        (isReply ? ref e.DecisionReply : ref e.DecisionOriginal) = ForwardingDecision.Of(_generation, ingress, kind, target);
    }

    /// <summary>The frame's Ethernet header, before anything else: a pod's source MAC is learned; on the uplink a frame
    /// for another station is dropped and one from a gateway confirms it.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private DropReason AdmitFrame(ForwardingSnapshot snap, byte[] arena, in PacketMeta m, int ingress)
    {
        if (ingress >= PortIndex.FirstPod)
        {
            var srcMac = MacAddress.Read(arena.AsSpan(m.Offset + 6));
            if (!srcMac.IsMulticast) _learnedMacs[ingress] = srcMac.Value;
        }
        else if (ingress == PortIndex.Uplink)
        {
            // A unicast frame to another station's MAC is not ours, whatever it carries: a bridge floods frames for a MAC
            // it has not learned yet to every port, and the peer node's would otherwise be served here too (Linux drops
            // them as PACKET_OTHERHOST; an attached NIC or veth hands every frame to AF_XDP / AF_PACKET, unfiltered).
            // Unknown when the node's MAC is not configured, or when a capture's frame was only guessed to be the uplink's.
            // One 8-byte load of the frame's first bytes against the node's MAC as it lies in memory (_uplinkMacWire).
            if ((m.Flags & (PacketFlags.L2Multicast | PacketFlags.IngressResolved)) == 0 && _uplinkMacWire != 0
                && (Unsafe.ReadUnaligned<ulong>(ref arena[m.Offset]) & 0xFFFF_FFFF_FFFFUL) != _uplinkMacWire)
                return DropReason.NotForNode;
            // Frames from a gateway's MAC confirm it is still there (Linux's neighbour confirmation by upper layers).
            Neighbors.Confirm(MacAddress.Read(arena.AsSpan(m.Offset + 6)).Value, m.Timestamp);
        }
        return DropReason.None;
    }

    /// <param name="found">The batch lookup's result for the packet's tuple when <see cref="ForwardTracked"/> made it
    /// (an entry index, or -1 for none; <paramref name="foundReply"/> its direction), else <see cref="NotLookedUp"/>.</param>
    private DropReason Forward<TObserver>(ForwardingSnapshot snap, byte[] arena, ref PacketMeta m, int index, int ingress, ref TObserver observer,
        int found, bool foundReply)
        where TObserver : struct, IPacketObserver
    {
        bool fromPod = ingress >= PortIndex.FirstPod;
        var admitted = AdmitFrame(snap, arena, in m, ingress);
        if (admitted != DropReason.None) return admitted;

        if (m.L3 == L3Kind.Arp)
        {
            // The host stack reaches the world through the engine as a pod does: its ARP requests are answered with
            // the gateway MAC; its replies (to requests the uplink passed in) go out.
            if (fromPod) return NeighborProxy.HandleArp(arena, ref m, snap.Node.GatewayMac, snap.LocalAddresses, ingress);
            if (ingress == PortIndex.Host) return ArpFromHost(snap, arena, ref m);
            return ArpFromUplink(snap, arena, ref m, ingress);
        }

        // Inbound overlay traffic: strip the tunnel and forward the inner packet as if it had arrived on the uplink.
        bool decapsulated = false;
        if (ingress == PortIndex.Uplink && VxlanTunnel.IsForUs(arena, in m, snap.UnderlayV4, snap.Node.VxlanPort))
        {
            decapsulated = true;
            var inner = VxlanTunnel.Decapsulate(arena, ref m, snap.Node.Vni);
            if (inner != DropReason.None) return inner;
            if (m.Offload != OffloadFlags.None && (inner = ChecksumOffload.Admit(arena.AsSpan(m.Offset, m.Length), ref m)) != DropReason.None) return inner;
            observer.OnDecapsulated(m, snap.Node.Vni);
            if (m.L3 is not (L3Kind.Ipv4 or L3Kind.Ipv6)) return DropReason.UnsupportedProtocol;
        }
        // A partial inner checksum seen on a packet that turned out not to be a tunnel for us: finish it here.
        else if ((m.Offload & OffloadFlags.Encapsulated) != 0
                 && (m.Gso != GsoKind.None || !ChecksumOffload.Complete(arena.AsSpan(m.Offset, m.Length), ref m, m.ChecksumStart)))
            return DropReason.Malformed;

        var src = PacketAddresses.Source(arena.AsSpan(m.Offset, m.Length), in m);
        var dst = PacketAddresses.Destination(arena.AsSpan(m.Offset, m.Length), in m);
        if (m.L3 == L3Kind.Ipv4)
        {
            uint d = dst.V4;
            // Limited broadcast and link-local multicast (224.0.0.0/24) never leave the link (RFC 1812 §5.3.5).
            if (d == uint.MaxValue || (d >> 8) == 0xE0_00_00) return DropReason.Consumed;
            if ((d >> 28) == 0xE) return DropReason.NoRoute; // no multicast routing
        }
        else
        {
            if (m.IpProtocol == IpProtocol.Icmpv6 && (m.Flags & PacketFlags.HasL4) != 0 && IsNeighborDiscovery(arena[m.Offset + m.L4Offset]))
            {
                if (fromPod || ingress == PortIndex.Host)
                    return NeighborProxy.HandleNeighborDiscovery(arena, ref m, snap.Node.GatewayMac, snap.LocalAddresses, ingress);
                if (ingress == PortIndex.Uplink) LearnFromNeighborDiscovery(arena, in m);
            }
            if (Ipv6Header.IsMulticast(dst))
                return (dst.Value >> 112) == 0xFF02 ? DropReason.Consumed : DropReason.NoRoute; // link-scope stays on the link
            // RFC 4291 §2.5.6: link-local addresses are never forwarded.
            if (Ipv6Header.IsLinkLocal(src) || Ipv6Header.IsLinkLocal(dst)) return DropReason.NoRoute;
        }

        if (fromPod && snap.LocalAddresses.Lookup(src) != ingress) return DropReason.SpoofedSource;

        // Packets of tracked connections (Service and masquerade flows, both directions, and ICMP errors about them)
        // are translated by their conntrack entry; a new flow to a Service frontend opens one.
        bool translated = false;
        bool batchKey = _batchKeys && !decapsulated && _keyTaken[index]; // the tuple taken before the loop still describes the packet
        int hit = -1; // the connection whose decision this packet's forwarding will keep
        if (Conntrack is { Count: > 0 } tracked)
        {
            var frame = arena.AsSpan(m.Offset, m.Length);
            bool bad = false;
            if ((m.Flags & PacketFlags.IcmpError) != 0)
                translated = ConntrackNat.TranslateIcmpError(tracked, frame, ref m, m.Timestamp, out bad, ref observer);
            else if (batchKey)
            {
                if (found == NotLookedUp) found = tracked.Lookup(_keys[index], _tags[index], m.Timestamp, out foundReply);
                translated = ConntrackNat.Track(tracked, snap.Services, frame, ref m, _keys[index], found, foundReply, m.Timestamp, out bad, ref observer);
                if (translated) hit = found;
            }
            else translated = ConntrackNat.TryTranslateTracked(tracked, snap.Services, frame, ref m, m.Timestamp, out bad, ref observer);
            if (bad) return DropReason.Malformed;
        }
        // Several workers: a packet no connection of ours matches may belong to one another worker tracks.
        if (!translated && _owners is not null && (m.Flags & (PacketFlags.HandedOver | PacketFlags.IcmpError)) == 0
            && HandOver(arena, ref m, batchKey ? index : -1))
            return DropReason.None;
        bool established = translated;
        // Most packets are not addressed to a Service: one address lookup lets them skip the frontend search. A SYN
        // whose frontend TakeBatchKeys already found (the snapshot's table, so the same answer) skips it too.
        if (!translated && (m.Flags & PacketFlags.IcmpError) == 0 && snap.Services.Count > 0 && Conntrack is { } services
            && ((batchKey && _opening[index] && _frontends[index] >= 0) || snap.Services.IsVirtualIp(dst)))
        {
            var svc = ServiceNat.Open(snap.Services, services, Affinity, arena, ref m, m.Timestamp,
                IpAddr.FromV4(snap.UnderlayV4), snap.MasqueradeV6, out translated, ref observer,
                batchKey && _opening[index] ? _frontends[index] : ServiceNat.NotLookedUp);
            // A node address is a NodePort frontend, but its other ports are the host's (ssh, kubelet, health check
            // node ports): kube-proxy matches NodePorts by port, so those reach the node's stack.
            if (svc == DropReason.UnknownServicePort && snap.LocalAddresses.Lookup(dst) == PortIndex.Host) svc = DropReason.None;
            else if (svc is DropReason.NoEndpoints or DropReason.UnknownServicePort)
                return SendError(snap, arena, ref m, ingress, IcmpHeader.DestinationUnreachable, IcmpHeader.CodePortUnreachable,
                    Icmpv6.DestinationUnreachable, Icmpv6.CodePortUnreachable, 0, svc);
            if (svc != DropReason.None) return svc;
        }
        if (translated) dst = PacketAddresses.Destination(arena.AsSpan(m.Offset, m.Length), in m);
        // NetworkPolicy judges new flows only, on the post-DNAT, pre-masquerade tuple; established ones passed above.
        if (!established && !snap.Policy.IsEmpty && Conntrack is { } policyTable)
        {
            var verdict = Policy.Admit(snap, policyTable, arena, ref m, ingress, dst, serviceOpened: translated, ref observer);
            if (verdict != DropReason.None) return verdict;
        }

        int egress = snap.LocalAddresses.Lookup(dst);
        if (egress >= 0)
        {
            var delivered = DeliverLocal(snap, arena, ref m, ingress, egress);
            if (hit >= 0 && delivered == DropReason.None) KeepDecision(hit, foundReply, ingress, ForwardingDecision.Local, egress);
            return delivered;
        }

        int hop = snap.Routes.Lookup(dst);
        // The node forwards its pods' traffic and its Services' (a NodePort connection to a backend on another node);
        // it is not a transit router for the underlay.
        if (ingress == PortIndex.Uplink && !translated) return DropReason.NotForNode;
        observer.OnRoute(dst, hop);
        if (hop < 0)
        {
            NoGatewayDrops[m.L3 == L3Kind.Ipv4 ? 0 : 1]++;
            return SendError(snap, arena, ref m, ingress, IcmpHeader.DestinationUnreachable, IcmpHeader.CodeNetUnreachable,
                Icmpv6.DestinationUnreachable, Icmpv6.CodeNoRoute, 0, DropReason.NoRoute);
        }
        var nh = snap.Routes.NextHops[hop];
        switch (nh.Kind)
        {
            case NextHopKind.Host:
                var toHost = DeliverLocal(snap, arena, ref m, ingress, PortIndex.Host);
                if (hit >= 0 && toHost == DropReason.None) KeepDecision(hit, foundReply, ingress, ForwardingDecision.Local, PortIndex.Host);
                return toHost;
            case NextHopKind.Unreachable:
                return SendError(snap, arena, ref m, ingress, IcmpHeader.DestinationUnreachable, nh.IcmpCode,
                    Icmpv6.DestinationUnreachable, nh.IcmpCode == IcmpHeader.CodeHostUnreachable ? Icmpv6.CodeAddressUnreachable : Icmpv6.CodeNoRoute,
                    0, DropReason.NoRoute);
        }

        // A gateway named by address: its MAC from the neighbour cache; without one the packet becomes the ARP request
        // or Neighbor Solicitation (at most one a second) and is dropped, before it touches conntrack.
        ulong nextMac = nh.Mac.Value;
        if (nh.Resolve && (nextMac = Neighbors.Lookup(nh.Underlay, m.Timestamp)) == 0) return ResolveGateway(snap, arena, ref m, nh.Underlay);

        bool tunnel = nh.Kind == NextHopKind.RemoteNode && snap.Node.Tunnel == TunnelMode.Vxlan;
        var unforwardable = CheckForwardable(snap, arena, ref m, ingress, tunnel);
        if (unforwardable != DropReason.None) return unforwardable;
        DecrementTtl(arena, ref m);
        // Only a pod's own new connections are masqueraded here; packets of known connections (and a Service's reply
        // leaving for an external client, already carrying the node's address) were translated above.
        if (nh.Masquerade && fromPod && !translated && Conntrack is { } table)
        {
            // A family the node has no address in is forwarded unmasqueraded (nothing to translate to).
            bool v4 = m.L3 == L3Kind.Ipv4;
            var to = v4 ? IpAddr.FromV4(snap.UnderlayV4) : snap.MasqueradeV6;
            if (v4 ? snap.UnderlayV4 != 0 : to.Value != UInt128.Zero)
            {
                var natDrop = Masquerade.Open(table, arena, ref m, to, m.Timestamp, ref observer);
                if (natDrop != DropReason.None) return natDrop;
            }
        }

        var sent = EmitUplink(snap, arena, ref m, hop, in nh, nextMac, tunnel, ref observer);
        if (hit >= 0 && sent == DropReason.None && !nh.Resolve)
            KeepDecision(hit, foundReply, ingress, tunnel ? ForwardingDecision.Tunnel : ForwardingDecision.Routed, hop);
        return sent;
    }

    /// <summary>Delivery to a port of the node. Delivery to the node's own stack is local input, not forwarding: the
    /// TTL is left alone as Linux does for traffic a veth hands to the host.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private DropReason DeliverLocal(ForwardingSnapshot snap, byte[] arena, ref PacketMeta m, int ingress, int egress)
    {
        if (egress != PortIndex.Host)
        {
            if (TtlExpires(arena, in m)) return SendError(snap, arena, ref m, ingress, IcmpHeader.TimeExceeded, 0, Icmpv6.TimeExceeded, 0, 0, DropReason.TtlExceeded);
            DecrementTtl(arena, ref m);
        }
        return RewriteL2(arena, ref m, egress, PortMac(snap, egress), snap.Node.GatewayMac);
    }

    /// <summary>RFC 1812 §5.3.1 and Linux ip_forward: TTL first, then the MTU (the decrement is the caller's, after).</summary>
    private DropReason CheckForwardable(ForwardingSnapshot snap, byte[] arena, ref PacketMeta m, int ingress, bool tunnel)
    {
        if (TtlExpires(arena, in m)) return SendError(snap, arena, ref m, ingress, IcmpHeader.TimeExceeded, 0, Icmpv6.TimeExceeded, 0, 0, DropReason.TtlExceeded);
        int pathMtu = snap.Node.Mtu - (tunnel ? VxlanTunnel.Overhead : 0);
        // A super-frame is judged by the segments it stands for (Linux's skb_gso_validate_network_len).
        if (m.L3Length > pathMtu && (m.Gso == GsoKind.None || SegmentL3Length(arena, in m) > pathMtu))
            return PathMtuExceeded(snap, arena, ref m, ingress, pathMtu);
        if (tunnel && m.L3Length + VxlanTunnel.Overhead > ushort.MaxValue) return DropReason.FrameTooLarge;
        return DropReason.None;
    }

    /// <summary>Out of the uplink to next hop <paramref name="hop"/>, encapsulated when <paramref name="tunnel"/>.</summary>
    private DropReason EmitUplink<TObserver>(ForwardingSnapshot snap, byte[] arena, ref PacketMeta m, int hop, in NextHop nh, ulong nextMac,
        bool tunnel, ref TObserver observer) where TObserver : struct, IPacketObserver
    {
        var uplinkMac = snap.Node.UplinkMac;
        var drop = RewriteL2(arena, ref m, PortIndex.Uplink, nextMac, uplinkMac);
        if (drop != DropReason.None || !tunnel) return drop;
        // The outer headers towards this node are built on its first packet under this snapshot, then copied.
        ref var outer = ref _vxlan[hop];
        if (!outer.Ready) outer = VxlanTemplate.Create(snap.UnderlayV4, nh.Underlay.V4, uplinkMac, nh.Mac, snap.Node.VxlanPort, snap.Node.Vni);
        Encapsulate(arena, ref m, in outer);
        observer.OnEncapsulated(nh.Underlay.V4, snap.Node.Vni);
        return DropReason.None;
    }

    /// <summary>VXLAN in front of the packet (its L2 rewritten): at fixed offsets when it is plain IPv4 TCP/UDP.</summary>
    private unsafe void Encapsulate(byte[] arena, ref PacketMeta m, in VxlanTemplate outer)
    {
        fixed (byte* a = arena)
        {
            byte* frame = a + m.Offset;
            if ((uint)m.Offset <= (uint)arena.Length && VxlanTunnel.CanEncapsulatePlain4(frame, in m))
                VxlanTunnel.EncapsulatePlain4(frame, ref m, in outer, _ipId++);
            else VxlanTunnel.Encapsulate(arena, ref m, in outer, _ipId++);
        }
    }

    /// <summary>
    /// Takes every packet's tuple and hash before the batch is forwarded, and prefetches the conntrack slots and entries
    /// their lookups will read: in a table larger than the cache a hit is two dependent misses, and overlapping them
    /// across the batch is what DPDK's bulk lookup does. Forward then uses the tuple, unless the packet was decapsulated
    /// (its tuple is the inner one). Allocates only when a larger batch than any before arrives.
    /// </summary>
    private void TakeBatchKeys(ConntrackTable table, ServiceTable services, byte[] arena, PacketMeta[] meta, int count)
    {
        SizeBatchKeys(count);
        bool openings = false;
        for (int i = 0; i < count; i++) openings |= TakeKey(table, arena, ref meta[i], i);
        PrefetchBatch(table, services, count, openings);
    }

    private void SizeBatchKeys(int count)
    {
        if (_keys.Length >= count) return;
        _keys = new FlowKey[count];
        _tags = new uint[count];
        _keyTaken = new bool[count];
        _opening = new bool[count];
        _frontends = new int[count];
        _plain = new bool[count];
    }

    /// <summary>One packet's part of <see cref="TakeBatchKeys"/>: its tuple and hash; true when it opens a TCP connection.</summary>
    private bool TakeKey(ConntrackTable table, byte[] arena, ref PacketMeta m, int i)
    {
        bool ok = m.Drop == DropReason.None && (m.Flags & PacketFlags.IcmpError) == 0
            && FlowKey.TryFromPacket(arena.AsSpan(m.Offset, m.Length), in m, out _keys[i]);
        _keyTaken[i] = ok;
        _tags[i] = ok ? table.Tag(_keys[i]) : 0; // a packet without a tuple (ARP...) just prefetches slot 0
        // A TCP SYN (no ACK) opens a connection: if it is to a Service, it will go through Maglev.
        bool opening = ok && m.IpProtocol == IpProtocol.Tcp && (m.Flags & PacketFlags.HasL4) != 0
            && (arena[m.Offset + m.L4Offset + 13] & (TcpHeader.Syn | TcpHeader.Ack)) == TcpHeader.Syn;
        _opening[i] = opening;
        return opening;
    }

    /// <summary>The rest of <see cref="TakeBatchKeys"/> once every packet's tuple is taken: the prefetches.</summary>
    private void PrefetchBatch(ConntrackTable table, ServiceTable services, int count, bool openings)
    {
        table.Prefetch(_tags.AsSpan(0, count));
        if (openings && services.Count > 0)
        {
            services.PrefetchOpen(_keys.AsSpan(0, count), _opening.AsSpan(0, count), _frontends);
            // The reply tuple each opening will insert (backend → client, unless it is masqueraded): its index slot is
            // the insert's other random miss, so it is fetched for the whole batch here (issue 21: 1 M new flows/s).
            for (int i = 0; i < count; i++)
            {
                if (!_opening[i] || _frontends[i] < 0) continue;
                ref readonly var key = ref _keys[i];
                if (services.TrySelect(_frontends[i], key.Hash(ServiceNat.FlowSeed), out var backend))
                    table.PrefetchSlot(table.Tag(new FlowKey(backend.Address, key.Source, backend.Port, key.SourcePort, key.Protocol)));
            }
        }
        _batchKeys = true;
    }

    /// <summary>Marks the packet for the worker that claims its tuple, if that is another one.</summary>
    /// <param name="batchIndex">The packet's index when its tuple taken before the loop still holds (a miss left the
    /// packet untouched), else -1.</param>
    private bool HandOver(byte[] arena, ref PacketMeta m, int batchIndex)
    {
        FlowKey key;
        if (batchIndex >= 0) key = _keys[batchIndex];
        else if (!FlowKey.TryFromPacket(arena.AsSpan(m.Offset, m.Length), in m, out key)) return false;
        int owner = _owners!.Owner(key);
        if (owner == _workerId || owner == FlowOwners.None || owner >= _owners.Workers) return false;
        m.HandOverTo = (byte)(owner + 1);
        return true;
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private ulong PortMac(ForwardingSnapshot snap, int port)
    {
        ulong mac = snap.PortMacs[port];
        return mac != 0 ? mac : _learnedMacs[port];
    }

    /// <summary>
    /// RFC 1191 / RFC 8201: an IPv4 packet with DF gets "fragmentation needed" with the next-hop MTU, an IPv6 packet
    /// "packet too big" (never below the 1280-byte IPv6 minimum). IPv4 without DF is not fragmented by the engine:
    /// it is dropped with mtu-exceeded and counted (see docs/DESIGN.md, MTU).
    /// </summary>
    private DropReason PathMtuExceeded(ForwardingSnapshot snap, byte[] arena, ref PacketMeta m, int ingress, int mtu)
    {
        if (m.L3 == L3Kind.Ipv4 && (m.Flags & PacketFlags.DontFragment) == 0) return DropReason.MtuExceeded;
        uint rest = (uint)(m.L3 == L3Kind.Ipv4 ? mtu : Math.Max(mtu, 1280));
        return SendError(snap, arena, ref m, ingress, IcmpHeader.DestinationUnreachable, IcmpHeader.CodeFragmentationNeeded,
            Icmpv6.PacketTooBig, 0, rest, DropReason.MtuExceeded);
    }

    /// <summary>The L3 length of the largest segment a GSO super-frame stands for: its headers plus gso_size.</summary>
    private static int SegmentL3Length(byte[] arena, in PacketMeta m)
    {
        int l4Header = m.Gso == GsoKind.UdpL4 ? UdpHeader.Length : (arena[m.Offset + m.L4Offset + 12] >> 4) * 4;
        return Math.Min(m.L3Length, m.L4Offset - m.L3Offset + l4Header + m.GsoSize);
    }

    private static bool IsNeighborDiscovery(byte icmpType) =>
        icmpType is >= Icmpv6.MldQuery and <= Icmpv6.Redirect or Icmpv6.MldV2Report;

    /// <summary>
    /// ARP on the uplink: a gateway's request or reply fills its neighbour entry (as Linux learns from both); requests
    /// and replies for the node's own addresses belong to the host stack.
    /// </summary>
    private DropReason ArpFromUplink(ForwardingSnapshot snap, byte[] arena, ref PacketMeta m, int ingress)
    {
        var arp = new ArpPacket(arena.AsSpan(m.Offset + m.L3Offset, ArpPacket.Length));
        Neighbors.Learn(IpAddr.FromV4(arp.SenderProtocol), arp.SenderHardware, m.Timestamp);
        uint tpa = arp.TargetProtocol;
        if (ingress == PortIndex.Uplink && snap.LocalAddresses.Lookup(IpAddr.FromV4(tpa)) == PortIndex.Host)
        {
            m.EgressPort = PortIndex.Host;
            return DropReason.None;
        }
        return DropReason.NotForNode;
    }

    /// <summary>ARP from the host stack: requests are answered like a pod's; replies (to the uplink's requests for the
    /// node's addresses, which the engine passed in) go out on the uplink.</summary>
    private static DropReason ArpFromHost(ForwardingSnapshot snap, byte[] arena, ref PacketMeta m)
    {
        var arp = new ArpPacket(arena.AsSpan(m.Offset + m.L3Offset, ArpPacket.Length));
        if (arp.Operation == ArpPacket.OpReply && snap.LocalAddresses.Lookup(IpAddr.FromV4(arp.SenderProtocol)) == PortIndex.Host)
        {
            m.EgressPort = PortIndex.Uplink;
            return DropReason.None;
        }
        return NeighborProxy.HandleArp(arena, ref m, snap.Node.GatewayMac, snap.LocalAddresses, PortIndex.Host);
    }

    /// <summary>
    /// A Neighbor Advertisement for a gateway (target + target link-layer option) or a Solicitation from one (source +
    /// source link-layer option) fills its entry, as Linux's ndisc_recv_na / ndisc_recv_ns do. The message itself goes
    /// on as before (to the host stack when addressed to the node).
    /// </summary>
    private void LearnFromNeighborDiscovery(byte[] arena, in PacketMeta m)
    {
        int icmpLength = m.L3Length - (m.L4Offset - m.L3Offset);
        if (icmpLength < NeighborMessage.Length || arena[m.Offset + m.L3Offset + 7] != 255) return; // RFC 4861 §7.1: hop limit 255
        var message = new NeighborMessage(arena.AsSpan(m.Offset + m.L4Offset, icmpLength));
        byte type = arena[m.Offset + m.L4Offset];
        if (type == Icmpv6.NeighborAdvertisement && message.TryGetLinkLayerOption(Icmpv6.OptionTargetLinkLayer, out var target, out _))
            Neighbors.Learn(message.Target, target, m.Timestamp);
        else if (type == Icmpv6.NeighborSolicitation && message.TryGetLinkLayerOption(Icmpv6.OptionSourceLinkLayer, out var source, out _))
            Neighbors.Learn(PacketAddresses.Source(arena.AsSpan(m.Offset, m.Length), in m), source, m.Timestamp);
    }

    /// <summary>
    /// The packet found its gateway unresolved: it becomes the ARP request (IPv4, from the node's address) or Neighbor
    /// Solicitation (IPv6, from the node's IPv6 address, else its EUI-64 link-local one) on the uplink, unless one
    /// went out in the last second, and is dropped <c>neighbor-unknown</c>; the sender retransmits.
    /// </summary>
    private DropReason ResolveGateway(ForwardingSnapshot snap, byte[] arena, ref PacketMeta m, IpAddr gateway)
    {
        var mac = snap.Node.UplinkMac;
        if (mac == MacAddress.Zero || (gateway.IsV4 && snap.UnderlayV4 == 0) || !Neighbors.ClaimRequest(gateway, m.Timestamp))
            return DropReason.NeighborUnknown;
        if (gateway.IsV4) UplinkNeighbors.WriteArpRequest(arena, ref m, snap.UnderlayV4, mac, gateway.V4);
        else
        {
            var source = snap.MasqueradeV6.Value != UInt128.Zero ? snap.MasqueradeV6 : LinkLocal(mac);
            UplinkNeighbors.WriteNeighborSolicitation(arena, ref m, source, mac, gateway);
        }
        return DropReason.NeighborUnknown;
    }

    /// <summary>fe80::/64 with the modified EUI-64 interface identifier of <paramref name="mac"/> (RFC 4291 appendix A).</summary>
    private static IpAddr LinkLocal(MacAddress mac)
    {
        ulong v = mac.Value ^ 0x0200_0000_0000UL;
        ulong iid = ((v >> 24) << 40) | (0xFFFEUL << 24) | (v & 0xFF_FFFF);
        return new IpAddr(new UInt128(0xFE80_0000_0000_0000UL, iid));
    }

    /// <summary>RFC 1812 §5.3.1 / RFC 8200 §3: a router must not forward a packet whose TTL / hop limit it would take to zero.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static bool TtlExpires(byte[] arena, in PacketMeta m) =>
        arena[m.Offset + m.L3Offset + (m.L3 == L3Kind.Ipv4 ? 8 : 7)] <= 1;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void DecrementTtl(byte[] arena, ref PacketMeta m)
    {
        int l3 = m.Offset + m.L3Offset;
        if (m.L3 == L3Kind.Ipv4) Checksum.Ipv4DecrementTtl(arena.AsSpan(l3, Ipv4Header.MinLength));
        else arena[l3 + 7]--;
    }

    /// <summary>
    /// Drops the packet with <paramref name="reason"/> and, where the rules and the rate limiter allow, turns it in
    /// place into the matching ICMP / ICMPv6 error sent back out of the ingress port.
    /// </summary>
    private DropReason SendError(ForwardingSnapshot snap, byte[] arena, ref PacketMeta m, int ingress,
        byte type4, byte code4, byte type6, byte code6, uint rest, DropReason reason)
    {
        if (!IcmpErrorBuilder.MayAnswer(arena.AsSpan(m.Offset, m.Length), in m)) return reason;
        bool pmtu = reason == DropReason.MtuExceeded;
        var to = PacketAddresses.Source(arena.AsSpan(m.Offset, m.Length), in m);
        if (!pmtu && !IcmpLimiter.Allow(to, m.Timestamp)) return reason;
        if (m.L3 == L3Kind.Ipv4) IcmpErrorBuilder.BuildV4(arena, ref m, type4, code4, rest, snap.IcmpSourceV4, snap.Node.GatewayMac);
        else IcmpErrorBuilder.BuildV6(arena, ref m, type6, code6, rest, snap.IcmpSourceV6, snap.Node.GatewayMac);
        // The error is a new, whole packet with its own checksums, whatever offloads the packet it quotes had.
        m.Offload = OffloadFlags.None;
        m.Gso = GsoKind.None;
        m.EgressPort = (short)ingress;
        return reason;
    }

    /// <summary>
    /// Writes a fresh untagged Ethernet header right in front of the IP header (stripping any VLAN tags) and trims
    /// L2 padding. A zero destination MAC means the neighbor is neither configured nor learned yet.
    /// </summary>
    private static DropReason RewriteL2(byte[] arena, ref PacketMeta m, int egress, ulong destinationMac, MacAddress sourceMac)
    {
        if (destinationMac == 0) return DropReason.NeighborUnknown;
        int start = m.Offset + m.L3Offset - EthernetHeader.Length;
        EthernetHeader.Write(arena.AsSpan(start), new MacAddress(destinationMac), sourceMac,
            m.L3 == L3Kind.Ipv4 ? EtherType.Ipv4 : EtherType.Ipv6);
        int shift = m.L3Offset - EthernetHeader.Length;
        m.Offset = start;
        m.Length = EthernetHeader.Length + m.L3Length;
        m.L3Offset = EthernetHeader.Length;
        if (m.L4Offset != 0) m.L4Offset = (ushort)(m.L4Offset - shift);
        m.EgressPort = (short)egress;
        return DropReason.None;
    }

    /// <summary>
    /// Follows a new snapshot: per-port state when the ports changed, the VXLAN templates when the next hops or the
    /// node settings changed. Runs on the forwarding thread at the first batch under each snapshot, so a snapshot that
    /// shares its ports and routes with the previous one (an EndpointSlice or Service change) costs a few reference
    /// compares here and allocates nothing (issue 20: it used to re-allocate a template per next hop, 5,000 at 5,000
    /// nodes, for every change).
    /// </summary>
    private void Resize(ForwardingSnapshot snap)
    {
        var previous = _sized;
        _sized = snap;
        _generation = (uint)Interlocked.Increment(ref s_generations);
        if (_generation == 0) _generation = (uint)Interlocked.Increment(ref s_generations); // 0 stamps no decision
        if (previous is null || !SamePortNames(previous, snap)) ResizePorts(previous, snap);
        _uplinkMacWire = BinaryPrimitives.ReverseEndianness(snap.Node.UplinkMac.Value << 16);
        // A route table from the same builder that did not grow its next-hop array keeps every hop at its index
        // (RouteTable.Builder appends only), so the templates built so far stay right.
        if (previous is null || !ReferenceEquals(previous.Routes.NextHops, snap.Routes.NextHops) || !ReferenceEquals(previous.Node, snap.Node))
            _vxlan = new VxlanTemplate[snap.Routes.NextHops.Length];
        if (previous is null || !ReferenceEquals(previous.Routes, snap.Routes))
        {
            foreach (var hop in snap.Routes.NextHops)
                if (hop.Resolve) Neighbors.Track(hop.Underlay);
        }
        if (snap.NeedsConntrack && Conntrack is null)
            Conntrack = new ConntrackTable(snap.Node.ConntrackCapacity, seed: _conntrackSeed) { Owners = _owners, WorkerId = _workerId };
        if (previous is not null && !ReferenceEquals(previous.Services, snap.Services)) _staleSweep.Pending = true;
        if (snap.Services.HasAffinity && Affinity is null) Affinity = new AffinityTable();
    }

    private static bool SamePortNames(ForwardingSnapshot previous, ForwardingSnapshot snap)
    {
        if (ReferenceEquals(previous.Ports, snap.Ports)) return true;
        if (previous.PortCount != snap.PortCount) return false;
        for (int p = 0; p < snap.PortCount; p++)
            if (previous.Ports[p].Name != snap.Ports[p].Name) return false;
        return true;
    }

    private void ResizePorts(ForwardingSnapshot? previous, ForwardingSnapshot snap)
    {
        int ports = snap.PortCount;
        // Counters and learned MACs follow the port name across snapshots; a pod that was re-created will announce
        // itself again. A deleted pod's counters wait in RetiredPorts until read.
        var learned = new ulong[ports];
        if (previous is null) Counters = new PortCounters(ports);
        else
        {
            var oldNames = previous.Ports.Select(p => p.Name).ToArray();
            var newNames = snap.Ports.Select(p => p.Name).ToArray();
            if (!oldNames.SequenceEqual(newNames)) Counters = Counters.CarryOver(oldNames, newNames, _retired);
            for (int p = 0; p < ports; p++)
            {
                int old = Array.IndexOf(oldNames, newNames[p]);
                if (old >= 0 && old < _learnedMacs.Length) learned[p] = _learnedMacs[old];
            }
        }
        _learnedMacs = learned;
    }
}
