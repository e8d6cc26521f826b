using System.Runtime.InteropServices;
using FastPath.DataPlane.Packets;
using FastPath.DataPlane.Pipeline;
using k8s.Models;

namespace FastPath.ControlPlane.Cluster;

/// <summary>A port of an EndpointSlice as Services read it: name, protocol number and port (null: every port).</summary>
public readonly record struct SlicePort(string? Name, byte Protocol, int? Port);

/// <summary>
/// One endpoint of an EndpointSlice as the Service compiler reads it: its addresses (a run of
/// <see cref="EndpointSliceRecord.Addresses"/>) and conditions (null = unset, as the API leaves them); its node and
/// hints are in the record's arrays beside, so this holds no reference and the array lives outside the ephemeral heap.
/// </summary>
public readonly record struct SliceEndpoint(int FirstAddress, int AddressCount, bool? Ready, bool? Serving, bool? Terminating);

/// <summary>An endpoint's topology hints (hints.forNodes, hints.forZones names; null when none).</summary>
public sealed record EndpointHints(string[]? Nodes, string[]? Zones);

/// <summary>
/// An EndpointSlice in force as the control plane keeps it: only what the Service compiler reads (the Service it
/// belongs to, address type, ports, each endpoint's addresses, node, conditions and hints), not the KubernetesClient
/// model. A slice of 10 endpoints is ~3.5 KB of model objects (a list, strings and condition objects per endpoint) and
/// ~0.7 KB as a record; every EndpointSlice change keeps its new version alive until the next collection copies it,
/// so what a slice keeps is what an ephemeral collection under churn copies per change (issue 20: the EndpointSlice
/// change's max was one gen0 collection promoting 13 MiB). Addresses are parsed once, on arrival; the endpoint and
/// address arrays hold no references and are allocated with <see cref="LongLived"/>, so a collection of the young
/// generations does not copy them: what it copies of a new slice is this object, its node names and a few strings.
/// </summary>
public sealed class EndpointSliceRecord : IObjectOrigin
{
    private EndpointSliceRecord(string ns, string name, string file, int line)
    {
        Namespace = ns;
        Name = name;
        File = file;
        Line = line;
    }

    public string Namespace { get; }
    public string Name { get; }
    public string File { get; }
    public int Line { get; }
    /// <summary>The kubernetes.io/service-name label, or null (a slice of no Service).</summary>
    public string? Service { get; private init; }
    /// <summary>addressType: "IPv4", "IPv6", "FQDN" (or what the slice said).</summary>
    public string? AddressType { get; private init; }
    public SlicePort[] Ports { get; private init; } = [];
    public SliceEndpoint[] Endpoints { get; private init; } = [];
    /// <summary>Per endpoint: nodeName (the Node's own string when the Node is known), or null.</summary>
    public string?[] NodeNames { get; private init; } = [];
    /// <summary>Per endpoint: its hints, or null; null for the whole slice when no endpoint has any (the usual case).</summary>
    public EndpointHints?[]? Hints { get; private init; }
    /// <summary>Every endpoint's parsed addresses, endpoint after endpoint (text that is not an address is left out).</summary>
    public IpAddr[] Addresses { get; private init; } = [];

    public ObjectKey Key => new("EndpointSlice", Namespace, Name);
    public string Label => $"EndpointSlice {Namespace}/{Name}";
    public string QualifiedName => $"{Namespace}/{Name}";

    /// <summary>The addresses of endpoint <paramref name="endpoint"/>.</summary>
    public ReadOnlySpan<IpAddr> AddressesOf(in SliceEndpoint endpoint) => Addresses.AsSpan(endpoint.FirstAddress, endpoint.AddressCount);

    /// <param name="nodeName">Maps spec nodeName text to a string already kept (the Node's own name), so slices share
    /// the Nodes' strings; null keeps the slice's.</param>
    public static EndpointSliceRecord From(ClusterObject<V1EndpointSlice> slice, Func<string, string?>? nodeName = null)
    {
        var v = slice.Value;
        var endpoints = v.Endpoints ?? [];
        var records = LongLived.Array<SliceEndpoint>(endpoints.Count);
        var nodes = endpoints.Count == 0 ? [] : new string?[endpoints.Count];
        EndpointHints?[]? hints = null;
        int addressCount = 0;
        foreach (var e in endpoints) addressCount += e?.Addresses?.Count ?? 0;
        var addresses = new List<IpAddr>(addressCount);
        for (int i = 0; i < records.Length; i++)
        {
            var e = endpoints[i];
            int first = addresses.Count;
            foreach (var a in e?.Addresses ?? [])
                if (IpAddr.TryParse(a, out var ip)) addresses.Add(ip);
            nodes[i] = e?.NodeName is { } n ? nodeName?.Invoke(n) ?? n : null;
            records[i] = new SliceEndpoint(first, addresses.Count - first, e?.Conditions?.Ready, e?.Conditions?.Serving, e?.Conditions?.Terminating);
            if (Names(e?.Hints?.ForNodes?.Select(h => h.Name)) is var forNodes && Names(e?.Hints?.ForZones?.Select(h => h.Name)) is var forZones
                && (forNodes is not null || forZones is not null))
                (hints ??= new EndpointHints?[records.Length])[i] = new EndpointHints(forNodes, forZones);
        }
        return new EndpointSliceRecord(slice.Namespace ?? v.Metadata?.NamespaceProperty ?? "default", slice.Name, slice.File, slice.Line)
        {
            Service = v.Metadata?.Labels is { } l && l.TryGetValue(Compile.ServiceCompiler.ServiceNameLabel, out var service) ? service : null,
            AddressType = v.AddressType switch { "IPv4" => "IPv4", "IPv6" => "IPv6", var other => other }, // the literals: one string for every slice
            Ports = v.Ports is { Count: > 0 } ports ? [.. ports.Select(p => new SlicePort(p.Name, ClusterValidator.ProtocolNumber(p.Protocol), p.Port))] : [],
            Endpoints = records,
            NodeNames = nodes,
            Hints = hints,
            Addresses = LongLived.Copy<IpAddr>(CollectionsMarshal.AsSpan(addresses)),
        };
    }

    private static string[]? Names(IEnumerable<string>? names) => names?.ToArray() is { Length: > 0 } array ? array : null;

    /// <summary>
    /// The kept fields as a model object (for <see cref="ClusterState"/> views: checks, tests, a full recompile); fields
    /// the control plane does not read (hostname, targetRef, zone, labels other than the Service's) are not there.
    /// </summary>
    public ClusterObject<V1EndpointSlice> ToObject()
    {
        var slice = new V1EndpointSlice
        {
            ApiVersion = "discovery.k8s.io/v1",
            Kind = "EndpointSlice",
            Metadata = new V1ObjectMeta
            {
                Name = Name,
                NamespaceProperty = Namespace,
                Labels = Service is null ? null : new Dictionary<string, string> { [Compile.ServiceCompiler.ServiceNameLabel] = Service },
            },
            AddressType = AddressType,
            Ports = [.. Ports.Select(p => new Discoveryv1EndpointPort { Name = p.Name, Port = p.Port, Protocol = PodRecord.ProtocolName(p.Protocol) })],
            Endpoints = [.. Endpoints.Select((e, i) => new V1Endpoint
            {
                Addresses = [.. Addresses.AsSpan(e.FirstAddress, e.AddressCount).ToArray().Select(a => a.ToString())],
                NodeName = NodeNames[i],
                Conditions = e.Ready is null && e.Serving is null && e.Terminating is null ? null
                    : new V1EndpointConditions { Ready = e.Ready, Serving = e.Serving, Terminating = e.Terminating },
                Hints = Hints?[i] is not { } h ? null : new V1EndpointHints
                {
                    ForNodes = h.Nodes?.Select(n => new V1ForNode { Name = n }).ToList(),
                    ForZones = h.Zones?.Select(z => new V1ForZone { Name = z }).ToList(),
                },
            })],
        };
        return new ClusterObject<V1EndpointSlice>(slice, "EndpointSlice", Namespace, Name, File, Line);
    }
}
