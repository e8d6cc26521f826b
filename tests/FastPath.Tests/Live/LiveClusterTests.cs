using System.Globalization;
using System.Text.Json;

namespace FastPath.Tests.Live;

/// <summary>
/// End to end through two live FastPath nodes (<see cref="DemoCluster"/>): real programs (ping, curl, nc, dig,
/// iperf3, Python clients) in pod namespaces whose only interface is a TAP served by `fastpath run --tap`. Every
/// command is bounded in time and count, and talks only to addresses inside the cluster's own namespaces.
/// </summary>
[Collection(DemoClusterCollection.Name)]
public class LiveClusterTests(DemoCluster cluster, ITestOutputHelper output) : DemoClusterMainCases(cluster, output)
{
    [Fact]
    public void PodPacketsCrossTheUnderlayInVxlan()
    {
        Cluster.Require();
        string seen = Cluster.UnderlayDuring("icmp or udp port 8472", 4, "client", "ping", "-c", "2", "-i", "0.2", "-W", "2", "10.244.2.11");
        Assert.Contains("192.168.56.11.", seen); // node-a's VTEP, a flow-hash source port ...
        Assert.Contains("> 192.168.56.12.8472:", seen); // ... to node-b's, Flannel's port
        // tcpdump prints the inner packet on the line after its outer headers; a pod packet never travels bare.
        var lines = seen.Split('\n');
        for (int i = 0; i < lines.Length; i++)
            if (lines[i].StartsWith("IP 10.244.", StringComparison.Ordinal))
                Assert.True(i > 0 && lines[i - 1].Contains(".8472: ", StringComparison.Ordinal), seen);
    }

    /// <summary>
    /// Issue 18 item 6: the configuration names the underlay router by address only (uplinkGateway, no
    /// uplinkGatewayMAC); node-b resolves its MAC by ARP on the uplink and the pod's ping leaves masqueraded.
    /// </summary>
    [Fact]
    public void PodReachesAnAddressOutsideTheClusterThroughTheGatewayFastPathResolved()
    {
        Cluster.Require();
        var manifest = File.ReadAllText(Cluster.Manifest);
        Assert.Contains("uplinkGateway: 192.168.56.1", manifest);
        Assert.DoesNotContain("uplinkGatewayMAC", manifest);
        string seen = Cluster.UnderlayDuring("arp or (icmp and host 192.168.56.1)", 3, "cart", "ping", "-c", "3", "-i", "0.3", "-W", "2", "192.168.56.1");
        Output.WriteLine(seen);
        Assert.Contains("IP 192.168.56.12 > 192.168.56.1: ICMP echo request", seen); // masqueraded to node-b
        Assert.Contains("IP 192.168.56.1 > 192.168.56.12: ICMP echo reply", seen);
        var (exit, text) = Cluster.In("cart", Short, "ping", "-c", "3", "-i", "0.2", "-W", "2", "192.168.56.1");
        Assert.True(exit == 0, $"{text}\n{Cluster.Logs()}");
        Assert.Contains("3 received", text); // resolved: nothing is lost any more
        Assert.Contains("uplink gateway: 192.168.56.1 (uplinkGateway; MAC resolved by ARP", Cluster.Logs());
    }

    /// <summary>
    /// Issue 18 item 3: web-lb-local-a (LoadBalancer, externalTrafficPolicy Local, its only endpoint web-a on node-a)
    /// answers on its healthCheckNodePort 32084 with 200 on node-a and 503 on node-b, reached from the external client
    /// through each node's FastPath and host TAP.
    /// </summary>
    [Theory]
    [InlineData("192.168.56.11", "200", 1)]
    [InlineData("192.168.56.12", "503", 0)]
    public void HealthCheckNodePortAnswers200OnTheNodeWithALocalEndpointAnd503OnTheOther(string node, string code, int endpoints)
    {
        Cluster.Require();
        var (exit, text) = Cluster.In("ext", Short, "curl", "-sS", "-m", "5", "-w", " %{http_code}", $"http://{node}:32084/");
        Assert.True(exit == 0, $"{text}\n{Cluster.Logs()}");
        Assert.EndsWith(" " + code, text.Trim());
        using var body = JsonDocument.Parse(text.Trim()[..^4]);
        Assert.Equal("web-lb-local-a", body.RootElement.GetProperty("service").GetProperty("name").GetString());
        Assert.Equal(endpoints, body.RootElement.GetProperty("localEndpoints").GetInt32());
    }

    [Fact]
    public async Task BackendRemovedWhileTrafficRunsNewConnectionsGoToTheOtherAndUdpDoesNotBlackhole()
    {
        Cluster.Require();
        string original = File.ReadAllText(Cluster.Manifest);
        try
        {
            // One UDP flow (one source port) that starts on web-b, through the ClusterIP, for 10 s (room for a slow
            // change on a loaded machine).
            var flow = Task.Run(() => Cluster.In("client", TimeSpan.FromSeconds(40), "/usr/bin/python3", DemoCluster.Clients,
                "udp-flow", "10.96.0.20", "53", WebB, "10"));
            await Task.Delay(2500, TestContext.Current.CancellationToken);

            // web-b leaves the Service's IPv4 EndpointSlice (the first line naming it); both nodes apply the change.
            const string endpointB = "  - {addresses: [\"10.244.2.11\"], conditions: {ready: true}, nodeName: node-b}\n";
            int at = original.IndexOf(endpointB, StringComparison.Ordinal);
            Assert.True(at > 0, "the manifest has no web-b endpoint line");
            // The boundaries bracket the write: "before" ends before it starts, "after" begins once it returned, so
            // a slow write on a busy machine cannot move a query answered by the old backend into either window.
            double writeStarted = DateTimeOffset.UtcNow.ToUnixTimeMilliseconds() / 1000.0;
            Cluster.WriteFile(Cluster.Manifest, original.Remove(at, endpointB.Length));
            double removedAt = DateTimeOffset.UtcNow.ToUnixTimeMilliseconds() / 1000.0;

            var after = HttpConnections("client", "10.96.0.20", 80, connections: 16, requests: 1);
            Assert.All(after, s => Assert.Equal("web-a", s.Backend));

            var (exit, text) = await flow;
            Assert.True(exit == 0 && !text.Contains("error"), text);
            var queries = text.Split('\n', StringSplitOptions.RemoveEmptyEntries)
                .Select(l => l.Split(' '))
                .Select(f => (Time: double.Parse(f[0], CultureInfo.InvariantCulture), Answer: f[1]))
                .ToList();
            var before = queries.Where(q => q.Time < writeStarted - 0.5).ToList();
            var later = queries.Where(q => q.Time > removedAt + 0.5).ToList();
            Output.WriteLine($"{queries.Count} queries: {before.Count} before the removal, {later.Count} after it, {queries.Count(q => q.Answer == "lost")} lost");
            Assert.NotEmpty(before);
            Assert.All(before, q => Assert.Equal(WebB, q.Answer));
            Assert.True(later.Count >= 10, text);
            // The flow moves to web-a and keeps getting answers: its stale conntrack entry was flushed.
            Assert.All(later, q => Assert.Equal(WebA, q.Answer));
        }
        finally
        {
            Cluster.WriteFile(Cluster.Manifest, original);
        }
    }

    [Fact]
    public void Iperf3ThroughClusterIpAcrossNodes()
    {
        Cluster.Require();
        // shop/iperf 10.96.0.30:5201 has one backend, web-b on node-b; the client is on node-a.
        var (exit, text) = Cluster.In("client", TimeSpan.FromSeconds(30), "iperf3", "-c", "10.96.0.30", "-t", "5", "-J",
            "--connect-timeout", "3000");
        Assert.True(exit == 0, $"{text}\n{Cluster.Logs()}");
        using var json = JsonDocument.Parse(text);
        var received = json.RootElement.GetProperty("end").GetProperty("sum_received");
        double bits = received.GetProperty("bits_per_second").GetDouble();
        long bytes = received.GetProperty("bytes").GetInt64();
        Output.WriteLine($"iperf3 TCP client (node-a) -> ClusterIP 10.96.0.30 -> web-b (node-b), 5 s: {bits / 1e9:F2} Gbit/s, {bytes:N0} bytes");
        Assert.True(bytes > 10_000_000, $"only {bytes} bytes in 5 s");
    }

    /// <summary>
    /// With offloads on (the pod's TAP reports TCP segmentation offload, so its stack hands FastPath 64 KB super-frames
    /// with partial checksums), 8 MB POSTed through the ClusterIP arrive intact at both backends — web-a on the same
    /// node, web-b across VXLAN, DNAT on the way — checked by SHA-256 at the receiving end; and FastPath counted
    /// super-frames.
    /// </summary>
    [Fact]
    public void BulkBytesThroughClusterIpArriveIntactWithOffloadsOnSameNodeAndAcrossVxlan()
    {
        Cluster.Require();
        var (_, features) = Cluster.In("client", TimeSpan.FromSeconds(10), "ethtool", "-k", "eth0");
        Assert.Contains("tcp-segmentation-offload: on", features);
        Assert.Contains("tx-checksumming: on", features);

        var file = Path.Combine(Cluster.Directory, "bulk.bin");
        var bytes = new byte[8 << 20];
        new Random(15).NextBytes(bytes);
        File.WriteAllBytes(file, bytes);
        string expected = Convert.ToHexStringLower(System.Security.Cryptography.SHA256.HashData(bytes));
        var seen = new HashSet<string>();
        for (int attempt = 0; attempt < 12 && seen.Count < 2; attempt++)
        {
            var (exit, text) = Cluster.In("client", TimeSpan.FromSeconds(30), "curl", "-sS", "-m", "20", "--data-binary", "@" + file,
                "-H", "Content-Type: application/octet-stream", "http://10.96.0.20/");
            Assert.True(exit == 0, $"{text}\n{Cluster.Logs()}");
            var parts = text.Trim().Split(' ');
            Assert.Equal([expected, bytes.Length.ToString(CultureInfo.InvariantCulture)], parts[1..]);
            seen.Add(parts[0]);
        }
        Assert.Equal(["web-a", "web-b"], seen.Order());
        // The status line (every 5 s) counts the super-frames node-a received.
        var deadline = DateTime.UtcNow.AddSeconds(15);
        string log = "";
        while (DateTime.UtcNow < deadline && !(log = File.ReadAllText(Path.Combine(Cluster.Directory, "node-a.log"))).Contains("super-frames rx"))
            Thread.Sleep(200);
        Assert.Contains("super-frames rx", log);
    }
}
