using System.CommandLine;
using System.Globalization;
using System.Text.Json;
using FastPath.Bench;
using FastPath.DataPlane.Ports;

namespace FastPath.Commands;

/// <summary>
/// `fastpath bench`: generated traffic from memory through the engine on N workers; prints Mpps, ns per packet and
/// bytes allocated per scenario, as a table or JSON. l2-forward (testpmd macswap) in the same run is the floor.
/// </summary>
public static class BenchCommand
{
    /// <summary>Scenario names on the command line, in the order a full run measures them.</summary>
    public static readonly IReadOnlyDictionary<string, TrafficScenario> Scenarios = new Dictionary<string, TrafficScenario>
    {
        ["l2-forward"] = TrafficScenario.L2Forward,
        ["pod-to-pod"] = TrafficScenario.PodToPod,
        ["pod-to-pod-isolated"] = TrafficScenario.PodToPodIsolated,
        ["vxlan-encap"] = TrafficScenario.VxlanEncap,
        ["superframe-vxlan"] = TrafficScenario.SuperFrameVxlan,
        ["vxlan-decap"] = TrafficScenario.VxlanDecap,
        ["clusterip-established"] = TrafficScenario.ClusterIpEstablished,
        ["clusterip-new-flows"] = TrafficScenario.ClusterIpNewFlows,
        ["nodeport-snat"] = TrafficScenario.NodePortSnat,
        ["mixed"] = TrafficScenario.Mixed,
    };

    public static Command Create(TextWriter stdout, TextWriter stderr)
    {
        var scenario = new Option<string[]>("--scenario", "-s")
        {
            Description = "Scenarios (default: all): " + string.Join(", ", Scenarios.Keys),
            AllowMultipleArgumentsPerToken = true,
        };
        var defaults = new TrafficParameters();
        var frameSize = new Option<int>("--frame-size") { Description = "Frame length in bytes (inner frame for VXLAN)", DefaultValueFactory = _ => defaults.FrameLength };
        var flows = new Option<int>("--flows") { Description = "Distinct 5-tuples", DefaultValueFactory = _ => defaults.Flows };
        var services = new Option<int>("--services") { Description = "ClusterIP Services", DefaultValueFactory = _ => defaults.Services };
        var endpoints = new Option<int>("--endpoints") { Description = "Endpoints per Service", DefaultValueFactory = _ => defaults.Endpoints };
        var maglev = new Option<int>("--maglev-size") { Description = "Maglev slots per Service (a prime)", DefaultValueFactory = _ => defaults.MaglevTableSize };
        var routes = new Option<int>("--routes") { Description = "Other nodes' pod CIDRs in the route table", DefaultValueFactory = _ => defaults.Routes };
        var workers = new Option<int[]>("--workers", "-w") { Description = "Forwarding threads (several values: one run each)", AllowMultipleArgumentsPerToken = true, DefaultValueFactory = _ => [1] };
        var duration = new Option<double>("--duration") { Description = "Measured seconds per run", DefaultValueFactory = _ => 2 };
        var warmUp = new Option<double>("--warmup") { Description = "Seconds run before measuring", DefaultValueFactory = _ => 1 };
        var dispatch = new Option<string>("--dispatch") { Description = "rss (one queue per worker, hashed beforehand) or software (a port thread hashes into SPSC rings)", DefaultValueFactory = _ => "rss" };
        dispatch.AcceptOnlyFromAmong("rss", "software");
        var batch = new Option<int>("--batch") { Description = "Packets per batch", DefaultValueFactory = _ => 64 };
        var json = new Option<bool>("--json") { Description = "Print JSON instead of a table" };
        var conntrackMax = new Option<int>("--conntrack-max") { Description = "Connections per worker's conntrack table (conntrackMaxEntries; default: twice the flows)" };
        var flowLogRing = new Option<int>("--flow-log-ring") { Description = "Run with a flow log whose ring of N records nobody drains (full: every later record is lost and counted)" };
        var cmd = new Command("bench", "Measure the engine on generated in-memory traffic (Mpps, ns/packet, bytes allocated)")
        {
            scenario, frameSize, flows, services, endpoints, maglev, routes, workers, duration, warmUp, dispatch, batch, json, conntrackMax, flowLogRing,
        };
        cmd.SetAction(r =>
        {
            var names = r.GetValue(scenario) is { Length: > 0 } given ? given : Scenarios.Keys.ToArray();
            var traffic = new TrafficParameters
            {
                FrameLength = r.GetValue(frameSize), Flows = r.GetValue(flows), Services = r.GetValue(services),
                Endpoints = r.GetValue(endpoints), Routes = r.GetValue(routes), MaglevTableSize = r.GetValue(maglev),
                ConntrackMaxEntries = r.GetValue(conntrackMax),
            };
            return Run(names, traffic, r.GetValue(workers)!, r.GetValue(duration), r.GetValue(warmUp),
                r.GetValue(dispatch) == "software" ? BenchDispatch.Software : BenchDispatch.Rss, r.GetValue(batch), r.GetValue(json), stdout, stderr,
                r.GetValue(flowLogRing));
        });
        return cmd;
    }

    public static int Run(string[] names, TrafficParameters traffic, int[] workers, double duration, double warmUp,
        BenchDispatch dispatch, int batch, bool json, TextWriter stdout, TextWriter stderr, int flowLogRing = 0)
    {
        var unknown = names.Where(n => !Scenarios.ContainsKey(n)).ToList();
        if (unknown.Count > 0) return Fail(stderr, $"--scenario {string.Join(", ", unknown)}: unknown (known: {string.Join(", ", Scenarios.Keys)})");
        if (workers.Length == 0 || workers.Any(w => w is < 1 or > 64)) return Fail(stderr, $"--workers {string.Join(" ", workers)}: each must be 1-64");
        if (duration is <= 0 or > 3600) return Fail(stderr, $"--duration {duration}: must be in (0, 3600] seconds");
        if (warmUp is < 0 or > 600) return Fail(stderr, $"--warmup {warmUp}: must be in [0, 600] seconds");
        if (batch is < 1 or > 4096) return Fail(stderr, $"--batch {batch}: must be between 1 and 4096");
        if (traffic.ConntrackMaxEntries is < 0 or > 1 << 26) return Fail(stderr, $"--conntrack-max {traffic.ConntrackMaxEntries}: must be between 1 and {1 << 26}");
        if (flowLogRing is < 0 or > 1 << 24) return Fail(stderr, $"--flow-log-ring {flowLogRing}: must be between 1 and {1 << 24}");

        var results = new List<BenchResult>();
        try
        {
            foreach (var n in workers)
                foreach (var name in names)
                {
                    var s = Scenarios[name];
                    // l2-forward has no engine to dispatch to, and the dispatcher's batches hold no super-frames: both
                    // always run on their own queues.
                    var mode = s is TrafficScenario.L2Forward or TrafficScenario.SuperFrameVxlan ? BenchDispatch.Rss : dispatch;
                    results.Add(BenchRunner.Run(new BenchOptions(s, traffic, n, TimeSpan.FromSeconds(duration), TimeSpan.FromSeconds(warmUp), mode, batch, flowLogRing)));
                    if (!json) stderr.Write('.');
                }
        }
        catch (ArgumentException e)
        {
            return Fail(stderr, e.Message);
        }
        if (!json) stderr.WriteLine();
        double ghz = CpuGhz();
        if (json) WriteJson(stdout, results, ghz);
        else
        {
            WriteTable(stdout, results, ghz);
            if (traffic.ConntrackMaxEntries > 0 || flowLogRing > 0) WriteLimits(stdout, results);
        }
        return 0;
    }

    private static string Name(TrafficScenario s) => Scenarios.First(kv => kv.Value == s).Key;

    /// <summary>l2-forward's CPU time per packet with the same worker count, when it ran in this invocation.</summary>
    private static double? Floor(List<BenchResult> results, BenchResult r) =>
        results.FirstOrDefault(x => x.Options.Scenario == TrafficScenario.L2Forward && x.Options.Workers == r.Options.Workers)?.CpuNsPerPacket;

    private static void WriteTable(TextWriter o, List<BenchResult> results, double ghz)
    {
        var ci = CultureInfo.InvariantCulture;
        o.WriteLine(string.Format(ci, "{0,-22} {1,7} {2,-8} {3,9} {4,9} {5,10} {6,9} {7,9} {8,9} {9,14} {10,12}",
            "scenario", "workers", "dispatch", "Mpps", "ns/pkt", "core-ns", "cpu-ns", "cycles", "B/pkt", "forwarded", "dropped"));
        foreach (var r in results)
            o.WriteLine(string.Format(ci, "{0,-22} {1,7} {2,-8} {3,9:F2} {4,9:F1} {5,10:F1} {6,9:F1} {7,9} {8,9:F3} {9,14:N0} {10,12:N0}",
                Name(r.Options.Scenario), r.Options.Workers, r.Options.Dispatch.ToString().ToLowerInvariant(), r.Mpps, r.NsPerPacket,
                r.CoreNsPerPacket, r.CpuNsPerPacket, ghz > 0 ? (r.CpuNsPerPacket * ghz).ToString("F0", ci) : "-", r.BytesPerPacket, r.Forwarded, r.Dropped));
        var first = results[0].Options.Traffic;
        o.WriteLine($"frames {first.FrameLength} B, {first.Flows} flows, {first.Services} services × {first.Endpoints} endpoints, {first.Routes} routes; " +
                    (ghz > 0 ? $"cycles at {ghz.ToString("F2", ci)} GHz (/proc/cpuinfo); " : "") + "core-ns = ns/pkt × busy threads; cpu-ns = the threads' own CPU time per packet (not counting time descheduled)");
    }

    /// <summary>The bounded state at the end of each run and the process's memory while measuring (MiB).</summary>
    private static void WriteLimits(TextWriter o, List<BenchResult> results)
    {
        var ci = CultureInfo.InvariantCulture;
        o.WriteLine(string.Format(ci, "{0,-22} {1,7} {2,11} {3,11} {4,19} {5,12} {6,12} {7,9} {8,12} {9,12} {10,16} {11,9}",
            "scenario", "workers", "offered/s", "accepted/s", "conntrack", "inserts", "evictions", "refused", "ct-full", "ring-lost", "RSS start→peak", "GC heap"));
        foreach (var r in results)
        {
            if (r.Limits is not { } l) continue;
            o.WriteLine(string.Format(ci, "{0,-22} {1,7} {2,11:N0} {3,11:N0} {4,19} {5,12:N0} {6,12:N0} {7,9:N0} {8,12:N0} {9,12:N0} {10,16} {11,9:F1}",
                Name(r.Options.Scenario), r.Options.Workers, r.Seconds > 0 ? r.Packets / r.Seconds : 0, r.Seconds > 0 ? l.InsertsMeasured / r.Seconds : 0,
                $"{l.ConntrackEntries:N0}/{l.ConntrackCapacity:N0}", l.Inserts, l.Evictions,
                l.InsertFailures, l.ConntrackFullDrops, l.FlowRecordsLost, $"{l.RssAtStart / 1048576.0:F1}→{l.RssPeak / 1048576.0:F1}", l.GcHeapPeak / 1048576.0));
        }
        o.WriteLine("offered/s = packets per second into the workers (every one a new connection in clusterip-new-flows); accepted/s = connections inserted per second while measuring; " +
                    "conntrack = entries/capacity at the end; refused = insert failures (table full of assured connections); ct-full = packets dropped as conntrack_full; ring-lost = flow records dropped at a full ring; memory in MiB");
    }

    private static void WriteJson(TextWriter o, List<BenchResult> results, double ghz)
    {
        using var stream = new MemoryStream();
        using (var w = new Utf8JsonWriter(stream, new JsonWriterOptions { Indented = true }))
        {
            w.WriteStartObject();
            if (ghz > 0) w.WriteNumber("cpu_ghz", ghz);
            w.WriteStartArray("results");
            foreach (var r in results)
            {
                var t = r.Options.Traffic;
                w.WriteStartObject();
                w.WriteString("scenario", Name(r.Options.Scenario));
                w.WriteNumber("workers", r.Options.Workers);
                w.WriteString("dispatch", r.Options.Dispatch.ToString().ToLowerInvariant());
                w.WriteNumber("frame_size", t.FrameLength);
                w.WriteNumber("flows", t.Flows);
                w.WriteNumber("services", t.Services);
                w.WriteNumber("endpoints", t.Endpoints);
                w.WriteNumber("routes", t.Routes);
                w.WriteNumber("maglev_size", t.MaglevTableSize);
                w.WriteNumber("batch", r.Options.BatchSize);
                w.WriteNumber("packets", r.Packets);
                w.WriteNumber("forwarded", r.Forwarded);
                w.WriteNumber("dropped", r.Dropped);
                w.WriteNumber("seconds", Math.Round(r.Seconds, 6));
                w.WriteNumber("mpps", Math.Round(r.Mpps, 4));
                w.WriteNumber("ns_per_packet", Math.Round(r.NsPerPacket, 2));
                w.WriteNumber("core_ns_per_packet", Math.Round(r.CoreNsPerPacket, 2));
                w.WriteNumber("cpu_ns_per_packet", Math.Round(r.CpuNsPerPacket, 2));
                if (ghz > 0) w.WriteNumber("cycles_per_packet", Math.Round(r.CpuNsPerPacket * ghz, 1));
                if (Floor(results, r) is { } floor) w.WriteNumber("vs_l2_forward", Math.Round(r.CpuNsPerPacket / floor, 3));
                w.WriteNumber("allocated_bytes", r.AllocatedBytes);
                w.WriteNumber("bytes_per_packet", Math.Round(r.BytesPerPacket, 6));
                if (r.Limits is { } l)
                {
                    w.WriteStartObject("limits");
                    w.WriteNumber("conntrack_capacity", l.ConntrackCapacity);
                    w.WriteNumber("conntrack_entries", l.ConntrackEntries);
                    w.WriteNumber("conntrack_inserts", l.Inserts);
                    w.WriteNumber("conntrack_inserts_measured", l.InsertsMeasured);
                    w.WriteNumber("conntrack_evictions", l.Evictions);
                    w.WriteNumber("conntrack_insert_failures", l.InsertFailures);
                    w.WriteNumber("conntrack_full_drops", l.ConntrackFullDrops);
                    w.WriteNumber("flow_log_ring_capacity", l.FlowRingCapacity);
                    w.WriteNumber("flow_log_records_lost", l.FlowRecordsLost);
                    w.WriteNumber("rss_start_bytes", l.RssAtStart);
                    w.WriteNumber("rss_peak_bytes", l.RssPeak);
                    w.WriteNumber("gc_heap_peak_bytes", l.GcHeapPeak);
                    w.WriteEndObject();
                }
                w.WriteEndObject();
            }
            w.WriteEndArray();
            w.WriteEndObject();
        }
        o.WriteLine(System.Text.Encoding.UTF8.GetString(stream.ToArray()));
    }

    /// <summary>The nominal clock from /proc/cpuinfo ("cpu MHz"), 0 when unknown: cycles per packet are derived from it.</summary>
    private static double CpuGhz()
    {
        try
        {
            foreach (var line in File.ReadLines("/proc/cpuinfo"))
                if (line.StartsWith("cpu MHz", StringComparison.Ordinal) &&
                    double.TryParse(line[(line.IndexOf(':') + 1)..], NumberStyles.Float, CultureInfo.InvariantCulture, out double mhz))
                    return Math.Round(mhz / 1000, 3);
        }
        catch (IOException)
        {
        }
        catch (UnauthorizedAccessException)
        {
        }
        return 0;
    }

    private static int Fail(TextWriter stderr, string message)
    {
        stderr.WriteLine($"fastpath bench: {message}");
        return Program.ExitBadInput;
    }
}
