namespace FastPath.DataPlane.Policy;

/// <summary>Which way a flow crosses a pod's interface, as NetworkPolicy's policyTypes name it.</summary>
public enum PolicyDirection : byte { Ingress, Egress }

/// <summary>
/// The compiled NetworkPolicies of one node, part of the <see cref="Pipeline.ForwardingSnapshot"/>: for every port
/// and direction, the rule set that isolates it (or none: everything is allowed that way). Immutable; built by the
/// control plane and published with the snapshot, so a policy change reaches the packet path with one reference swap.
/// </summary>
public sealed class PolicyTable
{
    public static readonly PolicyTable Empty = new([], [], [], []);

    private readonly PolicyRuleSet[] _sets;
    private readonly int[] _ingress, _egress; // per port: index into _sets, or -1

    /// <param name="policyNames">Policy id → "namespace/name" (ids index the denial counters).</param>
    /// <param name="sets">The distinct rule sets.</param>
    /// <param name="ingressByPort">Per port index: the rule set isolating it for ingress, or -1.</param>
    /// <param name="egressByPort">Per port index: the rule set isolating it for egress, or -1.</param>
    public PolicyTable(IReadOnlyList<string> policyNames, IReadOnlyList<PolicyRuleSet> sets, int[] ingressByPort, int[] egressByPort)
    {
        if (ingressByPort.Length != egressByPort.Length) throw new ArgumentException("one entry per port in both directions", nameof(egressByPort));
        foreach (int s in ingressByPort.Concat(egressByPort))
            if (s < -1 || s >= sets.Count) throw new ArgumentOutOfRangeException(nameof(sets), $"rule set {s} does not exist");
        PolicyNames = policyNames;
        _sets = [.. sets];
        _ingress = ingressByPort;
        _egress = egressByPort;
    }

    /// <summary>No port is isolated: the packet path skips policy entirely.</summary>
    public bool IsEmpty => _sets.Length == 0;

    public IReadOnlyList<string> PolicyNames { get; }

    /// <summary>Ports the table has entries for (the snapshot's port count, or 0 when empty).</summary>
    public int PortCount => _ingress.Length;

    /// <summary>The rule set isolating <paramref name="port"/> in <paramref name="direction"/>, or null when that way is open.</summary>
    public PolicyRuleSet? For(int port, PolicyDirection direction)
    {
        var byPort = direction == PolicyDirection.Ingress ? _ingress : _egress;
        return (uint)port < (uint)byPort.Length && byPort[port] >= 0 ? _sets[byPort[port]] : null;
    }

    /// <summary>
    /// The pod on <paramref name="port"/> is isolated in some direction, so its connections need a conntrack entry:
    /// the replies of an allowed connection must pass whatever the other direction's rules say.
    /// </summary>
    public bool IsIsolated(int port) =>
        (uint)port < (uint)_ingress.Length && (_ingress[port] >= 0 || _egress[port] >= 0);
}
