using Xunit;
using FastPath.ControlPlane.Cluster;
using FastPath.ControlPlane.Compile;
using FastPath.ControlPlane.Publish;
using FastPath.DataPlane.Packets;
using FastPath.DataPlane.Pipeline;

namespace FastPath.Tests.ControlPlane;

public class SnapshotCompilerTests
{
    private static IpAddr Ip(string s) => IpAddr.TryParse(s, out var ip) ? ip : throw new ArgumentException(s);
    private static MacAddress Mac(string s) => MacAddress.TryParse(s, out var m) ? m : throw new ArgumentException(s);

    [Fact]
    public void SameNodePodToPod_CompilesNodeA()
    {
        var load = ClusterDirectory.Load(TempCluster.DataPath("same-node-pod-to-pod"));
        Assert.Empty(load.Errors);
        Assert.Empty(load.Warnings);
        Assert.Equal(2, load.State.Nodes.Length);
        Assert.Equal(3, load.State.Pods.Length);
        Assert.Single(load.State.Services);
        Assert.Single(load.State.EndpointSlices);

        var result = SnapshotCompiler.Compile(load.State, "node-a", 7);
        Assert.Empty(result.Errors);
        var snapshot = result.Snapshot!;
        Assert.Equal(7, snapshot.Generation);
        Assert.Equal(["uplink", "host", "default/client", "default/web-1"], snapshot.Ports.Select(p => p.Name));
        Assert.Equal(PortKind.Pod, snapshot.Ports[2].Kind);
        Assert.Equal(Mac("02:42:0a:f4:01:0a"), snapshot.Ports[2].Mac);
        Assert.Equal(Mac("02:42:0a:f4:01:0b"), snapshot.Ports[3].Mac);
        Assert.Equal([Ip("10.244.1.10")], snapshot.Ports[2].Addresses);
        Assert.Equal([Ip("10.244.1.11")], snapshot.Ports[3].Addresses);

        Assert.Equal("node-a", snapshot.Node.NodeName);
        Assert.Equal(Mac("02:00:00:00:01:01"), snapshot.Node.UplinkMac);
        Assert.Equal(Mac("ee:ee:ee:ee:ee:ee"), snapshot.Node.GatewayMac);
        Assert.Equal(1500, snapshot.Node.Mtu);
        Assert.Equal([Ip("192.168.56.11")], snapshot.Node.HostAddresses);
        Assert.Equal(3, snapshot.LocalAddresses.Lookup(Ip("10.244.1.11")));
        Assert.Equal(1, snapshot.LocalAddresses.Lookup(Ip("192.168.56.11")));
    }

    [Fact]
    public void NodeNotFound_NamesTheNodeAndTheDirectory()
    {
        var path = TempCluster.DataPath("same-node-pod-to-pod");
        var result = SnapshotCompiler.Compile(ClusterDirectory.Load(path).State, "node-x", 1);
        Assert.Null(result.Snapshot);
        Assert.Equal($"--node node-x: no Node named node-x in {path} (Nodes: node-a, node-b)", Assert.Single(result.Errors).ToString());
    }

    private const string NodeA = """
        apiVersion: v1
        kind: Node
        metadata: {name: node-a}
        spec: {podCIDRs: [10.244.1.0/24, "fd00:10:244:1::/64"]}
        status: {addresses: [{type: Hostname, address: node-a}, {type: ExternalIP, address: 203.0.113.5}, {type: InternalIP, address: 192.168.56.11}]}
        """;

    [Fact]
    public void Ports_AreSortedByNamespaceAndName_AndSkipHostNetworkUnscheduledAndIpLessPods()
    {
        using var c = new TempCluster();
        c.Write("node.yaml", NodeA);
        c.Write("pods.yaml", """
            apiVersion: v1
            kind: Pod
            metadata: {name: zeta, namespace: apps}
            spec: {nodeName: node-a}
            status: {podIP: 10.244.1.3, podIPs: [{ip: 10.244.1.3}, {ip: "fd00:10:244:1::3"}]}
            ---
            apiVersion: v1
            kind: Pod
            metadata: {name: alpha}
            spec: {nodeName: node-a}
            status: {podIP: 10.244.1.4}
            ---
            apiVersion: v1
            kind: Pod
            metadata: {name: host-agent, namespace: kube-system}
            spec: {nodeName: node-a, hostNetwork: true}
            status: {podIP: 192.168.56.11}
            ---
            apiVersion: v1
            kind: Pod
            metadata: {name: pending}
            spec: {nodeName: node-a}
            ---
            apiVersion: v1
            kind: Pod
            metadata: {name: elsewhere}
            spec: {}
            """);
        var load = ClusterDirectory.Load(c.Path);
        Assert.Empty(load.Errors);
        var snapshot = SnapshotCompiler.Compile(load.State, "node-a", 1).Snapshot!;
        Assert.Equal(["uplink", "host", "apps/zeta", "default/alpha"], snapshot.Ports.Select(p => p.Name));
        Assert.Equal([Ip("10.244.1.3"), Ip("fd00:10:244:1::3")], snapshot.Ports[2].Addresses);
        Assert.Equal(MacAddress.Zero, snapshot.Ports[3].Mac);
        // InternalIP first, then ExternalIP; Hostname is not an address.
        Assert.Equal([Ip("192.168.56.11"), Ip("203.0.113.5")], snapshot.Node.HostAddresses);
        Assert.Equal(MacAddress.Zero, snapshot.Node.UplinkMac);
    }

    [Fact]
    public void Configuration_FlowsIntoNodeSettings()
    {
        using var c = new TempCluster();
        c.Write("node.yaml", NodeA);
        c.Write("fastpath.yaml", """
            apiVersion: fastpath.io/v1alpha1
            kind: FastPathConfiguration
            mtu: 9000
            gatewayMAC: "02:ee:ee:ee:ee:01"
            """);
        var snapshot = SnapshotCompiler.Compile(ClusterDirectory.Load(c.Path).State, "node-a", 1).Snapshot!;
        Assert.Equal(9000, snapshot.Node.Mtu);
        Assert.Equal(Mac("02:ee:ee:ee:ee:01"), snapshot.Node.GatewayMac);
    }

    [Fact]
    public void Publisher_SwapsOnSuccess_KeepsLastGoodOnFailure()
    {
        using var c = new TempCluster();
        c.Write("node.yaml", NodeA);
        c.Write("pod.yaml", "apiVersion: v1\nkind: Pod\nmetadata: {name: a}\nspec: {nodeName: node-a}\nstatus: {podIP: 10.244.1.5}\n");
        var publisher = new SnapshotPublisher("node-a");
        Assert.Equal(0, publisher.Holder.Current.Generation);
        Assert.Equal(2, publisher.Holder.Current.PortCount);

        Assert.Empty(publisher.Reload(c.Path));
        var good = publisher.Holder.Current;
        Assert.Equal(1, good.Generation);
        Assert.Equal(2, good.FindPort("default/a"));

        c.Write("pod.yaml", "apiVersion: v1\nkind: Pod\nmetadata: {name: a}\nspec: {nodeName: node-a}\nstatus: {podIP: 10.244.1.300}\n");
        var errors = publisher.Reload(c.Path);
        Assert.Equal($"{c.F("pod.yaml")}: Pod default/a: status.podIP: \"10.244.1.300\" is not an IP address", Assert.Single(errors).ToString());
        Assert.Same(good, publisher.Holder.Current);

        c.Write("pod.yaml", "apiVersion: v1\nkind: Pod\nmetadata: {name: b}\nspec: {nodeName: node-a}\nstatus: {podIP: 10.244.1.6}\n");
        // A compile failure (this node is gone from the cluster) also keeps the last good snapshot.
        var wrongNode = new SnapshotPublisher("node-x", publisher.Holder);
        Assert.StartsWith("--node node-x: no Node named node-x", Assert.Single(wrongNode.Reload(c.Path)).ToString());
        Assert.Same(good, publisher.Holder.Current);

        Assert.Empty(publisher.Reload(c.Path));
        Assert.Equal(2, publisher.Holder.Current.Generation);
        Assert.Equal(2, publisher.Holder.Current.FindPort("default/b"));
    }
}
