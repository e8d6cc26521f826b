using System.Collections.Immutable;
using CsCheck;
using FastPath.ControlPlane.Cluster;
using FastPath.ControlPlane.Compile;
using FastPath.DataPlane.Packets;
using FastPath.DataPlane.Pipeline;
using FastPath.DataPlane.Policy;
using k8s.Models;

namespace FastPath.Tests.Policy;

/// <summary>
/// The incremental policy compile (<see cref="IncrementalCompiler"/> driving <see cref="PolicyCompiler"/>) against a
/// full compile of the same objects: after every change the tables are structurally equal (same policy names, and for
/// every port and direction the same segments, ports and policy ids), and it rebuilds only what a change can affect.
/// </summary>
public class IncrementalPolicyTests
{
    private const string Node = "node-a";

    [Fact]
    public void AfterRandomChanges_TheIncrementalTableEqualsAFullCompile() =>
        AfterRandomSteps(12, (r, compiler) => RandomChange(r, compiler, PolicyPropertyTests.RandomCluster(new Random(r.Next()))));

    /// <summary>
    /// Relabels only (the path that visits just the peers whose selectors mention a changed key, and moves the pod or the
    /// namespace's pods in or out of resolved peers in place): pods and namespaces relabelled where they stand, keys
    /// added, changed and removed (matchExpressions NotIn / DoesNotExist see a removed key), with a policy change now
    /// and then so peers are re-resolved between relabels.
    /// </summary>
    [Fact]
    public void AfterRandomRelabels_TheIncrementalTableEqualsAFullCompile() => AfterRandomSteps(20, RandomRelabel);

    /// <summary>Random clusters, each taken through <paramref name="steps"/> steps of 1–3 changes, compared with a full compile after every step.</summary>
    private static void AfterRandomSteps(int steps, Func<Random, IncrementalCompiler, string> change) =>
        Gen.Int.Sample(seed =>
        {
            var r = new Random(seed);
            var state = PolicyPropertyTests.RandomCluster(r);
            var compiler = new IncrementalCompiler(Node);
            foreach (var o in Objects(state)) compiler.Upsert(o);
            AssertSameAsFull(compiler, $"seed {seed}, initial");
            for (int step = 0; step < steps; step++)
            {
                var changes = new List<string>();
                for (int k = r.Next(1, 4); k > 0; k--) changes.Add(change(r, compiler));
                AssertSameAsFull(compiler, $"seed {seed}, step {step}: {string.Join("; ", changes)}");
            }
        }, iter: 60);

    /// <summary>A pod or a namespace relabelled where it stands (new label sets over the keys the random selectors read), or now and then a policy upserted.</summary>
    private static string RandomRelabel(Random r, IncrementalCompiler compiler)
    {
        var current = compiler.State("test");
        Dictionary<string, string> Labels(string[] keys)
        {
            var labels = new Dictionary<string, string>();
            foreach (var k in keys) if (r.Next(3) > 0) labels[k] = ((string[])["w", "d", "1", "a", "b"])[r.Next(5)];
            return labels;
        }
        int what = r.Next(10);
        if (what < 5 && !current.Pods.IsEmpty)
        {
            var pod = current.Pods[r.Next(current.Pods.Length)];
            var relabelled = new V1Pod { Metadata = new V1ObjectMeta { Name = pod.Name, NamespaceProperty = pod.Namespace, Labels = Labels(["app", "tier", "k"]) }, Spec = pod.Value.Spec, Status = pod.Value.Status };
            compiler.Upsert(pod with { Value = relabelled });
            return $"{pod.Label} relabelled {string.Join(",", relabelled.Metadata.Labels)}";
        }
        if (what < 9 && !current.Namespaces.IsEmpty)
        {
            var ns = current.Namespaces[r.Next(current.Namespaces.Length)];
            var labels = Labels(["env", "team"]);
            compiler.Upsert(ns with { Value = new V1Namespace { Metadata = new V1ObjectMeta { Name = ns.Name, Labels = labels } } });
            return $"{ns.Label} relabelled {string.Join(",", labels)}";
        }
        var policies = PolicyPropertyTests.RandomCluster(new Random(r.Next())).NetworkPolicies;
        if (policies.IsEmpty) return "nothing";
        var policy = policies[r.Next(policies.Length)];
        compiler.Upsert(policy);
        return $"{policy.Label} upserted";
    }

    [Fact]
    public void ARelabelOnKeysNoSelectorMentions_RebuildsNothing()
    {
        var compiler = Cluster(out var before);
        // x/b is x/np's peer (app=b): a new key beside app leaves it in the peer, its addresses and ports unchanged.
        var pod = Pod("x", "b", "node-b", "10.244.2.11", ("app", "b"));
        pod.Value.Metadata.Labels["version"] = "2";
        compiler.Upsert(pod);
        var after = Compile(compiler);
        Assert.Equal(0, compiler.LastPolicyRuleSetsBuilt);
        Assert.Same(before.For(Port(before, "x/a"), PolicyDirection.Ingress), after.For(Port(after, "x/a"), PolicyDirection.Ingress));

        compiler.Upsert(Namespace("x", ("team", "blue"))); // y/np allows namespaces team=blue: x joins
        Compile(compiler);
        Assert.Equal(1, compiler.LastPolicyRuleSetsBuilt);
        var ns = Namespace("x", ("team", "blue"));
        ns.Value.Metadata.Labels["env"] = "dev"; // still team=blue; no namespaceSelector reads env
        compiler.Upsert(ns);
        after = Compile(compiler);
        Assert.Equal(0, compiler.LastPolicyRuleSetsBuilt);
        Assert.True(after.For(Port(after, "y/a"), PolicyDirection.Ingress)!.Allows(Ip("10.244.2.11"), PolicyRuleSet.Key(IpProtocol.Tcp, 80)));
        AssertSameAsFull(compiler, "relabelled on unread keys");

        // app=c: out of x/np's peer (app=b); still in y/np's (namespaces team=blue, no podSelector: app is not read there).
        compiler.Upsert(Pod("x", "b", "node-b", "10.244.2.11", ("app", "c")));
        after = Compile(compiler);
        Assert.Equal(1, compiler.LastPolicyRuleSetsBuilt); // x/a's set only
        Assert.False(after.For(Port(after, "x/a"), PolicyDirection.Ingress)!.Allows(Ip("10.244.2.11"), PolicyRuleSet.Key(IpProtocol.Tcp, 80)));
        Assert.True(after.For(Port(after, "y/a"), PolicyDirection.Ingress)!.Allows(Ip("10.244.2.11"), PolicyRuleSet.Key(IpProtocol.Tcp, 80)));
        AssertSameAsFull(compiler, "relabelled out of one peer");
    }

    [Fact]
    public void OnePolicyChanged_RebuildsOnlyTheSetsThatNameIt()
    {
        var compiler = Cluster(out var before);
        var x = before.For(Port(before, "x/a"), PolicyDirection.Ingress)!;
        var y = before.For(Port(before, "y/a"), PolicyDirection.Ingress)!;
        compiler.Upsert(Policy("x", "np", Allow("app", "b"), "81"));
        var after = Compile(compiler);

        Assert.Equal(1, compiler.LastPolicyRuleSetsBuilt);
        Assert.NotSame(x, after.For(Port(after, "x/a"), PolicyDirection.Ingress));
        Assert.Same(y, after.For(Port(after, "y/a"), PolicyDirection.Ingress));
        Assert.True(after.For(Port(after, "x/a"), PolicyDirection.Ingress)!.Allows(Ip("10.244.2.11"), PolicyRuleSet.Key(IpProtocol.Tcp, 81)));
        Assert.False(after.For(Port(after, "x/a"), PolicyDirection.Ingress)!.Allows(Ip("10.244.2.11"), PolicyRuleSet.Key(IpProtocol.Tcp, 80)));
        AssertSameAsFull(compiler, "one policy changed");
    }

    [Fact]
    public void APodNoPeerSelects_RebuildsNothing_AndOneAPeerSelects_RebuildsItsPolicysSets()
    {
        var compiler = Cluster(out var before);
        compiler.Upsert(Pod("y", "q", "node-b", "10.244.2.50", ("app", "other")));
        var after = Compile(compiler);
        Assert.Equal(0, compiler.LastPolicyRuleSetsBuilt);
        var annotated = Pod("x", "b", "node-b", "10.244.2.11", ("app", "b")); // a peer, but nothing policy reads changed
        annotated.Value.Metadata.Annotations = new Dictionary<string, string> { ["note"] = "status update" };
        compiler.Upsert(annotated);
        Compile(compiler);
        Assert.Equal(0, compiler.LastPolicyRuleSetsBuilt);
        Assert.Same(before.For(Port(before, "x/a"), PolicyDirection.Ingress), after.For(Port(after, "x/a"), PolicyDirection.Ingress));

        compiler.Upsert(Pod("x", "q", "node-b", "10.244.2.51", ("app", "b"))); // x/np allows app=b of namespace x
        after = Compile(compiler);
        Assert.Equal(1, compiler.LastPolicyRuleSetsBuilt);
        Assert.True(after.For(Port(after, "x/a"), PolicyDirection.Ingress)!.Allows(Ip("10.244.2.51"), PolicyRuleSet.Key(IpProtocol.Tcp, 80)));
        AssertSameAsFull(compiler, "pods added");

        compiler.Upsert(Pod("x", "q", "node-b", "10.244.2.51", ("app", "c"))); // relabelled: no longer a peer
        after = Compile(compiler);
        Assert.Equal(1, compiler.LastPolicyRuleSetsBuilt);
        Assert.False(after.For(Port(after, "x/a"), PolicyDirection.Ingress)!.Allows(Ip("10.244.2.51"), PolicyRuleSet.Key(IpProtocol.Tcp, 80)));
        AssertSameAsFull(compiler, "pod relabelled");
    }

    [Fact]
    public void ANamespaceRelabel_RebuildsTheSetsOfPoliciesWhoseNamespaceSelectorMatchesOldOrNewLabels()
    {
        var compiler = Cluster(out _);
        compiler.Upsert(Namespace("x", ("env", "dev"))); // y/np's namespaceSelector (team=blue) matches neither team=red nor env=dev
        Compile(compiler);
        Assert.Equal(0, compiler.LastPolicyRuleSetsBuilt);

        compiler.Upsert(Namespace("x", ("team", "blue"))); // y/np allows namespaces team=blue
        var after = Compile(compiler);
        Assert.Equal(1, compiler.LastPolicyRuleSetsBuilt);
        Assert.True(after.For(Port(after, "y/a"), PolicyDirection.Ingress)!.Allows(Ip("10.244.2.11"), PolicyRuleSet.Key(IpProtocol.Tcp, 80)));
        AssertSameAsFull(compiler, "namespace relabelled");
    }

    [Fact]
    public void APolicyAdded_RenumbersTheReusedSets()
    {
        var compiler = Cluster(out var before);
        var y = before.For(Port(before, "y/a"), PolicyDirection.Ingress)!;
        Assert.Equal("y/np", before.PolicyNames[y.Policies.Single()]);
        compiler.Upsert(Policy("a", "first", Allow("app", "b"), "80")); // sorts first: every id moves up by one
        var after = Compile(compiler);

        Assert.Equal(0, compiler.LastPolicyRuleSetsBuilt); // namespace a has no pods on this node
        var renumbered = after.For(Port(after, "y/a"), PolicyDirection.Ingress)!;
        Assert.Equal("y/np", after.PolicyNames[renumbered.Policies.Single()]);
        Assert.NotEqual(y.Policies.Single(), renumbered.Policies.Single());
        AssertSameAsFull(compiler, "policy added");
    }

    /// <summary>
    /// Namespaces x (labels team=red) and y (team=green), pods x/a, y/a on this node and x/b (10.244.2.11) on the other; x/np
    /// isolates x/a allowing app=b of x on TCP 80, y/np isolates y/a allowing namespaces team=blue on TCP 80.
    /// </summary>
    private static IncrementalCompiler Cluster(out PolicyTable table)
    {
        var compiler = new IncrementalCompiler(Node);
        foreach (var (name, cidr) in (ReadOnlySpan<(string, string)>)[(Node, "10.244.1.0/24"), ("node-b", "10.244.2.0/24")])
            compiler.Upsert(new ClusterObject<V1Node>(new V1Node { Metadata = new V1ObjectMeta { Name = name }, Spec = new V1NodeSpec { PodCIDRs = [cidr] } }, "Node", null, name, "nodes.yaml", 1));
        compiler.Upsert(Namespace("x", ("team", "red")));
        compiler.Upsert(Namespace("y", ("team", "green")));
        compiler.Upsert(Pod("x", "a", Node, "10.244.1.10", ("app", "a")));
        compiler.Upsert(Pod("x", "b", "node-b", "10.244.2.11", ("app", "b")));
        compiler.Upsert(Pod("y", "a", Node, "10.244.1.12", ("app", "a")));
        compiler.Upsert(Policy("x", "np", Allow("app", "b"), "80"));
        compiler.Upsert(Policy("y", "np", new V1NetworkPolicyPeer { NamespaceSelector = Selector("team", "blue") }, "80"));
        table = Compile(compiler);
        return compiler;
    }

    private static PolicyTable Compile(IncrementalCompiler compiler) =>
        compiler.Compile(1).Snapshot?.Policy ?? throw new InvalidOperationException("no snapshot");

    /// <summary>The port of x/a or y/a (the node's pods, in name order).</summary>
    private static int Port(PolicyTable table, string pod) =>
        PortIndex.FirstPod + Array.IndexOf((string[])["x/a", "y/a"], pod) is var port && port >= PortIndex.FirstPod && port < table.PortCount
            ? port : throw new ArgumentException(pod, nameof(pod));

    private static IpAddr Ip(string text) => IpAddr.TryParse(text, out var a) ? a : throw new ArgumentException(text, nameof(text));

    private static V1LabelSelector Selector(string key, string value) => new() { MatchLabels = new Dictionary<string, string> { [key] = value } };

    private static V1NetworkPolicyPeer Allow(string key, string value) => new() { PodSelector = Selector(key, value) };

    private static ClusterObject<V1Namespace> Namespace(string name, (string Key, string Value) label) =>
        new(new V1Namespace { Metadata = new V1ObjectMeta { Name = name, Labels = new Dictionary<string, string> { [label.Key] = label.Value } } }, "Namespace", null, name, "ns.yaml", 1);

    private static ClusterObject<V1Pod> Pod(string ns, string name, string node, string ip, (string Key, string Value) label) =>
        new(new V1Pod
        {
            Metadata = new V1ObjectMeta { Name = name, NamespaceProperty = ns, Labels = new Dictionary<string, string> { [label.Key] = label.Value } },
            Spec = new V1PodSpec { NodeName = node, Containers = [new V1Container { Name = "main" }] },
            Status = new V1PodStatus { PodIP = ip },
        }, "Pod", ns, name, "pods.yaml", 1);

    private static ClusterObject<V1NetworkPolicy> Policy(string ns, string name, V1NetworkPolicyPeer from, string port) =>
        new(new V1NetworkPolicy
        {
            Metadata = new V1ObjectMeta { Name = name, NamespaceProperty = ns },
            Spec = new V1NetworkPolicySpec
            {
                PodSelector = Selector("app", "a"),
                Ingress = [new V1NetworkPolicyIngressRule { FromProperty = [from], Ports = [new V1NetworkPolicyPort { Port = (IntOrString)port }] }],
            },
        }, "NetworkPolicy", ns, name, "np.yaml", 1);

    private static IEnumerable<IClusterObject> Objects(ClusterState state) =>
        [.. state.Nodes, .. state.Namespaces, .. state.Pods, .. state.NetworkPolicies];

    /// <summary>
    /// One random change drawn from <paramref name="other"/> (another random cluster over the same names): a policy
    /// added, replaced or removed; a pod added, changed (labels, addresses, node, container ports) or removed; a
    /// namespace relabelled, added or removed. Returns what it did.
    /// </summary>
    private static string RandomChange(Random r, IncrementalCompiler compiler, ClusterState other)
    {
        var current = compiler.State("test");
        T Any<T>(ImmutableArray<T> items) => items[r.Next(items.Length)];
        string Upsert(IClusterObject o)
        {
            compiler.Upsert(o);
            return $"{o.Label} upserted";
        }
        string Delete(IClusterObject o)
        {
            compiler.Delete(o.Key);
            return $"{o.Label} deleted";
        }
        switch (r.Next(6))
        {
            case 0:
            case 1:
                return Upsert(Any(other.NetworkPolicies));
            case 2:
                if (current.NetworkPolicies.IsEmpty) goto case 0;
                return Delete(Any(current.NetworkPolicies));
            case 3:
                var pod = Any(other.Pods);
                // Pod pN always has the addresses of index N: keep one pod per index (its namespace, if it exists).
                if (current.Pods.FirstOrDefault(p => p.Name == pod.Name) is { } existing && existing.Namespace != pod.Namespace)
                {
                    pod.Value.Metadata.NamespaceProperty = existing.Namespace;
                    pod = pod with { Namespace = existing.Namespace };
                }
                return Upsert(pod);
            case 4:
                if (current.Pods.IsEmpty) goto case 3;
                return Delete(Any(current.Pods));
            default:
                return r.Next(4) == 0 && !current.Namespaces.IsEmpty ? Delete(Any(current.Namespaces)) : Upsert(Any(other.Namespaces));
        }
    }

    private static void AssertSameAsFull(IncrementalCompiler compiler, string what)
    {
        var result = compiler.Compile(1);
        var snapshot = result.Snapshot ?? throw new InvalidOperationException(string.Join("; ", result.Errors));
        var state = compiler.State("test");
        var errors = new List<ClusterError>();
        ClusterValidator.Validate(state, errors);
        Assert.True(errors.Count == 0, $"{what}: invalid cluster: {string.Join("; ", errors)}");
        var pods = snapshot.Ports.Skip(PortIndex.FirstPod).ToList();
        var full = PolicyCompiler.Compile(state, pods, snapshot.Node.HostAddresses);
        var incremental = snapshot.Policy;
        Assert.True(full.PolicyNames.SequenceEqual(incremental.PolicyNames), $"{what}: policy names differ");
        Assert.Equal(full.IsEmpty ? 0 : full.PortCount, incremental.IsEmpty ? 0 : incremental.PortCount);
        for (int port = 0; port < full.PortCount; port++)
            foreach (var direction in (PolicyDirection[])[PolicyDirection.Ingress, PolicyDirection.Egress])
            {
                var (want, got) = (full.For(port, direction), incremental.For(port, direction));
                Assert.True(want is null ? got is null : got is not null && want.SameAs(got),
                    $"{what}: {snapshot.Ports[port].Name} {direction}: full {Describe(want, full)}, incremental {Describe(got, incremental)}");
            }
    }

    private static string Describe(PolicyRuleSet? set, PolicyTable table) =>
        set is null ? "open" : $"{set.SegmentCount} segments of [{string.Join(", ", set.Policies.Select(id => table.PolicyNames[id]))}]";
}
