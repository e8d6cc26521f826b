using System.Text.Json;
using FastPath.DataPlane.Routing;
using FastPath.DataPlane.Telemetry;
using FastPath.Trace;

namespace FastPath.Diff;

/// <summary>
/// Renders a <see cref="FateDiff"/>: a table for people (one line per flow and kind of change: the flow, its first
/// changed packet, how many packets changed, before → after) or JSON for machines.
/// </summary>
public sealed class DiffReport(FateDiff diff, string node, string before, string after)
{
    public static string KindName(FateChangeKind kind) => kind switch
    {
        FateChangeKind.Denied => "denied",
        FateChangeKind.Allowed => "allowed",
        FateChangeKind.DropReason => "drop-reason",
        FateChangeKind.Backend => "backend",
        FateChangeKind.EgressPort => "egress-port",
        FateChangeKind.NextHop => "next-hop",
        _ => "nat",
    };

    private static string KindTitle(FateChangeKind kind) => kind switch
    {
        FateChangeKind.Denied => "allowed → denied",
        FateChangeKind.Allowed => "denied → allowed",
        FateChangeKind.DropReason => "new drop reason",
        FateChangeKind.Backend => "backend changed",
        FateChangeKind.EgressPort => "egress port changed",
        FateChangeKind.NextHop => "next hop changed",
        _ => "NAT changed",
    };

    public static string FlowName(FlowDiff flow) => flow.HasTuple ? TraceReport.Tuple(flow.Tuple) : "(not IP)";

    public void WriteText(TextWriter o)
    {
        o.WriteLine($"fastpath diff: node {node}, {before} → {after}: {diff.Packets:N0} packets, "
            + (diff.ChangedPackets == 0 ? "no fate changed" : $"{diff.ChangedPackets:N0} changed fate in {diff.ChangedFlows:N0} flow(s)"));
        if (diff.ChangedFlows == 0) return;
        var rows = new List<string[]> { new[] { "FLOW", "FIRST", "PACKETS", "CHANGE" } };
        foreach (var flow in diff.Flows)
        {
            bool firstRow = true;
            foreach (var c in flow.Changes)
            {
                rows.Add([firstRow ? FlowName(flow) : "", c.FirstPacket.ToString(), c.Packets.ToString(), $"{KindTitle(c.Kind)}: {Describe(c)}"]);
                firstRow = false;
            }
        }
        int flowWidth = rows.Max(r => r[0].Length), firstWidth = rows.Max(r => r[1].Length), packetsWidth = rows.Max(r => r[2].Length);
        foreach (var r in rows)
            o.WriteLine($"{r[0].PadRight(flowWidth)}  {r[1].PadLeft(firstWidth)}  {r[2].PadLeft(packetsWidth)}  {r[3]}");
    }

    /// <summary>The change in a few words: the field that changed, before → after.</summary>
    public static string Describe(FateChange c) => c.Kind switch
    {
        FateChangeKind.Backend => $"{Backend(c.Before)} → {Backend(c.After)}" + Also(c),
        FateChangeKind.EgressPort => $"{c.Before.Egress} → {c.After.Egress}",
        FateChangeKind.NextHop => $"{Hop(c.Before.Hop)} → {Hop(c.After.Hop)}",
        FateChangeKind.Nat => $"{TraceReport.Tuple(c.Before.Fate.Translated)} → {TraceReport.Tuple(c.After.Fate.Translated)}",
        _ => $"{Verdict(c.Before)} → {Verdict(c.After)}",
    };

    private static string Also(FateChange c) =>
        string.Equals(c.Before.Egress, c.After.Egress, StringComparison.Ordinal) ? "" : $" (egress {c.Before.Egress} → {c.After.Egress})";

    private static string Backend(SideFate s) =>
        s.Fate.HasBackend ? $"{s.Service} {TraceReport.Endpoint(s.Fate.Backend.Address, s.Fate.Backend.Port)}" : "no Service backend";

    /// <summary>"to PORT" for a forwarded packet, "REASON [by POLICY]" for a dropped one.</summary>
    public static string Verdict(SideFate s)
    {
        if (s.Fate.Forwarded) return $"to {s.Egress}";
        string text = DropReasons.Name(s.Fate.Drop);
        if (s.Fate.Drop == DropReason.PolicyDenied && Policies(s.Fate) is { } policy) text += $" by {policy}";
        return text;
    }

    private static string? Policies(in PacketFate f) => f.Policy is null ? null : f.PolicyCount > 1 ? $"{f.Policy} (+{f.PolicyCount - 1} more)" : f.Policy;

    private static string Hop(NextHop? hop) => hop switch
    {
        null => "no route",
        { Kind: NextHopKind.RemoteNode } h => $"node {h.Underlay}",
        { Kind: NextHopKind.Uplink } h => $"uplink gateway {h.Mac}" + (h.Masquerade ? " (masquerade)" : ""),
        { Kind: NextHopKind.Host } => "host",
        _ => "unreachable",
    };

    public void WriteJson(Utf8JsonWriter w)
    {
        w.WriteStartObject();
        w.WriteString("node", node);
        w.WriteString("before", before);
        w.WriteString("after", after);
        w.WriteNumber("packets", diff.Packets);
        w.WriteNumber("changed_packets", diff.ChangedPackets);
        w.WriteNumber("changed_flows", diff.ChangedFlows);
        w.WriteStartArray("flows");
        foreach (var flow in diff.Flows)
        {
            w.WriteStartObject();
            if (flow.HasTuple)
            {
                w.WriteString("protocol", TraceReport.ProtocolName(flow.Tuple.Protocol));
                w.WriteString("source", TraceReport.Endpoint(flow.Tuple.Source, flow.Tuple.SourcePort));
                w.WriteString("destination", TraceReport.Endpoint(flow.Tuple.Destination, flow.Tuple.DestinationPort));
            }
            w.WriteNumber("first_packet", flow.FirstPacket);
            w.WriteNumber("changed_packets", flow.ChangedPackets);
            w.WriteStartArray("changes");
            foreach (var c in flow.Changes)
            {
                w.WriteStartObject();
                w.WriteString("kind", KindName(c.Kind));
                w.WriteNumber("first_packet", c.FirstPacket);
                w.WriteNumber("packets", c.Packets);
                w.WriteString("summary", Describe(c));
                WriteFate(w, "before", c.Before);
                WriteFate(w, "after", c.After);
                w.WriteEndObject();
            }
            w.WriteEndArray();
            w.WriteEndObject();
        }
        w.WriteEndArray();
        w.WriteEndObject();
    }

    private static void WriteFate(Utf8JsonWriter w, string name, SideFate s)
    {
        var f = s.Fate;
        w.WriteStartObject(name);
        w.WriteString("verdict", f.Forwarded ? "forwarded" : "dropped");
        if (!f.Forwarded) w.WriteString("drop", DropReasons.Name(f.Drop));
        if (s.Egress is { } egress) w.WriteString("egress", egress);
        if (s.Service is { } service) w.WriteString("service", service);
        if (f.HasBackend) w.WriteString("backend", TraceReport.Endpoint(f.Backend.Address, f.Backend.Port));
        if (f.Policy is { } policy)
        {
            w.WriteString("policy", policy);
            w.WriteNumber("policies", f.PolicyCount);
            w.WriteBoolean("policy_allowed", f.PolicyAllowed);
        }
        if (f.RouteHop >= 0) w.WriteString("next_hop", Hop(s.Hop));
        if (f.HasKey && f.Forwarded) w.WriteString("translated", TraceReport.Tuple(f.Translated));
        w.WriteEndObject();
    }
}
