using System.Globalization;
using System.Net;
using FastPath.ControlPlane.Publish;
using FastPath.DataPlane.Telemetry;
using Prometheus;

namespace FastPath.Metrics;

/// <summary>
/// The Prometheus endpoint of `fastpath run --metrics ADDR:PORT`: prometheus-net's <see cref="MetricServer"/> on
/// http://ADDR:PORT/metrics/ with its own registry. Counters live in the workers as plain fields; before every scrape
/// the registry asks <c>collect</c> for a <see cref="NodeMetrics"/> copy and sets the exported values from it, so
/// the packet path never touches a Prometheus object. Control-plane latencies are forwarded sample by sample.
/// </summary>
public sealed class MetricsServer : IDisposable
{
    private readonly MetricServer _server;
    private readonly Action<double>? _compileSink, _publishSink;
    private readonly LatencyHistogram? _compile, _publish;

    private MetricsServer(MetricServer server, Uri url, LatencyHistogram? compile, Action<double>? compileSink,
        LatencyHistogram? publish, Action<double>? publishSink)
    {
        (_server, Url, _compile, _compileSink, _publish, _publishSink) = (server, url, compile, compileSink, publish, publishSink);
    }

    /// <summary>Where to scrape, e.g. http://127.0.0.1:9090/metrics/.</summary>
    public Uri Url { get; }

    /// <summary>
    /// Starts serving on <paramref name="endpoint"/> ("ADDR:PORT", "[v6]:PORT", or ":PORT" for every address).
    /// Throws <see cref="FormatException"/> for a bad endpoint and <see cref="HttpListenerException"/> when the
    /// port cannot be bound, for the caller to report as bad input.
    /// </summary>
    public static MetricsServer Start(string endpoint, Func<NodeMetrics> collect, LatencyHistogram? compileLatency = null,
        LatencyHistogram? publishLatency = null)
    {
        var (host, port) = ParseEndpoint(endpoint);
        var registry = Prometheus.Metrics.NewCustomRegistry();
        var factory = Prometheus.Metrics.WithCustomRegistry(registry);
        var exported = new ExportedMetrics(factory);
        registry.AddBeforeCollectCallback(() => exported.Update(collect()));
        var compileSink = Forward(factory, compileLatency, "fastpath_snapshot_compile_seconds", "Time to compile cluster objects into a forwarding snapshot");
        var publishSink = Forward(factory, publishLatency, "fastpath_snapshot_publish_seconds", "Time from a publish request to the snapshot swap");
        var server = new MetricServer(host, port, "metrics/", registry);
        server.Start();
        string shown = host == "+" ? "127.0.0.1" : host.Contains(':') ? $"[{host}]" : host;
        return new MetricsServer(server, new Uri($"http://{shown}:{port}/metrics/"), compileLatency, compileSink, publishLatency, publishSink);
    }

    private static Action<double>? Forward(IMetricFactory factory, LatencyHistogram? source, string name, string help)
    {
        if (source is null) return null;
        var histogram = factory.CreateHistogram(name, help, new HistogramConfiguration { Buckets = [.. LatencyHistogram.Bounds] });
        Action<double> sink = histogram.Observe;
        source.Recorded += sink;
        return sink;
    }

    internal static (string Host, int Port) ParseEndpoint(string endpoint)
    {
        int colon = endpoint.LastIndexOf(':');
        if (colon < 0 || !int.TryParse(endpoint.AsSpan(colon + 1), NumberStyles.None, CultureInfo.InvariantCulture, out int port) || port is < 1 or > 65535)
            throw new FormatException($"--metrics {endpoint}: expected ADDR:PORT with a port 1-65535 (e.g. 127.0.0.1:9090)");
        string host = endpoint[..colon];
        if (host.StartsWith('[') && host.EndsWith(']')) host = host[1..^1];
        if (host.Length == 0) return ("+", port);
        if (!IPAddress.TryParse(host, out _) && host != "localhost")
            throw new FormatException($"--metrics {endpoint}: \"{host}\" is not an IP address");
        return (host, port);
    }

    private bool _disposed;

    public void Dispose()
    {
        if (_disposed) return;
        _disposed = true;
        if (_compile is not null) _compile.Recorded -= _compileSink;
        if (_publish is not null) _publish.Recorded -= _publishSink;
        _server.Dispose();
    }

    /// <summary>The exported series; values set from a <see cref="NodeMetrics"/> before each scrape.</summary>
    private sealed class ExportedMetrics(IMetricFactory f)
    {
        private readonly Counter _rxPackets = f.CreateCounter("fastpath_port_rx_packets_total", "Packets received per port", ["port"]);
        private readonly Counter _rxBytes = f.CreateCounter("fastpath_port_rx_bytes_total", "Bytes received per port", ["port"]);
        private readonly Counter _txPackets = f.CreateCounter("fastpath_port_tx_packets_total", "Packets sent per port", ["port"]);
        private readonly Counter _txBytes = f.CreateCounter("fastpath_port_tx_bytes_total", "Bytes sent per port", ["port"]);
        private readonly Counter _drops = f.CreateCounter("fastpath_drops_total", "Input packets dropped, per ingress port and reason", ["port", "reason"]);
        private readonly Gauge _ctCapacity = f.CreateGauge("fastpath_conntrack_capacity", "Connections the conntrack tables can hold");
        private readonly Gauge _ctEntries = f.CreateGauge("fastpath_conntrack_entries", "Connections tracked now");
        private readonly Counter _ctInserts = f.CreateCounter("fastpath_conntrack_inserts_total", "Connections created");
        private readonly Counter _ctEvictions = f.CreateCounter("fastpath_conntrack_evictions_total", "Unassured connections evicted for room (early drop)");
        private readonly Counter _ctExpired = f.CreateCounter("fastpath_conntrack_expired_total", "Connections reclaimed after their timeout");
        private readonly Counter _ctFailures = f.CreateCounter("fastpath_conntrack_insert_failures_total", "New connections refused: table full of assured connections");
        private readonly Gauge _svcConnections = f.CreateGauge("fastpath_service_connections", "Connections tracked now per Service frontend and backend", ["service", "backend"]);
        private readonly Gauge _svcPackets = f.CreateGauge("fastpath_service_packets", "Packets of the tracked connections per Service frontend and backend", ["service", "backend"]);
        private readonly Gauge _svcBytes = f.CreateGauge("fastpath_service_bytes", "Bytes of the tracked connections per Service frontend and backend", ["service", "backend"]);
        private readonly Counter _icmpLimited = f.CreateCounter("fastpath_icmp_errors_rate_limited_total", "ICMP errors not sent because of the rate limit");
        private readonly Gauge _generation = f.CreateGauge("fastpath_snapshot_generation", "Generation of the forwarding snapshot in use");
        private readonly Gauge _flowRingCapacity = f.CreateGauge("fastpath_flow_log_ring_capacity", "Flow records the flow-log rings can hold (all workers)");
        private readonly Gauge _flowRingPending = f.CreateGauge("fastpath_flow_log_ring_pending", "Flow records waiting in the rings for the writer");
        private readonly Counter _flowWritten = f.CreateCounter("fastpath_flow_log_records_written_total", "Flow records written to the flow log");
        private readonly Counter _flowLost = f.CreateCounter("fastpath_flow_log_records_lost_total", "Flow records dropped because a ring was full (the writer fell behind)");
        private readonly Gauge _resident = f.CreateGauge("fastpath_process_resident_memory_bytes", "Resident memory of the process (RSS)");
        private readonly Gauge _gcHeap = f.CreateGauge("fastpath_gc_heap_bytes", "Managed heap size after the last garbage collection");
        private readonly Gauge _gcCommitted = f.CreateGauge("fastpath_gc_committed_bytes", "Memory the garbage collector had committed at the last collection");

        public void Update(NodeMetrics m)
        {
            _generation.Set(m.Generation);
            _resident.Set(m.Memory.ResidentBytes);
            _gcHeap.Set(m.Memory.GcHeapBytes);
            _gcCommitted.Set(m.Memory.GcCommittedBytes);
            if (m.FlowLog is { } flows)
            {
                _flowRingCapacity.Set(flows.RingCapacity);
                _flowRingPending.Set(flows.Pending);
                _flowWritten.IncTo(flows.Written);
                _flowLost.IncTo(flows.Lost);
            }
            _icmpLimited.IncTo(m.IcmpErrorsLimited);
            foreach (var p in m.Ports)
            {
                _rxPackets.WithLabels(p.Name).IncTo(p.RxPackets);
                _rxBytes.WithLabels(p.Name).IncTo(p.RxBytes);
                _txPackets.WithLabels(p.Name).IncTo(p.TxPackets);
                _txBytes.WithLabels(p.Name).IncTo(p.TxBytes);
                for (int r = 1; r < p.Drops.Length; r++)
                    if (p.Drops[r] > 0) _drops.WithLabels(p.Name, DropReasons.Name((DropReason)r)).IncTo(p.Drops[r]);
            }
            var c = m.Conntrack;
            _ctCapacity.Set(c.Capacity);
            _ctEntries.Set(c.Entries);
            _ctInserts.IncTo(c.Inserts);
            _ctEvictions.IncTo(c.Evictions);
            _ctExpired.IncTo(c.Expired);
            _ctFailures.IncTo(c.InsertFailures);
            foreach (var s in m.Services)
                foreach (var b in s.Backends)
                {
                    _svcConnections.WithLabels(s.Frontend, b.Backend).Set(b.Connections);
                    _svcPackets.WithLabels(s.Frontend, b.Backend).Set(b.Packets);
                    _svcBytes.WithLabels(s.Frontend, b.Backend).Set(b.Bytes);
                }
        }
    }
}
