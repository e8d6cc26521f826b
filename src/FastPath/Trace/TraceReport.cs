using System.Buffers.Binary;
using System.Text.Json;
using FastPath.DataPlane.Conntrack;
using FastPath.DataPlane.Nat;
using FastPath.DataPlane.Packets;
using FastPath.DataPlane.Pipeline;
using FastPath.DataPlane.Routing;
using FastPath.DataPlane.Services;
using FastPath.DataPlane.Telemetry;

namespace FastPath.Trace;

/// <summary>One stage of a trace: a name, a line for people and fields for machines.</summary>
public sealed record TraceStage(string Name, string Summary, IReadOnlyList<KeyValuePair<string, object?>> Fields);

/// <summary>
/// Turns what <see cref="TraceObserver"/> recorded into named stages (ports, Services, prefixes instead of indices),
/// printed as text or JSON. Everything here explains decisions the engine already took; nothing is decided again.
/// </summary>
public sealed class TraceReport
{
    private readonly ForwardingSnapshot _snap;
    private readonly PacketTrace _trace;
    private readonly byte[] _input;
    private readonly byte[] _output;
    private readonly UplinkNeighbors? _neighbors;

    /// <param name="input">The frame as it entered (offsets of <see cref="PacketTrace.Parsed"/> are relative to it).</param>
    /// <param name="output">The frame after processing (offsets of <see cref="PacketTrace.Verdict"/> relative to it).</param>
    /// <param name="neighbors">The engine's uplink neighbour cache, to say what a gateway named by address resolved to.</param>
    public TraceReport(string node, string packet, ForwardingSnapshot snapshot, PacketTrace trace, byte[] input, byte[] output,
        UplinkNeighbors? neighbors = null)
    {
        (Node, Packet, _snap, _trace, _input, _output, _neighbors) = (node, packet, snapshot, trace, input, output, neighbors);
        Stages = BuildStages();
    }

    public string Node { get; }
    public string Packet { get; }
    public IReadOnlyList<TraceStage> Stages { get; }

    public int Egress => _trace.Verdict.EgressPort;
    public DropReason Drop => _trace.Verdict.Drop;

    private List<TraceStage> BuildStages()
    {
        var t = _trace;
        var stages = new List<TraceStage>();
        var parsed = t.Parsed;
        var rejected = parsed.Drop != DropReason.None;
        stages.Add(Stage("parse", rejected ? $"rejected: {DropReasons.Name(parsed.Drop)}" : Describe(_input, parsed),
            ("ok", !rejected), ("reason", rejected ? DropReasons.Name(parsed.Drop) : null), ("bytes", _input.Length)));
        stages.Add(t.Ingress >= 0
            ? Stage("ingress", $"{PortName(t.Ingress)} (port {t.Ingress})", ("port", PortName(t.Ingress)))
            : Stage("ingress", "unknown port", ("port", null)));

        if (t.Decapsulated)
        {
            var inner = t.Inner;
            int start = inner.Offset - parsed.Offset;
            var innerFrame = _input.AsSpan(start, Math.Min(inner.Length, _input.Length - start));
            stages.Add(Stage("decap", $"vxlan vni {t.DecapsulatedVni}, inner {Describe(innerFrame, inner)}", ("vni", (long)t.DecapsulatedVni)));
        }

        if (t.Connection is { } ct) stages.Add(ConntrackStage(ct));
        else if (t.ConntrackMiss is { } miss) stages.Add(Stage("conntrack", $"miss ({Tuple(miss)})", ("hit", false)));

        ServiceStages(stages);
        if (t.Connection is { } c) stages.Add(NatStage(c));

        foreach (var (policy, allowed) in t.Policies)
            stages.Add(Stage("policy", $"{policy}: {(allowed ? "allow" : "deny")}", ("policy", policy), ("allowed", allowed)));

        if (t.Routed) stages.Add(RouteStage());
        else if (t.Verdict.Drop == DropReason.None && t.Verdict.EgressPort >= 0)
            stages.Add(Stage("route", $"local address behind {PortName(t.Verdict.EgressPort)}", ("local", true)));

        if (t.Encapsulated)
        {
            ushort sport = BinaryPrimitives.ReadUInt16BigEndian(_output.AsSpan(t.Verdict.L4Offset));
            stages.Add(Stage("encap", $"vxlan vni {t.TunnelVni} to {IpAddr.FromV4(t.TunnelRemote)} (udp {sport} > {_snap.Node.VxlanPort})",
                ("tunnel", "vxlan"), ("vni", (long)t.TunnelVni), ("remote", IpAddr.FromV4(t.TunnelRemote).ToString()), ("source_port", (long)sport)));
        }

        stages.Add(VerdictStage());
        return stages;
    }

    private TraceStage ConntrackStage(ConntrackEntry ct)
    {
        var t = _trace;
        string kind = ct.NatKind switch { ServiceNat.NatKind => "service", Masquerade.NatKind => "masquerade", _ => "plain" };
        string state = StateName(ct.State);
        string summary = t.ConnectionCreated ? $"new {kind} connection, {state}"
            : t.ConnectionRelated ? $"ICMP error related to a {kind} connection ({state})"
            : $"hit, {(t.ConnectionIsReply ? "reply" : "original")} direction, {kind} connection, {state}{(ct.Assured ? ", assured" : "")}";
        return Stage("conntrack", summary, ("hit", !t.ConnectionCreated), ("created", t.ConnectionCreated), ("related", t.ConnectionRelated),
            ("direction", t.ConnectionIsReply ? "reply" : "original"), ("kind", kind), ("state", state), ("assured", ct.Assured),
            ("original", Tuple(ct.Original)), ("reply", Tuple(ct.Reply)));
    }

    private void ServiceStages(List<TraceStage> stages)
    {
        var t = _trace;
        var services = _snap.Services;
        int frontend = t.Frontend;
        bool fromConntrack = false;
        if (frontend < 0 && t.Connection is { NatKind: ServiceNat.NatKind } sc
            && services.Lookup(sc.Original.Destination, sc.Original.DestinationPort, sc.Original.Protocol) is var tracked and >= 0)
        {
            frontend = tracked;
            fromConntrack = true;
        }
        if (frontend < 0) return;
        var fe = services.Frontend(frontend);
        stages.Add(Stage("service", $"{fe.Name} {Endpoint(fe.Address, fe.Port)}/{ProtocolName(fe.Protocol)}, {fe.Backends.Count} backend(s): "
            + (fe.Backends.Count == 0 ? "none" : string.Join(", ", fe.Backends.Select(b => Endpoint(b.Address, b.Port))))
            + $" (eligible: {fe.Eligibility})",
            ("frontend", fe.Name), ("address", Endpoint(fe.Address, fe.Port)), ("protocol", ProtocolName(fe.Protocol)),
            ("backends", fe.Backends.Select(b => Endpoint(b.Address, b.Port)).ToArray()), ("eligible", fe.Eligibility)));
        if (t.Backend is { } b)
        {
            string chosen = Endpoint(b.Address, b.Port);
            if (t.Choice == BackendChoice.Maglev)
            {
                var maglev = services.Maglev(frontend);
                int slot = maglev.SlotOf(t.FlowHash);
                stages.Add(Stage("backend", $"{chosen} by maglev slot {slot} of {maglev.Size}",
                    ("backend", chosen), ("why", "maglev"), ("slot", (long)slot), ("table_size", (long)maglev.Size)));
            }
            else stages.Add(Stage("backend", $"{chosen} by sessionAffinity ClientIP", ("backend", chosen), ("why", "affinity")));
        }
        else if (fromConntrack && t.Connection is { } c && !t.ConnectionIsReply)
        {
            string kept = Endpoint(c.Reply.Source, c.Reply.SourcePort);
            stages.Add(Stage("backend", $"{kept} kept by conntrack", ("backend", kept), ("why", "conntrack")));
        }
        else if (!fromConntrack)
            stages.Add(Stage("backend", "none chosen", ("backend", null), ("why", null)));
    }

    private TraceStage NatStage(ConntrackEntry c)
    {
        if (_trace.ConnectionRelated)
            return Stage("nat", "ICMP error quote and outer header translated back (RFC 5508 §4.2)", ("related", true));
        bool reply = _trace.ConnectionIsReply;
        var before = reply ? c.Reply : c.Original;
        var after = reply ? c.Original.Reverse() : c.Reply.Reverse();
        var parts = new List<string>();
        if (before.Source != after.Source || before.SourcePort != after.SourcePort)
            parts.Add($"snat {Endpoint(before.Source, before.SourcePort)} -> {Endpoint(after.Source, after.SourcePort)}");
        if (before.Destination != after.Destination || before.DestinationPort != after.DestinationPort)
            parts.Add($"dnat {Endpoint(before.Destination, before.DestinationPort)} -> {Endpoint(after.Destination, after.DestinationPort)}");
        return Stage("nat", parts.Count == 0 ? "none" : string.Join(", ", parts), ("before", Tuple(before)), ("after", Tuple(after)));
    }

    private TraceStage RouteStage()
    {
        var t = _trace;
        if (t.Hop < 0) return Stage("route", $"no route to {t.RouteDestination}", ("destination", t.RouteDestination.ToString()), ("prefix", null));
        var hop = _snap.Routes.NextHops[t.Hop];
        // The longest stated prefix containing the destination that leads to the hop the LPM returned.
        var route = _snap.Routes.Routes
            .Where(r => r.NextHop == hop && r.Prefix.IsV4 == t.RouteDestination.IsV4
                && (t.RouteDestination.Value & IpAddr.PrefixMask(r.Prefix.IsV4, r.Length)) == (r.Prefix.Value & IpAddr.PrefixMask(r.Prefix.IsV4, r.Length)))
            .OrderByDescending(r => r.Length).FirstOrDefault();
        string prefix = $"{route.Prefix}/{route.Length}";
        string via = hop.Kind switch
        {
            NextHopKind.RemoteNode => $"remote node {hop.Underlay} ({hop.Mac})",
            NextHopKind.Uplink when hop.Resolve => $"uplink gateway {hop.Underlay} ({(_neighbors?.Describe(hop.Underlay) is { } mac
                ? $"is-at {mac}, learned by {(hop.Underlay.IsV4 ? "ARP" : "neighbor discovery")}"
                : $"MAC unresolved: {(hop.Underlay.IsV4 ? "ARP" : "neighbor discovery")} on the uplink")})" + (hop.Masquerade ? ", masquerade" : ""),
            NextHopKind.Uplink => $"uplink gateway {hop.Mac}" + (hop.Masquerade ? ", masquerade" : ""),
            NextHopKind.Host => "host",
            _ => "unreachable",
        };
        return Stage("route", $"{prefix} via {via}", ("destination", t.RouteDestination.ToString()), ("prefix", prefix),
            ("next_hop", hop.Kind switch { NextHopKind.RemoteNode => "remote-node", NextHopKind.Uplink => "uplink", NextHopKind.Host => "host", _ => "unreachable" }), ("underlay", hop.Kind == NextHopKind.RemoteNode || hop.Resolve ? hop.Underlay.ToString() : null),
            ("mac", hop.Mac.ToString()), ("masquerade", hop.Masquerade));
    }

    private TraceStage VerdictStage()
    {
        var v = _trace.Verdict;
        string? egress = v.EgressPort >= 0 ? PortName(v.EgressPort) : null;
        string? drop = v.Drop != DropReason.None ? DropReasons.Name(v.Drop) : null;
        if (drop is null)
            return Stage("verdict", $"forwarded to {egress}: {Describe(_output, v)}", ("action", "forward"), ("egress", egress), ("drop", null), ("icmp_error", null));
        if (egress is null) return Stage("verdict", $"dropped: {drop}", ("action", "drop"), ("egress", null), ("drop", drop), ("icmp_error", null));
        string error = Describe(_output, v);
        // A packet that found its gateway unresolved became the ARP request / Neighbor Solicitation.
        if (v.Drop == DropReason.NeighborUnknown)
            return Stage("verdict", $"dropped: {drop}; resolving the gateway, sent to {egress}: {error}", ("action", "drop"), ("egress", egress), ("drop", drop), ("icmp_error", null), ("neighbor_request", error));
        return Stage("verdict", $"dropped: {drop}; sent back to {egress}: {error}", ("action", "drop"), ("egress", egress), ("drop", drop), ("icmp_error", error));
    }

    private string PortName(int port) => (uint)port < (uint)_snap.PortCount ? _snap.Ports[port].Name : $"port {port}";

    private static TraceStage Stage(string name, string summary, params (string Key, object? Value)[] fields) =>
        new(name, summary, fields.Select(f => KeyValuePair.Create(f.Key, f.Value)).ToArray());

    /// <summary>A parsed packet in one line, tcpdump-like.</summary>
    public static string Describe(ReadOnlySpan<byte> frame, in PacketMeta m)
    {
        switch (m.L3)
        {
            case L3Kind.None:
                return frame.Length >= 14 ? $"ethertype 0x{BinaryPrimitives.ReadUInt16BigEndian(frame[12..]):x4}, {frame.Length} bytes" : $"{frame.Length} bytes";
            case L3Kind.Arp:
                var arp = frame[m.L3Offset..];
                return $"arp {(arp[7] == 1 ? "who-has" : "reply")} {IpAddr.ReadV4(arp[24..])} tell {IpAddr.ReadV4(arp[14..])}";
        }
        var src = PacketAddresses.Source(frame, in m);
        var dst = PacketAddresses.Destination(frame, in m);
        string family = m.L3 == L3Kind.Ipv4 ? "ipv4" : "ipv6";
        byte ttl = frame[m.L3Offset + (m.L3 == L3Kind.Ipv4 ? 8 : 7)];
        string proto = ProtocolName(m.IpProtocol);
        bool l4 = (m.Flags & PacketFlags.HasL4) != 0;
        string body;
        if (l4 && m.IpProtocol is IpProtocol.Tcp or IpProtocol.Udp or IpProtocol.Sctp)
        {
            body = $"{proto} {Endpoint(src, m.SourcePort)} > {Endpoint(dst, m.DestinationPort)}";
            if (m.IpProtocol == IpProtocol.Tcp) body += $" [{TcpFlagNames(frame[m.L4Offset + 13])}]";
        }
        else if (l4 && m.IpProtocol is IpProtocol.Icmp or IpProtocol.Icmpv6)
            body = $"{proto} {src} > {dst} type {frame[m.L4Offset]} code {frame[m.L4Offset + 1]}";
        else body = $"{proto} {src} > {dst}";
        return $"{family} {body} {(m.L3 == L3Kind.Ipv4 ? "ttl" : "hlim")} {ttl}, {m.L3Length} bytes";
    }

    private static string TcpFlagNames(byte flags)
    {
        var s = "";
        if ((flags & TcpHeader.Syn) != 0) s += "S";
        if ((flags & TcpHeader.Fin) != 0) s += "F";
        if ((flags & TcpHeader.Rst) != 0) s += "R";
        if ((flags & TcpHeader.Psh) != 0) s += "P";
        if ((flags & TcpHeader.Ack) != 0) s += ".";
        return s;
    }

    public static string ProtocolName(byte protocol) => protocol switch
    {
        IpProtocol.Tcp => "tcp",
        IpProtocol.Udp => "udp",
        IpProtocol.Icmp => "icmp",
        IpProtocol.Icmpv6 => "icmp6",
        IpProtocol.Sctp => "sctp",
        _ => $"proto-{protocol}",
    };

    internal static string StateName(ConntrackState s) => s switch
    {
        ConntrackState.TcpSynSent => "syn-sent",
        ConntrackState.TcpSynRecv => "syn-recv",
        ConntrackState.TcpEstablished => "established",
        ConntrackState.TcpFinWait => "fin-wait",
        ConntrackState.TcpCloseWait => "close-wait",
        ConntrackState.TcpLastAck => "last-ack",
        ConntrackState.TcpTimeWait => "time-wait",
        ConntrackState.TcpClose => "close",
        _ => s.ToString().ToLowerInvariant(),
    };

    public static string Endpoint(IpAddr a, ushort port) => a.IsV4 ? $"{a}:{port}" : $"[{a}]:{port}";

    public static string Tuple(in FlowKey k) => $"{ProtocolName(k.Protocol)} {Endpoint(k.Source, k.SourcePort)} > {Endpoint(k.Destination, k.DestinationPort)}";

    public void WriteText(TextWriter o)
    {
        o.WriteLine($"trace {Packet} through node {Node}");
        foreach (var s in Stages) o.WriteLine($"  {s.Name,-10} {s.Summary}");
    }

    public void WriteJson(Stream stream)
    {
        using var w = new Utf8JsonWriter(stream, new JsonWriterOptions { Indented = true, Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping });
        w.WriteStartObject();
        w.WriteString("node", Node);
        w.WriteString("packet", Packet);
        w.WriteStartArray("stages");
        foreach (var s in Stages)
        {
            w.WriteStartObject();
            w.WriteString("stage", s.Name);
            w.WriteString("summary", s.Summary);
            foreach (var (key, value) in s.Fields) WriteValue(w, key, value);
            w.WriteEndObject();
        }
        w.WriteEndArray();
        var verdict = Stages[^1];
        w.WriteStartObject("verdict");
        foreach (var (key, value) in verdict.Fields) WriteValue(w, key, value);
        w.WriteEndObject();
        w.WriteEndObject();
    }

    private static void WriteValue(Utf8JsonWriter w, string key, object? value)
    {
        switch (value)
        {
            case null: w.WriteNull(key); break;
            case bool b: w.WriteBoolean(key, b); break;
            case int i: w.WriteNumber(key, i); break;
            case long l: w.WriteNumber(key, l); break;
            case string[] list:
                w.WriteStartArray(key);
                foreach (var s in list) w.WriteStringValue(s);
                w.WriteEndArray();
                break;
            default: w.WriteString(key, value.ToString()); break;
        }
    }
}
