using System.Globalization;
using System.Runtime.CompilerServices;
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
/// <remarks>
/// Incremental: an instance keeps the pods, namespaces and policies in force, each pod-selecting peer's selected pods
/// (resolved when a rule set first needs them) and the rule sets of the last table. Peers are indexed by the label keys
/// their pod and namespace selectors mention and by scope (own namespace, or any through a namespaceSelector), as
/// Calico's and Cilium's selector caches do. A Pod relabelled in place visits only the peers mentioning a changed key;
/// a Pod added, removed or readdressed visits the peers in its scope; a Namespace relabelled visits the peers whose
/// namespaceSelector mentions a changed key. Where the pod (or the namespace's pods) enters or leaves a peer, or its
/// addresses or ports there change, the resolved set is updated in place (no policy is re-resolved) and the policy is
/// marked; an egress rule with named ports over an ipBlock or every peer is marked on any pod's address or port change.
/// <see cref="Compile(IReadOnlyList{PortDefinition}, IReadOnlyList{IpAddr})"/> then rebuilds only the rule sets of the
/// local pods that name a marked policy (or, for ingress named ports, whose own pod changed) and reuses every other
/// set, renumbered when policies came or went. Which policies select each local pod is kept until the pod's record or
/// its namespace's policies change. Not thread-safe: one writer.
/// </remarks>
public sealed class PolicyCompiler
{
    private static readonly UInt128 MappedFirst = IpAddr.FromV4(0).Value, MappedLast = IpAddr.FromV4(uint.MaxValue).Value;
    private static readonly PolicyDirection[] Directions = [PolicyDirection.Ingress, PolicyDirection.Egress];

    /// <summary>Nothing policy reads differs (a status update, an annotation): no policy needs recompiling.</summary>
    private static bool SameForPolicy(PodRecord a, PodRecord b) =>
        a.Namespace == b.Namespace && SameLabels(a.Labels, b.Labels) && a.Addresses.AsSpan().SequenceEqual(b.Addresses)
        && a.ContainerPorts.AsSpan().SequenceEqual(b.ContainerPorts);

    /// <summary>
    /// One peer of a rule (null <see cref="Spec"/>: a rule without from/to, every peer). A pod-selecting peer's pods are
    /// resolved when a rule set first needs them and from then on kept up to date by membership changes (a pod or a
    /// namespace entering or leaving its selectors), never re-resolved from scratch; an ipBlock's ranges likewise.
    /// </summary>
    private sealed class Peer(CompiledPolicy policy, V1NetworkPolicyPeer? spec)
    {
        public CompiledPolicy Policy { get; } = policy;
        public V1NetworkPolicyPeer? Spec { get; } = spec;
        public bool SelectsPods => Spec is { IpBlock: null };
        /// <summary>The selected pods by qualified name, once resolved (pod-selecting peers only).</summary>
        public Dictionary<string, PodRecord>? Pods { get; set; }
        public List<(UInt128 First, UInt128 Last)>? Ranges { get; set; }
        /// <summary>The change that last visited this peer (a peer reached through several changed keys is updated once).</summary>
        public int Visited { get; set; }
    }

    private sealed record Rule(Peer[] Peers, IList<V1NetworkPolicyPort>? Ports);

    /// <summary>A policy in force: its id in the next table and its rules per direction (none where it does not apply).</summary>
    private sealed class CompiledPolicy(string name, ClusterObject<V1NetworkPolicy> source)
    {
        public string Name { get; } = name;
        public ClusterObject<V1NetworkPolicy> Source { get; set; } = source;
        public string Namespace => Source.Namespace!;
        public int Id { get; set; }
        public Rule[] Ingress { get; set; } = [];
        public Rule[] Egress { get; set; } = [];
        /// <summary>An egress rule with named ports over an ipBlock or every peer: its rules read every pod's addresses and container ports.</summary>
        public bool ReadsEveryPod { get; set; }
    }

    /// <summary>A rule set of the last table, what it was built from, and so when it must be rebuilt.</summary>
    private sealed record CachedSet(PolicyRuleSet Set, CompiledPolicy[] Selecting, string? NamedPortPod);

    private readonly Dictionary<string, Dictionary<string, PodRecord>> _podsByNamespace = new(StringComparer.Ordinal);
    private readonly Dictionary<string, IDictionary<string, string>> _declaredNamespaces = new(StringComparer.Ordinal);
    private readonly SortedDictionary<string, CompiledPolicy> _policies = new(StringComparer.Ordinal);
    private readonly Dictionary<string, List<CompiledPolicy>> _policiesByNamespace = new(StringComparer.Ordinal); // sorted by name
    // The pod-selecting peers of every policy, indexed the ways a change can reach them (Calico's and Cilium's selector
    // caches index the same way): by the label keys their pod and namespace selectors mention (a relabel visits only
    // the peers mentioning a changed key), and by scope (a pod added, removed or readdressed visits the peers of its
    // own namespace without a namespaceSelector and every peer with one).
    private readonly Dictionary<string, HashSet<Peer>> _peersByPodKey = new(StringComparer.Ordinal);
    private readonly Dictionary<string, HashSet<Peer>> _peersByNamespaceKey = new(StringComparer.Ordinal);
    private readonly Dictionary<string, HashSet<Peer>> _ownNamespacePeers = new(StringComparer.Ordinal);
    private readonly HashSet<Peer> _crossNamespacePeers = [];
    private readonly HashSet<CompiledPolicy> _readingEveryPod = [];
    private int _visit;
    private readonly HashSet<string> _dirtyPolicies = new(StringComparer.Ordinal);
    private readonly HashSet<string> _dirtyPods = new(StringComparer.Ordinal);
    private Dictionary<string, CachedSet> _sets = new(StringComparer.Ordinal);
    private string[]? _names; // null after a policy came or went: ids to renumber
    private IpAddr[] _nodeAddresses = [];
    private (UInt128 Address, PodRecord Pod)[]? _podsByAddress;
    private readonly List<PeerRule> _peerRules = [];
    private readonly Dictionary<string, LocalSelection> _localSelections = new(StringComparer.Ordinal);
    private readonly Dictionary<string, int> _policyVersions = new(StringComparer.Ordinal); // by namespace: bumped when one of its policies changes

    /// <summary>Compiles the policies of <paramref name="state"/> for the node's pod ports <paramref name="pods"/> (port FirstPod + i is pods[i]).</summary>
    public static PolicyTable Compile(ClusterState state, IReadOnlyList<PortDefinition> pods, IReadOnlyList<IpAddr> nodeAddresses) =>
        state.NetworkPolicies.IsEmpty ? PolicyTable.Empty : Load(state).Compile(pods, nodeAddresses);

    /// <summary>A compiler holding the namespaces, pods and policies of <paramref name="state"/>, nothing compiled yet.</summary>
    public static PolicyCompiler Load(ClusterState state)
    {
        var compiler = new PolicyCompiler();
        foreach (var ns in state.Namespaces) compiler.SetNamespace(ns.Name, ns);
        foreach (var pod in state.Pods) compiler.SetPod(pod.QualifiedName, PodRecord.From(pod));
        foreach (var policy in state.NetworkPolicies) compiler.SetPolicy(policy.QualifiedName, policy);
        return compiler;
    }

    /// <summary>Rule sets the last <see cref="Compile(IReadOnlyList{PortDefinition}, IReadOnlyList{IpAddr})"/> built (the others were reused).</summary>
    public int LastRuleSetsBuilt { get; private set; }

    /// <summary>Adds, replaces or (null) removes the Pod named <paramref name="qualifiedName"/> ("namespace/name").</summary>
    public void SetPod(string qualifiedName, ClusterObject<V1Pod>? pod) => SetPod(qualifiedName, pod is null ? null : PodRecord.From(pod));

    /// <inheritdoc cref="SetPod(string, ClusterObject{V1Pod})"/>
    public void SetPod(string qualifiedName, PodRecord? pod)
    {
        var before = Pod(qualifiedName);
        var after = pod is null ? null : PolicyView(pod);
        if (before is null ? after is null : after is not null && SameForPolicy(before, after)) return;
        // Only labels changed: addresses and container ports are what rules are built from, so only the peers whose
        // selectors mention a changed key can change, and only by the pod entering or leaving them.
        bool relabelOnly = before is not null && after is not null && before.Addresses.AsSpan().SequenceEqual(after.Addresses)
            && before.ContainerPorts.AsSpan().SequenceEqual(after.ContainerPorts);
        if (!relabelOnly)
        {
            _dirtyPods.Add(qualifiedName); // ingress named ports resolve against the local pod
            _podsByAddress = null;
        }
        if (before is not null)
        {
            var inNamespace = _podsByNamespace[before.Namespace];
            inNamespace.Remove(qualifiedName);
            if (inNamespace.Count == 0) _podsByNamespace.Remove(before.Namespace);
        }
        if (after is not null)
        {
            if (!_podsByNamespace.TryGetValue(after.Namespace, out var inNamespace))
                _podsByNamespace[after.Namespace] = inNamespace = new Dictionary<string, PodRecord>(StringComparer.Ordinal);
            inNamespace[qualifiedName] = after;
        }
        if (_policies.Count == 0) return; // loading: nothing resolved yet
        string ns = (before ?? after)!.Namespace;
        var nsLabels = NamespaceLabels(ns);
        int visit = ++_visit;
        if (relabelOnly)
        {
            foreach (string key in ChangedKeys(before!.Labels, after!.Labels))
                if (_peersByPodKey.TryGetValue(key, out var peers))
                    foreach (var peer in peers)
                        if (peer.Visited != visit)
                        {
                            peer.Visited = visit;
                            UpdateMembership(peer, qualifiedName, before, after, ns, nsLabels, relabelOnly);
                        }
            return;
        }
        foreach (var peers in (ReadOnlySpan<HashSet<Peer>?>)[_ownNamespacePeers.GetValueOrDefault(ns), _crossNamespacePeers])
            foreach (var peer in peers ?? [])
                UpdateMembership(peer, qualifiedName, before, after, ns, nsLabels, relabelOnly);
        foreach (var policy in _readingEveryPod) _dirtyPolicies.Add(policy.Name);
    }

    /// <summary>
    /// Moves the pod named <paramref name="qualifiedName"/> into or out of <paramref name="peer"/>'s resolved pods (or
    /// replaces its record) and marks the peer's policy changed when its addresses or ports for the peer changed.
    /// </summary>
    private void UpdateMembership(Peer peer, string qualifiedName, PodRecord? before, PodRecord? after, string ns,
        IDictionary<string, string> nsLabels, bool relabelOnly)
    {
        var spec = peer.Spec!;
        if (spec.NamespaceSelector is { } nsSelector ? !PolicySelectors.Matches(nsSelector, nsLabels) : ns != peer.Policy.Namespace) return;
        bool was = before is not null && (spec.PodSelector is not { } s1 || PolicySelectors.Matches(s1, before.Labels));
        bool now = after is not null && (spec.PodSelector is not { } s2 || PolicySelectors.Matches(s2, after.Labels));
        if (was == now && (!was || relabelOnly)) return; // the peer's addresses and ports are the same
        if (peer.Pods is { } pods)
        {
            if (now) pods[qualifiedName] = after!;
            else pods.Remove(qualifiedName);
        }
        _dirtyPolicies.Add(peer.Policy.Name);
    }

    /// <summary>The keys whose value differs between two label sets (present in one only, or with another value).</summary>
    private static List<string> ChangedKeys(IDictionary<string, string>? a, IDictionary<string, string>? b)
    {
        var keys = new List<string>();
        foreach (var (key, value) in a ?? EmptyLabels)
            if (b is null || !b.TryGetValue(key, out var other) || other != value) keys.Add(key);
        foreach (var key in (b ?? EmptyLabels).Keys)
            if (a is null || !a.ContainsKey(key)) keys.Add(key);
        return keys;
    }

    private static readonly Dictionary<string, string> EmptyLabels = [];

    /// <summary>The pod named "namespace/name" as policy sees it (found through its namespace: no second index of every pod), or null.</summary>
    private PodRecord? Pod(string qualifiedName)
    {
        int slash = qualifiedName.IndexOf('/');
        return slash > 0 && _podsByNamespace.GetAlternateLookup<ReadOnlySpan<char>>().TryGetValue(qualifiedName.AsSpan(0, slash), out var inNamespace)
            ? inNamespace.GetValueOrDefault(qualifiedName)
            : null;
    }

    /// <summary>Adds, replaces or (null) removes the Namespace <paramref name="name"/>.</summary>
    /// <remarks>
    /// Compiled optimized at its first call, not tiered: a relabel runs it once and loops over every peer and pod it
    /// moves (~10,000 steps at 10,000 pods), and namespaces change rarely, so under tiering the first ~60 relabels of a
    /// process (the call-counting delay, then 30 calls instrumented, then 30 more) ran it as tier-0 code with PGO
    /// probes: ~2 ms each against ~0.45 ms at tier 1 on `control-plane-stats policy` (docs/BENCHMARKS.md, branch ns20).
    /// </remarks>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public void SetNamespace(string name, ClusterObject<V1Namespace>? ns)
    {
        var before = NamespaceLabels(name);
        if (ns is null) _declaredNamespaces.Remove(name);
        else _declaredNamespaces[name] = PolicySelectors.NamespaceLabels(name, ns.Value.Metadata?.Labels);
        var after = NamespaceLabels(name);
        if (SameLabels(before, after) || !_podsByNamespace.TryGetValue(name, out var pods)) return; // no pod there: no peer changes
        // Only the peers whose namespaceSelector mentions a changed key can change, and only when the namespace enters
        // or leaves it: then its pods matching the peer's podSelector join or leave the resolved set.
        int visit = ++_visit;
        foreach (string key in ChangedKeys(before, after))
            if (_peersByNamespaceKey.TryGetValue(key, out var peers))
                foreach (var peer in peers)
                {
                    if (peer.Visited == visit) continue;
                    peer.Visited = visit;
                    var selector = peer.Spec!.NamespaceSelector!;
                    bool now = PolicySelectors.Matches(selector, after);
                    if (PolicySelectors.Matches(selector, before) == now) continue;
                    if (peer.Pods is { } resolved)
                        foreach (var pod in pods.Values)
                            if (peer.Spec.PodSelector is not { } podSelector || PolicySelectors.Matches(podSelector, pod.Labels))
                            {
                                if (now) resolved[pod.QualifiedName] = pod;
                                else resolved.Remove(pod.QualifiedName);
                            }
                    _dirtyPolicies.Add(peer.Policy.Name);
                }
    }

    /// <summary>Adds, replaces or (null) removes the NetworkPolicy named <paramref name="qualifiedName"/>.</summary>
    public void SetPolicy(string qualifiedName, ClusterObject<V1NetworkPolicy>? policy)
    {
        _dirtyPolicies.Add(qualifiedName);
        string ns = qualifiedName[..qualifiedName.IndexOf('/')];
        _policyVersions[ns] = _policyVersions.GetValueOrDefault(ns) + 1;
        if (_policies.TryGetValue(qualifiedName, out var known))
        {
            Unindex(known);
            if (policy is not null)
            {
                known.Source = policy;
                Index(known);
                return;
            }
            _policies.Remove(qualifiedName);
            var inNamespace = _policiesByNamespace[known.Namespace];
            inNamespace.Remove(known);
            if (inNamespace.Count == 0) _policiesByNamespace.Remove(known.Namespace);
            _names = null;
        }
        else if (policy is not null)
        {
            var added = new CompiledPolicy(qualifiedName, policy);
            Index(added);
            _policies.Add(qualifiedName, added);
            if (!_policiesByNamespace.TryGetValue(policy.Namespace!, out var inNamespace)) _policiesByNamespace[policy.Namespace!] = inNamespace = [];
            int at = inNamespace.FindIndex(p => string.CompareOrdinal(p.Name, qualifiedName) > 0);
            inNamespace.Insert(at < 0 ? inNamespace.Count : at, added);
            _names = null;
        }
    }

    /// <summary>Builds <paramref name="policy"/>'s rules from its spec (peers unresolved) and indexes its pod-selecting peers.</summary>
    private void Index(CompiledPolicy policy)
    {
        policy.Ingress = RulesFromSpec(policy, PolicyDirection.Ingress);
        policy.Egress = RulesFromSpec(policy, PolicyDirection.Egress);
        policy.ReadsEveryPod = policy.Egress.Any(r => HasNamedPort(r.Ports) && r.Peers.Any(p => !p.SelectsPods));
        if (policy.ReadsEveryPod) _readingEveryPod.Add(policy);
        foreach (var peer in PodSelectingPeers(policy))
        {
            var spec = peer.Spec!;
            if (spec.NamespaceSelector is null) Bucket(_ownNamespacePeers, policy.Namespace).Add(peer);
            else _crossNamespacePeers.Add(peer);
            foreach (string key in SelectorKeys(spec.PodSelector)) Bucket(_peersByPodKey, key).Add(peer);
            foreach (string key in SelectorKeys(spec.NamespaceSelector)) Bucket(_peersByNamespaceKey, key).Add(peer);
        }

        static HashSet<Peer> Bucket(Dictionary<string, HashSet<Peer>> index, string key) =>
            index.TryGetValue(key, out var peers) ? peers : index[key] = [];
    }

    private void Unindex(CompiledPolicy policy)
    {
        _readingEveryPod.Remove(policy);
        foreach (var peer in PodSelectingPeers(policy))
        {
            var spec = peer.Spec!;
            if (spec.NamespaceSelector is null) Remove(_ownNamespacePeers, policy.Namespace, peer);
            else _crossNamespacePeers.Remove(peer);
            foreach (string key in SelectorKeys(spec.PodSelector)) Remove(_peersByPodKey, key, peer);
            foreach (string key in SelectorKeys(spec.NamespaceSelector)) Remove(_peersByNamespaceKey, key, peer);
        }

        static void Remove(Dictionary<string, HashSet<Peer>> index, string key, Peer peer)
        {
            if (index.TryGetValue(key, out var peers) && peers.Remove(peer) && peers.Count == 0) index.Remove(key);
        }
    }

    private static IEnumerable<Peer> PodSelectingPeers(CompiledPolicy policy) =>
        policy.Ingress.Concat(policy.Egress).SelectMany(r => r.Peers).Where(p => p.SelectsPods);

    /// <summary>The label keys a selector reads (matchLabels and matchExpressions), each once.</summary>
    private static HashSet<string> SelectorKeys(V1LabelSelector? selector)
    {
        var keys = new HashSet<string>(StringComparer.Ordinal);
        if (selector is null) return keys;
        foreach (var key in selector.MatchLabels?.Keys ?? []) keys.Add(key);
        foreach (var requirement in selector.MatchExpressions ?? [])
            if (requirement?.Key is { } key) keys.Add(key);
        return keys;
    }

    /// <summary>
    /// The table for the node's pod ports <paramref name="pods"/> (port FirstPod + i is pods[i]) and node addresses,
    /// rebuilding only the rule sets the changes since the last call can affect.
    /// </summary>
    public PolicyTable Compile(IReadOnlyList<PortDefinition> pods, IReadOnlyList<IpAddr> nodeAddresses)
    {
        LastRuleSetsBuilt = 0;
        if (!nodeAddresses.SequenceEqual(_nodeAddresses))
        {
            _nodeAddresses = [.. nodeAddresses];
            _sets.Clear(); // every set allows the node's addresses
        }
        if (_names is null)
        {
            _names = [.. _policies.Keys];
            int id = 0;
            foreach (var p in _policies.Values) p.Id = id++;
        }
        var kept = new Dictionary<string, CachedSet>(StringComparer.Ordinal);
        foreach (var (key, cached) in _sets)
            if (!(cached.NamedPortPod is { } pod && _dirtyPods.Contains(pod)) && !cached.Selecting.Any(p => _dirtyPolicies.Contains(p.Name)))
                kept[key] = cached;
        IncrementalCompiler.Clear(_dirtyPolicies);
        IncrementalCompiler.Clear(_dirtyPods);
        if (_policies.Count == 0)
        {
            _sets = kept;
            return PolicyTable.Empty;
        }

        int portCount = PortIndex.FirstPod + pods.Count;
        var ingress = new int[portCount];
        var egress = new int[portCount];
        Array.Fill(ingress, -1);
        Array.Fill(egress, -1);
        var sets = new List<PolicyRuleSet>();
        var used = new Dictionary<string, (CachedSet Cached, int Index)>(StringComparer.Ordinal);
        for (int i = 0; i < pods.Count; i++)
        {
            if (Pod(pods[i].Name) is not { } pod || !_policiesByNamespace.TryGetValue(pod.Namespace, out var candidates)) continue;
            int version = _policyVersions.GetValueOrDefault(pod.Namespace);
            if (!_localSelections.TryGetValue(pod.QualifiedName, out var selection) || selection.Pod != pod || selection.PoliciesVersion != version)
                _localSelections[pod.QualifiedName] = selection = Select(pod, candidates, version);
            foreach (var direction in Directions)
            {
                var (selecting, key) = direction == PolicyDirection.Ingress ? (selection.Ingress, selection.IngressKey) : (selection.Egress, selection.EgressKey);
                if (key is null) continue;
                if (!used.TryGetValue(key, out var entry)) // a key names the local pod ("@pod") only for ingress named ports
                {
                    int[] ids = [.. selecting.Select(p => p.Id)];
                    CachedSet cached;
                    if (kept.TryGetValue(key, out var reused)) cached = reused with { Set = reused.Set.WithPolicies(ids), Selecting = selecting };
                    else
                    {
                        cached = new CachedSet(Build(selecting, ids, direction, pod), selecting, key.Contains('@') ? pod.QualifiedName : null);
                        LastRuleSetsBuilt++;
                    }
                    used[key] = entry = (cached, sets.Count);
                    sets.Add(cached.Set);
                }
                (direction == PolicyDirection.Ingress ? ingress : egress)[PortIndex.FirstPod + i] = entry.Index;
            }
        }
        if (_localSelections.Count > pods.Count) // a local pod went away
        {
            var local = pods.Select(p => p.Name).ToHashSet(StringComparer.Ordinal);
            foreach (string name in _localSelections.Keys.Where(n => !local.Contains(n)).ToList()) _localSelections.Remove(name);
        }
        _sets = used.ToDictionary(u => u.Key, u => u.Value.Cached, StringComparer.Ordinal); // sets no pod uses any more are dropped
        return new PolicyTable(_names, sets, ingress, egress);
    }

    /// <summary>
    /// Which policies of its namespace select a local pod, per direction, and the key of the rule set that serves it
    /// (null: not isolated that way); kept until the pod's record or its namespace's policies change, so a change
    /// elsewhere does not re-run every local pod's selectors.
    /// </summary>
    private sealed record LocalSelection(PodRecord Pod, int PoliciesVersion, CompiledPolicy[] Ingress, string? IngressKey, CompiledPolicy[] Egress, string? EgressKey);

    private static LocalSelection Select(PodRecord pod, List<CompiledPolicy> candidates, int version)
    {
        var ingress = candidates.Where(p => Selects(p.Source.Value, pod, PolicyDirection.Ingress)).ToArray();
        var egress = candidates.Where(p => Selects(p.Source.Value, pod, PolicyDirection.Egress)).ToArray();
        return new LocalSelection(pod, version, ingress, Key(ingress, PolicyDirection.Ingress), egress, Key(egress, PolicyDirection.Egress));

        string? Key(CompiledPolicy[] selecting, PolicyDirection direction)
        {
            if (selecting.Length == 0) return null;
            // Pods selected by the same policies share a rule set, unless ingress named ports resolve differently.
            bool named = direction == PolicyDirection.Ingress && selecting.Any(p => p.Source.Value.Spec.Ingress?.Any(r => HasNamedPort(r?.Ports)) == true);
            return $"{direction}:{string.Join(',', selecting.Select(p => p.Name))}" + (named ? "@" + pod.QualifiedName : "");
        }
    }

    /// <summary>spec.policyTypes, defaulted as the API server does (pkg/apis/networking/v1/defaults.go).</summary>
    public static bool Applies(V1NetworkPolicySpec spec, PolicyDirection direction)
    {
        if (spec.PolicyTypes is { Count: > 0 } types) return types.Contains(direction.ToString());
        return direction == PolicyDirection.Ingress || spec.Egress is { Count: > 0 };
    }

    private IDictionary<string, string> NamespaceLabels(string name) =>
        _declaredNamespaces.GetValueOrDefault(name) ?? PolicySelectors.NamespaceLabels(name, null);

    private static bool Selects(V1NetworkPolicy policy, PodRecord pod, PolicyDirection direction) =>
        policy.Spec is { } spec && policy.Metadata?.NamespaceProperty == pod.Namespace && Applies(spec, direction)
        && PolicySelectors.Matches(spec.PodSelector ?? new V1LabelSelector(), pod.Labels);

    private PolicyRuleSet Build(CompiledPolicy[] selecting, int[] ids, PolicyDirection direction, PodRecord local)
    {
        var peerRules = _peerRules; // scratch: the set copies what it keeps
        peerRules.Clear();
        foreach (var a in _nodeAddresses) peerRules.Add(new PeerRule(a.Value, a.Value, [ProtocolPortRange.All]));
        foreach (var policy in selecting)
            foreach (var rule in direction == PolicyDirection.Ingress ? policy.Ingress : policy.Egress)
            {
                bool named = HasNamedPort(rule.Ports);
                // Ingress resolves named ports against the local pod; egress against each destination pod.
                var fixedPorts = Resolve(rule.Ports, direction == PolicyDirection.Ingress ? local : null);
                foreach (var peer in rule.Peers)
                {
                    List<(UInt128 First, UInt128 Last)> ranges = peer.Spec is null ? [(UInt128.Zero, UInt128.MaxValue)] : peer.SelectsPods ? [] : peer.Ranges ??= BlockRanges(peer.Spec.IpBlock);
                    foreach (var (first, last) in ranges)
                        if (fixedPorts.Count > 0) peerRules.Add(new PeerRule(first, last, fixedPorts));
                    bool perPod = direction == PolicyDirection.Egress && named;
                    if (peer.SelectsPods)
                        foreach (var pod in (peer.Pods ??= ResolvePods(peer)).Values)
                        {
                            var podPorts = perPod ? Resolve(rule.Ports, pod) : fixedPorts;
                            if (podPorts.Count == 0) continue;
                            foreach (var a in pod.Addresses) peerRules.Add(new PeerRule(a.Value, a.Value, podPorts));
                        }
                    // Egress named ports also reach the pods inside an ipBlock or "every peer", each with its own ports.
                    if (!perPod) continue;
                    var byAddress = PodsByAddress();
                    foreach (var (first, last) in ranges)
                        for (int k = LowerBound(byAddress, first); k < byAddress.Length && byAddress[k].Address <= last; k++)
                            if (Resolve(rule.Ports, byAddress[k].Pod) is { Count: > 0 } podPorts)
                                peerRules.Add(new PeerRule(byAddress[k].Address, byAddress[k].Address, podPorts));
                }
            }
        return new PolicyRuleSet(peerRules, ids);
    }

    /// <summary>Every pod address with its pod, sorted (built when first needed after pods changed).</summary>
    private (UInt128 Address, PodRecord Pod)[] PodsByAddress()
    {
        if (_podsByAddress is { } known) return known;
        var all = new List<(UInt128 Address, PodRecord Pod)>();
        foreach (var pod in _podsByNamespace.Values.SelectMany(inNamespace => inNamespace.Values))
            foreach (var a in pod.Addresses) all.Add((a.Value, pod));
        all.Sort((x, y) => x.Address.CompareTo(y.Address));
        return _podsByAddress = [.. all];
    }

    private static int LowerBound((UInt128 Address, PodRecord Pod)[] sorted, UInt128 first)
    {
        int lo = 0, hi = sorted.Length;
        while (lo < hi)
        {
            int mid = (lo + hi) >>> 1;
            if (sorted[mid].Address < first) lo = mid + 1; else hi = mid;
        }
        return lo;
    }

    /// <summary>The rules of one direction, peers unresolved (none when the policy does not apply that way).</summary>
    private static Rule[] RulesFromSpec(CompiledPolicy policy, PolicyDirection direction)
    {
        var spec = policy.Source.Value.Spec;
        if (spec is null || !Applies(spec, direction)) return [];
        var raw = direction == PolicyDirection.Ingress
            ? (spec.Ingress ?? []).Select(r => (Peers: r?.FromProperty, r?.Ports))
            : (spec.Egress ?? []).Select(r => (Peers: r?.To, r?.Ports));
        return [.. raw.Select(r => new Rule(r.Peers is { Count: > 0 } peers ? [.. peers.Select(p => new Peer(policy, p))] : [new Peer(policy, null)], r.Ports))];
    }

    /// <summary>An ipBlock: its cidr minus every except.</summary>
    private static List<(UInt128 First, UInt128 Last)> BlockRanges(V1IPBlock block)
    {
        var ranges = new List<(UInt128, UInt128)>();
        if (Cidr.TryParse(block.Cidr, out var cidr))
        {
            ranges.AddRange(Ranges(cidr));
            foreach (var text in block.Except ?? [])
                if (Cidr.TryParse(text, out var except))
                    foreach (var cut in Ranges(except)) ranges = Subtract(ranges, cut);
        }
        return ranges;
    }

    /// <summary>The pods a pod-selecting peer selects now: namespaces first (few), then the pods of the matching ones.</summary>
    private Dictionary<string, PodRecord> ResolvePods(Peer peer)
    {
        var spec = peer.Spec!;
        var selected = new Dictionary<string, PodRecord>(StringComparer.Ordinal);
        string policyNamespace = peer.Policy.Namespace;
        IEnumerable<KeyValuePair<string, Dictionary<string, PodRecord>>> namespaces = spec.NamespaceSelector is null
            ? _podsByNamespace.TryGetValue(policyNamespace, out var own) ? [new(policyNamespace, own)] : []
            : _podsByNamespace;
        foreach (var (ns, nsPods) in namespaces)
        {
            if (spec.NamespaceSelector is { } nsSelector && !PolicySelectors.Matches(nsSelector, NamespaceLabels(ns))) continue;
            foreach (var p in nsPods.Values)
                if (spec.PodSelector is not { } podSelector || PolicySelectors.Matches(podSelector, p.Labels)) selected.Add(p.QualifiedName, p);
        }
        return selected;
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
    private static List<ProtocolPortRange> Resolve(IList<V1NetworkPolicyPort>? ports, PodRecord? target)
    {
        if (ports is not { Count: > 0 }) return [ProtocolPortRange.All];
        var result = new List<ProtocolPortRange>();
        foreach (var p in ports)
        {
            byte protocol = ClusterValidator.ProtocolNumber(p?.Protocol);
            string? value = p?.Port?.Value;
            if (value is null) result.Add(ProtocolPortRange.AnyPort(protocol));
            else if (int.TryParse(value, NumberStyles.None, CultureInfo.InvariantCulture, out int number))
                result.Add(ProtocolPortRange.Of(protocol, (ushort)number, (ushort)(p!.EndPort is int end && end >= number ? end : number)));
            else if (target is not null)
                foreach (var cp in target.ContainerPorts)
                    if (cp.Name == value && cp.Protocol == protocol)
                        result.Add(ProtocolPortRange.Of(protocol, (ushort)cp.Port, (ushort)cp.Port));
        }
        return result;
    }

    /// <summary>A pod with an address of its own (not hostNetwork), the only kind selectors can name; else null.</summary>
    private static PodRecord? PolicyView(PodRecord pod) => pod.HostNetwork || pod.Addresses.Length == 0 ? null : pod;

    private static bool SameLabels(IDictionary<string, string>? a, IDictionary<string, string>? b) =>
        (a?.Count ?? 0) == (b?.Count ?? 0) && (a is null || a.All(kv => b!.TryGetValue(kv.Key, out var v) && v == kv.Value));
}
