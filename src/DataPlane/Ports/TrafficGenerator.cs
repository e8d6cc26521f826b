using System.Buffers.Binary;
using FastPath.DataPlane.Packets;
using FastPath.DataPlane.Pipeline;
using FastPath.DataPlane.Policy;
using FastPath.DataPlane.Routing;
using FastPath.DataPlane.Services;

namespace FastPath.DataPlane.Ports;

/// <summary>The traffic a benchmark scenario sends (docs/BENCHMARKS.md describes each).</summary>
public enum TrafficScenario
{
    /// <summary>testpmd's macswap mode without the engine: the floor every engine scenario is compared with.</summary>
    L2Forward,
    /// <summary>Pod to pod on this node (parse, source check, exact-match lookup, TTL, MAC rewrite).</summary>
    PodToPod,
    /// <summary>
    /// <see cref="PodToPod"/> with every server pod isolated by a NetworkPolicy that allows the client: the connections
    /// are tracked, so every packet passes by its conntrack entry (the established-flow cost of policy).
    /// </summary>
    PodToPodIsolated,
    /// <summary>Pod to a pod on another node: LPM route lookup and VXLAN encapsulation.</summary>
    VxlanEncap,
    /// <summary>VXLAN from another node to a local pod: outer parse, decapsulation, inner parse, delivery.</summary>
    VxlanDecap,
    /// <summary>Pod to ClusterIPs, connections already tracked: conntrack hit, DNAT, delivery to a local backend.</summary>
    ClusterIpEstablished,
    /// <summary>Pod to ClusterIPs, every packet a SYN of a connection not tracked (or expired): Maglev, insert, DNAT.</summary>
    ClusterIpNewFlows,
    /// <summary>External clients to a NodePort (policy Cluster), tracked: DNAT + SNAT to the node, VXLAN to the backend's node.</summary>
    NodePortSnat,
    /// <summary>40% ClusterIP established, 30% pod to pod, 15% VXLAN out, 15% VXLAN in; ingress resolved by source.</summary>
    Mixed,
    /// <summary>
    /// <see cref="VxlanEncap"/> with 64 KB TCP super-frames as a TAP with offloads hands them over (GSO, gso_size
    /// 1398, partial checksum): one pass per 46 segments' worth, leaving as GSO over a UDP tunnel.
    /// </summary>
    SuperFrameVxlan,
}

/// <summary>Size of the generated node and traffic.</summary>
public sealed record TrafficParameters
{
    /// <summary>Ethernet frame length (without FCS) of every packet, inner frame for VXLAN.</summary>
    public int FrameLength { get; init; } = 64;
    /// <summary>Distinct 5-tuples.</summary>
    public int Flows { get; init; } = 1024;
    /// <summary>ClusterIP Services (each one port).</summary>
    public int Services { get; init; } = 10_000;
    /// <summary>Endpoints per Service (local pods for ClusterIP, pods on other nodes for the NodePort), at most 200.</summary>
    public int Endpoints { get; init; } = 10;
    /// <summary>Other nodes' pod CIDRs (/24 each) in the route table.</summary>
    public int Routes { get; init; } = 256;
    /// <summary>Maglev slots per Service (the default 16381 × 10k Services would take 655 MB).</summary>
    public int MaglevTableSize { get; init; } = 1021;
    /// <summary>Connections per worker's conntrack table (FastPathConfiguration conntrackMaxEntries); 0 for room for
    /// every flow twice over.</summary>
    public int ConntrackMaxEntries { get; init; }
}

/// <summary>A generated node (its snapshot) and the frames it receives, built once before anything is measured.</summary>
public sealed class GeneratedTraffic(TrafficScenario scenario, ForwardingSnapshot snapshot, IReadOnlyList<byte[]> frames,
    short ingressPort)
{
    public TrafficScenario Scenario { get; } = scenario;
    public ForwardingSnapshot Snapshot { get; } = snapshot;
    public IReadOnlyList<byte[]> Frames { get; } = frames;
    /// <summary>The port every frame enters on (<see cref="PortIndex.Auto"/> for the mixed scenario).</summary>
    public short IngressPort { get; } = ingressPort;
    /// <summary>
    /// Capture-clock time between the packets of a queue of <paramref name="frames"/> frames. A SYN_SENT connection
    /// expires after 60 s (ConntrackTimeouts): the new-flow scenario spaces its packets so one round of a queue takes
    /// longer, so every packet is a new connection, in steady state at the table's fill.
    /// </summary>
    public long IntervalNs(int frames) => Scenario == TrafficScenario.ClusterIpNewFlows ? 61_000_000_000L / frames + 1 : 1_000;

    /// <summary>Tracked scenarios: one round over every flow opens the connections before measuring.</summary>
    public bool OpensConnections => Scenario is TrafficScenario.ClusterIpEstablished or TrafficScenario.PodToPodIsolated or TrafficScenario.NodePortSnat or TrafficScenario.Mixed;

    /// <summary>Slot size of the batches the frames need (<see cref="PacketBatch.SuperFrameSlotSize"/> for super-frames).</summary>
    public int SlotSize => Scenario == TrafficScenario.SuperFrameVxlan ? PacketBatch.SuperFrameSlotSize : PacketBatch.SlotSize;

    /// <summary>The offload metadata every frame arrives with (a TAP's virtio-net header), or none.</summary>
    public PacketMeta Offload => Scenario == TrafficScenario.SuperFrameVxlan
        ? new PacketMeta
        {
            Offload = OffloadFlags.ChecksumPartial, Gso = GsoKind.TcpV4, GsoSize = TrafficGenerator.SuperFrameGsoSize,
            ChecksumStart = EthernetHeader.Length + Ipv4Header.MinLength, ChecksumOffset = 16,
        }
        : default;

    /// <summary>All frames, repeated without end.</summary>
    public MemorySource Source() => new(Frames, int.MaxValue, IngressPort, intervalNs: IntervalNs(Frames.Count), offload: Offload);

    /// <summary>
    /// The frames split into one endless source per worker by <see cref="SymmetricFlowHash"/>, as a NIC's RSS fills
    /// one receive queue per core. Throws when a worker would get no flow.
    /// </summary>
    public MemorySource[] Queues(int workers)
    {
        var queues = new List<byte[]>[workers];
        for (int w = 0; w < workers; w++) queues[w] = [];
        foreach (var frame in Frames)
        {
            var m = new PacketMeta();
            PacketParser.Parse(frame, ref m);
            queues[SymmetricFlowHash.Worker(SymmetricFlowHash.Compute(frame, in m), workers)].Add(frame);
        }
        if (queues.Any(q => q.Count == 0)) throw new ArgumentException($"{Frames.Count} flows do not reach {workers} workers; use more flows");
        return queues.Select(q => new MemorySource(q, int.MaxValue, IngressPort, intervalNs: IntervalNs(q.Count), offload: Offload)).ToArray();
    }
}

/// <summary>
/// Builds a node and in-memory traffic for a scenario: node-a (192.168.56.11) with a client pod 10.244.1.10, server
/// pods 10.244.1.20+ (the client also 10.245.0.k past 64,000 Service flows), other nodes' pod CIDRs 11.x.y.0/24 behind 192.168.57.x, ClusterIPs 10.96.x.x:80 and a NodePort
/// 30080. Deterministic (fixed random seed), so runs compare.
/// </summary>
public static class TrafficGenerator
{
    private const uint NodeIp = 0xC0A8_380B, ClientIp = 0x0AF4_010A, FirstServerIp = 0x0AF4_0114, FirstRemotePrefix = 0x0B00_0000;
    private const uint FirstRemoteNode = 0xC0A8_3901, FirstVip = 0x0A60_0000, FirstExternalClient = 0xCB00_7100;
    private const ushort NodePort = 30080, BackendPort = 8080;
    private const ulong FirstServerMac = 0x0242_0AF4_0114UL, FirstRemoteNodeMac = 0x0200_0000_0201UL;
    private static readonly MacAddress NodeMac = new(0x0200_0000_0101UL);

    /// <summary>Segment payload of the super-frame scenario: a 1450-byte pod MTU less IPv4, TCP and timestamps.</summary>
    public const ushort SuperFrameGsoSize = 1398;
    private const int SuperFramePayload = 46 * SuperFrameGsoSize;

    public static GeneratedTraffic Generate(TrafficScenario scenario, TrafficParameters p)
    {
        Validate(p);
        var rng = new Random(8);
        var snapshot = Node(scenario, p);
        var frames = new List<byte[]>(p.Flows);
        for (int f = 0; f < p.Flows; f++)
            frames.Add(Frame(scenario == TrafficScenario.Mixed ? MixedShare(f) : scenario, f, p, rng));
        short ingress = scenario switch
        {
            TrafficScenario.VxlanDecap or TrafficScenario.NodePortSnat => PortIndex.Uplink,
            TrafficScenario.Mixed => PortIndex.Auto,
            _ => PortIndex.FirstPod, // the client pod
        };
        return new GeneratedTraffic(scenario, snapshot, frames, ingress);
    }

    private static void Validate(TrafficParameters p)
    {
        if (p.FrameLength is < 64 or > 1500) throw new ArgumentException($"frame length {p.FrameLength}: must be 64-1500");
        if (p.Flows < 1) throw new ArgumentException($"flows {p.Flows}: must be at least 1");
        if (p.Services is < 1 or > 1_000_000) throw new ArgumentException($"services {p.Services}: must be 1-1000000");
        if (p.Endpoints is < 1 or > 200) throw new ArgumentException($"endpoints {p.Endpoints}: must be 1-200");
        if (p.Routes is < 1 or > 1_000_000) throw new ArgumentException($"routes {p.Routes}: must be 1-1000000");
    }

    private static TrafficScenario MixedShare(int flow) => (flow % 20) switch
    {
        < 8 => TrafficScenario.ClusterIpEstablished,
        < 14 => TrafficScenario.PodToPod,
        < 17 => TrafficScenario.VxlanEncap,
        _ => TrafficScenario.VxlanDecap,
    };

    private static ForwardingSnapshot Node(TrafficScenario scenario, TrafficParameters p)
    {
        bool clusterIp = scenario is TrafficScenario.ClusterIpEstablished or TrafficScenario.ClusterIpNewFlows or TrafficScenario.Mixed;
        bool nodePort = scenario == TrafficScenario.NodePortSnat;
        int capacity = 1024;
        while (capacity < 2 * p.Flows) capacity <<= 1;
        if (p.ConntrackMaxEntries > 0) capacity = p.ConntrackMaxEntries;
        var node = new NodeSettings
        {
            NodeName = "node-a", UplinkMac = NodeMac, HostAddresses = [IpAddr.FromV4(NodeIp)], ConntrackCapacity = capacity,
        };
        var clientAddresses = Enumerable.Range(0, ClientCount(p)).Select(k => IpAddr.FromV4(ClientAddress(k))).ToArray();
        var pods = new List<PortDefinition> { new("default/client", PortKind.Pod, SyntheticFrames.Client, clientAddresses) };
        for (int e = 0; e < p.Endpoints; e++)
            pods.Add(new PortDefinition($"default/server-{e}", PortKind.Pod, new MacAddress(FirstServerMac + (ulong)e), [IpAddr.FromV4(FirstServerIp + (uint)e)]));
        var routes = new Route[p.Routes];
        for (int r = 0; r < routes.Length; r++)
            routes[r] = new Route(IpAddr.FromV4(RemotePrefix(r)), 24, new NextHop(NextHopKind.RemoteNode,
                IpAddr.FromV4(FirstRemoteNode + (uint)(r % 250)), new MacAddress(FirstRemoteNodeMac + (ulong)(r % 250))));
        var frontends = new List<ServiceFrontend>();
        if (clusterIp)
        {
            var local = Enumerable.Range(0, p.Endpoints).Select(e => new ServiceBackend(IpAddr.FromV4(FirstServerIp + (uint)e), BackendPort)).ToList();
            for (int s = 0; s < p.Services; s++)
                frontends.Add(new ServiceFrontend($"default/svc-{s}:http", IpAddr.FromV4(FirstVip + (uint)s), 80, IpProtocol.Tcp, local));
        }
        if (nodePort)
        {
            var remote = Enumerable.Range(0, p.Endpoints).Select(e => new ServiceBackend(IpAddr.FromV4(RemotePrefix(e % p.Routes) + 11), BackendPort)).ToList();
            frontends.Add(new ServiceFrontend("default/web:http", IpAddr.FromV4(NodeIp), NodePort, IpProtocol.Tcp, remote) { Masquerade = true });
        }
        var services = frontends.Count == 0 ? null : new ServiceTable(frontends, p.MaglevTableSize);
        var policy = scenario == TrafficScenario.PodToPodIsolated ? IsolateServers(pods.Count) : null;
        return new ForwardingSnapshot(node, pods, routes: new RouteTable(routes), services: services, policy: policy);
    }

    /// <summary>Every server pod isolated for ingress by one policy whose only peer is the client (any port).</summary>
    private static PolicyTable IsolateServers(int podCount)
    {
        var client = IpAddr.FromV4(ClientIp).Value;
        var allowClient = new PolicyRuleSet([new PeerRule(client, client, [ProtocolPortRange.All])], [0]);
        var ingress = new int[PortIndex.FirstPod + podCount];
        var egress = new int[ingress.Length];
        Array.Fill(ingress, -1);
        Array.Fill(egress, -1);
        for (int port = PortIndex.FirstPod + 1; port < ingress.Length; port++) ingress[port] = 0;
        return new PolicyTable(["default/allow-client"], [allowClient], ingress, egress);
    }

    /// <summary>Leaves the TCP checksum partial (the pseudo-header sum), as a sender with checksum offload does.</summary>
    private static byte[] PartialChecksum(byte[] frame)
    {
        var ip = frame.AsSpan(EthernetHeader.Length);
        int l4Length = BinaryPrimitives.ReadUInt16BigEndian(ip[2..]) - Ipv4Header.MinLength;
        uint pseudo = Checksum.PseudoHeaderV4(BinaryPrimitives.ReadUInt32BigEndian(ip[12..]), BinaryPrimitives.ReadUInt32BigEndian(ip[16..]), IpProtocol.Tcp, l4Length);
        BinaryPrimitives.WriteUInt16BigEndian(ip[(Ipv4Header.MinLength + 16)..], Checksum.FoldNoComplement(pseudo));
        return frame;
    }

    private static uint RemotePrefix(int route) => FirstRemotePrefix + ((uint)route << 8);

    // Service flows from one client address can only use 64,000 source ports: past that, a reply tuple (backend:8080 →
    // client:port) would repeat and every further connection would be a NAT port remap or a failure, not a hit. So
    // each further 64,000 flows come from another address of the client pod (10.245.0.k), as many clients would.
    private const int FlowsPerClient = 64_000;
    private static int ClientCount(TrafficParameters p) => (p.Flows + FlowsPerClient - 1) / FlowsPerClient;
    private static uint ClientAddress(int k) => k == 0 ? ClientIp : 0x0AF5_0000u + (uint)k;

    private static byte[] Frame(TrafficScenario kind, int flow, TrafficParameters p, Random rng)
    {
        // Distinct 5-tuples: the source port walks 1024-65023, then the destination port moves on.
        ushort sport = (ushort)(1024 + flow % 64000);
        ushort dport = (ushort)(BackendPort + flow / 64000);
        int length = p.FrameLength;
        uint server = FirstServerIp + (uint)(flow % p.Endpoints);
        int route = rng.Next(p.Routes);
        return kind switch
        {
            TrafficScenario.L2Forward or TrafficScenario.PodToPod or TrafficScenario.PodToPodIsolated => SyntheticFrames.Ipv4Tcp(sport, dport, length, ClientIp, server),
            TrafficScenario.VxlanEncap => SyntheticFrames.Ipv4Tcp(sport, dport, length, ClientIp, RemotePrefix(route) + 11),
            TrafficScenario.SuperFrameVxlan => PartialChecksum(SyntheticFrames.Ipv4Tcp(sport, dport, 54 + SuperFramePayload, ClientIp, RemotePrefix(route) + 11)),
            TrafficScenario.VxlanDecap => SyntheticFrames.Vxlan(
                SyntheticFrames.Ipv4Tcp(sport, dport, length, RemotePrefix(route) + 11, server, source: new MacAddress(FirstRemoteNodeMac + (ulong)(route % 250)), destination: NodeMac),
                FirstRemoteNode + (uint)(route % 250), (ushort)(49152 + (flow * 2654435761u >> 18) % 16384)),
            TrafficScenario.ClusterIpEstablished => SyntheticFrames.Ipv4Tcp(sport, 80, length, ClientAddress(flow / FlowsPerClient), FirstVip + (uint)rng.Next(p.Services)),
            TrafficScenario.ClusterIpNewFlows => SyntheticFrames.Ipv4Tcp(sport, 80, length, ClientAddress(flow / FlowsPerClient), FirstVip + (uint)rng.Next(p.Services), TcpHeader.Syn),
            TrafficScenario.NodePortSnat => SyntheticFrames.Ipv4Tcp((ushort)(1024 + flow / 250 % 64000), NodePort, length,
                FirstExternalClient + (uint)(flow % 250), NodeIp, source: new MacAddress(0x0200_0000_0901UL), destination: NodeMac),
            _ => throw new ArgumentOutOfRangeException(nameof(kind), kind, null),
        };
    }
}
