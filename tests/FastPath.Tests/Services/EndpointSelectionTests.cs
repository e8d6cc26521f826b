using FastPath.ControlPlane.Cluster;
using FastPath.ControlPlane.Compile;
using FastPath.DataPlane.Packets;
using FastPath.DataPlane.Services;
using FastPath.Tests.ControlPlane;
using FastPath.Tests.Support;

namespace FastPath.Tests.Services;

/// <summary>
/// Which endpoints a frontend balances over, against kube-proxy's CategorizeEndpoints and topologyModeFromHints
/// (pkg/proxy/topology.go, Kubernetes 1.33) case by case: terminating fallback under Cluster and Local (KEP-1669),
/// zone and node hints with their fallbacks, and LoadBalancer ipMode Proxy (KEP-1860). The expectations are written
/// from kube-proxy's rules, not from our output; trace shows the same reason (TraceShowsWhyTheEndpointsAreEligible).
/// </summary>
public class EndpointSelectionTests
{
    private const string Nodes = """
        apiVersion: v1
        kind: Node
        metadata: {name: node-a, labels: {topology.kubernetes.io/zone: ZONE}}
        spec: {podCIDRs: [10.244.1.0/24]}
        status: {addresses: [{type: InternalIP, address: 192.168.56.11}]}
        ---
        apiVersion: v1
        kind: Node
        metadata: {name: node-b}
        spec: {podCIDRs: [10.244.2.0/24]}
        status: {addresses: [{type: InternalIP, address: 192.168.56.12}]}
        """;

    /// <summary>Compiles one Service (10.96.0.50:80, plus what <paramref name="spec"/> adds) over one IPv4 slice.</summary>
    private static IReadOnlyList<ServiceFrontend> Compile(string spec, string endpoints, string zone = "zone-a", string status = "")
    {
        using var cluster = new TempCluster();
        string nodes = zone.Length > 0 ? Nodes.Replace("ZONE", zone) : Nodes.Replace(", labels: {topology.kubernetes.io/zone: ZONE}", "");
        cluster.Write("cluster.yaml", nodes + $$"""

            ---
            apiVersion: v1
            kind: Service
            metadata: {name: s, namespace: default}
            spec:
              clusterIP: 10.96.0.50
              ports: [{port: 80, targetPort: 8080, nodePort: 30150}]
            {{spec}}
            {{status}}
            ---
            apiVersion: discovery.k8s.io/v1
            kind: EndpointSlice
            metadata: {name: s-1, namespace: default, labels: {kubernetes.io/service-name: s} }
            addressType: IPv4
            ports: [{port: 8080, protocol: TCP}]
            endpoints:
            {{endpoints}}
            """);
        var load = ClusterDirectory.Load(cluster.Path);
        Assert.Empty(load.Errors);
        var result = SnapshotCompiler.Compile(load.State, "node-a", 1);
        Assert.Empty(result.Errors);
        return result.Snapshot!.Services.Frontends;
    }

    private static ServiceFrontend ClusterIp(IReadOnlyList<ServiceFrontend> frontends) =>
        frontends.Single(f => f.Address.ToString() == "10.96.0.50");

    private static string[] Backends(ServiceFrontend f) => f.Backends.Select(b => b.Address.ToString()).Order().ToArray();

    private const string A = "10.244.1.11", B = "10.244.2.12", C = "10.244.2.13";

    public static TheoryData<string, string, string, string[], string> ClusterPolicyCases => new()
    {
        // KEP-1669: ready endpoints only while one is ready
        { "ready and terminating", "", $"- {{addresses: [{A}], nodeName: node-a}}\n- {{addresses: [{B}], nodeName: node-b, conditions: {{ready: false, serving: true, terminating: true}}}}", [A], "ready" },
        // none ready: the serving-and-terminating ones; serving unset counts as serving (endpointslicecache.go)
        { "all terminating", "", $"- {{addresses: [{A}], conditions: {{ready: false, serving: true, terminating: true}}}}\n- {{addresses: [{B}], conditions: {{ready: false, terminating: true}}}}\n- {{addresses: [{C}], conditions: {{ready: false, serving: false, terminating: true}}}}", [A, B], "terminating fallback: no endpoint is ready (KEP-1669)" },
        { "not ready, not terminating", "", $"- {{addresses: [{A}], conditions: {{ready: false, serving: true}}}}", [], "none ready or serving-and-terminating" },
        // zone hints for the node's zone
        { "zone hints", "  trafficDistribution: PreferClose", $"- {{addresses: [{A}], zone: zone-a, hints: {{forZones: [{{name: zone-a}}]}}}}\n- {{addresses: [{B}], zone: zone-b, hints: {{forZones: [{{name: zone-b}}]}}}}\n- {{addresses: [{C}], zone: zone-b, hints: {{forZones: [{{name: zone-a}}]}}}}", [A, C], "ready, hinted for zone zone-a" },
        // a ready endpoint without a hint: hints ignored
        { "one endpoint lacks a hint", "  trafficDistribution: PreferClose", $"- {{addresses: [{A}], hints: {{forZones: [{{name: zone-a}}]}}}}\n- {{addresses: [{B}]}}", [A, B], "ready, hints ignored: an endpoint has no zone hint" },
        // a not-ready endpoint without a hint does not count
        { "not-ready endpoint lacks a hint", "  trafficDistribution: PreferClose", $"- {{addresses: [{A}], hints: {{forZones: [{{name: zone-a}}]}}}}\n- {{addresses: [{B}], hints: {{forZones: [{{name: zone-b}}]}}}}\n- {{addresses: [{C}], conditions: {{ready: false}}}}", [A], "ready, hinted for zone zone-a" },
        // no endpoint for this zone: all
        { "no hint for the zone", "  trafficDistribution: PreferClose", $"- {{addresses: [{A}], hints: {{forZones: [{{name: zone-b}}]}}}}\n- {{addresses: [{B}], hints: {{forZones: [{{name: zone-c}}]}}}}", [A, B], "ready, hints ignored: none for zone zone-a" },
        // node hints win when every ready endpoint has one and one names this node
        { "node hints", "  trafficDistribution: PreferSameNode", $"- {{addresses: [{A}], hints: {{forNodes: [{{name: node-a}}], forZones: [{{name: zone-a}}]}}}}\n- {{addresses: [{B}], hints: {{forNodes: [{{name: node-b}}], forZones: [{{name: zone-a}}]}}}}", [A], "ready, hinted for node node-a" },
        // node hints for other nodes only: zone hints
        { "node hints elsewhere", "  trafficDistribution: PreferSameNode", $"- {{addresses: [{A}], hints: {{forNodes: [{{name: node-b}}], forZones: [{{name: zone-a}}]}}}}\n- {{addresses: [{B}], hints: {{forNodes: [{{name: node-b}}], forZones: [{{name: zone-b}}]}}}}", [A], "ready, hinted for zone zone-a" },
        // the terminating fallback keeps the topology mode of the (absent) ready endpoints: all
        { "terminating with hints", "  trafficDistribution: PreferClose", $"- {{addresses: [{A}], conditions: {{ready: false, serving: true, terminating: true}}, hints: {{forZones: [{{name: zone-b}}]}}}}", [A], "terminating fallback: no endpoint is ready (KEP-1669)" },
        // kube-proxy follows hints, not the field: PreferClose without hints uses every endpoint
        { "trafficDistribution without hints", "  trafficDistribution: PreferClose", $"- {{addresses: [{A}]}}\n- {{addresses: [{B}]}}", [A, B], "ready" },
    };

    [Theory]
    [MemberData(nameof(ClusterPolicyCases))]
    public void ClusterPolicyEndpointsAreKubeProxys(string name, string spec, string endpoints, string[] expected, string why)
    {
        var fe = ClusterIp(Compile(spec, Indent(endpoints)));
        Assert.True(expected.SequenceEqual(Backends(fe)), $"{name}: {string.Join(",", Backends(fe))}");
        Assert.Equal(why, fe.Eligibility);
    }

    [Fact]
    public void ANodeWithoutAZoneLabelIgnoresZoneHints()
    {
        var fe = ClusterIp(Compile("  trafficDistribution: PreferClose",
            Indent($"- {{addresses: [{A}], hints: {{forZones: [{{name: zone-a}}]}}}}\n- {{addresses: [{B}], hints: {{forZones: [{{name: zone-b}}]}}}}"), zone: ""));
        Assert.Equal([A, B], Backends(fe));
        Assert.Equal("ready, hints ignored: node node-a has no topology.kubernetes.io/zone label", fe.Eligibility);
    }

    [Fact]
    public void TerminatingFallbackAndTopologyApplyToNodePortsUnderCluster()
    {
        var frontends = Compile("  type: NodePort\n  trafficDistribution: PreferClose",
            Indent($"- {{addresses: [{A}], conditions: {{ready: false, serving: true, terminating: true}}}}\n- {{addresses: [{B}], conditions: {{ready: false, terminating: true, serving: false}}}}"));
        var nodePort = frontends.Single(f => f.Port == 30150);
        Assert.Equal([A], Backends(nodePort));
        Assert.True(nodePort.Masquerade);
        Assert.StartsWith("terminating fallback", nodePort.Eligibility);
    }

    [Fact]
    public void LocalPolicyUsesLocalEndpointsIgnoringHintsAndFallsBackToTerminatingOnes()
    {
        var frontends = Compile("  type: NodePort\n  externalTrafficPolicy: Local\n  internalTrafficPolicy: Local",
            Indent($"- {{addresses: [{A}], nodeName: node-a, conditions: {{ready: false, serving: true, terminating: true}}, hints: {{forZones: [{{name: zone-b}}]}}}}\n- {{addresses: [{B}], nodeName: node-b, hints: {{forZones: [{{name: zone-b}}]}}}}"));
        foreach (var fe in frontends)
        {
            Assert.Equal([A], Backends(fe));
            Assert.Equal("terminating fallback on node node-a: no local endpoint is ready (KEP-1669, traffic policy Local)", fe.Eligibility);
        }
    }

    [Fact]
    public void LoadBalancerIngressInProxyModeIsNotCaptured()
    {
        var frontends = Compile("  type: LoadBalancer", Indent($"- {{addresses: [{A}]}}"),
            status: "status: {loadBalancer: {ingress: [{ip: 203.0.113.110, ipMode: Proxy}, {ip: 203.0.113.111, ipMode: VIP}, {ip: 203.0.113.112}]}}");
        var addresses = frontends.Select(f => f.Address.ToString()).ToHashSet();
        Assert.DoesNotContain("203.0.113.110", addresses);
        Assert.Contains("203.0.113.111", addresses);
        Assert.Contains("203.0.113.112", addresses);
    }

    private static string Indent(string lines) => string.Join("\n", lines.Split('\n').Select(l => "  " + l));

    /// <summary>`fastpath trace` names why a Service's endpoints are the eligible ones (the conformance case's cluster).</summary>
    [Theory]
    [InlineData("tcp 10.244.1.10:40000 > 10.96.0.40:80", "(eligible: terminating fallback: no endpoint is ready (KEP-1669))")]
    [InlineData("tcp 198.51.100.7:40000 > 192.168.56.11:30100", "(eligible: terminating fallback: no endpoint is ready (KEP-1669))")]
    [InlineData("tcp 10.244.1.10:40000 > 10.96.0.41:80", "(eligible: ready, hinted for zone zone-a)")]
    [InlineData("tcp [fd00:10:244:1::a]:40000 > [fd00:10:96::41]:80", "(eligible: ready, hinted for zone zone-a)")]
    [InlineData("tcp 10.244.1.10:40000 > 10.96.0.42:80", "(eligible: ready, hints ignored: none for zone zone-a)")]
    [InlineData("tcp 10.244.1.10:40000 > 10.96.0.43:80", "(eligible: ready, hinted for node node-a)")]
    public void TraceShowsWhyTheEndpointsAreEligible(string packet, string expected)
    {
        string cluster = Path.Combine(RepositoryFiles.Root, "tests", "conformance", "cases", "service-endpoint-selection", "cluster");
        var stdout = new StringWriter();
        int exit = FastPath.Program.Run(["trace", "--cluster", cluster, "--node", "node-a", packet], stdout, TextWriter.Null);
        Assert.Equal(0, exit);
        Assert.Contains(expected, stdout.ToString());
    }
}
