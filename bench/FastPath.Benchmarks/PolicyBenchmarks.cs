using System.Collections.Immutable;
using BenchmarkDotNet.Attributes;
using FastPath.ControlPlane.Cluster;
using FastPath.ControlPlane.Compile;
using FastPath.DataPlane.Packets;
using FastPath.DataPlane.Pipeline;
using FastPath.DataPlane.Policy;
using FastPath.DataPlane.Ports;
using FastPath.DataPlane.Services;
using k8s.Models;

namespace FastPath.Benchmarks;

/// <summary>
/// NetworkPolicy at scale: a cluster of 100 namespaces × 100 pods (10,000 pods on 100 nodes, 100 of them on the
/// measured node) with 1,000 policies (10 per namespace: pod selectors, namespace selectors, ipBlocks with except,
/// numeric, ranged and named ports). Measures the full compile, the incremental compile after one change — a policy
/// selecting a local pod, a pod relabelled, a pod added or removed, a namespace relabelled; each invocation flips the
/// object between two versions, so every one is a change — and the new-flow verdict (table lookup for a random local
/// pod, direction, peer pod and port).
/// </summary>
[MemoryDiagnoser]
public class PolicyCompileBenchmarks
{
    private const int Verdicts = 4096;
    private ClusterState _state = null!;
    private List<PortDefinition> _pods = null!;
    private IReadOnlyList<IpAddr> _node = null!;
    private PolicyTable _table = null!;
    private PolicyCompiler _incremental = null!;
    private readonly Flip<V1NetworkPolicy> _policy = new();
    private readonly Flip<V1Pod> _relabelled = new(), _added = new();
    private readonly Flip<V1Namespace> _namespace = new();
    private (int Port, PolicyDirection Direction, IpAddr Peer, uint Key)[] _queries = null!;

    [GlobalSetup]
    public void Setup()
    {
        _state = PolicyCluster.Build(namespaces: 100, podsPerNamespace: 100, policiesPerNamespace: 10);
        _pods = SnapshotCompiler.PodPorts(_state, "node-0");
        _node = [IpAddr.FromV4(0xC0A8_0001)];
        _table = PolicyCompiler.Compile(_state, _pods, _node);
        _incremental = PolicyCompiler.Load(_state);
        _incremental.Compile(_pods, _node);

        (_policy.A, _policy.B) = PolicyCluster.PolicyChange(_state);
        (_relabelled.A, _relabelled.B, _added.B) = PolicyCluster.PodChanges(_state);
        (_namespace.A, _namespace.B) = PolicyCluster.NamespaceChange(_state);

        var rng = new Random(5);
        var peers = _state.Pods.Select(p => IpAddr.TryParse(p.Value.Status.PodIP, out var a) ? a : default).ToArray();
        _queries = new (int, PolicyDirection, IpAddr, uint)[Verdicts];
        // Only isolated pods and directions: a pod no policy selects costs one array read.
        for (int i = 0; i < Verdicts;)
        {
            var q = (PortIndex.FirstPod + rng.Next(_pods.Count), rng.Next(2) == 0 ? PolicyDirection.Ingress : PolicyDirection.Egress,
                peers[rng.Next(peers.Length)], PolicyRuleSet.Key(IpProtocol.Tcp, (ushort)(78 + rng.Next(6))));
            if (_table.For(q.Item1, q.Item2) is not null) _queries[i++] = q;
        }
        foreach (var (name, change) in (ReadOnlySpan<(string, Func<PolicyTable>)>)[("policy", OnePolicyChanged), ("pod relabelled", OnePodRelabelled), ("pod added", OnePodAddedOrRemoved), ("namespace relabelled", OneNamespaceRelabelled)])
        {
            change();
            Console.WriteLine($"// {name}: {_incremental.LastRuleSetsBuilt} rule sets rebuilt");
            change();
        }
    }

    /// <summary>Policies → per-pod rule sets for one node of the 10,000-pod cluster, from scratch.</summary>
    [Benchmark(Baseline = true)]
    public PolicyTable CompileCluster() => PolicyCompiler.Compile(_state, _pods, _node);

    /// <summary>One policy isolating a local pod changed its port: the incremental compile.</summary>
    [Benchmark]
    public PolicyTable OnePolicyChanged() => Recompile(() => _incremental.SetPolicy(_policy.A!.QualifiedName, _policy.Next()));

    /// <summary>One remote pod's app label changed (policies select peers by it).</summary>
    [Benchmark]
    public PolicyTable OnePodRelabelled() => Recompile(() => _incremental.SetPod(_relabelled.A!.QualifiedName, _relabelled.Next()));

    /// <summary>One remote pod added, then removed again.</summary>
    [Benchmark]
    public PolicyTable OnePodAddedOrRemoved() => Recompile(() => _incremental.SetPod(_added.B!.QualifiedName, _added.Next()));

    /// <summary>One namespace's team label changed (namespace selectors match it).</summary>
    [Benchmark]
    public PolicyTable OneNamespaceRelabelled() => Recompile(() => _incremental.SetNamespace(_namespace.A!.Name, _namespace.Next()));

    private PolicyTable Recompile(Action change)
    {
        change();
        return _incremental.Compile(_pods, _node);
    }

    /// <summary>One new-flow verdict for an isolated pod: its rule set, then the address and port searches.</summary>
    [Benchmark(OperationsPerInvoke = Verdicts)]
    public int NewFlowVerdict()
    {
        int allowed = 0;
        foreach (var (port, direction, peer, key) in _queries)
            if (_table.For(port, direction) is not { } set || set.Allows(peer, key)) allowed++;
        return allowed;
    }
}

/// <summary>
/// The established-flow cost of policy through the whole loop: 1024 pod-to-pod TCP flows into 10 local pods, with
/// no policy, with 1,000 policies of a 10,000-pod cluster none of which isolates these pods (every packet of the
/// untracked flows asks the enforcer, which finds both ends open), or with every destination isolated and the client
/// allowed (the flows are tracked and pass by their conntrack entry). With Services (as on any kube-proxy node)
/// conntrack is probed for every packet anyway; without, a tracked flow adds the only probe.
/// </summary>
[MemoryDiagnoser]
public class PolicyPipelineBenchmarks
{
    /// <summary>No policy; policies loaded but none isolates the flows' pods; every destination isolated.</summary>
    public enum PolicyMode { Off, OtherPodsIsolated, DestinationsIsolated }

    [Params(PolicyMode.Off, PolicyMode.OtherPodsIsolated, PolicyMode.DestinationsIsolated)]
    public PolicyMode Policy { get; set; }

    /// <summary>
    /// A Service in use, as on every real node (kube-dns): one packet in 65 belongs to one of 16 tracked connections to
    /// a ClusterIP, so conntrack holds entries and every packet probes it, policy or not.
    /// </summary>
    [Params(false, true)]
    public bool Services { get; set; }

    private EngineLoop _loop = null!;

    [GlobalSetup]
    public void Setup()
    {
        var node = new NodeSettings { NodeName = "node-a", UplinkMac = new MacAddress(0x0200_0000_0101UL), HostAddresses = [IpAddr.FromV4(0xC0A8_380B)], ConntrackCapacity = 1 << 16 };
        var pods = new List<PortDefinition> { new("default/client", PortKind.Pod, SyntheticFrames.Client, [IpAddr.FromV4(0x0AF4_010A)]) };
        for (int e = 0; e < 10; e++)
            pods.Add(new PortDefinition($"default/web-{e}", PortKind.Pod, new MacAddress(0x0242_0AF4_0114UL + (ulong)e), [IpAddr.FromV4(0x0AF4_0114u + (uint)e)]));
        pods.Add(new PortDefinition("default/zzz-0", PortKind.Pod, new MacAddress(0x0242_0AF4_0130UL), [IpAddr.FromV4(0x0AF4_0130u)]));
        var services = Services
            ? new ServiceTable([new ServiceFrontend("default/dns", IpAddr.FromV4(0x0A60_000A), 53, IpProtocol.Tcp, [new ServiceBackend(IpAddr.FromV4(0x0AF4_0114), 53)])], 1021)
            : null;
        var policy = Policy == PolicyMode.Off ? null : IsolatingTable(pods, Policy == PolicyMode.DestinationsIsolated ? "web" : "zzz");
        var snapshot = new ForwardingSnapshot(node, pods, services: services, policy: policy);
        var frames = new List<byte[]>();
        for (int i = 0; i < 1024; i++)
        {
            frames.Add(SyntheticFrames.Ipv4Tcp((ushort)(1024 + i), 80, 64, dst: 0x0AF4_0114u + (uint)(i % 10)));
            if (Services && i % 64 == 63) frames.Add(SyntheticFrames.Ipv4Tcp((ushort)(20000 + i / 64), 53, 64, dst: 0x0A60_000A));
        }
        _loop = new EngineLoop(new MemorySource(frames, repeat: int.MaxValue, ingressPort: (short)snapshot.FindPort("default/client")),
            new Engine(new SnapshotHolder(snapshot)), $"policy {Policy}");
        Forward(); // opens the tracked connections (policy on)
    }

    /// <summary>
    /// The 1,000-policy cluster's table, with the node's own pods (client, web-0..9, zzz-0) labelled app=cli|web|zzz
    /// and one more policy isolating the pods labelled <paramref name="isolated"/>, allowing client.
    /// </summary>
    private static PolicyTable IsolatingTable(List<PortDefinition> ports, string isolated)
    {
        var state = PolicyCluster.Build(namespaces: 100, podsPerNamespace: 100, policiesPerNamespace: 10);
        var local = ports.Select(p => new ClusterObject<V1Pod>(new V1Pod
        {
            Metadata = new V1ObjectMeta { Name = p.Name[8..], NamespaceProperty = "default", Labels = new Dictionary<string, string> { ["app"] = p.Name[8..11] } },
            Spec = new V1PodSpec { NodeName = "node-a" },
            Status = new V1PodStatus { PodIP = p.Addresses[0].ToString() },
        }, "Pod", "default", p.Name[8..], "bench", 1));
        var allowClient = new V1NetworkPolicy
        {
            Metadata = new V1ObjectMeta { Name = "web", NamespaceProperty = "default" },
            Spec = new V1NetworkPolicySpec
            {
                PodSelector = new V1LabelSelector { MatchLabels = new Dictionary<string, string> { ["app"] = isolated } },
                Ingress = [new V1NetworkPolicyIngressRule { FromProperty = [new V1NetworkPolicyPeer { PodSelector = new V1LabelSelector { MatchLabels = new Dictionary<string, string> { ["app"] = "cli" } } }] }],
            },
        };
        state = state with
        {
            Pods = state.Pods.AddRange(local),
            NetworkPolicies = state.NetworkPolicies.Add(new ClusterObject<V1NetworkPolicy>(allowClient, "NetworkPolicy", "default", "web", "bench", 1)),
        };
        return PolicyCompiler.Compile(state, ports, [IpAddr.FromV4(0xC0A8_380B)]);
    }

    [Benchmark(OperationsPerInvoke = EngineLoop.Packets)]
    public long Forward() => _loop.Forward();
}

/// <summary>Two versions of one object (the second null: removed), applied in turn.</summary>
public sealed class Flip<T> where T : class
{
    public ClusterObject<T>? A, B;
    private bool _b;

    public ClusterObject<T>? Next() => (_b = !_b) ? B : A;
}

/// <summary>The synthetic cluster of the policy benchmarks (deterministic).</summary>
public static class PolicyCluster
{
    public static ClusterState Build(int namespaces, int podsPerNamespace, int policiesPerNamespace)
    {
        var rng = new Random(11);
        var nsObjects = ImmutableArray.CreateBuilder<ClusterObject<V1Namespace>>();
        var pods = ImmutableArray.CreateBuilder<ClusterObject<V1Pod>>();
        var policies = ImmutableArray.CreateBuilder<ClusterObject<V1NetworkPolicy>>();
        static V1LabelSelector Labels(string key, string value) => new() { MatchLabels = new Dictionary<string, string> { [key] = value } };
        V1NetworkPolicyPeer Block(int third) => new() { IpBlock = new V1IPBlock { Cidr = $"10.0.{third}.0/24", Except = [$"10.0.{third}.{16 * rng.Next(16)}/28"] } };
        int podIndex = 0;
        for (int n = 0; n < namespaces; n++)
        {
            string ns = $"ns-{n}";
            nsObjects.Add(new ClusterObject<V1Namespace>(new V1Namespace { Metadata = new V1ObjectMeta { Name = ns, Labels = new Dictionary<string, string> { ["team"] = $"t{n % 10}" } } }, "Namespace", null, ns, "bench", 1));
            for (int p = 0; p < podsPerNamespace; p++, podIndex++)
            {
                string name = $"pod-{p}";
                uint ip = 0x0A00_0000u + (uint)podIndex + 1; // 10.0.0.1 ...
                var pod = new V1Pod
                {
                    Metadata = new V1ObjectMeta { Name = name, NamespaceProperty = ns, Labels = new Dictionary<string, string> { ["app"] = $"app-{p % 20}", ["tier"] = $"{p % 3}" } },
                    Spec = new V1PodSpec
                    {
                        NodeName = $"node-{podIndex % 100}",
                        Containers = [new V1Container { Name = "c", Ports = [new V1ContainerPort { Name = "http", ContainerPort = 80 + p % 3 }] }],
                    },
                    Status = new V1PodStatus { PodIP = IpAddr.FromV4(ip).ToString() },
                };
                pods.Add(new ClusterObject<V1Pod>(pod, "Pod", ns, name, "bench", 1));
            }
            for (int k = 0; k < policiesPerNamespace; k++)
            {
                var from = (k % 4) switch
                {
                    0 => new V1NetworkPolicyPeer { PodSelector = Labels("app", $"app-{rng.Next(20)}") },
                    1 => new V1NetworkPolicyPeer { NamespaceSelector = Labels("team", $"t{rng.Next(10)}") },
                    2 => new V1NetworkPolicyPeer { NamespaceSelector = Labels("team", $"t{rng.Next(10)}"), PodSelector = Labels("tier", $"{rng.Next(3)}") },
                    _ => Block(rng.Next(40)),
                };
                var port = (k % 3) switch
                {
                    0 => new V1NetworkPolicyPort { Port = (IntOrString)"80" },
                    1 => new V1NetworkPolicyPort { Port = (IntOrString)"8000", EndPort = 8100 },
                    _ => new V1NetworkPolicyPort { Port = (IntOrString)"http" },
                };
                var spec = new V1NetworkPolicySpec { PodSelector = Labels("app", $"app-{rng.Next(20)}") };
                if (k % 5 == 4)
                {
                    spec.PolicyTypes = ["Egress"];
                    spec.Egress = [new V1NetworkPolicyEgressRule { To = [from], Ports = [port] }];
                }
                else spec.Ingress = [new V1NetworkPolicyIngressRule { FromProperty = [from], Ports = [port] }];
                string pname = $"np-{k}";
                policies.Add(new ClusterObject<V1NetworkPolicy>(new V1NetworkPolicy { Metadata = new V1ObjectMeta { Name = pname, NamespaceProperty = ns }, Spec = spec }, "NetworkPolicy", ns, pname, "bench", 1));
            }
        }
        return new ClusterState { Source = "bench", Namespaces = nsObjects.ToImmutable(), Pods = pods.ToImmutable(), NetworkPolicies = policies.ToImmutable() };
    }

    /// <summary>A policy isolating node-0's pods (pod-0 of each namespace, app-0), and the same allowing port 443 instead.</summary>
    public static (ClusterObject<V1NetworkPolicy> Policy, ClusterObject<V1NetworkPolicy> Changed) PolicyChange(ClusterState state)
    {
        var policy = state.NetworkPolicies.First(p => p.Value.Spec.PodSelector.MatchLabels["app"] == "app-0" && p.Value.Spec.Ingress is not null);
        var spec = policy.Value.Spec;
        return (policy, policy with
        {
            Value = new V1NetworkPolicy
            {
                Metadata = policy.Value.Metadata,
                Spec = new V1NetworkPolicySpec { PodSelector = spec.PodSelector, Ingress = [new V1NetworkPolicyIngressRule { FromProperty = spec.Ingress[0].FromProperty, Ports = [new V1NetworkPolicyPort { Port = (IntOrString)"443" }] }] },
            },
        });
    }

    /// <summary>A pod on another node, the same relabelled app-7 → app-8 (peers select by app), and a new pod beside it.</summary>
    public static (ClusterObject<V1Pod> Pod, ClusterObject<V1Pod> Relabelled, ClusterObject<V1Pod> Added) PodChanges(ClusterState state)
    {
        var pod = state.Pods.First(p => p.QualifiedName == "ns-5/pod-7");
        return (pod, pod with { Value = WithApp(pod.Value, "app-8") }, pod with { Name = "pod-new", Value = WithApp(pod.Value, "app-3", "pod-new", "10.1.0.1") });
    }

    /// <summary>Namespace ns-3, and the same with team t4 instead of t3 (namespace selectors select by team).</summary>
    public static (ClusterObject<V1Namespace> Namespace, ClusterObject<V1Namespace> Relabelled) NamespaceChange(ClusterState state)
    {
        var ns = state.Namespaces.First(n => n.Name == "ns-3");
        return (ns, ns with { Value = new V1Namespace { Metadata = new V1ObjectMeta { Name = "ns-3", Labels = new Dictionary<string, string> { ["team"] = "t4" } } } });
    }

    private static V1Pod WithApp(V1Pod pod, string app, string? name = null, string? ip = null) => new()
    {
        Metadata = new V1ObjectMeta { Name = name ?? pod.Metadata.Name, NamespaceProperty = pod.Metadata.NamespaceProperty, Labels = new Dictionary<string, string>(pod.Metadata.Labels) { ["app"] = app } },
        Spec = pod.Spec,
        Status = new V1PodStatus { PodIP = ip ?? pod.Status.PodIP },
    };
}
