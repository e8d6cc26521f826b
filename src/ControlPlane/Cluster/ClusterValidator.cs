using System.Text.RegularExpressions;
using FastPath.DataPlane.Packets;
using k8s.Models;

namespace FastPath.ControlPlane.Cluster;

/// <summary>
/// Field and cross-object checks on loaded cluster objects, following the API server's validation where FastPath
/// depends on a field (pkg/apis/core/validation) and adding FastPath's own contract (fastpath.io/mac, pod IPs inside
/// the node's podCIDRs). Services and EndpointSlices get light checks here; their semantics live with the services stage.
/// </summary>
public static partial class ClusterValidator
{
    public static void Validate(ClusterState state, List<ClusterError> errors)
    {
        CheckDuplicates(state.Nodes, errors);
        CheckDuplicates(state.Pods, errors);
        CheckDuplicates(state.Services, errors);
        CheckDuplicates(state.EndpointSlices, errors);
        CheckDuplicates(state.Namespaces, errors);
        CheckDuplicates(state.NetworkPolicies, errors);

        // Objects claim pod IPs, ClusterIPs and NodePorts in file order; a later claim on the same value is the error.
        var index = new ClusterIndex(state.Configuration);
        foreach (var node in state.Nodes) { ValidateNode(node, errors); index.Add(node); }
        foreach (var pod in state.Pods) { ValidatePod(pod, index, errors); index.Add(pod); }
        foreach (var service in state.Services) { ValidateService(service, index, errors); index.Add(service); }
        foreach (var slice in state.EndpointSlices) ValidateEndpointSlice(slice, errors);
        foreach (var policy in state.NetworkPolicies) ValidateNetworkPolicy(policy, errors);
    }

    /// <summary>
    /// Checks one object against the others in <paramref name="index"/> (which may hold an older version of it), as
    /// the API server checks an update. Returns every problem; empty when the object may replace its old version.
    /// </summary>
    public static List<ClusterError> ValidateObject(IClusterObject o, ClusterIndex index)
    {
        var errors = new List<ClusterError>();
        switch (o)
        {
            case ClusterObject<V1Node> node: ValidateNode(node, errors); break;
            case ClusterObject<V1Pod> pod: ValidatePod(pod, index, errors); break;
            case ClusterObject<V1Service> service: ValidateService(service, index, errors); break;
            case ClusterObject<V1EndpointSlice> slice: ValidateEndpointSlice(slice, errors); break;
            case ClusterObject<V1NetworkPolicy> policy: ValidateNetworkPolicy(policy, errors); break;
        }
        return errors;
    }

    /// <summary>The Node's valid podCIDRs (at most one per family), as validation reads them.</summary>
    internal static List<Cidr> NodePodCidrs(ClusterObject<V1Node> node) => ValidateNode(node, []);

    /// <summary>The pod's own addresses (none for hostNetwork pods: they carry the node's).</summary>
    internal static IEnumerable<IpAddr> PodIps(V1Pod pod)
    {
        if (pod.Spec?.HostNetwork == true) yield break;
        if (pod.Status?.PodIPs is { Count: > 0 } podIps)
        {
            foreach (var p in podIps)
                if (IpAddr.TryParse(p?.Ip, out var ip)) yield return ip;
        }
        else if (IpAddr.TryParse(pod.Status?.PodIP, out var ip)) yield return ip;
    }

    internal static IEnumerable<IpAddr> ClusterIps(V1Service service)
    {
        var spec = service.Spec;
        if (spec is null) yield break;
        foreach (var text in spec.ClusterIPs is { Count: > 0 } ips ? ips : spec.ClusterIP is { } one ? [one] : [])
            if (IpAddr.TryParse(text, out var ip)) yield return ip;
    }

    internal static IEnumerable<(int Port, byte Protocol)> NodePorts(V1Service service)
    {
        foreach (var p in service.Spec?.Ports ?? [])
            if (p.NodePort is int np and > 0) yield return (np, ProtocolNumber(p.Protocol));
    }

    /// <summary>The IANA number of a Kubernetes protocol name (TCP when unset, the API default).</summary>
    internal static byte ProtocolNumber(string? name) => name switch
    {
        "UDP" => IpProtocol.Udp,
        "SCTP" => IpProtocol.Sctp,
        _ => IpProtocol.Tcp,
    };

    /// <summary>The node's pod CIDRs as written: spec.podCIDRs, or the legacy single spec.podCIDR.</summary>
    public static IEnumerable<string> PodCidrTexts(V1Node node)
    {
        if (node.Spec?.PodCIDRs is { Count: > 0 } list) return list;
        if (node.Spec?.PodCIDR is { Length: > 0 } one) return [one];
        return [];
    }

    private static void CheckDuplicates<T>(IEnumerable<ClusterObject<T>> objects, List<ClusterError> errors) where T : class
    {
        var seen = new Dictionary<string, ClusterObject<T>>(StringComparer.Ordinal);
        foreach (var o in objects)
        {
            if (seen.TryGetValue(o.QualifiedName, out var first))
                errors.Add(new ClusterError(o.File, null, o.Label, null, $"duplicate: also defined in {first.File}"));
            else seen.Add(o.QualifiedName, o);
        }
    }

    private static List<Cidr> ValidateNode(ClusterObject<V1Node> node, List<ClusterError> errors)
    {
        void Error(string field, string message) => errors.Add(new ClusterError(node.File, null, node.Label, field, message));
        var cidrs = new List<Cidr>();
        var spec = node.Value.Spec;
        Cidr? single = null;
        if (spec?.PodCIDR is { Length: > 0 } podCidr)
        {
            if (Cidr.TryParse(podCidr, out var c)) single = c;
            else Error("spec.podCIDR", $"\"{podCidr}\" is not a CIDR");
        }
        if (spec?.PodCIDRs is { Count: > 0 } podCidrs)
        {
            for (int i = 0; i < podCidrs.Count; i++)
            {
                if (!Cidr.TryParse(podCidrs[i], out var c)) { Error($"spec.podCIDRs[{i}]", $"\"{podCidrs[i]}\" is not a CIDR"); continue; }
                // Kubernetes allows at most one CIDR per IP family (dual-stack, KEP-563).
                if (cidrs.Any(x => x.IsV4 == c.IsV4)) { Error($"spec.podCIDRs[{i}]", $"\"{podCidrs[i]}\": at most one CIDR per IP family"); continue; }
                cidrs.Add(c);
            }
            // The API server requires podCIDR == podCIDRs[0] when both are set.
            if (single is { } s && cidrs.Count > 0 && Cidr.TryParse(podCidrs[0], out var first) && first != s)
                Error("spec.podCIDR", $"\"{spec.PodCIDR}\" must equal spec.podCIDRs[0] \"{podCidrs[0]}\"");
        }
        else if (single is { } s)
        {
            cidrs.Add(s);
        }

        if (node.Value.Status?.Addresses is { } addresses)
        {
            for (int i = 0; i < addresses.Count; i++)
            {
                var a = addresses[i];
                if (a.Type is "InternalIP" or "ExternalIP" && !IpAddr.TryParse(a.Address, out _))
                    Error($"status.addresses[{i}].address", $"\"{a.Address}\" is not an IP address ({a.Type})");
            }
        }
        CheckMacAnnotation(node.Value.Metadata, e => Error($"metadata.annotations[{FastPathAnnotations.Mac}]", e));
        return cidrs;
    }

    private static void ValidatePod(ClusterObject<V1Pod> pod, ClusterIndex index, List<ClusterError> errors)
    {
        void Error(string field, string message) => errors.Add(new ClusterError(pod.File, null, pod.Label, field, message));
        var status = pod.Value.Status;
        bool hostNetwork = pod.Value.Spec?.HostNetwork == true;
        string? nodeName = pod.Value.Spec?.NodeName;

        var ips = new List<(IpAddr Ip, string Field)>();
        IpAddr? podIp = null;
        if (status?.PodIP is { Length: > 0 } podIpText)
        {
            if (IpAddr.TryParse(podIpText, out var ip)) podIp = ip;
            else Error("status.podIP", $"\"{podIpText}\" is not an IP address");
        }
        if (status?.PodIPs is { Count: > 0 } podIps)
        {
            for (int i = 0; i < podIps.Count; i++)
            {
                string? text = podIps[i]?.Ip;
                if (!IpAddr.TryParse(text, out var ip)) { Error($"status.podIPs[{i}].ip", $"\"{text}\" is not an IP address"); continue; }
                if (ips.Any(x => x.Ip.IsV4 == ip.IsV4)) { Error($"status.podIPs[{i}].ip", $"\"{text}\": at most one IP per IP family"); continue; }
                ips.Add((ip, $"status.podIPs[{i}].ip"));
            }
            // The kubelet reports podIP == podIPs[0]; anything else means the object was edited inconsistently.
            if (podIp is { } p && IpAddr.TryParse(podIps[0]?.Ip, out var first0) && first0 != p)
                Error("status.podIP", $"\"{status.PodIP}\" must equal status.podIPs[0].ip \"{podIps[0].Ip}\"");
        }
        else if (podIp is { } p)
        {
            ips.Add((p, "status.podIP"));
        }

        if (nodeName is { Length: > 0 })
        {
            if (index.NodePodCidrs(nodeName) is not { } cidrs)
                Error("spec.nodeName", $"no Node named \"{nodeName}\"");
            else if (!hostNetwork && cidrs.Count > 0)
            {
                // Pod IPs come from the node's podCIDRs (IPAM host-local); hostNetwork pods carry the node's own IPs.
                foreach (var (ip, field) in ips)
                    if (!Inside(cidrs, ip))
                        Error(field, $"\"{ip}\" is not inside the podCIDRs of Node {nodeName} ({string.Join(", ", cidrs)})");
            }
        }
        else if (ips.Count > 0)
        {
            Error("spec.nodeName", "required for a pod with an IP (a pod gets its IP on the node it runs on)");
        }

        if (!hostNetwork)
        {
            foreach (var (ip, field) in ips)
            {
                if (index.PodWithIp(ip, pod.Key) is { } other)
                    Error(field, $"\"{ip}\" is also the IP of {other.Label} ({other.File})");
            }
        }
        CheckPodMac(pod, errors);
    }

    private static bool Inside(List<Cidr> cidrs, IpAddr ip)
    {
        foreach (var c in cidrs)
            if (c.Contains(ip)) return true;
        return false;
    }

    // Its own method: the lambda's closure would otherwise be allocated on every ValidatePod call (150,000 in a full
    // load), annotated or not.
    private static void CheckPodMac(ClusterObject<V1Pod> pod, List<ClusterError> errors)
    {
        if (pod.Value.Metadata?.Annotations is { Count: > 0 })
            CheckMacAnnotation(pod.Value.Metadata, e => errors.Add(new ClusterError(pod.File, null, pod.Label, $"metadata.annotations[{FastPathAnnotations.Mac}]", e)));
    }

    private static void ValidateService(ClusterObject<V1Service> service, ClusterIndex index, List<ClusterError> errors)
    {
        void Error(string field, string message) => errors.Add(new ClusterError(service.File, null, service.Label, field, message));
        var spec = service.Value.Spec;
        if (spec is null) return;
        if (spec.Type is { } type && type is not ("ClusterIP" or "NodePort" or "LoadBalancer" or "ExternalName"))
            Error("spec.type", $"\"{type}\" is not a Service type (ClusterIP | NodePort | LoadBalancer | ExternalName)");

        // "None" marks a headless Service; "" lets the API server allocate (not done here: then it has no VIP).
        IpAddr? clusterIp = null;
        if (spec.ClusterIP is { Length: > 0 } cip and not "None")
        {
            if (IpAddr.TryParse(cip, out var ip)) clusterIp = ip;
            else Error("spec.clusterIP", $"\"{cip}\" is not an IP address");
        }
        // The ClusterIP allocator hands an address to one Service only ("provided IP is already allocated").
        foreach (var ip in ClusterIps(service.Value))
            if (index.ServiceWithClusterIp(ip, service.Key) is { } holder)
                Error("spec.clusterIP", $"\"{ip}\" is already allocated to {holder.Label} ({holder.File})");
        if (spec.ClusterIPs is { Count: > 0 } cips)
        {
            var families = new List<bool>();
            for (int i = 0; i < cips.Count; i++)
            {
                if (cips[i] == "None") { if (cips.Count > 1) Error($"spec.clusterIPs[{i}]", "\"None\" must be the only entry"); continue; }
                if (!IpAddr.TryParse(cips[i], out var ip)) { Error($"spec.clusterIPs[{i}]", $"\"{cips[i]}\" is not an IP address"); continue; }
                if (families.Contains(ip.IsV4)) { Error($"spec.clusterIPs[{i}]", $"\"{cips[i]}\": at most one IP per IP family"); continue; }
                families.Add(ip.IsV4);
            }
            if (spec.ClusterIP is { Length: > 0 } && !string.Equals(spec.ClusterIP, cips[0], StringComparison.Ordinal) &&
                !(IpAddr.TryParse(cips[0], out var c0) && clusterIp == c0))
                Error("spec.clusterIP", $"\"{spec.ClusterIP}\" must equal spec.clusterIPs[0] \"{cips[0]}\"");
        }
        if (spec.Ports is { } ports)
        {
            for (int i = 0; i < ports.Count; i++)
            {
                var p = ports[i];
                string f = $"spec.ports[{i}]";
                if (p.Port is < 1 or > 65535) Error($"{f}.port", $"{p.Port} is out of range (1-65535)");
                if (p.NodePort is int np && np != 0)
                {
                    var range = index.Configuration.NodePortRange;
                    if (!range.Contains(np))
                        Error($"{f}.nodePort", $"{np} is not in the NodePort range {range} (FastPathConfiguration nodePortRange)");
                    else if (index.ServiceWithNodePort(np, ProtocolNumber(p.Protocol), service.Key) is { } holder)
                        Error($"{f}.nodePort", $"{np}/{p.Protocol ?? "TCP"} is already allocated to {holder.Label} ({holder.File})");
                }
                if (p.Protocol is { } proto && !IsProtocol(proto)) Error($"{f}.protocol", $"\"{proto}\" is not a protocol (TCP | UDP | SCTP)");
                if (p.TargetPort?.Value is { } tp && int.TryParse(tp, out int tpn) && tpn is < 1 or > 65535)
                    Error($"{f}.targetPort", $"{tpn} is out of range (1-65535)");
                // With several ports each needs a name: EndpointSlice ports are matched to them by name.
                if (ports.Count > 1 && string.IsNullOrEmpty(p.Name)) Error($"{f}.name", "required when a Service has more than one port");
            }
        }
    }

    private static void ValidateEndpointSlice(ClusterObject<V1EndpointSlice> slice, List<ClusterError> errors)
    {
        void Error(string field, string message) => errors.Add(new ClusterError(slice.File, null, slice.Label, field, message));
        string? addressType = slice.Value.AddressType;
        if (addressType is not ("IPv4" or "IPv6" or "FQDN"))
        {
            Error("addressType", addressType is null ? "required (IPv4 | IPv6 | FQDN)" : $"\"{addressType}\" is not an address type (IPv4 | IPv6 | FQDN)");
            return;
        }
        if (slice.Value.Endpoints is { } endpoints && addressType != "FQDN")
        {
            for (int i = 0; i < endpoints.Count; i++)
            {
                var addrs = endpoints[i]?.Addresses;
                if (addrs is null || addrs.Count == 0) { Error($"endpoints[{i}].addresses", "required (at least one address)"); continue; }
                for (int j = 0; j < addrs.Count; j++)
                {
                    if (!IpAddr.TryParse(addrs[j], out var ip)) Error($"endpoints[{i}].addresses[{j}]", $"\"{addrs[j]}\" is not an IP address");
                    else if (ip.IsV4 != (addressType == "IPv4")) Error($"endpoints[{i}].addresses[{j}]", $"\"{addrs[j]}\" is not an {addressType} address (addressType)");
                }
            }
        }
        if (slice.Value.Ports is { } ports)
        {
            for (int i = 0; i < ports.Count; i++)
            {
                var p = ports[i];
                // A nil port means "all ports" (discovery.k8s.io/v1 EndpointPort.port).
                if (p.Port is int n && n is < 1 or > 65535) Error($"ports[{i}].port", $"{n} is out of range (1-65535)");
                if (p.Protocol is { } proto && !IsProtocol(proto)) Error($"ports[{i}].protocol", $"\"{proto}\" is not a protocol (TCP | UDP | SCTP)");
            }
        }
    }

    internal static bool IsProtocol(string p) => p is "TCP" or "UDP" or "SCTP";

    private static void CheckMacAnnotation(V1ObjectMeta? metadata, Action<string> error)
    {
        if (metadata?.Annotations is null || !metadata.Annotations.TryGetValue(FastPathAnnotations.Mac, out var text)) return;
        if (!MacAddress.TryParse(text, out var mac)) error($"\"{text}\" is not a MAC address");
        else if (mac.IsMulticast || mac == MacAddress.Zero) error($"\"{text}\" is not a unicast MAC address");
    }

    /// <summary>RFC 1123 label as Kubernetes uses it: lowercase alphanumerics and '-', at most 63 characters.</summary>
    public static bool IsDns1123Label(string s) => s.Length <= 63 && Dns1123Label().IsMatch(s);

    /// <summary>RFC 1123 subdomain as Kubernetes uses it: dot-separated labels, at most 253 characters.</summary>
    public static bool IsDns1123Subdomain(string s) => s.Length <= 253 && Dns1123Subdomain().IsMatch(s);

    [GeneratedRegex("^[a-z0-9]([-a-z0-9]*[a-z0-9])?$", RegexOptions.CultureInvariant)]
    private static partial Regex Dns1123Label();

    [GeneratedRegex(@"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$", RegexOptions.CultureInvariant)]
    private static partial Regex Dns1123Subdomain();
}
