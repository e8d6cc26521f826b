using System.Globalization;
using k8s.Models;

namespace FastPath.ControlPlane.Cluster;

/// <summary>NetworkPolicy checks, after the API server's (pkg/apis/networking/validation ValidateNetworkPolicySpec).</summary>
public static partial class ClusterValidator
{
    private static void ValidateNetworkPolicy(ClusterObject<V1NetworkPolicy> policy, List<ClusterError> errors)
    {
        void Error(string field, string message) => errors.Add(new ClusterError(policy.File, null, policy.Label, field, message));
        var spec = policy.Value.Spec;
        if (spec is null)
        {
            Error("spec", "required");
            return;
        }
        if (spec.PodSelector is null) Error("spec.podSelector", "required (use {} to select every pod of the namespace)");
        else LabelSelector(spec.PodSelector, "spec.podSelector", Error);
        if (spec.PolicyTypes is { } types)
        {
            if (types.Count > 2) Error("spec.policyTypes", "at most 2 entries (Ingress, Egress)");
            for (int i = 0; i < types.Count; i++)
                if (types[i] is not ("Ingress" or "Egress")) Error($"spec.policyTypes[{i}]", $"\"{types[i]}\" is not a policy type (Ingress | Egress)");
        }
        if (spec.Ingress is { } ingress)
            for (int i = 0; i < ingress.Count; i++)
            {
                Peers(ingress[i]?.FromProperty, $"spec.ingress[{i}].from", Error);
                Ports(ingress[i]?.Ports, $"spec.ingress[{i}].ports", Error);
            }
        if (spec.Egress is { } egress)
            for (int i = 0; i < egress.Count; i++)
            {
                Peers(egress[i]?.To, $"spec.egress[{i}].to", Error);
                Ports(egress[i]?.Ports, $"spec.egress[{i}].ports", Error);
            }
    }

    private static void Peers(IList<V1NetworkPolicyPeer>? peers, string field, Action<string, string> error)
    {
        if (peers is null) return;
        for (int i = 0; i < peers.Count; i++)
        {
            var peer = peers[i];
            string f = $"{field}[{i}]";
            if (peer is null || (peer.PodSelector is null && peer.NamespaceSelector is null && peer.IpBlock is null))
            {
                error(f, "must specify a peer (podSelector, namespaceSelector or ipBlock)");
                continue;
            }
            if (peer.IpBlock is { } block)
            {
                if (peer.PodSelector is not null || peer.NamespaceSelector is not null)
                    error(f, "ipBlock may not be combined with podSelector or namespaceSelector");
                IpBlock(block, $"{f}.ipBlock", error);
            }
            if (peer.PodSelector is { } pods) LabelSelector(pods, $"{f}.podSelector", error);
            if (peer.NamespaceSelector is { } namespaces) LabelSelector(namespaces, $"{f}.namespaceSelector", error);
        }
    }

    private static void IpBlock(V1IPBlock block, string field, Action<string, string> error)
    {
        if (!Cidr.TryParse(block.Cidr, out var cidr))
        {
            error($"{field}.cidr", block.Cidr is null ? "required" : $"\"{block.Cidr}\" is not a CIDR");
            return;
        }
        if (block.Except is not { } except) return;
        for (int j = 0; j < except.Count; j++)
        {
            if (!Cidr.TryParse(except[j], out var cut)) error($"{field}.except[{j}]", $"\"{except[j]}\" is not a CIDR");
            else if (cut.IsV4 != cidr.IsV4 || cut.Length <= cidr.Length || !cidr.Contains(cut.Network))
                error($"{field}.except[{j}]", $"\"{except[j]}\" must be a strict subset of cidr \"{block.Cidr}\"");
        }
    }

    private static void Ports(IList<V1NetworkPolicyPort>? ports, string field, Action<string, string> error)
    {
        if (ports is null) return;
        for (int i = 0; i < ports.Count; i++)
        {
            var p = ports[i];
            string f = $"{field}[{i}]";
            if (p?.Protocol is { } proto && !IsProtocol(proto)) error($"{f}.protocol", $"\"{proto}\" is not a protocol (TCP | UDP | SCTP)");
            string? value = p?.Port?.Value;
            bool numeric = int.TryParse(value, NumberStyles.None, CultureInfo.InvariantCulture, out int number);
            if (numeric && number is < 1 or > 65535) error($"{f}.port", $"{number} is out of range (1-65535)");
            else if (value is not null && !numeric && !IsPortName(value))
                error($"{f}.port", $"\"{value}\" is neither a port number nor a port name (IANA_SVC_NAME: at most 15 lowercase letters, digits and '-', at least one letter)");
            if (p?.EndPort is int end)
            {
                if (value is null) error($"{f}.endPort", "may not be specified when port is not");
                else if (!numeric) error($"{f}.endPort", "may not be specified when port is a named port");
                else if (end is < 1 or > 65535) error($"{f}.endPort", $"{end} is out of range (1-65535)");
                else if (end < number) error($"{f}.endPort", $"{end} must be greater than or equal to port {number}");
            }
        }
    }

    private static void LabelSelector(V1LabelSelector selector, string field, Action<string, string> error)
    {
        if (selector.MatchExpressions is not { } expressions) return;
        for (int i = 0; i < expressions.Count; i++)
        {
            var r = expressions[i];
            string f = $"{field}.matchExpressions[{i}]";
            if (string.IsNullOrEmpty(r?.Key)) { error($"{f}.key", "required"); continue; }
            int values = r.Values?.Count ?? 0;
            switch (r.OperatorProperty)
            {
                case "In" or "NotIn":
                    if (values == 0) error($"{f}.values", $"must be specified when operator is {r.OperatorProperty}");
                    break;
                case "Exists" or "DoesNotExist":
                    if (values > 0) error($"{f}.values", $"may not be specified when operator is {r.OperatorProperty}");
                    break;
                default:
                    error($"{f}.operator", $"\"{r.OperatorProperty}\" is not a valid operator (In | NotIn | Exists | DoesNotExist)");
                    break;
            }
        }
    }

    /// <summary>IANA_SVC_NAME (RFC 6335 §5.1) as Kubernetes checks container port names: 1–15 characters of [a-z0-9-], a letter, no leading, trailing or double '-'.</summary>
    public static bool IsPortName(string s) => s.Length is >= 1 and <= 15 && Dns1123Label().IsMatch(s) && !s.Contains("--", StringComparison.Ordinal)
        && s.Any(char.IsAsciiLetterLower);
}
