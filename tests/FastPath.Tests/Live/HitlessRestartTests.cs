using System.Diagnostics;
using System.Text.Json;
using FastPath.Tests.Kernel;

namespace FastPath.Tests.Live;

/// <summary>
/// The demo cluster with `run --state-dir` on both nodes, plus a NodePort for iperf3 whose only backend is on node-b
/// (shop/iperf-nodeport, node port 30201 → web-b:5202, SNATed to node-a's address by Kubernetes semantics for
/// externalTrafficPolicy Cluster), served by a second iperf3 server on web-b.
/// </summary>
public sealed class HitlessDemoCluster : DemoCluster
{
    public HitlessDemoCluster() : base("vxlan", keepState: true)
    {
        if (SkipReason is not null || SetupFailure is not null) return;
        WriteFile(Path.Combine(Directory, "cluster", "iperf-nodeport.yaml"), """
            apiVersion: v1
            kind: Service
            metadata: {name: iperf-nodeport, namespace: shop}
            spec:
              type: NodePort
              clusterIP: 10.96.0.31
              externalTrafficPolicy: Cluster
              ports: [{name: iperf, port: 5202, targetPort: 5202, nodePort: 30201, protocol: TCP}]
            ---
            apiVersion: discovery.k8s.io/v1
            kind: EndpointSlice
            metadata: {name: iperf-nodeport-v4, namespace: shop, labels: {kubernetes.io/service-name: iperf-nodeport}}
            addressType: IPv4
            ports: [{name: iperf, port: 5202, protocol: TCP}]
            endpoints:
              - {addresses: ["10.244.2.11"], conditions: {ready: true}, nodeName: node-b}
            """);
        In("web-b", TimeSpan.FromSeconds(10), "iperf3", "-s", "-p", "5202", "-D", "--pidfile", Path.Combine(Directory, "web-b-iperf3-5202.pid"));
    }
}

[CollectionDefinition(Name, DisableParallelization = true)]
public sealed class HitlessDemoClusterCollection : ICollectionFixture<HitlessDemoCluster>
{
    public const string Name = "live demo cluster, state directories";
}

/// <summary>
/// Issue 21: node-a's `fastpath run` restarts while two TCP streams cross it — iperf3 from the client pod through the
/// ClusterIP 10.96.0.30 (DNAT on node-a, VXLAN to web-b on node-b) and from the external client through node-a's
/// NodePort 30201 (DNAT + SNAT on node-a, VXLAN to web-b) — by SIGTERM and a fresh start, by kill -9 and a fresh
/// start, and by `run --takeover`. The streams survive (iperf3 completes without an error and moves data after the
/// restart): the new process restored both connections' NAT state from the state file and attached the persistent
/// TAPs again. The forwarding gap (old workers stopped → new workers started, from the processes' wall-clock lines) and
/// the longest stall iperf3 saw are written to the output; docs/BENCHMARKS.md has the figures.
/// </summary>
[Collection(HitlessDemoClusterCollection.Name)]
public class HitlessRestartTests(HitlessDemoCluster cluster, ITestOutputHelper output)
{
    private const string ClusterIp = "10.96.0.30", NodeA = "192.168.56.11";

    [Theory]
    [InlineData("term", "clean shutdown")]
    [InlineData("kill", "after an unclean stop, checked record by record")]
    [InlineData("takeover", "handed over by a takeover, checked record by record")]
    public async Task TcpStreamsThroughAClusterIpAndANodePortSurviveARestartOfNodeA(string how, string restored)
    {
        cluster.Require();
        var ct = TestContext.Current.CancellationToken;
        const int seconds = 12;
        using var viaClusterIp = Iperf3("client", ClusterIp, 5201, seconds);
        using var viaNodePort = Iperf3("ext", NodeA, 30201, seconds);
        var clusterIpJson = viaClusterIp.StandardOutput.ReadToEndAsync(ct);
        var nodePortJson = viaNodePort.StandardOutput.ReadToEndAsync(ct);
        // Both streams carry data before the restart.
        WaitForBytes("client", $"{ClusterIp}:5201");
        WaitForBytes("ext", $"{NodeA}:30201");

        var (exit, text) = cluster.Script(["restart", "node-a", how], TimeSpan.FromSeconds(60));
        Assert.True(exit == 0, $"{text}\n{cluster.Logs()}");

        Assert.True(viaClusterIp.WaitForExit(TimeSpan.FromSeconds(seconds + 30)) && viaNodePort.WaitForExit(TimeSpan.FromSeconds(seconds + 30)),
            $"iperf3 did not finish\n{cluster.Logs()}");
        string log = File.ReadAllText(Path.Combine(cluster.Directory, "node-a.log"));
        string restart = log[log.LastIndexOf("--- restart", StringComparison.Ordinal)..];
        var (gap, note) = ForwardingGap(log, restart, how);
        output.WriteLine($"restart by {how}: forwarding gap {gap / 1e6:F0} ms ({note})");
        foreach (var line in restart.Split('\n').Where(l => l.StartsWith("takeover: gap", StringComparison.Ordinal))) output.WriteLine($"  {line}");
        foreach (var (name, json) in new[] { ("ClusterIP", await clusterIpJson), ("NodePort", await nodePortJson) })
        {
            var (stall, after, total) = Stream(json, $"{name}\n{restart}");
            output.WriteLine($"  iperf3 through the {name}: {total / 1e6:F0} MB in {seconds} s, longest stall {stall:F1} s, {after / 1e6:F0} MB after it");
            Assert.True(after > 0, $"{name}: nothing moved after the restart\n{json}\n{restart}");
        }
        Assert.Equal(0, viaClusterIp.ExitCode);
        Assert.Equal(0, viaNodePort.ExitCode);
        // The new process took both connections from the state file, not from new handshakes.
        Assert.Matches($@"state: .*conntrack-0\.state: restored ([2-9]|\d\d+) connection\(s\) \({restored}", restart);
        if (how == "takeover")
        {
            Assert.Contains("takeover: another fastpath run", restart);
            // The pods' TAPs (client and web-a) were opened in their namespaces before the hand-over, and the gap's
            // steps are in the log.
            Assert.Matches(@"takeover: [2-9] TAP\(s\) opened early; the gap's code \(\d+ methods\) compiled", restart);
            Assert.Matches(@"takeover: gap lock taken \+[\d.]+ ms .*threads started \+[\d.]+ ms", restart);
            Assert.Matches(@"tap fp[0-9a-f]{12} = default/client \(found again in \S+ as eth0\)", restart);
        }
    }

    /// <summary>
    /// Old workers stopped → new workers forwarding, in wall-clock ns from the two processes' lines. After kill -9 the
    /// old process says nothing: the kill's time (the restart marker) stands in for it.
    /// </summary>
    private static (long Gap, string Note) ForwardingGap(string log, string restart, string how)
    {
        long started = Number(restart, "forwarding: ", "from ");
        if (how == "kill") return (started - Number(restart, "--- restart", "at "), "kill -9 → new process forwarding");
        string before = log[..log.LastIndexOf("--- restart", StringComparison.Ordinal)];
        string stopped = how == "takeover" ? restart : before;
        return (started - Number(stopped, "stopped: ", "forwarding stopped at "), how == "takeover"
            ? "old workers stopped → new workers forwarding; process start and compile happen before"
            : "old workers stopped → new process forwarding, process start and compile included");
    }

    private static long Number(string text, string line, string after)
    {
        int at = text.LastIndexOf(line, StringComparison.Ordinal);
        Assert.True(at >= 0, $"no \"{line}\" line in\n{text}");
        int start = text.IndexOf(after, at, StringComparison.Ordinal) + after.Length;
        int end = start;
        while (end < text.Length && char.IsAsciiDigit(text[end])) end++;
        return long.Parse(text[start..end]);
    }

    /// <summary>
    /// The longest stall (s): a run of intervals that are empty or stretched (iperf3 3.12 is one thread: a write that
    /// blocks on a full socket buffer delays the interval report, so a stall can also show as one long interval); the
    /// bytes after it; all bytes. Fails on an iperf3 error.
    /// </summary>
    private static (double Stall, long After, long Total) Stream(string json, string context)
    {
        using var doc = JsonDocument.Parse(json);
        Assert.False(doc.RootElement.TryGetProperty("error", out var error), $"iperf3: {error}\n{context}");
        double stall = 0, run = 0, longest = 0;
        long after = 0, bytes = 0;
        foreach (var interval in doc.RootElement.GetProperty("intervals").EnumerateArray())
        {
            var sum = interval.GetProperty("sum");
            long b = sum.GetProperty("bytes").GetInt64();
            double length = sum.GetProperty("seconds").GetDouble();
            bytes += b;
            if (b == 0 || length > 0.3) run += length;
            else
            {
                if (run > longest) { longest = run; after = 0; }
                run = 0;
                if (longest > 0) after += b;
            }
            stall = longest;
        }
        Assert.True(longest > 0 || bytes > 0, context);
        return (stall, longest > 0 ? after : bytes, doc.RootElement.GetProperty("end").GetProperty("sum_received").GetProperty("bytes").GetInt64());
    }

    private Process Iperf3(string from, string address, int port, int seconds)
    {
        var psi = new ProcessStartInfo("ip") { RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (var a in new[] { "netns", "exec", $"{cluster.Prefix}-{from}", "timeout", $"{seconds + 25}", "iperf3", "-c", address, "-p", $"{port}",
                     "-t", $"{seconds}", "-i", "0.1", "-J", "--connect-timeout", "3000" })
            psi.ArgumentList.Add(a);
        return Process.Start(psi)!;
    }

    /// <summary>Waits (10 s at most) until the sender in <paramref name="from"/> has 10 MB acknowledged on its connection to <paramref name="peer"/>.</summary>
    private void WaitForBytes(string from, string peer)
    {
        var deadline = DateTime.UtcNow.AddSeconds(10);
        string last = "";
        while (DateTime.UtcNow < deadline)
        {
            (_, last) = cluster.In(from, TimeSpan.FromSeconds(5), "ss", "-tin", "dst", peer);
            foreach (var part in last.Split(' '))
                if (part.StartsWith("bytes_acked:", StringComparison.Ordinal) && long.Parse(part["bytes_acked:".Length..]) > 10_000_000) return;
            Thread.Sleep(50);
        }
        Assert.Fail($"no stream from {from} to {peer}:\n{last}\n{cluster.Logs()}");
    }
}
