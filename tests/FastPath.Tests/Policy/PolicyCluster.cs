using FastPath.ControlPlane.Cluster;
using FastPath.ControlPlane.Compile;
using FastPath.DataPlane.Packets;
using FastPath.DataPlane.Pipeline;
using FastPath.DataPlane.Telemetry;
using FastPath.Tests.ControlPlane;
using FastPath.Tests.Support;
using k8s.Models;
using static FastPath.Tests.Support.TestFrames;

namespace FastPath.Tests.Policy;

/// <summary>
/// The truth-table cluster (cyclonus-style): namespaces x, y, z with pods a, b, c each, dual-stack, spread over two
/// nodes — x/a, x/b, x/c, y/a on node-a; y/b, y/c, z/a, z/b, z/c on node-b — and one real <see cref="Engine"/> per
/// node. A flow is sent as a frame from its source pod's port; what leaves on the uplink (VXLAN) enters the other
/// node's engine, so a cross-node flow is judged by both nodes, as in a real cluster.
/// </summary>
public sealed class PolicyCluster : IDisposable
{
    public static readonly string[] PodNames = ["x/a", "x/b", "x/c", "y/a", "y/b", "y/c", "z/a", "z/b", "z/c"];

    private static readonly Dictionary<string, (string Node, int Host)> Placement = new()
    {
        ["x/a"] = ("node-a", 10), ["x/b"] = ("node-a", 11), ["x/c"] = ("node-a", 12), ["y/a"] = ("node-a", 13),
        ["y/b"] = ("node-b", 10), ["y/c"] = ("node-b", 11), ["z/a"] = ("node-b", 12), ["z/b"] = ("node-b", 13), ["z/c"] = ("node-b", 14),
    };

    private const string Nodes = """
        apiVersion: v1
        kind: Node
        metadata: {name: node-a, annotations: {fastpath.io/mac: "02:00:00:00:01:01"}}
        spec: {podCIDRs: [10.244.1.0/24, "fd00:10:244:1::/64"]}
        status: {addresses: [{type: InternalIP, address: 192.168.56.11}]}
        ---
        apiVersion: v1
        kind: Node
        metadata: {name: node-b, annotations: {fastpath.io/mac: "02:00:00:00:02:01"}}
        spec: {podCIDRs: [10.244.2.0/24, "fd00:10:244:2::/64"]}
        status: {addresses: [{type: InternalIP, address: 192.168.56.12}]}
        ---
        apiVersion: v1
        kind: Namespace
        metadata: {name: x, labels: {ns: x, env: prod}}
        ---
        apiVersion: v1
        kind: Namespace
        metadata: {name: y, labels: {ns: y, env: prod}}
        ---
        apiVersion: v1
        kind: Namespace
        metadata: {name: z, labels: {ns: z, env: dev}}
        """;

    /// <summary>The cluster without policies, file name → manifests (the live truth table runs the same files).</summary>
    public static readonly IReadOnlyDictionary<string, string> Manifests = new Dictionary<string, string>
    {
        ["cluster.yaml"] = Nodes,
        ["pods.yaml"] = string.Join("---\n", PodNames.Select(PodManifest)),
    };

    private readonly TempCluster _dir = new();
    private readonly Dictionary<string, Engine> _engines = [];
    private readonly Dictionary<string, SnapshotHolder> _holders = [];
    private readonly Dictionary<string, PacketBatch> _batches = [];
    private long _clock = 1_000_000_000L;

    /// <param name="policies">NetworkPolicy manifests ("---"-separated), or "".</param>
    /// <param name="extra">More manifests (Services, EndpointSlices...).</param>
    public PolicyCluster(string policies, string extra = "")
    {
        foreach (var (file, text) in Manifests) _dir.Write(file, text);
        _dir.Write("policies.yaml", policies);
        if (extra.Length > 0) _dir.Write("extra.yaml", extra);
        State = Load();
        foreach (var node in (string[])["node-a", "node-b"])
        {
            _holders[node] = new SnapshotHolder(SnapshotCompiler.Compile(State, node, 1).Snapshot!);
            _engines[node] = new Engine(_holders[node], conntrackSeed: 1);
            _batches[node] = new PacketBatch(1);
        }
    }

    /// <summary>Replaces the policies and publishes the new snapshots to the running engines (their conntrack stays).</summary>
    public void ChangePolicies(string policies)
    {
        _dir.Write("policies.yaml", policies);
        State = Load();
        foreach (var (node, holder) in _holders) holder.Publish(SnapshotCompiler.Compile(State, node, holder.Current.Generation + 1).Snapshot!);
    }

    private ClusterState Load()
    {
        var load = ClusterDirectory.Load(_dir.Path);
        Assert.Empty(load.Errors);
        return load.State;
    }

    public ClusterState State { get; private set; }
    public Engine EngineOf(string node) => _engines[node];

    public static string NodeOf(string pod) => Placement[pod].Node;
    public static string Address(string pod, bool v6) =>
        v6 ? $"fd00:10:244:{(NodeOf(pod) == "node-a" ? 1 : 2)}::{Placement[pod].Host:x}" : $"10.244.{(NodeOf(pod) == "node-a" ? 1 : 2)}.{Placement[pod].Host}";
    public static string MacOf(string pod) => $"02:00:00:00:{(NodeOf(pod) == "node-a" ? 1 : 2):x2}:{Placement[pod].Host:x2}";
    public static IReadOnlyList<IpAddr> NodeAddresses(string node) => [EngineHarness.Addr(node == "node-a" ? "192.168.56.11" : "192.168.56.12")];

    public V1Pod Pod(string name) => State.Pods.Single(p => p.QualifiedName == name).Value;
    public short PortOf(string pod) => (short)_engines[NodeOf(pod)].Snapshot.FindPort(pod);

    /// <summary>Labels: a and b are app=web, c is app=db with tier=backend; named ports differ per pod letter.</summary>
    private static string PodManifest(string name)
    {
        var (ns, letter) = (name[..1], name[2..]);
        string labels = letter == "c" ? "{pod: c, app: db, tier: backend}" : $"{{pod: {letter}, app: web}}";
        string ports = letter switch
        {
            "a" => "[{name: http, containerPort: 80}, {name: dns, containerPort: 53, protocol: UDP}]",
            "b" => "[{name: http, containerPort: 81}, {name: dns, containerPort: 53, protocol: UDP}]",
            _ => "[{name: dns, containerPort: 53, protocol: UDP}, {name: metrics, containerPort: 80, protocol: SCTP}]",
        };
        return $"""
            apiVersion: v1
            kind: Pod
            metadata: {"{"}name: {letter}, namespace: {ns}, labels: {labels}, annotations: {"{"}fastpath.io/mac: "{MacOf(name)}"{"}"}{"}"}
            spec: {"{"}nodeName: {NodeOf(name)}, containers: [{"{"}name: main, image: agnhost, ports: {ports}{"}"}]{"}"}
            status: {"{"}podIP: {Address(name, false)}, podIPs: [{"{"}ip: {Address(name, false)}{"}"}, {"{"}ip: "{Address(name, true)}"{"}"}]{"}"}

            """;
    }

    /// <summary>What the cluster's policies say about a flow (the oracle): egress at the source, ingress at the destination.</summary>
    public bool Expected(string from, string to, bool v6, string protocol, int port)
    {
        var src = EngineHarness.Addr(Address(from, v6));
        var dst = EngineHarness.Addr(Address(to, v6));
        return PolicyOracle.EgressAllowed(State, NodeAddresses(NodeOf(from)), Pod(from), dst, protocol, port)
            && PolicyOracle.IngressAllowed(State, NodeAddresses(NodeOf(to)), Pod(to), src, protocol, port);
    }

    /// <summary>
    /// Sends one new flow's first packet from <paramref name="from"/> to <paramref name="to"/>; when delivered, sends the
    /// reply back and requires it to be delivered too (conntrack). Returns the first packet's fate.
    /// </summary>
    public DropReason Flow(string from, string to, bool v6, string protocol, int port, ushort sourcePort)
    {
        var (drop, _) = Send(from, Address(from, v6), Address(to, v6), to, v6, protocol, sourcePort, (ushort)port, reply: false);
        if (drop != DropReason.None) return drop;
        var (replyDrop, _) = Send(to, Address(to, v6), Address(from, v6), from, v6, protocol, (ushort)port, sourcePort, reply: true);
        Assert.True(replyDrop == DropReason.None, $"{from} > {to} {protocol}/{port}{(v6 ? " v6" : "")}: reply dropped ({replyDrop})");
        return DropReason.None;
    }

    /// <summary>Sends a frame from a pod and follows it to its destination pod; returns the drop reason (None = delivered).</summary>
    public (DropReason Drop, byte[] Frame) Send(string fromPod, string src, string dst, string? toPod, bool v6, string protocol, ushort sport, ushort dport, bool reply)
    {
        byte[] l4 = protocol switch
        {
            "TCP" => Tcp(sport, dport, reply ? (byte)0x12 : (byte)0x02),
            "UDP" => Udp(sport, dport),
            "SCTP" => Sctp(sport, dport),
            _ => IcmpEcho(v6 ? (byte)(reply ? 129 : 128) : (byte)(reply ? 0 : 8), id: reply ? dport : sport), // the echo id names the flow
        };
        byte proto = protocol switch { "TCP" => 6, "UDP" => 17, "SCTP" => 132, _ => v6 ? (byte)58 : (byte)1 };
        var ip = v6 ? Ipv6(src, dst, proto, l4) : Ipv4(src, dst, proto, l4);
        var frame = Ethernet(GatewayMac, Mac(MacOf(fromPod)), v6 ? (ushort)0x86DD : (ushort)0x0800, ip);
        string node = NodeOf(fromPod);
        var (drop, egress, output) = Run(node, PortOf(fromPod), frame);
        if (drop == DropReason.None && egress == PortIndex.Uplink && toPod is not null && NodeOf(toPod) != node)
        {
            node = NodeOf(toPod);
            (drop, egress, output) = Run(node, PortIndex.Uplink, output);
        }
        if (drop == DropReason.None && toPod is not null)
            Assert.True(egress == PortOf(toPod), $"{fromPod} > {toPod}: left on port {egress} of {node}");
        return (drop, output);
    }

    /// <summary>Runs one frame through a node's engine: its drop reason, egress port and emitted bytes.</summary>
    public (DropReason Drop, short Egress, byte[] Frame) Run(string node, short port, byte[] frame)
    {
        var batch = _batches[node];
        frame.CopyTo(batch.ReceiveArea(0));
        batch.SetReceived(0, frame.Length, _clock += 1_000_000, 1, port);
        batch.Count = 1;
        _engines[node].Process(batch);
        var m = batch.Meta[0];
        return (m.Drop, m.EgressPort, m.EgressPort >= 0 ? batch.Frame(0).ToArray() : []);
    }

    /// <summary>An SCTP common header (RFC 9260 §3.1) with a zero checksum: enough for the ports.</summary>
    private static byte[] Sctp(ushort sport, ushort dport) =>
        [(byte)(sport >> 8), (byte)sport, (byte)(dport >> 8), (byte)dport, 0, 0, 0, 1, 0, 0, 0, 0];

    public void Dispose() => _dir.Dispose();
}
