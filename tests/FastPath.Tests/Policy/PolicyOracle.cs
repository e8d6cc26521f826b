using System.Globalization;
using System.Net;
using FastPath.ControlPlane.Cluster;
using FastPath.ControlPlane.Compile;
using FastPath.DataPlane.Packets;
using k8s.Models;

namespace FastPath.Tests.Policy;

/// <summary>
/// The slow, direct reading of the NetworkPolicy reference the compiled tables are checked against: for one flow it
/// walks every policy object, every rule, every peer and every port, with no precomputation. CIDRs are matched with
/// <see cref="IPNetwork"/> (not the compiler's range arithmetic). Only label-selector matching is shared with the
/// compiler (<see cref="PolicySelectors"/>, tested on its own with hand-written cases).
/// </summary>
public static class PolicyOracle
{
    /// <summary>Does the policy of <paramref name="pod"/> allow it to receive from <paramref name="peer"/> on protocol/port?</summary>
    public static bool IngressAllowed(ClusterState state, IReadOnlyList<IpAddr> nodeAddresses, V1Pod pod, IpAddr peer, string protocol, int port) =>
        Allowed(state, nodeAddresses, pod, ingress: true, peer, protocol, port);

    /// <summary>Does the policy of <paramref name="pod"/> allow it to send to <paramref name="peer"/> on protocol/port?</summary>
    public static bool EgressAllowed(ClusterState state, IReadOnlyList<IpAddr> nodeAddresses, V1Pod pod, IpAddr peer, string protocol, int port) =>
        Allowed(state, nodeAddresses, pod, ingress: false, peer, protocol, port);

    /// <param name="protocol">"TCP", "UDP", "SCTP" or anything else (ICMP: matched only by rules without ports).</param>
    private static bool Allowed(ClusterState state, IReadOnlyList<IpAddr> nodeAddresses, V1Pod pod, bool ingress, IpAddr peer, string protocol, int port)
    {
        if (nodeAddresses.Contains(peer)) return true; // the node itself: always allowed
        bool isolated = false;
        foreach (var policy in state.NetworkPolicies)
        {
            var spec = policy.Value.Spec;
            if (policy.Namespace != pod.Metadata.NamespaceProperty) continue;
            if (!PolicySelectors.Matches(spec.PodSelector, pod.Metadata.Labels)) continue;
            bool types = spec.PolicyTypes is { Count: > 0 } t
                ? t.Contains(ingress ? "Ingress" : "Egress")
                : ingress || (spec.Egress?.Count ?? 0) > 0;
            if (!types) continue;
            isolated = true;
            if (ingress)
            {
                foreach (var rule in spec.Ingress ?? [])
                    if (PeersMatch(state, policy.Namespace!, rule.FromProperty, peer) && PortsMatch(rule.Ports, pod, protocol, port)) return true;
            }
            else
            {
                foreach (var rule in spec.Egress ?? [])
                    if (PeersMatch(state, policy.Namespace!, rule.To, peer) && PortsMatch(rule.Ports, PodWithIp(state, peer), protocol, port)) return true;
            }
        }
        return !isolated;
    }

    private static bool PeersMatch(ClusterState state, string policyNamespace, IList<V1NetworkPolicyPeer>? peers, IpAddr address)
    {
        if (peers is null || peers.Count == 0) return true;
        foreach (var peer in peers)
        {
            if (peer.IpBlock is { } block)
            {
                var ip = address.ToIPAddress();
                if (IPNetwork.Parse(block.Cidr).Contains(ip) && !(block.Except ?? []).Any(e => IPNetwork.Parse(e).Contains(ip))) return true;
                continue;
            }
            var pod = PodWithIp(state, address);
            if (pod is null) continue;
            string ns = pod.Metadata.NamespaceProperty;
            bool nsOk = peer.NamespaceSelector is null
                ? ns == policyNamespace
                : PolicySelectors.Matches(peer.NamespaceSelector, NamespaceLabels(state, ns));
            bool podOk = peer.PodSelector is null || PolicySelectors.Matches(peer.PodSelector, pod.Metadata.Labels);
            if (nsOk && podOk) return true;
        }
        return false;
    }

    private static bool PortsMatch(IList<V1NetworkPolicyPort>? ports, V1Pod? destination, string protocol, int port)
    {
        if (ports is null || ports.Count == 0) return true;
        foreach (var p in ports)
        {
            if ((p.Protocol ?? "TCP") != protocol) continue;
            if (p.Port is null) return true;
            if (int.TryParse(p.Port.Value, NumberStyles.None, CultureInfo.InvariantCulture, out int first))
            {
                if (port >= first && port <= (p.EndPort ?? first)) return true;
                continue;
            }
            foreach (var c in destination?.Spec?.Containers ?? [])
                foreach (var cp in c.Ports ?? [])
                    if (cp.Name == p.Port.Value && (cp.Protocol ?? "TCP") == protocol && cp.ContainerPort == port) return true;
        }
        return false;
    }

    public static V1Pod? PodWithIp(ClusterState state, IpAddr address)
    {
        foreach (var pod in state.Pods)
        {
            if (pod.Value.Spec?.HostNetwork == true) continue;
            var ips = (pod.Value.Status?.PodIPs ?? []).Select(p => p.Ip).Append(pod.Value.Status?.PodIP);
            if (ips.Any(i => IpAddr.TryParse(i, out var a) && a == address)) return pod.Value;
        }
        return null;
    }

    private static Dictionary<string, string> NamespaceLabels(ClusterState state, string name)
    {
        var labels = new Dictionary<string, string> { ["kubernetes.io/metadata.name"] = name };
        foreach (var ns in state.Namespaces)
            if (ns.Name == name)
                foreach (var (k, v) in ns.Value.Metadata?.Labels ?? new Dictionary<string, string>())
                    labels.TryAdd(k, v);
        return labels;
    }
}
