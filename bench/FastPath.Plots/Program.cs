using System.Globalization;
using System.Text;
using System.Text.Json;
using ScottPlot;

namespace FastPath.Plots;

/// <summary>
/// Turns the numbers scripts/benchmarks.sh collects (docs/bench/) into the PNG plots of docs/BENCHMARKS.md and its
/// generated scenario table. `plots DATA_DIR DOCS_DIR` draws; `plots import-conntrack REPORT.csv DATA_DIR` takes the
/// conntrack figures from a BenchmarkDotNet CSV report; `plots soak SOAK.csv PNG` draws scripts/soak.sh's memory and
/// conntrack samples over time.
/// </summary>
public static class Program
{
    private static readonly CultureInfo Ci = CultureInfo.InvariantCulture;

    public static int Main(string[] args)
    {
        if (args is ["import-conntrack", var report, var dataDir])
        {
            ImportConntrack(report, dataDir);
            return 0;
        }
        if (args is ["soak", var samples, var png])
        {
            Soak(samples, png);
            return 0;
        }
        if (args is not [var data, var docs])
        {
            Console.Error.WriteLine("usage: plots DATA_DIR DOCS_DIR | plots import-conntrack REPORT.csv DATA_DIR | plots soak SOAK.csv PNG");
            return 2;
        }
        var scenarios = Directory.GetFiles(data, "scenarios-*.json").Order().SelectMany(Results).ToList();
        Workers(scenarios, Path.Combine(docs, "plot-workers.png"));
        File.WriteAllText(Path.Combine(data, "scenarios.md"), Table(scenarios));
        Services(Directory.GetFiles(data, "services-*.json").SelectMany(Results).ToList(), Path.Combine(docs, "plot-services.png"));
        Conntrack(Path.Combine(data, "conntrack.csv"), Path.Combine(docs, "plot-conntrack.png"));
        Maglev(Path.Combine(data, "maglev.md"), Path.Combine(docs, "plot-maglev.png"));
        Lpm(Path.Combine(data, "lpm.csv"), Path.Combine(docs, "plot-lpm.png"));
        if (File.Exists(Path.Combine(data, "live.csv"))) Live(Path.Combine(data, "live.csv"), Path.Combine(docs, "plot-live.png"));
        if (File.Exists(Path.Combine(data, "control-plane-before.csv")))
            ControlPlaneCdf(Path.Combine(data, "control-plane-before.csv"), Path.Combine(data, "control-plane-after.csv"), Path.Combine(docs, "plot-control-plane-cdf.png"));
        return 0;
    }

    private sealed record Result(string Scenario, int Workers, string Dispatch, int Services, double Mpps, double NsPerPacket,
        double CpuNsPerPacket, double? Cycles, double? VsFloor, double BytesPerPacket);

    private static List<Result> Results(string path)
    {
        using var doc = JsonDocument.Parse(File.ReadAllText(path));
        return doc.RootElement.GetProperty("results").EnumerateArray().Select(r => new Result(
            r.GetProperty("scenario").GetString()!, r.GetProperty("workers").GetInt32(), r.GetProperty("dispatch").GetString()!,
            r.GetProperty("services").GetInt32(), r.GetProperty("mpps").GetDouble(), r.GetProperty("ns_per_packet").GetDouble(),
            r.GetProperty("cpu_ns_per_packet").GetDouble(),
            r.TryGetProperty("cycles_per_packet", out var c) ? c.GetDouble() : null,
            r.TryGetProperty("vs_l2_forward", out var v) ? v.GetDouble() : null,
            r.GetProperty("bytes_per_packet").GetDouble())).ToList();
    }

    private static string Table(List<Result> results)
    {
        var b = new StringBuilder();
        b.AppendLine("| scenario | workers | dispatch | Mpps | wall ns/packet | CPU ns/packet | cycles/packet | × l2-forward | B/packet |");
        b.AppendLine("|---|---:|---|---:|---:|---:|---:|---:|---:|");
        foreach (var r in results)
            b.AppendLine(string.Create(Ci, $"| {r.Scenario} | {r.Workers} | {r.Dispatch} | {r.Mpps:F2} | {r.NsPerPacket:F1} | {r.CpuNsPerPacket:F1} | {(r.Cycles is { } c ? c.ToString("F0", Ci) : "–")} | {(r.VsFloor is { } v ? v.ToString("F1", Ci) : "–")} | {r.BytesPerPacket:F0} |"));
        return b.ToString();
    }

    /// <summary>Rates start at zero, so a flat curve looks flat.</summary>
    private static void FromZero(Plot plot)
    {
        plot.Axes.AutoScale();
        plot.Axes.SetLimitsY(0, plot.Axes.GetLimits().Top * 1.1);
    }

    private static void Save(Plot plot, string title, string x, string y, string path)
    {
        plot.Title(title);
        plot.XLabel(x);
        plot.YLabel(y);
        plot.ShowLegend(Edge.Bottom);
        plot.SavePng(path, 900, 620);
        Console.WriteLine($"wrote {path}");
    }

    private static void Workers(List<Result> results, string path)
    {
        // Wall-clock Mpps (what this shared machine delivered) and, dashed, the rate the measured CPU time per packet
        // gives with that many dedicated cores (workers × 1000 / CPU ns per packet and worker).
        string[] shown = ["l2-forward", "pod-to-pod", "clusterip-established", "mixed"];
        var plot = new Plot();
        foreach (var group in results.Where(r => shown.Contains(r.Scenario)).GroupBy(r => (r.Scenario, r.Dispatch)))
        {
            var points = group.OrderBy(r => r.Workers).ToList();
            var xs = points.Select(r => (double)r.Workers).ToArray();
            var name = group.Key.Scenario == "l2-forward" ? "l2-forward (macswap floor)" : $"{group.Key.Scenario} ({group.Key.Dispatch})";
            var wall = plot.Add.Scatter(xs, points.Select(r => Math.Log10(r.Mpps)).ToArray());
            wall.LegendText = name + ", wall clock";
            if (group.Key.Dispatch == "software") continue; // its CPU time is not measured per thread
            var capacity = plot.Add.Scatter(xs, points.Select(r => Math.Log10(r.Workers * 1000 / r.CpuNsPerPacket)).ToArray());
            capacity.LegendText = name + ", at its CPU time";
            capacity.LinePattern = LinePattern.Dashed;
            capacity.Color = wall.Color;
        }
        plot.Axes.Bottom.TickGenerator = new ScottPlot.TickGenerators.NumericManual([1, 2], ["1", "2"]);
        plot.Axes.Left.TickGenerator = new ScottPlot.TickGenerators.NumericManual(
            [Math.Log10(0.5), 0, Math.Log10(2), Math.Log10(5), 1, Math.Log10(20), Math.Log10(50), 2], ["0.5", "1", "2", "5", "10", "20", "50", "100"]);
        plot.Axes.SetLimitsY(Math.Log10(0.3), Math.Log10(200));
        Save(plot, "Mpps vs workers (64 B frames; 2 vCPUs shared with other work)", "workers", "Mpps (log)", path);
    }

    /// <summary>
    /// scripts/bench-live.sh's means (FP_BENCH_CSV): FastPath against the kernel per measurement, as "how much of the
    /// kernel's performance" — rate ÷ kernel rate, and for round-trip times kernel RTT ÷ FastPath RTT — with the
    /// issue's 0.8 target line.
    /// </summary>
    private static void Live(string csv, string path)
    {
        var rows = File.ReadAllLines(csv).Skip(1).Select(line =>
        {
            int close = line.LastIndexOf('"');
            var rest = line[(close + 2)..].Split(',');
            return (Label: line[1..close], Unit: rest[0], FastPath: double.Parse(rest[1], Ci), Kernel: double.Parse(rest[2], Ci));
        }).ToList();
        var plot = new Plot();
        var bars = rows.Select((r, i) => new Bar
        {
            Position = i,
            Value = r.Unit == "ms" ? r.Kernel / r.FastPath : r.FastPath / r.Kernel,
            FillColor = Colors.SteelBlue,
        }).ToList();
        plot.Add.Bars(bars);
        foreach (var b in bars)
        {
            var text = plot.Add.Text(b.Value.ToString("F2", Ci), b.Position, b.Value);
            text.LabelAlignment = Alignment.LowerCenter;
        }
        var target = plot.Add.HorizontalLine(0.8);
        target.LinePattern = LinePattern.Dashed;
        target.LegendText = "target 0.8";
        plot.Add.HorizontalLine(1.0).LegendText = "kernel";
        plot.Axes.Bottom.TickGenerator = new ScottPlot.TickGenerators.NumericManual(
            rows.Select((_, i) => (double)i).ToArray(), rows.Select(r => Wrap(r.Label)).ToArray());
        plot.Axes.SetLimitsY(0, Math.Max(1.3, bars.Max(b => b.Value) * 1.15));
        Save(plot, "Live on TAPs: FastPath as a fraction of the Linux kernel, same topology, one run", "", "× kernel (higher is better)", path);

        static string Wrap(string label) => label.Replace(", ", "\n").Replace(" (", "\n(");
    }

    /// <summary>
    /// RSS, GC heap and (when sampled: the 11-column soak.csv) GC committed per node (MiB, left axis) and conntrack
    /// entries (right axis) over the soak's minutes.
    /// </summary>
    private static void Soak(string csv, string path)
    {
        var rows = File.ReadAllLines(csv).Skip(1).Select(l => l.Split(','))
            .Where(f => f.Length >= 6 && f[2].Length > 0 && f[4].Length > 0)
            .Select(f => (Minutes: int.Parse(f[0], Ci) / 60.0, Node: f[1], Rss: int.Parse(f[2], Ci) / 1024.0, Heap: int.Parse(f[3], Ci) / 1024.0,
                Conntrack: int.Parse(f[4], Ci), Committed: f.Length > 6 && f[6].Length > 0 ? int.Parse(f[6], Ci) / 1024.0 : double.NaN)).ToList();
        var plot = new Plot();
        foreach (var node in rows.Select(r => r.Node).Distinct())
        {
            var n = rows.Where(r => r.Node == node).ToList();
            var rss = plot.Add.Scatter(n.Select(r => r.Minutes).ToArray(), n.Select(r => r.Rss).ToArray());
            rss.LegendText = $"{node} RSS (MiB)";
            rss.MarkerSize = 0;
            var heap = plot.Add.Scatter(n.Select(r => r.Minutes).ToArray(), n.Select(r => r.Heap).ToArray());
            heap.LegendText = $"{node} GC heap (MiB)";
            heap.MarkerSize = 0;
            heap.LinePattern = LinePattern.Dotted;
            var sampled = n.Where(r => !double.IsNaN(r.Committed)).ToList();
            if (sampled.Count > 0)
            {
                var committed = plot.Add.Scatter(sampled.Select(r => r.Minutes).ToArray(), sampled.Select(r => r.Committed).ToArray());
                committed.LegendText = $"{node} GC committed (MiB)";
                committed.MarkerSize = 0;
                committed.LinePattern = LinePattern.DenselyDashed;
            }
            var ct = plot.Add.Scatter(n.Select(r => r.Minutes).ToArray(), n.Select(r => (double)r.Conntrack).ToArray());
            ct.LegendText = $"{node} conntrack entries (right)";
            ct.MarkerSize = 0;
            ct.LinePattern = LinePattern.Dashed;
            ct.Axes.YAxis = plot.Axes.Right;
        }
        plot.Axes.SetLimitsY(0, rows.Max(r => r.Rss) * 1.15);
        plot.Axes.Right.Label.Text = "conntrack entries";
        Save(plot, "Soak: two-node demo under traffic and a cluster change every second", "minutes", "MiB", path);
    }

    private static void Services(List<Result> results, string path)
    {
        var plot = new Plot();
        var points = results.Where(r => r.Scenario == "clusterip-established").OrderBy(r => r.Services).ToList();
        var mpps = plot.Add.Scatter(points.Select(r => Math.Log10(r.Services)).ToArray(), points.Select(r => r.Mpps).ToArray());
        mpps.LegendText = "clusterip-established, wall-clock Mpps";
        var cpu = plot.Add.Scatter(points.Select(r => Math.Log10(r.Services)).ToArray(), points.Select(r => 1000 / r.CpuNsPerPacket).ToArray());
        cpu.LegendText = "clusterip-established, Mpps at its CPU time/packet";
        cpu.LinePattern = LinePattern.Dashed;
        LogTicks(plot, points.Select(r => (double)r.Services));
        FromZero(plot);
        Save(plot, "ClusterIP established flows vs number of Services (1 worker)", "Services", "Mpps", path);
    }

    private static void LogTicks(Plot plot, IEnumerable<double> values)
    {
        var v = values.Distinct().Order().ToArray();
        plot.Axes.Bottom.TickGenerator = new ScottPlot.TickGenerators.NumericManual(
            v.Select(Math.Log10).ToArray(), v.Select(x => x.ToString("N0", Ci)).ToArray());
    }

    private static List<double[]> Csv(string path) =>
        File.ReadLines(path).Skip(1).Where(l => l.Length > 0)
            .Select(l => l.Split(',').Select(f => double.Parse(f, Ci)).ToArray()).ToList();

    private static void Conntrack(string path, string png)
    {
        // fill %, then ns per lookup hit: ConntrackTable, Dictionary, ConcurrentDictionary
        var rows = Csv(path);
        var plot = new Plot();
        string[] names = ["ConntrackTable (FastPath)", "Dictionary (peer)", "ConcurrentDictionary (peer)"];
        for (int c = 1; c <= 3; c++)
        {
            var s = plot.Add.Scatter(rows.Select(r => r[0]).ToArray(), rows.Select(r => 1000 / r[c]).ToArray());
            s.LegendText = names[c - 1];
        }
        FromZero(plot);
        Save(plot, "Conntrack lookup hits vs table fill (1M entries, random keys)", "table fill (%)", "M lookups/s", png);
    }

    private static void Maglev(string path, string png)
    {
        // maglev-stats rows: | M | N | max/min | removal moved | optimum | 1/N | ...
        var rows = File.ReadLines(path).Where(l => l.StartsWith("| 1", StringComparison.Ordinal))
            .Select(l => l.Split('|', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries)).ToList();
        static double Pct(string s) => double.Parse(s.TrimEnd('%').Trim(), Ci);
        var plot = new Plot();
        foreach (var group in rows.GroupBy(r => r[0]))
        {
            var s = plot.Add.Scatter(group.Select(r => Math.Log10(double.Parse(r[1], Ci))).ToArray(), group.Select(r => Pct(r[3])).ToArray());
            s.LegendText = $"Maglev M={group.Key}: moved on removing one backend";
        }
        var first = rows.GroupBy(r => r[0]).First().ToList();
        var xs = first.Select(r => Math.Log10(double.Parse(r[1], Ci))).ToArray();
        var optimum = plot.Add.Scatter(xs, first.Select(r => Pct(r[4])).ToArray());
        optimum.LegendText = "optimum (slots the removed backend owned)";
        optimum.LinePattern = LinePattern.Dotted;
        var modulo = plot.Add.Scatter(xs, first.Select(r => 100 * (1 - 1 / double.Parse(r[1], Ci))).ToArray());
        modulo.LegendText = "hash mod N (peer, computed: 1 - 1/N)";
        modulo.LinePattern = LinePattern.Dashed;
        plot.Axes.SetLimitsY(0.01, 100);
        LogTicks(plot, first.Select(r => double.Parse(r[1], Ci)));
        Save(plot, "Maglev disruption vs backends", "backends (N)", "% of flows moved", png);
    }

    /// <summary>
    /// Change latency CDF per kind from two `control-plane-stats --csv` files (kind,microseconds): before dashed, after
    /// solid, one color per kind; log-scaled latency.
    /// </summary>
    private static void ControlPlaneCdf(string before, string after, string png)
    {
        static Dictionary<string, double[]> Read(string path) => File.ReadLines(path).Skip(1).Where(l => l.Length > 0)
            .Select(l => l.Split(',')).GroupBy(f => f[0]).ToDictionary(g => g.Key, g => g.Select(f => double.Parse(f[1], Ci)).Order().ToArray());
        var (a, b) = (Read(before), Read(after));
        var plot = new Plot();
        int color = 0;
        foreach (var kind in a.Keys.Union(b.Keys))
        {
            var c = plot.Add.Palette.GetColor(color++);
            foreach (var (times, label, pattern) in new[] { (a.GetValueOrDefault(kind), "before", LinePattern.Dashed), (b.GetValueOrDefault(kind), "after", LinePattern.Solid) })
            {
                if (times is not { Length: > 0 }) continue;
                var xs = new List<double>();
                var ys = new List<double>();
                for (int i = 0; i < times.Length; i++)
                {
                    if (i % Math.Max(1, times.Length / 400) != 0 && i != times.Length - 1) continue;
                    xs.Add(Math.Log10(Math.Max(1, times[i])));
                    ys.Add(100.0 * (i + 1) / times.Length);
                }
                var s = plot.Add.Scatter(xs.ToArray(), ys.ToArray());
                s.Color = c;
                s.MarkerSize = 0;
                s.LinePattern = pattern;
                s.LegendText = $"{kind}, {label} (n={times.Length:N0})";
            }
        }
        double[] ticks = [10, 100, 1_000, 10_000, 100_000, 1_000_000];
        plot.Axes.Bottom.TickGenerator = new ScottPlot.TickGenerators.NumericManual(
            ticks.Select(Math.Log10).ToArray(), ticks.Select(t => t >= 1000 ? (t / 1000).ToString("N0", Ci) + " ms" : t.ToString("N0", Ci) + " µs").ToArray());
        plot.Axes.SetLimitsY(0, 100);
        plot.Title("Control plane: one change → published snapshot, latency CDF per kind (dashed before, solid after)");
        plot.XLabel("validate + compile + publish latency (log)");
        plot.YLabel("% of changes at or below");
        plot.ShowLegend(Edge.Right);
        plot.SavePng(png, 1400, 720);
        Console.WriteLine($"wrote {png}");
    }

    private static void Lpm(string path, string png)
    {
        // routes, then ns per lookup: LpmTable4 single, LpmTable4 batch, rte_lpm_lookup, rte_lpm_lookup_bulk (0 = not measured)
        var rows = Csv(path);
        var plot = new Plot();
        string[] names = ["LpmTable4 single (FastPath)", "LpmTable4 batch (FastPath)", "rte_lpm_lookup (DPDK peer)", "rte_lpm_lookup_bulk (DPDK peer)"];
        for (int c = 1; c <= 4; c++)
        {
            var measured = rows.Where(r => r[c] > 0).ToList();
            var s = plot.Add.Scatter(measured.Select(r => Math.Log10(r[0])).ToArray(), measured.Select(r => 1000 / r[c]).ToArray());
            s.LegendText = names[c - 1];
            if (c > 2) s.LinePattern = LinePattern.Dashed;
        }
        LogTicks(plot, rows.Select(r => r[0]));
        FromZero(plot);
        Save(plot, "IPv4 LPM lookups vs prefix count (uniform traffic)", "prefixes", "M lookups/s", png);
    }

    /// <summary>Rewrites conntrack.csv from ConntrackBenchmarks' BenchmarkDotNet report (Method, FillPercent, Mean).</summary>
    private static void ImportConntrack(string report, string dataDir)
    {
        var lines = File.ReadAllLines(report);
        var header = SplitCsv(lines[0]);
        int method = Array.IndexOf(header, "Method"), fill = Array.IndexOf(header, "FillPercent"), mean = Array.IndexOf(header, "Mean");
        var ns = new Dictionary<(string, string), double>();
        foreach (var line in lines.Skip(1))
        {
            var f = SplitCsv(line);
            var m = f[mean].Replace(",", "").Split(' ');
            double value = double.Parse(m[0], Ci) * (m.Length > 1 && m[1] == "us" || m.Length > 1 && m[1] == "μs" ? 1000 : 1);
            ns[(f[method], f[fill])] = value;
        }
        var b = new StringBuilder("fill,table_ns,dictionary_ns,concurrent_ns\n");
        foreach (var f in ns.Keys.Select(k => k.Item2).Distinct().OrderBy(x => int.Parse(x, Ci)))
            b.AppendLine(string.Create(Ci, $"{f},{ns[("TableLookupHit", f)]},{ns[("DictionaryLookupHit", f)]},{ns[("ConcurrentLookupHit", f)]}"));
        File.WriteAllText(Path.Combine(dataDir, "conntrack.csv"), b.ToString());
    }

    private static string[] SplitCsv(string line)
    {
        var fields = new List<string>();
        var cur = new StringBuilder();
        bool quoted = false;
        foreach (char ch in line)
        {
            if (ch == '"') quoted = !quoted;
            else if (ch == ',' && !quoted)
            {
                fields.Add(cur.ToString());
                cur.Clear();
            }
            else cur.Append(ch);
        }
        fields.Add(cur.ToString());
        return fields.ToArray();
    }
}
