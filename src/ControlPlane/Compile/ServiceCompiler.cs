using FastPath.ControlPlane.Cluster;
using FastPath.DataPlane.Packets;
using FastPath.DataPlane.Services;
using k8s.Models;

namespace FastPath.ControlPlane.Compile;

/// <summary>
/// Services and EndpointSlices → data-plane frontends, the way kube-proxy reads them: one frontend per ClusterIP ×
/// Service port; backends are the ready endpoints (conditions.ready unset counts as ready, per the EndpointSlice API)
/// of the slices labelled kubernetes.io/service-name, of the ClusterIP's address family, on the slice port whose
/// name matches the Service port's (EndpointSlice ports already carry the resolved targetPort number). Headless and
/// ExternalName Services get no frontend.
/// </summary>
public static class ServiceCompiler
{
    public const string ServiceNameLabel = "kubernetes.io/service-name";

    public static List<ServiceFrontend> Frontends(ClusterState state)
    {
        var frontends = new List<ServiceFrontend>();
        foreach (var svc in state.Services)
        {
            var spec = svc.Value.Spec;
            if (spec is null || spec.Type == "ExternalName") continue;
            var clusterIps = (spec.ClusterIPs is { Count: > 0 } ips ? ips : spec.ClusterIP is { } one ? [one] : [])
                .Where(ip => ip != "None").ToList();
            if (clusterIps.Count == 0) continue;
            var slices = state.EndpointSlices.Where(s => s.Namespace == svc.Namespace
                && s.Value.Metadata?.Labels is { } l && l.TryGetValue(ServiceNameLabel, out var name) && name == svc.Name).ToList();

            foreach (var port in spec.Ports ?? [])
            {
                byte protocol = Protocol(port.Protocol);
                foreach (var text in clusterIps)
                {
                    if (!IpAddr.TryParse(text, out var vip)) continue;
                    var backends = Backends(slices, port, vip.IsV4);
                    frontends.Add(new ServiceFrontend($"{svc.QualifiedName}:{port.Name ?? port.Port.ToString(System.Globalization.CultureInfo.InvariantCulture)}",
                        vip, (ushort)port.Port, protocol, backends));
                }
            }
        }
        return frontends;
    }

    private static List<ServiceBackend> Backends(List<ClusterObject<V1EndpointSlice>> slices, V1ServicePort port, bool v4)
    {
        var backends = new List<ServiceBackend>();
        foreach (var slice in slices)
        {
            if ((slice.Value.AddressType == "IPv4") != v4 || slice.Value.AddressType is not ("IPv4" or "IPv6")) continue;
            var slicePort = slice.Value.Ports?.FirstOrDefault(p => (p.Name ?? "") == (port.Name ?? "") && Protocol(p.Protocol) == Protocol(port.Protocol));
            if (slicePort?.Port is not int target) continue;
            foreach (var endpoint in slice.Value.Endpoints ?? [])
            {
                if (endpoint.Conditions?.Ready == false) continue; // not ready (terminating included): never chosen
                foreach (var a in endpoint.Addresses ?? [])
                    if (IpAddr.TryParse(a, out var ip) && ip.IsV4 == v4 && !backends.Contains(new ServiceBackend(ip, (ushort)target)))
                        backends.Add(new ServiceBackend(ip, (ushort)target));
            }
        }
        return backends;
    }

    private static byte Protocol(string? name) => name switch
    {
        "UDP" => IpProtocol.Udp,
        "SCTP" => IpProtocol.Sctp,
        _ => IpProtocol.Tcp, // the API default
    };
}
