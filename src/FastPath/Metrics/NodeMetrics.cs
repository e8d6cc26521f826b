using System.Text.Json;
using FastPath.ControlPlane.Publish;
using FastPath.DataPlane.Pipeline;
using FastPath.DataPlane.Services;
using FastPath.DataPlane.Telemetry;
using FastPath.FlowLog;

namespace FastPath.Metrics;

/// <summary>Counters of one port, summed over workers.</summary>
public sealed record PortMetrics(string Name, long RxPackets, long RxBytes, long TxPackets, long TxBytes, long[] Drops);

/// <summary>Connections a Service frontend's backend currently has in conntrack, and their packets and bytes (both directions).</summary>
public sealed record BackendMetrics(string Backend, long Connections, long Packets, long Bytes);

public sealed record ServiceMetrics(string Frontend, long Connections, long Packets, long Bytes, IReadOnlyList<BackendMetrics> Backends);

/// <summary>Connection tracking, summed over workers.</summary>
public sealed record ConntrackMetrics(long Capacity, long Entries, long Inserts, long Evictions, long Expired, long InsertFailures, long Clashes);

/// <summary>The flow-log rings of all workers: records they hold, hold now, wrote, and dropped because the writer fell behind.</summary>
public sealed record FlowLogMetrics(long RingCapacity, long Pending, long Written, long Lost)
{
    /// <summary>The sum over the workers' sessions, or null when flow logging is off.</summary>
    public static FlowLogMetrics? Of(IReadOnlyList<FlowLogSession>? sessions) => sessions is { Count: > 0 }
        ? new FlowLogMetrics(sessions.Sum(f => (long)f.RingCapacity), sessions.Sum(f => f.Pending), sessions.Sum(f => f.Written), sessions.Sum(f => f.Lost))
        : null;
}

/// <summary>
/// The process's resident memory (RSS), the managed heap's size after the last collection, and the memory the GC had
/// committed then (heap, free space it keeps, its bookkeeping): RSS beyond the committed bytes is native memory (the
/// runtime, JIT code, malloc), committed beyond the heap is the GC's.
/// </summary>
public sealed record MemoryMetrics(long ResidentBytes, long GcHeapBytes, long GcCommittedBytes)
{
    public static MemoryMetrics Now()
    {
        var gc = GC.GetGCMemoryInfo();
        return new(Environment.WorkingSet, gc.HeapSizeBytes, gc.TotalCommittedBytes);
    }
}

/// <summary>
/// A point-in-time copy of a node's counters for exporters (Prometheus, summary.json): per port and per drop reason,
/// conntrack fill and evictions, per Service and backend, control-plane latencies. Collected off the packet path
/// from the workers' plain counters: a value may be a batch old, never torn (64-bit reads), and the per-Service
/// figures come from a walk of the conntrack tables (connections tracked now, not a lifetime total).
/// </summary>
public sealed class NodeMetrics
{
    public required long Generation { get; init; }
    public required IReadOnlyList<PortMetrics> Ports { get; init; }
    public required ConntrackMetrics Conntrack { get; init; }
    public required IReadOnlyList<ServiceMetrics> Services { get; init; }
    /// <summary>ICMP errors the rate limiter refused (an ICMP-error flood shows here).</summary>
    public required long IcmpErrorsLimited { get; init; }
    public LatencyHistogram? CompileLatency { get; init; }
    public LatencyHistogram? PublishLatency { get; init; }
    /// <summary>Null when flow logging is off.</summary>
    public FlowLogMetrics? FlowLog { get; init; }
    public required MemoryMetrics Memory { get; init; }

    public static NodeMetrics Collect(ForwardingSnapshot snapshot, IReadOnlyList<Engine> workers,
        LatencyHistogram? compileLatency = null, LatencyHistogram? publishLatency = null, FlowLogMetrics? flowLog = null)
    {
        var ports = new List<PortMetrics>();
        for (int p = 0; p < snapshot.PortCount; p++)
        {
            long rxp = 0, rxb = 0, txp = 0, txb = 0;
            var drops = new long[DropReasons.Count];
            foreach (var w in workers)
            {
                var c = w.Counters;
                if (p >= c.PortCount) continue;
                rxp += c.RxPackets(p); rxb += c.RxBytes(p); txp += c.TxPackets(p); txb += c.TxBytes(p);
                for (int r = 1; r < DropReasons.Count; r++) drops[r] += c.Drops(p, (DropReason)r);
            }
            ports.Add(new PortMetrics(snapshot.Ports[p].Name, rxp, rxb, txp, txb, drops));
        }

        long capacity = 0, entries = 0, inserts = 0, evictions = 0, expired = 0, failures = 0, clashes = 0;
        var frontends = snapshot.Services.Frontends;
        var perBackend = new Dictionary<(ServiceFrontend Frontend, string Backend), (long Connections, long Packets, long Bytes)>();
        foreach (var w in workers)
        {
            if (w.Conntrack is not { } table) continue;
            capacity += table.Capacity; entries += table.Count; inserts += table.Inserts; evictions += table.Evictions;
            expired += table.Expired; failures += table.InsertFailures; clashes += table.Clashes;
            for (int i = 0; i < table.Capacity; i++)
            {
                var e = table[i];
                if (!e.InUse || e.NatKind != ServiceNat.NatKind) continue;
                // A Service connection's original destination is its frontend (ClusterIP, node address:NodePort, ...).
                int f = snapshot.Services.Lookup(e.Original.Destination, e.Original.DestinationPort, e.Original.Protocol);
                if (f < 0) continue;
                var key = (snapshot.Services.Frontend(f), Trace.TraceReport.Endpoint(e.Reply.Source, e.Reply.SourcePort));
                var v = perBackend.GetValueOrDefault(key);
                perBackend[key] = (v.Connections + 1, v.Packets + e.PacketsOriginal + e.PacketsReply, v.Bytes + e.BytesOriginal + e.BytesReply);
            }
        }
        var services = new List<ServiceMetrics>();
        foreach (var frontend in frontends)
        {
            var backends = frontend.Backends
                .Select(b => Trace.TraceReport.Endpoint(b.Address, b.Port))
                .Select(b => (Name: b, Value: perBackend.GetValueOrDefault((frontend, b))))
                .Select(b => new BackendMetrics(b.Name, b.Value.Connections, b.Value.Packets, b.Value.Bytes)).ToList();
            services.Add(new ServiceMetrics(frontend.Name, backends.Sum(b => b.Connections), backends.Sum(b => b.Packets),
                backends.Sum(b => b.Bytes), backends));
        }
        return new NodeMetrics
        {
            Generation = snapshot.Generation,
            Ports = ports,
            Conntrack = new ConntrackMetrics(capacity, entries, inserts, evictions, expired, failures, clashes),
            Services = services,
            IcmpErrorsLimited = workers.Sum(w => w.IcmpLimiter.Limited),
            CompileLatency = compileLatency,
            PublishLatency = publishLatency,
            FlowLog = flowLog,
            Memory = MemoryMetrics.Now(),
        };
    }

    /// <summary>The sections summary.json adds to ports and drops: conntrack, services, control_plane.</summary>
    public void WriteJson(Utf8JsonWriter w)
    {
        var c = Conntrack;
        w.WriteStartObject("conntrack");
        w.WriteNumber("capacity", c.Capacity);
        w.WriteNumber("entries", c.Entries);
        w.WriteNumber("inserts", c.Inserts);
        w.WriteNumber("evictions", c.Evictions);
        w.WriteNumber("expired", c.Expired);
        w.WriteNumber("insert_failures", c.InsertFailures);
        w.WriteNumber("clashes", c.Clashes);
        w.WriteEndObject();
        w.WriteStartObject("services");
        foreach (var s in Services)
        {
            w.WriteStartObject(s.Frontend);
            w.WriteNumber("connections", s.Connections);
            w.WriteNumber("packets", s.Packets);
            w.WriteNumber("bytes", s.Bytes);
            w.WriteStartObject("backends");
            foreach (var b in s.Backends)
            {
                w.WriteStartObject(b.Backend);
                w.WriteNumber("connections", b.Connections);
                w.WriteNumber("packets", b.Packets);
                w.WriteNumber("bytes", b.Bytes);
                w.WriteEndObject();
            }
            w.WriteEndObject();
            w.WriteEndObject();
        }
        w.WriteEndObject();
        w.WriteNumber("icmp_errors_limited", IcmpErrorsLimited);
        if (FlowLog is { } f)
        {
            w.WriteStartObject("flow_log");
            w.WriteNumber("ring_capacity", f.RingCapacity);
            w.WriteNumber("pending", f.Pending);
            w.WriteNumber("written", f.Written);
            w.WriteNumber("lost", f.Lost);
            w.WriteEndObject();
        }
        w.WriteStartObject("control_plane");
        WriteHistogram(w, "compile_seconds", CompileLatency);
        WriteHistogram(w, "publish_seconds", PublishLatency);
        w.WriteEndObject();
    }

    private static void WriteHistogram(Utf8JsonWriter w, string name, LatencyHistogram? h)
    {
        if (h is null) return;
        w.WriteStartObject(name);
        w.WriteNumber("count", h.Count);
        w.WriteNumber("sum", Math.Round(h.SumSeconds, 6));
        w.WriteStartObject("buckets");
        long cumulative = 0;
        for (int i = 0; i <= LatencyHistogram.Bounds.Count; i++)
        {
            cumulative += h.Bucket(i);
            w.WriteNumber(i < LatencyHistogram.Bounds.Count ? LatencyHistogram.Bounds[i].ToString("R", System.Globalization.CultureInfo.InvariantCulture) : "+Inf", cumulative);
        }
        w.WriteEndObject();
        w.WriteEndObject();
    }
}
