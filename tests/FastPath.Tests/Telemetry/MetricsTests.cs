using System.Net;
using System.Net.Sockets;
using System.Text.Json;
using FastPath.Commands;
using FastPath.ControlPlane.Publish;
using FastPath.DataPlane.Pipeline;
using FastPath.DataPlane.Ports;
using FastPath.Metrics;
using FastPath.Tests.Support;

namespace FastPath.Tests.Telemetry;

/// <summary>Counters per port, drop reason, Service and backend, conntrack and control-plane latency: in summary.json and on a Prometheus endpoint.</summary>
public class MetricsTests
{
    private static string Demo(string name) => Path.Combine(RepositoryFiles.Root, "pcaps", "demo", name);

    [Fact]
    public void ReplaySummaryCarriesConntrackServicesAndCompileLatency()
    {
        using var tmp = new TempFolder();
        int exit = FastPath.Program.Run(["replay", Demo("demo.pcapng"), "--cluster", Demo("cluster"), "--node", "node-a", "--out", tmp.Path, "--quiet"],
            TextWriter.Null, TextWriter.Null);
        Assert.Equal(0, exit);
        using var summary = JsonDocument.Parse(File.ReadAllText(tmp.File("summary.json")));
        var root = summary.RootElement;
        // The demo opens one ClusterIP connection (packet 24, to web-1) and one masqueraded one (packets 21-22).
        var ct = root.GetProperty("conntrack");
        Assert.Equal(2, ct.GetProperty("inserts").GetInt64());
        Assert.Equal(2, ct.GetProperty("entries").GetInt64());
        Assert.Equal(0, ct.GetProperty("evictions").GetInt64());
        var web = root.GetProperty("services").GetProperty("shop/web:http");
        Assert.Equal(1, web.GetProperty("connections").GetInt64());
        var backends = web.GetProperty("backends");
        Assert.Equal(1, backends.GetProperty("10.244.1.11:8080").GetProperty("connections").GetInt64());
        Assert.Equal(54, backends.GetProperty("10.244.1.11:8080").GetProperty("bytes").GetInt64());
        Assert.Equal(0, backends.GetProperty("10.244.2.11:8080").GetProperty("connections").GetInt64());
        var compile = root.GetProperty("control_plane").GetProperty("compile_seconds");
        Assert.Equal(1, compile.GetProperty("count").GetInt64());
        Assert.Equal(1, compile.GetProperty("buckets").GetProperty("+Inf").GetInt64());
    }

    [Fact]
    public void PublisherRecordsCompileAndPublishLatency()
    {
        var publisher = new SnapshotPublisher("node-a");
        Assert.Empty(publisher.Reload(Demo("cluster")));
        Assert.Empty(publisher.Reload(Demo("cluster")));
        Assert.Equal(2, publisher.CompileLatency.Count);
        Assert.Equal(2, publisher.PublishLatency.Count);
        Assert.True(publisher.PublishLatency.SumSeconds >= publisher.CompileLatency.SumSeconds);
    }

    [Fact]
    public async Task PrometheusEndpointServesTheNodeCounters()
    {
        var snapshot = NodeSnapshot.Load(Demo("cluster"), "node-a", "test", TextWriter.Null, out _)!;
        var engine = new Engine(new SnapshotHolder(snapshot), conntrackSeed: ReplayCommand.ConntrackSeed);
        var batch = new PacketBatch(32);
        using (var source = new CaptureSource([new CaptureInput(Demo("demo.pcapng"))], name => (short)snapshot.FindPort(name)))
            while (source.Receive(batch) > 0) engine.Process(batch);
        var compile = new LatencyHistogram();
        var publish = new LatencyHistogram();

        using var server = MetricsServer.Start($"127.0.0.1:{FreePort()}", () => NodeMetrics.Collect(snapshot, [engine], compile, publish), compile, publish);
        compile.Record(TimeSpan.FromMilliseconds(3));
        publish.Record(TimeSpan.FromMilliseconds(4));
        string text = await ScrapeAsync(server);

        Assert.Contains("fastpath_port_rx_packets_total{port=\"default/client\"} 18", text);
        Assert.Contains("fastpath_port_tx_packets_total{port=\"shop/web-1\"} 8", text);
        Assert.Contains("fastpath_drops_total{port=\"default/client\",reason=\"ttl-exceeded\"} 2", text);
        Assert.Contains("fastpath_drops_total{port=\"default/client\",reason=\"no-route\"} 1", text);
        Assert.Contains("fastpath_conntrack_inserts_total 2", text);
        Assert.Contains("fastpath_conntrack_entries 2", text);
        Assert.Contains("fastpath_icmp_errors_rate_limited_total 0", text);
        Assert.Contains("fastpath_service_connections{service=\"shop/web:http\",backend=\"10.244.1.11:8080\"} 1", text);
        Assert.Contains("fastpath_service_connections{service=\"shop/web:http\",backend=\"10.244.2.11:8080\"} 0", text);
        Assert.Contains("fastpath_snapshot_compile_seconds_bucket{le=\"0.005\"} 1", text);
        Assert.Contains("fastpath_snapshot_compile_seconds_bucket{le=\"0.0025\"} 0", text);
        Assert.Contains("fastpath_snapshot_publish_seconds_count 1", text);
    }

    [Fact]
    public async Task LimitsAreVisible_ConntrackAtCapacity_ConntrackFullDrops_LostFlowRecords_AndMemory()
    {
        // A table of 256 assured connections, then 1,000 SYNs it has no room for, with a flow-log ring of 16 records
        // nobody drains: every drop past the 16th is lost at the ring.
        var node = new FastPath.Tests.Robustness.FloodTests.ServiceNode(conntrackCapacity: 256);
        long now = 1000 * FastPath.Tests.Robustness.FloodTests.Second;
        for (ushort p = 1000; p < 1256; p++) node.Establish(p, now += 10_000);
        var ring = new DataPlane.Telemetry.FlowRing(16);
        var flowLog = new DataPlane.Telemetry.FlowLogObserver(ring);
        for (int i = 0; i < 1000; i++)
            node.Run(node.H.Client, FastPath.Tests.Robustness.FloodTests.ServiceNode.FromClient((ushort)(5000 + i), 0x02), now += 10_000, ref flowLog);

        using var server = MetricsServer.Start($"127.0.0.1:{FreePort()}", () => NodeMetrics.Collect(node.Engine.Snapshot, [node.Engine],
            flowLog: new FlowLogMetrics(ring.Capacity, ring.Pending, 0, ring.Lost)));
        string text = await ScrapeAsync(server);

        Assert.Contains("fastpath_conntrack_capacity 256\n", text);
        Assert.Contains("fastpath_conntrack_entries 256\n", text);
        Assert.Contains("fastpath_conntrack_insert_failures_total 1000\n", text);
        Assert.Contains("fastpath_drops_total{port=\"default/client\",reason=\"conntrack-full\"} 1000\n", text);
        Assert.Contains("fastpath_flow_log_ring_capacity 16\n", text);
        Assert.Contains("fastpath_flow_log_ring_pending 16\n", text);
        Assert.Contains("fastpath_flow_log_records_lost_total 984\n", text);
        long rss = long.Parse(System.Text.RegularExpressions.Regex.Match(text, @"fastpath_process_resident_memory_bytes (\d+)").Groups[1].Value);
        long heap = long.Parse(System.Text.RegularExpressions.Regex.Match(text, @"fastpath_gc_heap_bytes (\d+)").Groups[1].Value);
        long committed = long.Parse(System.Text.RegularExpressions.Regex.Match(text, @"fastpath_gc_committed_bytes (\d+)").Groups[1].Value);
        Assert.InRange(rss, 1 << 20, long.MaxValue);
        Assert.InRange(heap, 1, rss);
        // What the GC holds: at least the heap (its free space and bookkeeping on top).
        Assert.InRange(committed, heap, long.MaxValue);
    }

    [Theory]
    [InlineData("127.0.0.1", "ADDR:PORT")]
    [InlineData("127.0.0.1:0", "ADDR:PORT")]
    [InlineData("example.com:9090", "not an IP address")]
    public void BadEndpointsAreRejected(string endpoint, string message)
    {
        var e = Assert.Throws<FormatException>(() => MetricsServer.Start(endpoint, () => throw new InvalidOperationException()));
        Assert.Contains(message, e.Message);
    }

    private static async Task<string> ScrapeAsync(MetricsServer server)
    {
        using var http = new HttpClient { Timeout = TimeSpan.FromSeconds(10) };
        return await http.GetStringAsync(server.Url, TestContext.Current.CancellationToken);
    }

    private static int FreePort()
    {
        using var l = new TcpListener(IPAddress.Loopback, 0);
        l.Start();
        return ((IPEndPoint)l.LocalEndpoint).Port;
    }
}
