using FastPath.ControlPlane.Cluster;
using k8s.Models;

namespace FastPath.ControlPlane.Compile;

/// <summary>
/// Kubernetes label selectors as NetworkPolicy uses them (apimachinery labels.Selector): every matchLabels pair and
/// every matchExpressions requirement must hold; an empty selector matches everything.
/// </summary>
public static class PolicySelectors
{
    /// <summary>The label every namespace carries (immutable, set by the API server since 1.21, KEP-2161).</summary>
    public const string NamespaceNameLabel = "kubernetes.io/metadata.name";

    public static bool Matches(V1LabelSelector selector, IDictionary<string, string>? labels)
    {
        if (selector.MatchLabels is { } pairs)
            foreach (var (key, value) in pairs)
                if (labels is null || !labels.TryGetValue(key, out var actual) || actual != value) return false;
        if (selector.MatchExpressions is { } requirements)
            foreach (var r in requirements)
            {
                bool has = labels is not null && labels.TryGetValue(r.Key, out _);
                string? actual = has ? labels![r.Key] : null;
                bool ok = r.OperatorProperty switch
                {
                    "In" => has && (r.Values?.Contains(actual!) ?? false),
                    "NotIn" => !has || !(r.Values?.Contains(actual!) ?? false),
                    "Exists" => has,
                    "DoesNotExist" => !has,
                    _ => false, // rejected by validation
                };
                if (!ok) return false;
            }
        return true;
    }

    /// <summary>
    /// Every namespace's labels, with <see cref="NamespaceNameLabel"/> added; namespaces only pods mention (no
    /// Namespace object in the directory) carry just that label.
    /// </summary>
    public static Dictionary<string, IDictionary<string, string>> NamespaceLabels(ClusterState state)
    {
        var result = new Dictionary<string, IDictionary<string, string>>(StringComparer.Ordinal);
        foreach (var ns in state.Namespaces)
        {
            var labels = new Dictionary<string, string>(ns.Value.Metadata?.Labels ?? new Dictionary<string, string>(), StringComparer.Ordinal)
            {
                [NamespaceNameLabel] = ns.Name,
            };
            result[ns.Name] = labels;
        }
        foreach (var pod in state.Pods)
            if (pod.Namespace is { } name && !result.ContainsKey(name))
                result[name] = new Dictionary<string, string>(StringComparer.Ordinal) { [NamespaceNameLabel] = name };
        return result;
    }
}
