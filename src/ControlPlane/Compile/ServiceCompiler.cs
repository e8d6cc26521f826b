using System.Globalization;
using FastPath.ControlPlane.Cluster;
using FastPath.DataPlane.Packets;
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
/// <item>traffic policy Local (internalTrafficPolicy for ClusterIPs, externalTrafficPolicy for external frontends):
/// only this node's endpoints, and when none of them is ready its serving-and-terminating ones (KEP-1669); external
/// Local frontends keep the client address, external Cluster ones SNAT it to the node (masquerade);</item>
/// <item>loadBalancerSourceRanges restrict the LoadBalancer ingress frontends;</item>
/// <item>sessionAffinity: ClientIP pins a client to its backend until idle for timeoutSeconds.</item>
/// </list>
/// Headless and ExternalName Services get no frontend.
/// </summary>
public static class ServiceCompiler
{
    public const string ServiceNameLabel = "kubernetes.io/service-name";

    public static List<ServiceFrontend> Frontends(ClusterState state, string nodeName, IReadOnlyList<IpAddr> nodeAddresses)
    {
        var frontends = new List<ServiceFrontend>();
        foreach (var svc in state.Services)
        {
            var spec = svc.Value.Spec;
            if (spec is null || spec.Type == "ExternalName") continue;
            var clusterIps = Addresses(spec.ClusterIPs is { Count: > 0 } ips ? ips : spec.ClusterIP is { } one ? [one] : []);
            if (clusterIps.Count == 0) continue; // headless ("None") or not allocated
            var slices = state.EndpointSlices.Where(s => s.Namespace == svc.Namespace
                && s.Value.Metadata?.Labels is { } l && l.TryGetValue(ServiceNameLabel, out var name) && name == svc.Name).ToList();
            bool internalLocal = spec.InternalTrafficPolicy == "Local";
            bool externalLocal = spec.ExternalTrafficPolicy == "Local";
            var sourceRanges = (spec.LoadBalancerSourceRanges ?? []).Select(r => Cidr.TryParse(r, out var c) ? ((IpAddr, int)?)(c.Network, c.Length) : null)
                .OfType<(IpAddr, int)>().ToList();
            var lbIps = spec.Type == "LoadBalancer"
                ? Addresses((svc.Value.Status?.LoadBalancer?.Ingress ?? []).Select(i => i.Ip).OfType<string>())
                : [];
            var externalIps = Addresses(spec.ExternalIPs ?? []);
            // sessionAffinity: ClientIP, idle timeout from sessionAffinityConfig (API default 10800 s).
            long affinity = spec.SessionAffinity == "ClientIP"
                ? (spec.SessionAffinityConfig?.ClientIP?.TimeoutSeconds ?? 10800) * 1_000_000_000L
                : 0;

            foreach (var port in spec.Ports ?? [])
            {
                byte protocol = Protocol(port.Protocol);
                string name = $"{svc.QualifiedName}:{port.Name ?? port.Port.ToString(CultureInfo.InvariantCulture)}";
                List<ServiceBackend> Backends(bool v4, bool local) => BackendsFor(slices, port, v4, local ? nodeName : null);

                foreach (var vip in clusterIps)
                    frontends.Add(new ServiceFrontend(name, vip, (ushort)port.Port, protocol, Backends(vip.IsV4, internalLocal))
                    {
                        LocalPolicy = internalLocal,
                        AffinityTimeout = affinity,
                    });

                ServiceFrontend External(IpAddr address, int number, bool ranges) =>
                    new(name, address, (ushort)number, protocol, Backends(address.IsV4, externalLocal))
                    {
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
        }
        return frontends;
    }

    private static List<IpAddr> Addresses(IEnumerable<string> texts) =>
        texts.Select(t => IpAddr.TryParse(t, out var a) ? (IpAddr?)a : null).OfType<IpAddr>().Distinct().ToList();

    /// <param name="localNode">Only endpoints on this node (traffic policy Local), or null for all.</param>
    private static List<ServiceBackend> BackendsFor(List<ClusterObject<V1EndpointSlice>> slices, V1ServicePort port, bool v4, string? localNode)
    {
        var candidates = new List<(V1Endpoint Endpoint, IpAddr Address, ushort Port)>();
        foreach (var slice in slices)
        {
            if (slice.Value.AddressType is not ("IPv4" or "IPv6") || (slice.Value.AddressType == "IPv4") != v4) continue;
            var slicePort = slice.Value.Ports?.FirstOrDefault(p => (p.Name ?? "") == (port.Name ?? "") && Protocol(p.Protocol) == Protocol(port.Protocol));
            if (slicePort?.Port is not int target) continue;
            foreach (var endpoint in slice.Value.Endpoints ?? [])
            {
                if (localNode is not null && endpoint.NodeName != localNode) continue;
                foreach (var a in endpoint.Addresses ?? [])
                    if (IpAddr.TryParse(a, out var ip) && ip.IsV4 == v4) candidates.Add((endpoint, ip, (ushort)target));
            }
        }
        var ready = candidates.Where(c => c.Endpoint.Conditions?.Ready != false).ToList();
        // KEP-1669: under a Local policy, when no local endpoint is ready, keep serving through the terminating
        // ones that still serve, rather than black-holing the node's traffic during a rolling update.
        if (ready.Count == 0 && localNode is not null)
            ready = candidates.Where(c => c.Endpoint.Conditions is { Serving: true, Terminating: true }).ToList();
        return ready.Select(c => new ServiceBackend(c.Address, c.Port)).Distinct().ToList();
    }

    internal static byte Protocol(string? name) => name switch
    {
        "UDP" => IpProtocol.Udp,
        "SCTP" => IpProtocol.Sctp,
        _ => IpProtocol.Tcp, // the API default
    };
}
