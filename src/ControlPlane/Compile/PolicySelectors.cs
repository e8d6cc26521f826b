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
    /// A namespace's labels as selectors see them: its own with <see cref="NamespaceNameLabel"/> added (a namespace
    /// only pods mention, with no Namespace object in the directory, carries just that label).
    /// </summary>
    public static IDictionary<string, string> NamespaceLabels(string name, IDictionary<string, string>? declared) =>
        new Dictionary<string, string>(declared ?? new Dictionary<string, string>(), StringComparer.Ordinal) { [NamespaceNameLabel] = name };
}
