using System.Globalization;
using System.Text.Json;
using FastPath.DataPlane.Pipeline;
using FastPath.DataPlane.Telemetry;
using FastPath.Metrics;

namespace FastPath.Replay;

/// <summary>What a replay did: packets per port, drops per reason, time and rate. Written as summary.json and printed for people.</summary>
public sealed record ReplaySummary(string Node, string[] Inputs, ForwardingSnapshot Snapshot, PortCounters Counters,
    long PacketsIn, long PacketsOut, TimeSpan Elapsed)
{
    /// <summary>Ports that left the node during the replay (pods deleted by --changes), with their last counts.</summary>
    public IReadOnlyList<RetiredPort> Retired { get; init; } = [];
    /// <summary>Conntrack, per-Service and control-plane figures (written after drops).</summary>
    public NodeMetrics? Metrics { get; init; }
    /// <summary>Packets dropped no-route for want of any route, IPv4 and IPv6 (<see cref="Engine.NoGatewayDrops"/>).</summary>
    public long[] NoGatewayDrops { get; init; } = new long[2];

    /// <summary>
    /// For each family whose packets found no route at all: which setting would have given them one. Only a node
    /// without a default route for the family drops that way (cluster and service CIDRs are always routed), and a
    /// MAC alone routes both families, so what is missing is an address of that family in uplinkGateway and the MAC.
    /// </summary>
    public IEnumerable<(string Family, long Packets, string Missing)> MissingGateways()
    {
        for (int f = 0; f < 2; f++)
            if (NoGatewayDrops[f] > 0)
            {
                string family = f == 0 ? "IPv4" : "IPv6";
                yield return (family.ToLowerInvariant(), NoGatewayDrops[f],
                    $"the FastPathConfiguration has no {family} address in uplinkGateway and no uplinkGatewayMAC: off-cluster {family} packets have no default route");
            }
    }

    public double PacketsPerSecond => Elapsed.TotalSeconds > 0 ? PacketsIn / Elapsed.TotalSeconds : 0;

    public long Dropped => Enumerable.Range(1, DropReasons.Count - 1).Sum(r => Drops((DropReason)r));

    private long Drops(DropReason reason) => Counters.Drops(reason) + Retired.Sum(p => p.Drops[(int)reason]);

    public void WriteJson(Utf8JsonWriter w)
    {
        w.WriteStartObject();
        w.WriteString("node", Node);
        w.WriteStartArray("inputs");
        foreach (var i in Inputs) w.WriteStringValue(i);
        w.WriteEndArray();
        w.WriteNumber("packets_in", PacketsIn);
        w.WriteNumber("packets_out", PacketsOut);
        w.WriteNumber("packets_dropped", Dropped);
        w.WriteStartObject("ports");
        for (int p = 0; p < Snapshot.PortCount; p++)
        {
            w.WriteStartObject(Snapshot.Ports[p].Name);
            w.WriteNumber("rx_packets", Counters.RxPackets(p));
            w.WriteNumber("rx_bytes", Counters.RxBytes(p));
            w.WriteNumber("tx_packets", Counters.TxPackets(p));
            w.WriteNumber("tx_bytes", Counters.TxBytes(p));
            w.WriteStartObject("drops");
            for (int r = 1; r < DropReasons.Count; r++)
                if (Counters.Drops(p, (DropReason)r) is var n and > 0) w.WriteNumber(DropReasons.Name((DropReason)r), n);
            w.WriteEndObject();
            w.WriteEndObject();
        }
        foreach (var retired in Retired)
        {
            w.WriteStartObject(retired.Name);
            w.WriteNumber("rx_packets", retired.RxPackets);
            w.WriteNumber("rx_bytes", retired.RxBytes);
            w.WriteNumber("tx_packets", retired.TxPackets);
            w.WriteNumber("tx_bytes", retired.TxBytes);
            w.WriteStartObject("drops");
            for (int r = 1; r < DropReasons.Count; r++)
                if (retired.Drops[r] is var n and > 0) w.WriteNumber(DropReasons.Name((DropReason)r), n);
            w.WriteEndObject();
            w.WriteBoolean("removed", true);
            w.WriteEndObject();
        }
        w.WriteEndObject();
        w.WriteStartObject("drops");
        for (int r = 1; r < DropReasons.Count; r++)
            if (Drops((DropReason)r) is var n and > 0) w.WriteNumber(DropReasons.Name((DropReason)r), n);
        w.WriteEndObject();
        var missing = MissingGateways().ToList();
        if (missing.Count > 0)
        {
            w.WriteStartObject("no_gateway");
            foreach (var (family, packets, why) in missing)
            {
                w.WriteStartObject(family);
                w.WriteNumber("packets", packets);
                w.WriteString("missing", why);
                w.WriteEndObject();
            }
            w.WriteEndObject();
        }
        Metrics?.WriteJson(w);
        w.WriteNumber("elapsed_seconds", Math.Round(Elapsed.TotalSeconds, 6));
        w.WriteNumber("packets_per_second", Math.Round(PacketsPerSecond, 1));
        w.WriteEndObject();
    }

    public void Print(TextWriter o, string outDir, IEnumerable<string> files)
    {
        var ci = CultureInfo.InvariantCulture;
        o.WriteLine(string.Format(ci, "replayed {0:N0} packets from {1} capture(s) through node {2} in {3:F3} s ({4:N0} packets/s)",
            PacketsIn, Inputs.Length, Node, Elapsed.TotalSeconds, PacketsPerSecond));
        int width = Math.Max(8, Snapshot.Ports.Max(p => p.Name.Length));
        o.WriteLine($"  {"port".PadRight(width)}  {"in",10}  {"out",10}");
        for (int p = 0; p < Snapshot.PortCount; p++)
        {
            if (Counters.RxPackets(p) == 0 && Counters.TxPackets(p) == 0) continue;
            o.WriteLine(string.Format(ci, "  {0}  {1,10:N0}  {2,10:N0}", Snapshot.Ports[p].Name.PadRight(width), Counters.RxPackets(p), Counters.TxPackets(p)));
        }
        var drops = Enumerable.Range(1, DropReasons.Count - 1)
            .Select(r => (Name: DropReasons.Name((DropReason)r), Count: Drops((DropReason)r)))
            .Where(d => d.Count > 0).ToList();
        o.WriteLine(drops.Count == 0 ? "  drops: none" : "  drops: " + string.Join(", ", drops.Select(d => $"{d.Name} {d.Count:N0}")));
        foreach (var (_, packets, why) in MissingGateways())
            o.WriteLine(string.Format(ci, "  no-route {0:N0}: {1} (set uplinkGateway or uplinkGatewayMAC)", packets, why));
        o.WriteLine($"  wrote {outDir}: {string.Join(", ", files)}");
    }
}
