using FastPath.DataPlane.Pipeline;
using FastPath.DataPlane.Policy;
using FastPath.DataPlane.Telemetry;
using FastPath.Tests.Support;
using static FastPath.Tests.Support.TestFrames;

namespace FastPath.Tests.Policy;

/// <summary>Where policy sits on the packet path: after Service DNAT, before masquerade, the node exempt, stateful.</summary>
public class PolicyEnforcementTests
{
    private const string OnlyFromB = """
        apiVersion: networking.k8s.io/v1
        kind: NetworkPolicy
        metadata: {name: only-from-b, namespace: x}
        spec:
          podSelector: {matchLabels: {pod: a}}
          ingress: [{from: [{podSelector: {matchLabels: {pod: b}}}], ports: [{port: 80}]}]
        """;

    private const string WebService = """
        apiVersion: v1
        kind: Service
        metadata: {name: web, namespace: x}
        spec: {clusterIP: 10.96.0.10, ports: [{port: 8080, targetPort: 80}]}
        ---
        apiVersion: discovery.k8s.io/v1
        kind: EndpointSlice
        metadata: {name: web-1, namespace: x, labels: {kubernetes.io/service-name: web}}
        addressType: IPv4
        ports: [{port: 80, protocol: TCP}]
        endpoints: [{addresses: [10.244.1.10], nodeName: node-a}]
        """;

    [Fact]
    public void IngressIsJudgedOnTheBackendAfterServiceDnat_AndADeniedServiceFlowLeavesNoConnection()
    {
        using var cluster = new PolicyCluster(OnlyFromB, WebService);
        var engine = cluster.EngineOf("node-a");
        var (allowed, frame) = cluster.Send("x/b", "10.244.1.11", "10.96.0.10", "x/a", false, "TCP", 40000, 8080, reply: false);
        Assert.Equal(DropReason.None, allowed);
        Assert.Equal(Ip("10.244.1.10"), frame.AsSpan(14 + 16, 4).ToArray()); // DNATed to x/a
        int tracked = engine.Conntrack!.Count;

        for (int attempt = 0; attempt < 2; attempt++) // the denied flow opened nothing: its next packet is judged again
        {
            var (denied, _) = cluster.Send("x/c", "10.244.1.12", "10.96.0.10", null, false, "TCP", 40001, 8080, reply: false);
            Assert.Equal(DropReason.PolicyDenied, denied);
            Assert.Equal(tracked, engine.Conntrack.Count);
        }
        Assert.Equal(2, engine.Policy.Denied("x/only-from-b"));
        Assert.Equal(2, engine.Policy.Denied(cluster.PortOf("x/a"), PolicyDirection.Ingress));
        Assert.Equal(0, engine.Policy.Denied(cluster.PortOf("x/c"), PolicyDirection.Egress));
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void AnEchoRequestBackIsANewFlow_NotTheReplyOfAnAllowedPing(bool v6)
    {
        // x/c (isolated for ingress) pings y/a: allowed, tracked, its echo reply passes. A request from y/a to x/c with
        // the same identifier is not that reply (Linux keeps the ICMP type in the tuple): ingress policy denies it.
        using var cluster = new PolicyCluster(DenyAllIngressInX);
        string xc = PolicyCluster.Address("x/c", v6), ya = PolicyCluster.Address("y/a", v6);
        Assert.Equal(DropReason.None, cluster.Flow("x/c", "y/a", v6, "ICMP", 0, 4242));
        Assert.Equal(DropReason.PolicyDenied, cluster.Send("y/a", ya, xc, "x/c", v6, "ICMP", 4242, 0, reply: false).Drop);
        Assert.Equal(DropReason.None, cluster.Send("y/a", ya, xc, "x/c", v6, "ICMP", 0, 4242, reply: true).Drop);
    }

    private const string DenyAllIngressInX = """
        apiVersion: networking.k8s.io/v1
        kind: NetworkPolicy
        metadata: {name: deny-all, namespace: x}
        spec: {podSelector: {}, policyTypes: [Ingress]}
        """;

    [Fact]
    public void DenialCountersFollowPolicyNamesAcrossSnapshots()
    {
        // x/c > x/a is denied by only-from-b; then a policy sorting first arrives (every id moves on by one) and later
        // a snapshot that keeps the same names: the count stays with its policy's name through both.
        using var cluster = new PolicyCluster(OnlyFromB);
        var engine = cluster.EngineOf("node-a");
        Assert.Equal(DropReason.PolicyDenied, cluster.Flow("x/c", "x/a", false, "TCP", 80, 41000));
        Assert.Equal(1, engine.Policy.Denied("x/only-from-b"));

        cluster.ChangePolicies(DenyAllIngressInX.Replace("deny-all", "a-deny-all") + "\n---\n" + OnlyFromB);
        Assert.Equal(DropReason.PolicyDenied, cluster.Flow("x/c", "x/a", false, "TCP", 80, 41001));
        Assert.Equal(2, engine.Policy.Denied("x/only-from-b"));
        Assert.Equal(1, engine.Policy.Denied("x/a-deny-all"));

        cluster.ChangePolicies(DenyAllIngressInX.Replace("deny-all", "a-deny-all") + "\n---\n" + OnlyFromB);
        Assert.Equal(DropReason.PolicyDenied, cluster.Flow("x/c", "x/a", false, "TCP", 80, 41002));
        Assert.Equal(3, engine.Policy.Denied("x/only-from-b"));
        Assert.Equal(2, engine.Policy.Denied("x/a-deny-all"));
        Assert.Equal(3, engine.Policy.Denied(cluster.PortOf("x/a"), PolicyDirection.Ingress));
    }

    [Fact]
    public void EgressIsJudgedOnTheBackend_NotOnTheClusterIp()
    {
        const string ToVipOnly = """
            apiVersion: networking.k8s.io/v1
            kind: NetworkPolicy
            metadata: {name: to-vip, namespace: x}
            spec:
              podSelector: {matchLabels: {pod: c}}
              policyTypes: [Egress]
              egress: [{to: [{ipBlock: {cidr: 10.96.0.10/32}}]}]
            ---
            apiVersion: networking.k8s.io/v1
            kind: NetworkPolicy
            metadata: {name: to-a, namespace: x}
            spec:
              podSelector: {matchLabels: {pod: b}}
              policyTypes: [Egress]
              egress: [{to: [{podSelector: {matchLabels: {pod: a}}}], ports: [{port: 80}]}]
            """;
        using var cluster = new PolicyCluster(ToVipOnly, WebService);
        Assert.Equal(DropReason.PolicyDenied, cluster.Send("x/c", "10.244.1.12", "10.96.0.10", null, false, "TCP", 40000, 8080, reply: false).Drop);
        Assert.Equal(DropReason.None, cluster.Send("x/b", "10.244.1.11", "10.96.0.10", "x/a", false, "TCP", 40000, 8080, reply: false).Drop);
    }

    [Fact]
    public void ANodePortFlowThatIsMasqueradedIsJudgedOnTheClientsAddress_NotTheNodes()
    {
        const string Policy = """
            apiVersion: networking.k8s.io/v1
            kind: NetworkPolicy
            metadata: {name: from-doc-net, namespace: x}
            spec:
              podSelector: {matchLabels: {pod: a}}
              ingress: [{from: [{ipBlock: {cidr: 203.0.113.0/24}}]}]
            """;
        var nodePort = WebService.Replace("spec: {clusterIP: 10.96.0.10, ports: [{port: 8080, targetPort: 80}]}",
            "spec: {type: NodePort, clusterIP: 10.96.0.10, ports: [{port: 8080, targetPort: 80, nodePort: 30080}]}");
        using var cluster = new PolicyCluster(Policy, nodePort);
        byte[] FromOutside(string client) => Ethernet(Mac("02:00:00:00:01:01"), Mac("02:00:00:00:00:fe"), 0x0800,
            Ipv4(client, "192.168.56.11", 6, Tcp(50000, 30080)));

        var (allowed, egress, frame) = cluster.Run("node-a", PortIndex.Uplink, FromOutside("203.0.113.5"));
        Assert.Equal(DropReason.None, allowed);
        Assert.Equal(cluster.PortOf("x/a"), egress);
        Assert.Equal(Ip("192.168.56.11"), frame.AsSpan(14 + 12, 4).ToArray()); // SNATed to the node (eTP Cluster)
        Assert.Equal(DropReason.PolicyDenied, cluster.Run("node-a", PortIndex.Uplink, FromOutside("198.51.100.7")).Drop);
    }

    [Fact]
    public void TheNodeItselfReachesIsolatedPods_AndIsolatedPodsReachTheNode()
    {
        const string DenyAll = """
            apiVersion: networking.k8s.io/v1
            kind: NetworkPolicy
            metadata: {name: deny, namespace: x}
            spec: {podSelector: {}, policyTypes: [Ingress, Egress]}
            """;
        using var cluster = new PolicyCluster(DenyAll);
        // kubelet's probe: from the host port, the node's address as source.
        var probe = Ethernet(GatewayMac, Mac("02:00:00:00:01:01"), 0x0800, Ipv4("192.168.56.11", "10.244.1.10", 6, Tcp(50000, 80)));
        var (drop, egress, _) = cluster.Run("node-a", PortIndex.Host, probe);
        Assert.Equal(DropReason.None, drop);
        Assert.Equal(cluster.PortOf("x/a"), egress);
        var (toNode, _) = cluster.Send("x/a", "10.244.1.10", "192.168.56.11", null, false, "TCP", 40000, 10250, reply: false);
        Assert.Equal(DropReason.None, toNode);
        // Another node's address is not exempt.
        Assert.Equal(DropReason.PolicyDenied, cluster.Send("x/a", "10.244.1.10", "192.168.56.12", null, false, "TCP", 40000, 10250, reply: false).Drop);
    }

    [Fact]
    public void EstablishedConnectionsSurviveAPolicyChange_NewOnesFollowIt()
    {
        using var cluster = new PolicyCluster("");
        Assert.Equal(DropReason.None, cluster.Flow("x/b", "x/a", false, "TCP", 80, 40000)); // untracked: nobody isolated
        cluster.ChangePolicies(OnlyFromB);
        Assert.Equal(DropReason.None, cluster.Flow("x/b", "x/a", false, "TCP", 80, 40002)); // tracked from here on
        cluster.ChangePolicies(OnlyFromB.Replace("pod: b", "pod: c"));
        // The tracked connection keeps flowing both ways; a new one from b is denied, one from c allowed.
        Assert.Equal(DropReason.None, cluster.Send("x/b", "10.244.1.11", "10.244.1.10", "x/a", false, "TCP", 40002, 80, reply: false).Drop);
        Assert.Equal(DropReason.None, cluster.Send("x/a", "10.244.1.10", "10.244.1.11", "x/b", false, "TCP", 80, 40002, reply: true).Drop);
        Assert.Equal(DropReason.PolicyDenied, cluster.Flow("x/b", "x/a", false, "TCP", 80, 40003));
        Assert.Equal(DropReason.None, cluster.Flow("x/c", "x/a", false, "TCP", 80, 40004));
    }

    [Fact]
    public void AnEstablishedCrossNodeConnectionSurvivesADenyAll_FoundByItsInnerTuple()
    {
        // y/b (node-b) to x/a (node-a), which admits namespace y: node-a receives every packet over VXLAN and finds the
        // connection by the decapsulated packet's tuple, so it outlives a deny-all; a new connection does not.
        using var cluster = new PolicyCluster(PolicyTruthTableTests.Scenarios["from-namespace-by-label"].Policies);
        string yb = PolicyCluster.Address("y/b", false), xa = PolicyCluster.Address("x/a", false);
        Assert.Equal(DropReason.None, cluster.Flow("y/b", "x/a", false, "TCP", 80, 40010));
        cluster.ChangePolicies(DenyAllIngressInX);
        Assert.Equal(DropReason.None, cluster.Send("y/b", yb, xa, "x/a", false, "TCP", 40010, 80, reply: false).Drop);
        Assert.Equal(DropReason.PolicyDenied, cluster.Flow("y/b", "x/a", false, "TCP", 80, 40011));
    }

    [Fact]
    public void ACrossNodeFlowIsJudgedAtBothEnds()
    {
        const string Policies = """
            apiVersion: networking.k8s.io/v1
            kind: NetworkPolicy
            metadata: {name: deny-in, namespace: z}
            spec: {podSelector: {matchLabels: {pod: a}}}
            ---
            apiVersion: networking.k8s.io/v1
            kind: NetworkPolicy
            metadata: {name: deny-out, namespace: x}
            spec: {podSelector: {matchLabels: {pod: c}}, policyTypes: [Egress]}
            """;
        using var cluster = new PolicyCluster(Policies);
        Assert.Equal(DropReason.PolicyDenied, cluster.Flow("x/a", "z/a", false, "UDP", 53, 40000));
        Assert.Equal(1, cluster.EngineOf("node-b").Policy.Denied("z/deny-in")); // left node-a, stopped by node-b
        Assert.Equal(0, cluster.EngineOf("node-a").Policy.Denied("z/deny-in"));
        Assert.Equal(DropReason.PolicyDenied, cluster.Flow("x/c", "z/b", false, "UDP", 53, 40001));
        Assert.Equal(1, cluster.EngineOf("node-a").Policy.Denied("x/deny-out")); // stopped at the source node
        Assert.Equal(1, cluster.EngineOf("node-b").Counters.Drops(DropReason.PolicyDenied));
    }
}
