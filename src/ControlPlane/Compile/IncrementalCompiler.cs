using System.Collections.Immutable;
using System.Runtime.InteropServices;
using FastPath.ControlPlane.Cluster;
using FastPath.DataPlane.Packets;
using FastPath.DataPlane.Pipeline;
using FastPath.DataPlane.Policy;
using FastPath.DataPlane.Routing;
using FastPath.DataPlane.Services;
using k8s.Models;
using Microsoft.Extensions.ObjectPool;

namespace FastPath.ControlPlane.Compile;

/// <summary>
/// One node's snapshot kept compiled part by part, so a change recompiles only what depends on it:
/// <list type="bullet">
/// <item>a Service or EndpointSlice → that Service's frontends and Maglev tables (the others are reused as they are);</item>
/// <item>another Node → its routes, applied to the kept <see cref="RouteTable.Builder"/> (only its prefixes are rewritten);</item>
/// <item>a Pod on this node → the port list; a Pod elsewhere → nothing;</item>
/// <item>this node's Node object or the FastPathConfiguration → settings, routes and every Service (NodePorts follow
/// the node's addresses; the Maglev size and traffic settings come from the configuration);</item>
/// <item>a NetworkPolicy, a Namespace or any Pod → the policy table, incrementally (<see cref="PolicyCompiler"/>):
/// only the rule sets of local pods selected by a policy the change alters are rebuilt — the changed policy; for a
/// Pod or a Namespace, the policies with a peer the pod (or the namespace's pods) entered, left or changed address in, found through an
/// index of peers by the label keys their selectors mention; the other rule sets are shared with the previous table.</item>
/// </list>
/// Parts that did not change are shared with the previous snapshot (the route table, the Service table), so a
/// snapshot stays immutable while the next one is built. Objects are assumed valid (the controller validates them).
/// Not thread-safe: one writer.
/// </summary>
public sealed class IncrementalCompiler
{
    private readonly string _nodeName;
    private readonly RouteTable.Builder _routeBuilder;
    /// <summary>
    /// Maglev builders (their permutation scratch arrays): one per Service compiled at a time, so the full compile's
    /// workers each take one and a single change reuses the same one instead of allocating it.
    /// </summary>
    private static readonly ObjectPool<MaglevTable.Builder> Builders = new DefaultObjectPool<MaglevTable.Builder>(new DefaultPooledObjectPolicy<MaglevTable.Builder>());

    private readonly Dictionary<string, ClusterObject<V1Node>> _nodes = new(StringComparer.Ordinal);
    private readonly Dictionary<string, PodRecord> _pods = new(StringComparer.Ordinal);
    private readonly Dictionary<string, ClusterObject<V1Service>> _services = new(StringComparer.Ordinal);
    private readonly Dictionary<string, EndpointSliceRecord> _slices = new(StringComparer.Ordinal);
    private readonly Dictionary<string, Dictionary<string, EndpointSliceRecord>> _slicesByService = new(StringComparer.Ordinal);
    private readonly Dictionary<ObjectKey, IClusterObject> _others = [];
    private ClusterObject<FastPathConfiguration>? _declared;

    private readonly SortedDictionary<string, PortDefinition> _localPorts = new(StringComparer.Ordinal);
    private readonly Dictionary<string, CompiledFrontend[]> _frontends = new(StringComparer.Ordinal);
    private readonly Dictionary<string, List<Route>> _nodeRoutes = new(StringComparer.Ordinal);
    private readonly Dictionary<(UInt128 Prefix, int Length), int> _routeOwners = [];
    private readonly HashSet<string> _dirtyServices = new(StringComparer.Ordinal);
    private readonly HashSet<string> _dirtyNodes = new(StringComparer.Ordinal);
    private bool _allDirty = true;
    private bool _portsDirty = true;
    private bool _policyDirty = true;
    private PolicyTable _policy = PolicyTable.Empty;
    private readonly PolicyCompiler _policyCompiler = new();
    private readonly List<CompiledFrontend> _removedFrontends = [];
    private readonly List<CompiledFrontend> _addedFrontends = [];
    private List<Route> _globalRoutes = [];
    private RouteTable? _routes;
    private ServiceTable? _serviceTable;
    private IReadOnlyList<PortDefinition>? _ports;
    private NodeSettings? _settings;

    /// <param name="routes">A builder kept across compilations; a fresh one by default.</param>
    public IncrementalCompiler(string nodeName, RouteTable.Builder? routes = null)
    {
        _nodeName = nodeName;
        _routeBuilder = routes ?? new RouteTable.Builder();
    }

    /// <summary>
    /// The host's default gateways (<c>fastpath run</c> reads the kernel's default routes), used when the configuration
    /// names neither uplinkGateway nor uplinkGatewayMAC. Set before the first compilation.
    /// </summary>
    public IReadOnlyList<IpAddr> HostGateways { get; init; } = [];

    /// <summary>
    /// Workers the full compile builds Services on (each Service's frontends and Maglev tables are independent of the
    /// others'); 1 builds them one by one. The snapshot is the same either way.
    /// </summary>
    public int Parallelism { get; init; } = Environment.ProcessorCount;

    /// <summary>The configuration in force (declared, with clusterCIDRs defaulted to the nodes' podCIDRs).</summary>
    public FastPathConfiguration Configuration { get; private set; } = ClusterDirectory.EffectiveConfiguration(null, []);

    /// <summary>Routes rewritten by the last compilation (0 when routes were reused).</summary>
    public int LastRouteChanges { get; private set; }

    /// <summary>Services whose frontends the last compilation rebuilt.</summary>
    public int LastServicesCompiled { get; private set; }

    /// <summary>NetworkPolicy rule sets the last compilation built (the others were reused).</summary>
    public int LastPolicyRuleSetsBuilt { get; private set; }

    /// <summary>The version in force of an object (for a Pod or an EndpointSlice, its compact <see cref="PodRecord"/> or
    /// <see cref="EndpointSliceRecord"/>), or null.</summary>
    public IObjectOrigin? Find(ObjectKey key) => key.Kind switch
    {
        "Node" => _nodes.GetValueOrDefault(key.Name),
        "Pod" => Qualified(_pods, key),
        "Service" => Qualified(_services, key),
        "EndpointSlice" => Qualified(_slices, key),
        FastPathConfiguration.KindName => _declared,
        _ => _others.GetValueOrDefault(key),
    };

    /// <summary>The entry keyed "namespace/name", looked up without building that string (a full load looks up every
    /// object three times).</summary>
    private static T? Qualified<T>(Dictionary<string, T> map, ObjectKey key) where T : class
    {
        if (key.Namespace is null) return map.GetValueOrDefault(key.Name);
        int length = key.Namespace.Length + 1 + key.Name.Length;
        if (length > 512) return map.GetValueOrDefault($"{key.Namespace}/{key.Name}");
        Span<char> name = stackalloc char[length];
        key.Namespace.CopyTo(name);
        name[key.Namespace.Length] = '/';
        key.Name.CopyTo(name[(key.Namespace.Length + 1)..]);
        return map.GetAlternateLookup<ReadOnlySpan<char>>().TryGetValue(name, out var value) ? value : null;
    }

    /// <summary>Adds or replaces an object.</summary>
    public void Upsert(IClusterObject o) => Change(o.Key, o);

    /// <summary>Removes an object (nothing happens when it is unknown).</summary>
    public void Delete(ObjectKey key) => Change(key, null);

    private void Change(ObjectKey key, IClusterObject? now)
    {
        var before = Find(key);
        switch (now ?? before)
        {
            case null:
                return;
            case ClusterObject<FastPathConfiguration>:
                _declared = now as ClusterObject<FastPathConfiguration>;
                _allDirty = true;
                break;
            case ClusterObject<V1Node> node:
                Set(_nodes, node.Name, now as ClusterObject<V1Node>);
                if (node.Name == _nodeName) _allDirty = true; // settings, own podCIDR routes, NodePort addresses
                _dirtyNodes.Add(node.Name);
                break;
            case ClusterObject<V1Pod> or PodRecord:
                var record = now is ClusterObject<V1Pod> pod
                    ? PodRecord.From(pod, pod.Value.Spec?.NodeName is { } on && _nodes.TryGetValue(on, out var host) ? host.Name : null)
                    : null;
                string podName = record?.QualifiedName ?? ((PodRecord)before!).QualifiedName;
                Set(_pods, podName, record);
                _policyCompiler.SetPod(podName, record);
                _policyDirty = true; // pod labels and addresses are policy peers
                if (_localPorts.Remove(podName)) _portsDirty = true;
                if (record is not null && SnapshotCompiler.PodPort(record, _nodeName) is { } port)
                {
                    _localPorts[podName] = port;
                    _portsDirty = true;
                }
                break;
            case ClusterObject<V1Service> service:
                Set(_services, service.QualifiedName, now as ClusterObject<V1Service>);
                _dirtyServices.Add(service.QualifiedName);
                break;
            case ClusterObject<V1EndpointSlice> or EndpointSliceRecord:
                var sliceRecord = now is ClusterObject<V1EndpointSlice> slice
                    ? EndpointSliceRecord.From(slice, n => _nodes.TryGetValue(n, out var on) ? on.Name : null)
                    : null;
                var old = before as EndpointSliceRecord;
                Set(_slices, sliceRecord?.QualifiedName ?? old!.QualifiedName, sliceRecord);
                MoveSlice(old, sliceRecord);
                break;
            default:
                if (now is null) _others.Remove(key);
                else _others[key] = now;
                if ((now ?? before) is ClusterObject<V1NetworkPolicy> policy)
                {
                    _policyCompiler.SetPolicy(policy.QualifiedName, now as ClusterObject<V1NetworkPolicy>);
                    _policyDirty = true;
                }
                else if ((now ?? before) is ClusterObject<V1Namespace> ns)
                {
                    _policyCompiler.SetNamespace(ns.Name, now as ClusterObject<V1Namespace>);
                    _policyDirty = true;
                }
                break;
        }
    }

    /// <summary>
    /// Counts who states each prefix (global routes and every Node's), so an incremental route update knows a removed
    /// prefix has no other owner. False when a prefix of <paramref name="routes"/> has (or had) more than one owner.
    /// </summary>
    private bool CountRouteOwners(List<Route> routes, int delta)
    {
        bool single = true;
        foreach (var r in routes)
        {
            ref int owners = ref CollectionsMarshal.GetValueRefOrAddDefault(_routeOwners, (r.Prefix.Value & IpAddr.PrefixMask(r.Prefix.IsV4, r.Length), r.Length), out _);
            single &= owners <= 1 && owners + delta <= 1;
            owners += delta;
        }
        return single;
    }

    private static void Set<T>(Dictionary<string, T> map, string key, T? value) where T : class
    {
        if (value is null) map.Remove(key);
        else map[key] = value;
    }

    /// <summary>Files the slice under its Service (<paramref name="before"/> out, <paramref name="after"/> in) and marks the
    /// Services dirty. A new version of a slice of the same Service replaces the old one in the map already kept (the
    /// map was dropped and made anew on every change before, a few hundred bytes more for each change to keep).</summary>
    private void MoveSlice(EndpointSliceRecord? before, EndpointSliceRecord? after)
    {
        if (before?.Service is { } oldService && after?.Service != oldService)
        {
            string owner = $"{before.Namespace}/{oldService}";
            _dirtyServices.Add(owner);
            if (_slicesByService.TryGetValue(owner, out var slices) && slices.Remove(before.Name) && slices.Count == 0) _slicesByService.Remove(owner);
        }
        if (after?.Service is not { } service) return;
        string name = $"{after.Namespace}/{service}";
        _dirtyServices.Add(name);
        if (!_slicesByService.TryGetValue(name, out var byName)) _slicesByService[name] = byName = new(StringComparer.Ordinal);
        byName[after.Name] = after;
    }

    /// <summary>
    /// Builds the snapshot of the objects in force, recompiling only the dirty parts. Fails (leaving every part as
    /// it was, ready for the next attempt) when this node has no Node object.
    /// </summary>
    public CompileResult Compile(long generation, string source = "the cluster")
    {
        if (!_nodes.TryGetValue(_nodeName, out var node))
        {
            string known = _nodes.Count == 0 ? "no Nodes defined" : "Nodes: " + string.Join(", ", _nodes.Keys.Order(StringComparer.Ordinal));
            return new CompileResult(null,
                [new ClusterError(null, null, null, $"--node {_nodeName}", $"no Node named {_nodeName} in {source} ({known})")]);
        }

        LastRouteChanges = 0;
        LastServicesCompiled = 0;
        LastPolicyRuleSetsBuilt = 0;
        if (_allDirty)
        {
            Configuration = ClusterDirectory.EffectiveConfiguration(_declared?.Value, _nodes.Values);
            _settings = SnapshotCompiler.Settings(node, Configuration);
            _globalRoutes = RouteCompiler.GlobalRoutes(Configuration, HostGateways);
            _frontends.Clear();
            _serviceTable = null;
            // The routes and the Services read and write disjoint state, so the route table is built beside the
            // Services' parallel compile (on one worker the route task would only queue behind it).
            var routes = Parallelism > 1 ? Task.Run(RebuildAllRoutes) : null;
            CompileAllServices();
            if (routes is null) RebuildAllRoutes();
            else routes.GetAwaiter().GetResult();
        }
        else
        {
            if (_dirtyNodes.Count > 0)
            {
                var removedRoutes = new List<Route>();
                var addedRoutes = new List<Route>();
                foreach (var name in _dirtyNodes)
                {
                    if (_nodeRoutes.Remove(name, out var old)) removedRoutes.AddRange(old);
                    if (_nodes.TryGetValue(name, out var n)) addedRoutes.AddRange(_nodeRoutes[name] = RouteCompiler.NodeRoutes(n, _nodeName));
                }
                bool globalChanged = false;
                // Without declared clusterCIDRs the cluster range is the union of the nodes' podCIDRs.
                if (_declared?.Value.ClusterCidrs is not { IsEmpty: false })
                {
                    var config = ClusterDirectory.EffectiveConfiguration(_declared?.Value, _nodes.Values);
                    if (!config.ClusterCidrs.SequenceEqual(Configuration.ClusterCidrs))
                    {
                        Configuration = config;
                        _globalRoutes = RouteCompiler.GlobalRoutes(Configuration, HostGateways);
                        globalChanged = true;
                    }
                }
                // Only the changed Nodes' prefixes are rewritten (O(their routes), not O(all routes)), unless the
                // global routes changed or a prefix is stated by more than one owner (then the full list decides).
                if (_routes is not null && !globalChanged && CountRouteOwners(removedRoutes, -1) && CountRouteOwners(addedRoutes, +1))
                {
                    _routes = _routeBuilder.Update(removedRoutes, addedRoutes);
                    LastRouteChanges = _routeBuilder.LastChanges;
                }
                else _routes = null;
            }
            foreach (var name in _dirtyServices) CompileService(name);
        }

        if (_routes is null) RebuildRoutes();
        if (_serviceTable is null)
        {
            var entries = new List<CompiledFrontend>(_frontends.Count * 2);
            foreach (var compiled in _frontends.Values) entries.AddRange(compiled);
            _serviceTable = new ServiceTable(entries);
        }
        else if (_removedFrontends.Count + _addedFrontends.Count > 0)
        {
            _serviceTable = _serviceTable.Update(_removedFrontends, _addedFrontends); // only the touched shards are rebuilt
        }
        _removedFrontends.Clear();
        _addedFrontends.Clear();
        if (_portsDirty || _ports is null) _ports = _localPorts.Values.ToArray();
        if (_policyDirty || _allDirty || _portsDirty)
        {
            _policy = _policyCompiler.Compile(_ports, _settings!.HostAddresses);
            LastPolicyRuleSetsBuilt = _policyCompiler.LastRuleSetsBuilt;
        }

        _allDirty = _portsDirty = _policyDirty = false;
        Clear(_dirtyNodes);
        Clear(_dirtyServices);
        return new CompileResult(new ForwardingSnapshot(_settings!, _ports, generation, _routes, _serviceTable, _policy), []);
    }

    /// <summary>Every Node's routes, then the route table from them (the full compile).</summary>
    private void RebuildAllRoutes()
    {
        _nodeRoutes.Clear();
        foreach (var n in _nodes.Values) _nodeRoutes[n.Name] = RouteCompiler.NodeRoutes(n, _nodeName);
        RebuildRoutes();
    }

    /// <summary>The route table from the global and every Node's routes, applied to the kept builder as a diff.</summary>
    private void RebuildRoutes()
    {
        var all = new List<Route>(_globalRoutes);
        foreach (var routes in _nodeRoutes.Values) all.AddRange(routes);
        _routes = _routeBuilder.Apply(all);
        LastRouteChanges = _routeBuilder.LastChanges;
        _routeOwners.Clear();
        CountRouteOwners(all, +1);
    }

    /// <summary>Empties a set of changed names, giving back the room a full load took (so it is not kept for good).</summary>
    internal static void Clear(HashSet<string> names)
    {
        bool large = names.Count > 1024;
        names.Clear();
        if (large) names.TrimExcess();
    }

    private void CompileService(string name)
    {
        LastServicesCompiled++;
        if (_frontends.Remove(name, out var old)) _removedFrontends.AddRange(old);
        var builder = Builders.Get();
        var compiled = BuildService(name, builder);
        Builders.Return(builder);
        if (compiled.Length == 0) return;
        _frontends[name] = compiled;
        _addedFrontends.AddRange(compiled);
    }

    /// <summary>
    /// Every Service at once (the full compile): the Services are independent, so their frontends and Maglev tables
    /// are built in parallel, then stored in the order of <see cref="_services"/> as the one-by-one loop would, so the
    /// snapshot is the same.
    /// </summary>
    private void CompileAllServices()
    {
        var names = _services.Keys.ToArray();
        var compiled = new CompiledFrontend[names.Length][];
        Parallel.For(0, names.Length, new ParallelOptions { MaxDegreeOfParallelism = Parallelism }, () => Builders.Get(), (i, _, builder) =>
        {
            compiled[i] = BuildService(names[i], builder);
            return builder;
        }, Builders.Return);
        LastServicesCompiled += names.Length;
        for (int i = 0; i < names.Length; i++)
            if (compiled[i].Length > 0) _frontends[names[i]] = compiled[i];
    }

    /// <summary>One Service's frontends with their Maglev tables (none when it is gone or has no frontend). Reads only.</summary>
    private CompiledFrontend[] BuildService(string name, MaglevTable.Builder builder)
    {
        if (!_services.TryGetValue(name, out var service)) return [];
        IReadOnlyList<EndpointSliceRecord> slices = !_slicesByService.TryGetValue(name, out var s) ? []
            : s.Count == 1 ? [.. s.Values]
            : s.Values.OrderBy(x => x.Name, StringComparer.Ordinal).ToList();
        var frontends = ServiceCompiler.ServiceFrontends(service, slices, _nodeName, _settings!.HostAddresses,
            ServiceCompiler.ZoneOf(_nodes.GetValueOrDefault(_nodeName)?.Value));
        // Frontends of one Service port (ClusterIP, NodePort per node address, LoadBalancer IPs) usually have the
        // same backends: one Maglev table serves them all.
        var tables = new List<(IReadOnlyList<ServiceBackend> Backends, MaglevTable Table)>(1);
        var compiled = new CompiledFrontend[frontends.Count];
        for (int i = 0; i < frontends.Count; i++)
        {
            var f = frontends[i];
            MaglevTable? table = null;
            foreach (var t in tables)
                if (ReferenceEquals(t.Backends, f.Backends) || t.Backends.SequenceEqual(f.Backends)) { table = t.Table; break; }
            if (table is null)
            {
                table = CompiledFrontend.BuildMaglev(f.Backends,
                    MaglevTable.SizeFor(f.Backends.Count, Configuration.MaglevTableSize, Configuration.MaglevSlotsPerBackend), builder);
                tables.Add((f.Backends, table));
            }
            compiled[i] = new CompiledFrontend(f, table);
        }
        return compiled;
    }

    /// <summary>The objects in force as a <see cref="ClusterState"/> (sorted by name; for checks and tests, O(objects)).</summary>
    public ClusterState State(string source) => new()
    {
        Source = source,
        Nodes = Sorted(_nodes.Values),
        Pods = Sorted(_pods.Values.Select(p => p.ToObject())),
        Services = Sorted(_services.Values),
        EndpointSlices = Sorted(_slices.Values.Select(s => s.ToObject())),
        Namespaces = Sorted(_others.Values.OfType<ClusterObject<V1Namespace>>()),
        NetworkPolicies = Sorted(_others.Values.OfType<ClusterObject<V1NetworkPolicy>>()),
        Configuration = Configuration,
        ConfigurationFile = _declared?.File,
    };

    private static ImmutableArray<ClusterObject<T>> Sorted<T>(IEnumerable<ClusterObject<T>> objects) where T : class =>
        [.. objects.OrderBy(o => o.QualifiedName, StringComparer.Ordinal)];
}
