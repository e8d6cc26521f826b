using System.Globalization;
using System.Runtime.InteropServices;
using FastPath.ControlPlane.Cluster;
using FastPath.DataPlane.Packets;
using FastPath.DataPlane.Pipeline;
using FastPath.DataPlane.Services;
using k8s.Models;

namespace FastPath.ControlPlane.Compile;

/// <summary>
/// Services and EndpointSlices → data-plane frontends for one node, the way kube-proxy reads them:
/// <list type="bullet">
/// <item>one frontend per ClusterIP × Service port, plus — for external traffic — per node address × nodePort
/// (NodePort and LoadBalancer), per status.loadBalancer.ingress IP and per externalIP;</item>
/// <item>backends: the ready endpoints (conditions.ready unset counts as ready, per the EndpointSlice API) of the
/// slices labelled kubernetes.io/service-name, of the frontend's family, on the slice port whose name matches the
/// Service port (slice ports carry the resolved targetPort);</item>
/// <item>traffic policy Cluster: the ready endpoints, narrowed by topology hints (<see cref="TopologyMode"/>) and,
/// when none is ready anywhere, the serving-and-terminating ones (KEP-1669), for every frontend;</item>
/// <item>traffic policy Local (internalTrafficPolicy for ClusterIPs, externalTrafficPolicy for external frontends):
/// only this node's endpoints, and when none of them is ready its serving-and-terminating ones (KEP-1669); external
/// Local frontends keep the client address, external Cluster ones SNAT it to the node (masquerade);</item>
/// <item>LoadBalancer ingress IPs with ipMode: Proxy (KEP-1860) get no frontend: packets to them leave for the load
/// balancer instead of being short-circuited on the node;</item>
/// <item>loadBalancerSourceRanges restrict the LoadBalancer ingress frontends;</item>
/// <item>sessionAffinity: ClientIP pins a client to its backend until idle for timeoutSeconds.</item>
/// </list>
/// Headless and ExternalName Services get no frontend.
/// </summary>
public static class ServiceCompiler
{
    public const string ServiceNameLabel = "kubernetes.io/service-name";

    /// <summary>The Node label kube-proxy reads the node's zone from (zone hints are matched against it).</summary>
    public const string ZoneLabel = "topology.kubernetes.io/zone";

    /// <summary>The zone of a Node (its topology.kubernetes.io/zone label), or null.</summary>
    public static string? ZoneOf(V1Node? node) =>
        node?.Metadata?.Labels is { } l && l.TryGetValue(ZoneLabel, out var zone) && zone.Length > 0 ? zone : null;

    /// <summary>One Service's frontends, from its EndpointSlices (those labelled with its name, in its namespace).</summary>
    public static List<ServiceFrontend> ServiceFrontends(ClusterObject<V1Service> svc, IReadOnlyList<EndpointSliceRecord> slices,
        string nodeName, IReadOnlyList<IpAddr> nodeAddresses, string? nodeZone = null)
    {
        var frontends = new List<ServiceFrontend>();
        var spec = svc.Value.Spec;
        if (spec is null || spec.Type == "ExternalName") return frontends;
        var clusterIps = Addresses(spec.ClusterIPs is { Count: > 0 } ips ? ips : spec.ClusterIP is { } one ? [one] : []);
        if (clusterIps.Count == 0) return frontends; // headless ("None") or not allocated
        bool internalLocal = spec.InternalTrafficPolicy == "Local";
        bool externalLocal = spec.ExternalTrafficPolicy == "Local";
        IReadOnlyList<(IpAddr, int)> sourceRanges = spec.LoadBalancerSourceRanges is { Count: > 0 } declared
            ? declared.Select(r => Cidr.TryParse(r, out var c) ? ((IpAddr, int)?)(c.Network, c.Length) : null).OfType<(IpAddr, int)>().ToList()
            : [];
        // KEP-1860: an ingress IP with ipMode Proxy belongs to a load balancer that proxies (it rewrites the
        // destination itself), so kube-proxy does not capture it on the node; VIP (the default) is captured.
        var lbIps = spec.Type == "LoadBalancer" && svc.Value.Status?.LoadBalancer?.Ingress is { Count: > 0 } ingress
            ? Addresses(ingress.Where(i => i.IpMode != "Proxy").Select(i => i.Ip).OfType<string>())
            : [];
        var externalIps = spec.ExternalIPs is { Count: > 0 } external ? Addresses(external) : [];
        // sessionAffinity: ClientIP, idle timeout from sessionAffinityConfig (API default 10800 s).
        long affinity = spec.SessionAffinity == "ClientIP"
            ? (spec.SessionAffinityConfig?.ClientIP?.TimeoutSeconds ?? 10800) * 1_000_000_000L
            : 0;

        foreach (var port in spec.Ports ?? [])
        {
            byte protocol = Protocol(port.Protocol);
            string name = $"{svc.QualifiedName}:{port.Name ?? port.Port.ToString(CultureInfo.InvariantCulture)}";
            // Each family's candidates are read once per port; each (family, policy) selection is made once and its
            // backend list shared by the frontends that use it (ClusterIP, NodePorts, LoadBalancer IPs).
            List<Candidate> candidatesV4 = Candidates(slices, port, v4: true, null), candidatesV6 = Candidates(slices, port, v4: false, null);
            ServiceBackend[] listedV4 = Distinct(candidatesV4), listedV6 = Distinct(candidatesV6);
            var selections = new EndpointSelection?[4];
            EndpointSelection Backends(bool v4, bool local)
            {
                ref var chosen = ref selections[(v4 ? 0 : 2) + (local ? 1 : 0)];
                var all = v4 ? candidatesV4 : candidatesV6;
                return chosen ??= local ? LocalEndpoints(all.FindAll(c => c.NodeName == nodeName), nodeName)
                                        : ClusterEndpoints(all, nodeName, nodeZone);
            }

            foreach (var vip in clusterIps)
                frontends.Add(Frontend(name, vip, (ushort)port.Port, protocol, Backends(vip.IsV4, internalLocal)) with
                {
                    LocalPolicy = internalLocal,
                    AffinityTimeout = affinity,
                    Retained = vip.IsV4 ? listedV4 : listedV6,
                });

            ServiceFrontend External(IpAddr address, int number, bool ranges) =>
                Frontend(name, address, (ushort)number, protocol, Backends(address.IsV4, externalLocal)) with
                {
                    Retained = address.IsV4 ? listedV4 : listedV6,
                    Masquerade = !externalLocal,
                    LocalPolicy = externalLocal,
                    AffinityTimeout = affinity,
                    SourceRanges = ranges ? sourceRanges : [],
                };

            if (spec.Type is "NodePort" or "LoadBalancer" && port.NodePort is int nodePort and > 0)
                foreach (var address in nodeAddresses) frontends.Add(External(address, nodePort, ranges: false));
            foreach (var ip in lbIps) frontends.Add(External(ip, port.Port, ranges: true));
            foreach (var ip in externalIps) frontends.Add(External(ip, port.Port, ranges: false));
        }
        return frontends;
    }

    /// <summary>A Service's health check node port and this node's count of its ready local endpoints.</summary>
    public sealed record HealthCheckPort(string Namespace, string Name, int Port, int LocalEndpoints);

    /// <summary>
    /// The health check node ports kube-proxy serves on this node (pkg/proxy/healthcheck/service_health.go): one per
    /// Service of type LoadBalancer with externalTrafficPolicy Local and spec.healthCheckNodePort set, counting the
    /// ready endpoints on this node over the Service's ports (kube-proxy's LocalReadyEndpoints: serving-but-terminating
    /// ones do not count, so a load balancer drains a node whose pods are going away). Like one family's kube-proxy,
    /// endpoints of the Service's primary family (its first clusterIP's) are counted, once per Service port.
    /// </summary>
    public static List<HealthCheckPort> HealthCheckPorts(ClusterState state, string nodeName)
    {
        var ports = new List<HealthCheckPort>();
        var slicesByService = state.EndpointSlices.Select(s => EndpointSliceRecord.From(s)).Where(s => s.Service is not null)
            .ToLookup(s => (s.Namespace, s.Service!));
        foreach (var svc in state.Services)
        {
            var spec = svc.Value.Spec;
            if (spec is not { Type: "LoadBalancer", ExternalTrafficPolicy: "Local", HealthCheckNodePort: int port and > 0 }) continue;
            string ns = svc.Value.Metadata?.NamespaceProperty ?? "default", name = svc.Value.Metadata?.Name ?? "";
            var slices = slicesByService[(ns, name)].ToList();
            bool v4 = !(spec.ClusterIPs is { Count: > 0 } ips ? ips[0] : spec.ClusterIP ?? "").Contains(':');
            int local = 0;
            foreach (var servicePort in spec.Ports ?? [])
                local += Candidates(slices, servicePort, v4, nodeName).Where(c => IsReady(c.Endpoint)).Select(c => (c.Slice, c.Index)).Distinct().Count();
            ports.Add(new HealthCheckPort(ns, name, port, local));
        }
        return ports;
    }

    /// <summary>The texts that are IP addresses, each once, in order.</summary>
    private static List<IpAddr> Addresses(IEnumerable<string> texts)
    {
        var addresses = new List<IpAddr>();
        foreach (var t in texts)
            if (IpAddr.TryParse(t, out var a) && !addresses.Contains(a)) addresses.Add(a);
        return addresses;
    }

    private static ServiceFrontend Frontend(string name, IpAddr address, ushort port, byte protocol, EndpointSelection selection) =>
        new(name, address, port, protocol, selection.Backends) { Eligibility = selection.Why };

    /// <summary>The backends a frontend balances over, and why they are the eligible ones (shown by trace).</summary>
    private readonly record struct EndpointSelection(ServiceBackend[] Backends, string Why);

    // The EndpointSlice conditions as kube-proxy reads them (pkg/proxy/endpointslicecache.go): ready and serving
    // default to true when unset, terminating to false.
    private static bool IsReady(in SliceEndpoint e) => e.Ready != false;
    private static bool IsServingTerminating(in SliceEndpoint e) => e.Serving != false && e.Terminating == true;

    /// <summary>
    /// Traffic policy Local (kube-proxy's CategorizeEndpoints, localEndpoints): this node's ready endpoints, else its
    /// serving-and-terminating ones (KEP-1669), so the node keeps serving during a rolling update's last moments.
    /// Topology hints do not apply (a Local policy is already as close as it gets).
    /// </summary>
    private static EndpointSelection LocalEndpoints(List<Candidate> local, string nodeName)
    {
        var ready = local.Where(c => IsReady(c.Endpoint)).ToList();
        if (ready.Count > 0) return new(Distinct(ready), $"ready on node {nodeName} (traffic policy Local)");
        var terminating = local.Where(c => IsServingTerminating(c.Endpoint)).ToList();
        return terminating.Count > 0
            ? new(Distinct(terminating), $"terminating fallback on node {nodeName}: no local endpoint is ready (KEP-1669, traffic policy Local)")
            : new([], $"none on node {nodeName} (traffic policy Local)");
    }

    /// <summary>
    /// Traffic policy Cluster (kube-proxy's CategorizeEndpoints, clusterEndpoints): the ready endpoints available for
    /// the topology mode the hints select; when none is ready, the serving-and-terminating ones available for it
    /// (KEP-1669: "all endpoints terminating and traffic policy is Cluster").
    /// </summary>
    private static EndpointSelection ClusterEndpoints(List<Candidate> all, string nodeName, string? zone)
    {
        var mode = TopologyMode(all, nodeName, zone, out string topology);
        bool Available(Candidate c) => mode switch
        {
            Topology.Node => c.Hints?.Nodes?.Contains(nodeName) == true,
            Topology.Zone => c.Hints?.Zones?.Contains(zone) == true,
            _ => true,
        };
        var ready = new List<Candidate>(all.Count);
        foreach (var c in all)
            if (IsReady(c.Endpoint) && Available(c)) ready.Add(c);
        if (ready.Count > 0) return new(Distinct(ready), topology.Length == 0 ? "ready" : "ready" + topology);
        // No ready endpoint for the topology means none is ready anywhere: the mode falls back to "all" when the
        // hints name no ready endpoint for this node or zone.
        var terminating = all.Where(c => IsServingTerminating(c.Endpoint) && Available(c)).ToList();
        return terminating.Count > 0
            ? new(Distinct(terminating), $"terminating fallback: no endpoint is ready (KEP-1669){topology}")
            : new([], "none ready or serving-and-terminating");
    }

    private enum Topology { All, Zone, Node }

    /// <summary>
    /// kube-proxy's topologyModeFromHints (pkg/proxy/topology.go, Kubernetes 1.33): the EndpointSlice controller
    /// writes hints for spec.trafficDistribution (PreferClose / PreferSameZone → hints.forZones, PreferSameNode →
    /// hints.forNodes too) and kube-proxy follows the hints, not the field. Node hints are used when every ready
    /// endpoint has one and one names this node; else zone hints when every ready endpoint has one and one names
    /// this node's zone; else all endpoints. <paramref name="why"/> says which, for trace.
    /// </summary>
    private static Topology TopologyMode(List<Candidate> all, string nodeName, string? zone, out string why)
    {
        why = "";
        if (!all.Exists(static c => c.Hints is not null))
            return Topology.All; // no hints at all (the common case): no ready list to build
        var ready = all.Where(c => IsReady(c.Endpoint)).DistinctBy(c => (c.Slice, c.Index)).Select(c => c.Hints).ToList();
        bool allNodeHints = ready.All(h => h?.Nodes is not null);
        bool allZoneHints = ready.All(h => h?.Zones is not null);
        bool anyHints = ready.Any(h => h is not null);
        why = "";
        if (ready.Count == 0 || !anyHints) return Topology.All;
        if (allNodeHints && ready.Any(h => h!.Nodes!.Contains(nodeName)))
        {
            why = $", hinted for node {nodeName}";
            return Topology.Node;
        }
        if (allZoneHints && zone is not null && ready.Any(h => h!.Zones!.Contains(zone)))
        {
            why = $", hinted for zone {zone}";
            return Topology.Zone;
        }
        why = !allZoneHints ? ", hints ignored: an endpoint has no zone hint"
            : zone is null ? $", hints ignored: node {nodeName} has no {ZoneLabel} label"
            : $", hints ignored: none for zone {zone}";
        return Topology.All;
    }

    /// <summary>The candidates' backends, each once, in order (a set only for long lists), as the array the compiled
    /// frontend keeps (<see cref="CompiledFrontend"/> takes an array as it is instead of copying it).</summary>
    private static ServiceBackend[] Distinct(List<Candidate> candidates)
    {
        var backends = new List<ServiceBackend>(candidates.Count);
        var seen = candidates.Count > 32 ? new HashSet<ServiceBackend>(candidates.Count) : null;
        foreach (var c in candidates)
        {
            var b = new ServiceBackend(c.Address, c.Port);
            if (seen is not null ? seen.Add(b) : !backends.Contains(b)) backends.Add(b);
        }
        return LongLived.Copy<ServiceBackend>(CollectionsMarshal.AsSpan(backends));
    }

    /// <summary>An address of endpoint <paramref name="Index"/> of <paramref name="Slice"/>.</summary>
    private readonly record struct Candidate(EndpointSliceRecord Slice, int Index, IpAddr Address, ushort Port)
    {
        public SliceEndpoint Endpoint => Slice.Endpoints[Index];
        public string? NodeName => Slice.NodeNames[Index];
        public EndpointHints? Hints => Slice.Hints?[Index];
    }

    /// <param name="localNode">Only endpoints on this node (traffic policy Local), or null for all.</param>
    private static List<Candidate> Candidates(IEnumerable<EndpointSliceRecord> slices, V1ServicePort port, bool v4, string? localNode)
    {
        var candidates = new List<Candidate>();
        foreach (var slice in slices)
        {
            if (slice.AddressType is not ("IPv4" or "IPv6") || (slice.AddressType == "IPv4") != v4) continue;
            if (SlicePort(slice, port) is not int target) continue;
            for (int i = 0; i < slice.Endpoints.Length; i++)
            {
                if (localNode is not null && slice.NodeNames[i] != localNode) continue;
                foreach (var ip in slice.AddressesOf(slice.Endpoints[i]))
                    if (ip.IsV4 == v4) candidates.Add(new(slice, i, ip, (ushort)target));
            }
        }
        return candidates;
    }

    /// <summary>The slice's port for the Service port (same name and protocol): the resolved targetPort, or null.</summary>
    private static int? SlicePort(EndpointSliceRecord slice, V1ServicePort port)
    {
        byte protocol = Protocol(port.Protocol);
        foreach (var p in slice.Ports)
            if ((p.Name ?? "") == (port.Name ?? "") && p.Protocol == protocol) return p.Port;
        return null;
    }

    private static byte Protocol(string? name) => ClusterValidator.ProtocolNumber(name);
}
