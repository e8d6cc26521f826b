using System.Globalization;

namespace FastPath.Tests.Live;

/// <summary>
/// The demo's main cases — pods ping and talk TCP/UDP to each other on one node and across nodes, through the
/// ClusterIP (HTTP and DNS, both backends), the external client through NodePorts and LoadBalancer IPs, and two
/// containers of one pod over localhost — run against every variant of the demo cluster: pods on FastPath's TAPs
/// (<see cref="LiveClusterTests"/>) and pods on veths made by fastpath-cni, attached through AF_PACKET
/// (<see cref="VethPacketLiveTests"/>), libpcap (<see cref="VethPcapLiveTests"/>) or AF_XDP (<see cref="VethXdpLiveTests"/>).
/// </summary>
public abstract class DemoClusterMainCases(DemoCluster cluster, ITestOutputHelper output)
{
    protected static readonly TimeSpan Short = TimeSpan.FromSeconds(20);
    protected const string WebA = "10.244.1.11", WebB = "10.244.2.11";

    protected DemoCluster Cluster => cluster;
    protected ITestOutputHelper Output => output;

    [Fact]
    public void ContainersOfOnePodTalkOverLocalhost()
    {
        cluster.Require();
        // Two processes in the client pod's namespace, as two containers of one pod: FastPath never sees this traffic
        // and must not break it.
        var (exit, text) = cluster.In("client", Short, "sh", "-c",
            "echo pong | timeout 5 nc -N -l 127.0.0.1 9000 & " +
            "for i in $(seq 25); do echo ping | timeout 5 nc -N 127.0.0.1 9000 && break; sleep 0.2; done; wait");
        Assert.True(exit == 0, text);
        Assert.Contains("ping", text); // what the server received
        Assert.Contains("pong", text); // what the client received
    }

    [Theory]
    [InlineData("client", "10.244.1.11")]        // same node
    [InlineData("client", "fd00:10:244:1::b")]
    [InlineData("client", "10.244.2.11")]        // across nodes, VXLAN
    [InlineData("client", "fd00:10:244:2::b")]
    [InlineData("cart", "10.244.1.10")]
    [InlineData("cart", "fd00:10:244:1::a")]
    public void PingBetweenPods(string from, string to) => cluster.AssertPing(from, to);

    [Theory]
    [InlineData("client", "10.244.1.10", "10.244.1.11", "web-a")]             // same node
    [InlineData("client", "10.244.1.10", "10.244.2.11", "web-b")]             // across nodes
    [InlineData("client", "fd00:10:244:1::a", "fd00:10:244:2::b", "web-b")]
    [InlineData("cart", "10.244.2.12", "10.244.1.11", "web-a")]
    public void TcpBetweenPodsKeepsBothAddresses(string from, string fromIp, string to, string backend) =>
        cluster.AssertSeenBy(from, to, "tcp", $"{backend} {fromIp}"); // no NAT between pods

    [Theory]
    [InlineData("client", "10.244.1.10", "10.244.2.11", "web-b")]
    [InlineData("cart", "fd00:10:244:2::c", "fd00:10:244:1::b", "web-a")]
    public void UdpBetweenPodsKeepsBothAddresses(string from, string fromIp, string to, string backend) =>
        cluster.AssertSeenBy(from, to, "udp", $"{backend} {fromIp}");

    [Theory]
    [InlineData("client", "10.96.0.20", "10.244.1.10")]        // default → shop: another namespace
    [InlineData("cart", "10.96.0.20", "10.244.2.12")]          // shop → shop: the same namespace
    [InlineData("client", "fd00:10:96::20", "fd00:10:244:1::a")]
    public void ClusterIpSpreadsConnectionsOverBothBackendsAndKeepsEachOnItsBackend(string from, string clusterIp, string fromIp)
    {
        cluster.Require();
        var seen = HttpConnections(from, clusterIp, 80, connections: 32, requests: 3);
        foreach (var (backend, source) in seen) Assert.Equal(fromIp, source); // pod clients are not SNATed
        var perBackend = seen.GroupBy(s => s.Backend).ToDictionary(g => g.Key, g => g.Count());
        output.WriteLine(string.Join(", ", perBackend.Select(kv => $"{kv.Key}: {kv.Value}")));
        Assert.Equal(["web-a", "web-b"], perBackend.Keys.Order());
        // 32 connections over two equal Maglev shares: fewer than 4 on one side has probability ~1e-6.
        Assert.All(perBackend.Values, n => Assert.True(n >= 4, $"unbalanced: {string.Join(", ", perBackend)}"));

        // The client's node logged these connections (--flow-log): opened as Service flows, DNATed to a backend.
        string flows = Path.Combine(cluster.Directory, "node-" + (from == "client" ? "a" : "b") + ".flows.jsonl");
        var deadline = DateTime.UtcNow.AddSeconds(5);
        bool Logged() => File.Exists(flows) && File.ReadLines(flows).Any(l => l.Contains("\"event\":\"start\"")
            && l.Contains("\"service\":\"shop/web") && l.Contains($"\"source\":\"{fromIp}"));
        while (!Logged() && DateTime.UtcNow < deadline) Thread.Sleep(100);
        Assert.True(Logged(), $"no Service flow from {fromIp} in {flows}");
    }

    [Theory]
    [InlineData("client", "10.96.0.20")]
    [InlineData("cart", "10.96.0.20")]
    [InlineData("client", "fd00:10:96::20")]
    public void DnsQueriesThroughClusterIpAreAnsweredByBothBackends(string from, string server)
    {
        cluster.Require();
        var (exit, text) = cluster.In(from, TimeSpan.FromSeconds(60), "sh", "-c",
            $"for i in $(seq 20); do dig +short +time=2 +tries=1 @{server} web.shop.svc.cluster.local A; done");
        Assert.True(exit == 0, text);
        var answers = text.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
        Assert.Equal(20, answers.Length);
        Assert.All(answers, a => Assert.Contains(a, new[] { WebA, WebB }));
        Assert.Equal([WebA, WebB], answers.Distinct().Order());
    }

    [Theory]
    [InlineData("192.168.56.11", 30080, "web-a,web-b", "192.168.56.11")] // NodePort, Cluster: SNATed to the node
    [InlineData("192.168.56.12", 30080, "web-a,web-b", "192.168.56.12")]
    [InlineData("192.168.56.11", 30081, "web-a", "192.168.56.1")]        // NodePort, Local: the node's own endpoint, client kept
    [InlineData("192.168.56.12", 30081, "web-b", "192.168.56.1")]
    [InlineData("192.168.57.10", 80, "web-a,web-b", "192.168.56.11")]    // LoadBalancer IP (routed via node-a), Cluster
    [InlineData("192.168.57.11", 80, "web-a", "192.168.56.1")]           // LoadBalancer IP, Local
    public void ExternalClientReachesNodePortAndLoadBalancer(string address, int port, string backends, string sourceSeen)
    {
        cluster.Require();
        var seen = HttpConnections("ext", address, port, connections: 24, requests: 2);
        foreach (var (_, source) in seen) Assert.Equal(sourceSeen, source);
        Assert.Equal(backends.Split(','), seen.Select(s => s.Backend).Distinct().Order());
    }

    /// <summary>
    /// Opens <paramref name="connections"/> HTTP connections from <paramref name="from"/> with
    /// <paramref name="requests"/> keep-alive requests each; checks every connection stayed on one backend and returns
    /// (backend, client address it saw) per connection.
    /// </summary>
    protected List<(string Backend, string Source)> HttpConnections(string from, string host, int port, int connections, int requests)
    {
        var (exit, text) = cluster.In(from, TimeSpan.FromSeconds(60), "/usr/bin/python3", DemoCluster.Clients, "http", host,
            port.ToString(CultureInfo.InvariantCulture), connections.ToString(CultureInfo.InvariantCulture),
            requests.ToString(CultureInfo.InvariantCulture));
        Assert.True(exit == 0, text);
        var lines = text.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.True(lines.Length == connections && !text.Contains("error"), $"{text}\n{cluster.Logs()}");
        var result = new List<(string, string)>();
        foreach (var line in lines)
        {
            var bodies = line.Split(" | ");
            Assert.Equal(requests, bodies.Length);
            Assert.All(bodies, b => Assert.Equal(bodies[0], b)); // a connection keeps its backend
            var parts = bodies[0].Split(' ');
            result.Add((parts[0], parts[1]));
        }
        return result;
    }
}
