using System.Globalization;
using FastPath.ControlPlane.Cluster;
using FastPath.DataPlane.Packets;
using FastPath.DataPlane.Pipeline;
using FastPath.DataPlane.Policy;
using k8s.Models;

namespace FastPath.ControlPlane.Compile;

/// <summary>
/// networking.k8s.io/v1 NetworkPolicy → one node's <see cref="PolicyTable"/>, following the API reference:
/// <list type="bullet">
/// <item>a policy selects the pods of its namespace matching spec.podSelector; policyTypes defaults to Ingress, plus
/// Egress when spec.egress has rules; a pod selected for a direction by any policy is isolated that way and allows
/// exactly the union of those policies' rules of that direction (none: everything is denied);</item>
/// <item>a rule matches when one of its peers and one of its ports match; no (or empty) from/to = every peer, no (or
/// empty) ports = every port of every protocol;</item>
/// <item>peers: podSelector (this namespace), namespaceSelector (every pod of matching namespaces), both in one peer
/// (AND), ipBlock (cidr minus except; any address, pods included); separate peers OR;</item>
/// <item>ports: protocol (default TCP), numeric port up to endPort, a named port resolved against the destination
/// pod's container ports (the local pod for ingress, each peer pod for egress), no port = every port;</item>
/// <item>the node's own addresses are always allowed both ways (kubelet probes), as the Kubernetes docs require.</item>
/// </list>
/// Pod selectors become sets of pod IPs (both families), so the data plane matches addresses only.
/// </summary>
public static class PolicyCompiler
{
    private static readonly UInt128 MappedFirst = IpAddr.FromV4(0).Value, MappedLast = IpAddr.FromV4(uint.MaxValue).Value;

    /// <summary>A pod as policy sees it: where it lives, its labels, addresses and container ports.</summary>
    private sealed record PolicyPod(string Namespace, string QualifiedName, IDictionary<string, string>? Labels, List<IpAddr> Addresses, List<V1ContainerPort> ContainerPorts);

    /// <summary>One peer of a rule, resolved: every address, a set of pods, or address ranges (an ipBlock).</summary>
    private sealed record Peer(bool Everything, List<PolicyPod> Pods, List<(UInt128 First, UInt128 Last)> Ranges);

    private sealed record Rule(List<Peer> Peers, IList<V1NetworkPolicyPort>? Ports);

    /// <summary>Compiles the policies for the node's pod ports <paramref name="pods"/> (port FirstPod + i is pods[i]).</summary>
    public static PolicyTable Compile(ClusterState state, IReadOnlyList<PortDefinition> pods, IReadOnlyList<IpAddr> nodeAddresses)
    {
        if (state.NetworkPolicies.IsEmpty) return PolicyTable.Empty;
        var namespaces = PolicySelectors.NamespaceLabels(state);
        var all = Pods(state);
        var podByName = new Dictionary<string, PolicyPod>(StringComparer.Ordinal);
        foreach (var p in all) podByName.TryAdd(p.QualifiedName, p); // a duplicate is a validation error, not a crash
        var byNamespace = all.GroupBy(p => p.Namespace, StringComparer.Ordinal).ToDictionary(g => g.Key, g => g.ToList(), StringComparer.Ordinal);
        var names = state.NetworkPolicies.Select(p => p.QualifiedName).ToList();
        var rules = new Dictionary<(int Policy, PolicyDirection Direction), List<Rule>>();
        List<Rule> RulesOf(int id, PolicyDirection d)
        {
            if (!rules.TryGetValue((id, d), out var list)) rules[(id, d)] = list = Rules(state.NetworkPolicies[id], d, byNamespace, namespaces);
            return list;
        }

        int portCount = PortIndex.FirstPod + pods.Count;
        var ingress = Enumerable.Repeat(-1, portCount).ToArray();
        var egress = Enumerable.Repeat(-1, portCount).ToArray();
        var sets = new List<PolicyRuleSet>();
        var setIndex = new Dictionary<string, int>(StringComparer.Ordinal);
        for (int i = 0; i < pods.Count; i++)
        {
            if (!podByName.TryGetValue(pods[i].Name, out var pod)) continue;
            foreach (var direction in (PolicyDirection[])[PolicyDirection.Ingress, PolicyDirection.Egress])
            {
                var selecting = new List<int>();
                for (int id = 0; id < state.NetworkPolicies.Length; id++)
                    if (Selects(state.NetworkPolicies[id].Value, pod, direction)) selecting.Add(id);
                if (selecting.Count == 0) continue;
                // Pods selected by the same policies share a rule set, unless ingress named ports resolve differently.
                bool named = direction == PolicyDirection.Ingress && selecting.Any(id => RulesOf(id, direction).Any(r => HasNamedPort(r.Ports)));
                string key = $"{direction}:{string.Join(',', selecting)}" + (named ? "@" + pod.QualifiedName : "");
                if (!setIndex.TryGetValue(key, out int s))
                {
                    setIndex[key] = s = sets.Count;
                    sets.Add(Build(selecting, direction, pod, all, nodeAddresses, RulesOf));
                }
                (direction == PolicyDirection.Ingress ? ingress : egress)[PortIndex.FirstPod + i] = s;
            }
        }
        return new PolicyTable(names, sets, ingress, egress);
    }

    /// <summary>spec.policyTypes, defaulted as the API server does (pkg/apis/networking/v1/defaults.go).</summary>
    public static bool Applies(V1NetworkPolicySpec spec, PolicyDirection direction)
    {
        if (spec.PolicyTypes is { Count: > 0 } types) return types.Contains(direction.ToString());
        return direction == PolicyDirection.Ingress || spec.Egress is { Count: > 0 };
    }

    private static bool Selects(V1NetworkPolicy policy, PolicyPod pod, PolicyDirection direction) =>
        policy.Spec is { } spec && policy.Metadata?.NamespaceProperty == pod.Namespace && Applies(spec, direction)
        && PolicySelectors.Matches(spec.PodSelector ?? new V1LabelSelector(), pod.Labels);

    private static PolicyRuleSet Build(List<int> selecting, PolicyDirection direction, PolicyPod local, List<PolicyPod> pods,
        IReadOnlyList<IpAddr> nodeAddresses, Func<int, PolicyDirection, List<Rule>> rulesOf)
    {
        var peerRules = new List<PeerRule>();
        foreach (var a in nodeAddresses) peerRules.Add(new PeerRule(a.Value, a.Value, [ProtocolPortRange.All]));
        foreach (int id in selecting)
            foreach (var rule in rulesOf(id, direction))
            {
                bool named = HasNamedPort(rule.Ports);
                // Ingress resolves named ports against the local pod; egress against each destination pod.
                var fixedPorts = Resolve(rule.Ports, direction == PolicyDirection.Ingress ? local : null);
                foreach (var peer in rule.Peers)
                {
                    List<(UInt128 First, UInt128 Last)> ranges = peer.Everything ? [(UInt128.Zero, UInt128.MaxValue)] : peer.Ranges;
                    foreach (var (first, last) in ranges)
                        if (fixedPorts.Count > 0) peerRules.Add(new PeerRule(first, last, fixedPorts));
                    // Pods: their own addresses. Egress named ports also reach pods inside an ipBlock or "every peer".
                    var targets = peer.Pods.Count > 0 || direction == PolicyDirection.Ingress || !named
                        ? peer.Pods
                        : pods.Where(p => p.Addresses.Any(a => ranges.Any(r => r.First <= a.Value && a.Value <= r.Last))).ToList();
                    foreach (var pod in targets)
                    {
                        var podPorts = direction == PolicyDirection.Egress && named ? Resolve(rule.Ports, pod) : fixedPorts;
                        if (podPorts.Count == 0) continue;
                        foreach (var a in pod.Addresses)
                            if (peer.Pods.Count > 0 || ranges.Any(r => r.First <= a.Value && a.Value <= r.Last))
                                peerRules.Add(new PeerRule(a.Value, a.Value, podPorts));
                    }
                }
            }
        return new PolicyRuleSet(peerRules, selecting);
    }

    /// <summary>The rules of one direction with their peers resolved (empty when the policy does not apply that way).</summary>
    private static List<Rule> Rules(ClusterObject<V1NetworkPolicy> policy, PolicyDirection direction, Dictionary<string, List<PolicyPod>> pods,
        Dictionary<string, IDictionary<string, string>> namespaces)
    {
        var spec = policy.Value.Spec;
        var result = new List<Rule>();
        if (spec is null || !Applies(spec, direction)) return result;
        var raw = direction == PolicyDirection.Ingress
            ? (spec.Ingress ?? []).Select(r => (Peers: r?.FromProperty, r?.Ports))
            : (spec.Egress ?? []).Select(r => (Peers: r?.To, r?.Ports));
        foreach (var (peers, rulePorts) in raw)
        {
            var resolved = peers is { Count: > 0 }
                ? peers.Select(p => ResolvePeer(p, policy.Namespace!, pods, namespaces)).ToList()
                : [new Peer(true, [], [])];
            result.Add(new Rule(resolved, rulePorts));
        }
        return result;
    }

    private static Peer ResolvePeer(V1NetworkPolicyPeer peer, string policyNamespace, Dictionary<string, List<PolicyPod>> pods,
        Dictionary<string, IDictionary<string, string>> namespaces)
    {
        if (peer.IpBlock is { } block)
        {
            var ranges = new List<(UInt128, UInt128)>();
            if (Cidr.TryParse(block.Cidr, out var cidr))
            {
                ranges.AddRange(Ranges(cidr));
                foreach (var text in block.Except ?? [])
                    if (Cidr.TryParse(text, out var except))
                        foreach (var cut in Ranges(except)) ranges = Subtract(ranges, cut);
            }
            return new Peer(false, [], ranges);
        }
        // Namespaces first (few), then the pods of the matching ones.
        var selected = new List<PolicyPod>();
        foreach (var (ns, nsPods) in pods)
        {
            bool nsMatches = peer.NamespaceSelector is { } nsSelector
                ? namespaces.TryGetValue(ns, out var nsLabels) && PolicySelectors.Matches(nsSelector, nsLabels)
                : ns == policyNamespace;
            if (!nsMatches) continue;
            foreach (var p in nsPods)
                if (peer.PodSelector is not { } podSelector || PolicySelectors.Matches(podSelector, p.Labels)) selected.Add(p);
        }
        return new Peer(false, selected, []);
    }

    /// <summary>A prefix as inclusive ranges of the 128-bit space; an IPv6 prefix never covers the IPv4-mapped block.</summary>
    private static List<(UInt128 First, UInt128 Last)> Ranges(Cidr cidr)
    {
        var first = cidr.Network.Value;
        var last = first | ~IpAddr.PrefixMask(cidr.IsV4, cidr.Length);
        var ranges = new List<(UInt128, UInt128)> { (first, last) };
        return cidr.IsV4 ? ranges : Subtract(ranges, (MappedFirst, MappedLast));
    }

    private static List<(UInt128 First, UInt128 Last)> Subtract(List<(UInt128 First, UInt128 Last)> ranges, (UInt128 First, UInt128 Last) cut)
    {
        var result = new List<(UInt128, UInt128)>();
        foreach (var (first, last) in ranges)
        {
            if (cut.Last < first || cut.First > last) { result.Add((first, last)); continue; }
            if (cut.First > first) result.Add((first, cut.First - 1));
            if (cut.Last < last) result.Add((cut.Last + 1, last));
        }
        return result;
    }

    private static bool HasNamedPort(IList<V1NetworkPolicyPort>? ports) =>
        ports is not null && ports.Any(p => p?.Port?.Value is { } v && !int.TryParse(v, NumberStyles.None, CultureInfo.InvariantCulture, out _));

    /// <summary>
    /// A rule's ports as key ranges; named ports resolve against <paramref name="target"/>'s container ports of the
    /// same protocol (nothing when there is no target pod or no such port).
    /// </summary>
    private static List<ProtocolPortRange> Resolve(IList<V1NetworkPolicyPort>? ports, PolicyPod? target)
    {
        if (ports is not { Count: > 0 }) return [ProtocolPortRange.All];
        var result = new List<ProtocolPortRange>();
        foreach (var p in ports)
        {
            byte protocol = ServiceCompiler.Protocol(p?.Protocol);
            string? value = p?.Port?.Value;
            if (value is null) result.Add(ProtocolPortRange.AnyPort(protocol));
            else if (int.TryParse(value, NumberStyles.None, CultureInfo.InvariantCulture, out int number))
                result.Add(ProtocolPortRange.Of(protocol, (ushort)number, (ushort)(p!.EndPort is int end && end >= number ? end : number)));
            else if (target is not null)
                foreach (var cp in target.ContainerPorts)
                    if (cp.Name == value && ServiceCompiler.Protocol(cp.Protocol) == protocol)
                        result.Add(ProtocolPortRange.Of(protocol, (ushort)cp.ContainerPort, (ushort)cp.ContainerPort));
        }
        return result;
    }

    /// <summary>Pods with an address of their own (not hostNetwork): the only ones selectors can name.</summary>
    private static List<PolicyPod> Pods(ClusterState state)
    {
        var pods = new List<PolicyPod>();
        foreach (var pod in state.Pods)
        {
            if (pod.Value.Spec?.HostNetwork == true) continue;
            var addresses = SnapshotCompiler.PodAddresses(pod.Value);
            if (addresses.Count == 0) continue;
            var containerPorts = (pod.Value.Spec?.Containers ?? []).SelectMany(c => c.Ports ?? []).ToList();
            pods.Add(new PolicyPod(pod.Namespace!, pod.QualifiedName, pod.Value.Metadata?.Labels, addresses, containerPorts));
        }
        return pods;
    }
}
