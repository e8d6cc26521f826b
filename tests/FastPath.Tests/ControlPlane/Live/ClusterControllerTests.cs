using FastPath.ControlPlane.Cluster;
using FastPath.DataPlane.Pipeline;
using FastPath.DataPlane.Telemetry;
using FastPath.Tests.Support;
using Microsoft.Extensions.Logging;
using static FastPath.Tests.ControlPlane.Live.ControllerHarness;

namespace FastPath.Tests.ControlPlane.Live;

/// <summary>Live changes through <see cref="FastPath.ControlPlane.Live.ClusterController"/>: packets before and after each change.</summary>
public class ClusterControllerTests
{
    [Fact]
    public void EndpointSliceChange_RecompilesOnlyThatService_AndNewFlowsFollowIt()
    {
        using var h = new ControllerHarness();
        Assert.Empty(h.Apply("other.yaml", "apiVersion: v1\nkind: Service\nmetadata: {name: other}\nspec: {clusterIP: 10.96.0.20, ports: [{name: http, port: 80}]}"));
        Assert.Equal(("default/web-1", "10.244.1.11", 8080), Where(h.Tcp(40000)));
        var before = h.Publisher.Holder.Current;
        var otherBefore = before.Services.Frontends.Single(f => f.Name == "default/other:http");

        Assert.Empty(h.Apply("slice.yaml", Slice("web-abc", "web", Ready("10.244.1.12"))));

        var after = h.Publisher.Holder.Current;
        Assert.Equal(before.Generation + 1, after.Generation);
        Assert.Same(before.Routes, after.Routes); // no route touched
        Assert.Same(otherBefore, after.Services.Frontends.Single(f => f.Name == "default/other:http")); // not recompiled
        Assert.Equal(("default/web-2", "10.244.1.12", 8080), Where(h.Tcp(40001)));
        Assert.Contains(h.Logger.Lines, l => l.Level == LogLevel.Information && l.Message.StartsWith("applied upsert EndpointSlice default/web-abc", StringComparison.Ordinal)
            && l.Message.Contains("compile ") && l.Message.Contains("publish "));
    }

    [Fact]
    public void EndpointRemoved_UdpFlushedAtOnce_TcpReopenedOnALiveBackend()
    {
        using var h = new ControllerHarness();
        Assert.Equal(("default/web-1", "10.244.1.11", 5353), Where(h.Udp(50000)));
        Assert.Equal(("default/web-1", "10.244.1.11", 8080), Where(h.Tcp(40000)));
        Assert.Equal(2, h.Engine.Conntrack!.Count);

        Assert.Empty(h.Apply("slice.yaml", Slice("web-abc", "web", Ready("10.244.1.12"))));

        // The same UDP tuple goes to the remaining endpoint at once (kube-proxy's conntrack flush).
        Assert.Equal(("default/web-2", "10.244.1.12", 5353), Where(h.Udp(50000)));
        // The TCP connection's entry is gone: its next segment opens a new flow on web-2, whose stack answers a
        // segment of an unknown connection with a reset.
        Assert.Equal(("default/web-2", "10.244.1.12", 8080), Where(h.Tcp(40000, 0x10)));
    }

    [Fact]
    public void TerminatingEndpoint_KeepsItsTcpConnections_ButNotUdp()
    {
        using var h = new ControllerHarness();
        Assert.Equal("default/web-1", h.Udp(50000).Egress);
        Assert.Equal("default/web-1", h.Tcp(40000).Egress);

        Assert.Empty(h.Apply("slice.yaml", Slice("web-abc", "web",
            "{addresses: [10.244.1.11], nodeName: node-a, conditions: {ready: false, serving: true, terminating: true}}", Ready("10.244.1.12"))));

        Assert.Equal("default/web-1", h.Tcp(40000, 0x10).Egress); // graceful termination: established TCP stays
        Assert.Equal("default/web-2", h.Tcp(40001).Egress);       // new connections avoid it
        Assert.Equal("default/web-2", h.Udp(50000).Egress);       // UDP is flushed: not ready means not a backend
    }

    [Fact]
    public void ServiceDeleted_ReleasesItsConntrackAndAffinity()
    {
        using var h = new ControllerHarness();
        Assert.Empty(h.Apply("svc.yaml", """
            apiVersion: v1
            kind: Service
            metadata: {name: web}
            spec:
              clusterIP: 10.96.0.10
              sessionAffinity: ClientIP
              ports: [{name: http, port: 80, protocol: TCP}, {name: dns, port: 53, protocol: UDP}]
            """));
        Assert.Equal("default/web-1", h.Tcp(40000).Egress);
        Assert.Equal("default/web-1", h.Udp(50000).Egress);
        Assert.Equal(2, h.Engine.Conntrack!.Count);
        Assert.NotNull(h.Engine.Affinity);

        Assert.Empty(h.Delete("Service", "default", "web"));

        // 10.96.0.10 is now just an address in the service CIDR: unreachable, and nothing of the Service remains.
        Assert.Equal(DropReason.NoRoute, h.Tcp(40000, 0x10).Drop);
        Assert.Equal(0, h.Engine.Conntrack.Count);
        Assert.False(h.Engine.Affinity!.TryGet(Addr("10.244.1.10"), Addr("10.96.0.10"), 80, 6, 0, out _));
    }

    [Fact]
    public void PodDeleted_PortClosed_CountersKeptUntilRead()
    {
        using var h = new ControllerHarness();
        Assert.Equal("default/web-1", h.FromClient(17, "10.244.1.11", TestFrames.Udp(1000, 2000)).Egress);
        int web1 = h.Engine.Snapshot.FindPort("default/web-1");
        Assert.Equal(1, h.Engine.Counters.TxPackets(web1));

        Assert.Empty(h.Delete("Pod", "default", "web-1"));
        var sent = h.FromClient(17, "10.244.1.11", TestFrames.Udp(1000, 2000));

        Assert.Equal(DropReason.NoRoute, sent.Drop); // an unused address of the node's podCIDR: host unreachable
        Assert.Equal(-1, h.Engine.Snapshot.FindPort("default/web-1"));
        var retired = Assert.Single(h.Engine.TakeRetiredPorts());
        Assert.Equal(("default/web-1", 1L), (retired.Name, retired.TxPackets));
        Assert.Empty(h.Engine.TakeRetiredPorts()); // read once
        Assert.Equal(1, h.Engine.Counters.TxPackets(h.Engine.Snapshot.FindPort("default/client"))); // the ICMP error; kept across the change
    }

    [Fact]
    public void NodeRemoved_ItsRoutesAreWithdrawn()
    {
        using var h = new ControllerHarness();
        var before = h.FromClient(17, "10.244.2.13", TestFrames.Udp(1000, 2000));
        Assert.Equal(("uplink", "10.244.2.13"), (before.Egress, before.Destination)); // VXLAN to node-b

        Assert.Empty(h.Delete("Node", null, "node-b"));

        Assert.Equal(DropReason.NoRoute, h.FromClient(17, "10.244.2.13", TestFrames.Udp(1000, 2000)).Drop);
        int hop = h.Engine.Snapshot.Routes.Lookup(Addr("10.244.2.13"));
        Assert.Equal(FastPath.DataPlane.Routing.NextHopKind.Unreachable, h.Engine.Snapshot.Routes.NextHops[hop].Kind); // the cluster /16
    }

    [Fact]
    public void MissingNode_KeepsThePreviousSnapshot_UntilTheNodeIsBack()
    {
        using var h = new ControllerHarness();
        long generation = h.Publisher.Holder.Current.Generation;
        var problems = h.Delete("Node", null, "node-a");
        Assert.Equal(["--node node-a: no Node named node-a in the cluster (Nodes: node-b)"], problems.Select(p => p.ToString()));
        Assert.Equal(generation, h.Publisher.Holder.Current.Generation);
        Assert.Equal("default/web-1", h.Tcp(40000).Egress); // still forwarding with the last good snapshot
    }

    private static FastPath.DataPlane.Packets.IpAddr Addr(string s) => FastPath.Tests.Support.EngineHarness.Addr(s);

    private static (string, string, int) Where(ControllerHarness.Sent s) => (s.Egress ?? "-", s.Destination ?? "-", s.DestinationPort);
}
