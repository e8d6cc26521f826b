using System.Diagnostics;
using FastPath.ControlPlane.Cluster;
using FastPath.ControlPlane.Cluster.Sources;
using FastPath.ControlPlane.Compile;
using FastPath.ControlPlane.Publish;
using FastPath.DataPlane.Pipeline;
using Microsoft.Extensions.Logging;

namespace FastPath.ControlPlane.Live;

/// <summary>
/// Keeps one node's data plane in step with a changing cluster while it forwards.
/// <code>
/// var publisher = new SnapshotPublisher(nodeName);
/// using var controller = ClusterController.Start(new DirectorySource(clusterDir), nodeName, publisher, logger);
/// var engine = new Engine(publisher.Holder);   // each batch reads the newest snapshot; no locks, no pauses
/// ...                                           // controller.Dispose() stops watching
/// </code>
/// Every change from the source is validated on its own against the objects in force (Kubernetes' rules, one line
/// naming file, object and field per problem). A bad object is rejected and its last good version stays in force;
/// the rest of the batch applies. Then only what the change touches is recompiled (<see cref="IncrementalCompiler"/>)
/// and the new immutable snapshot is published by one reference swap. Each applied batch is logged with its compile
/// and publish times.
/// </summary>
public sealed class ClusterController : IDisposable
{
    private readonly object _gate = new();
    private readonly string _nodeName;
    private readonly SnapshotPublisher _publisher;
    private readonly ILogger _logger;
    private readonly IncrementalCompiler _compiler;
    private readonly ClusterIndex _index = new(FastPathConfiguration.Default);
    private IClusterSource? _source;
    private string _sourceName = "the cluster";
    private bool _published;

    /// <summary>A controller fed by <see cref="Apply"/> (replays, tests); <see cref="Start"/> connects a source.</summary>
    /// <param name="hostGateways">The host's default gateways, for a configuration that names no uplink gateway.</param>
    public ClusterController(string nodeName, SnapshotPublisher publisher, ILogger logger, IReadOnlyList<DataPlane.Packets.IpAddr>? hostGateways = null)
    {
        _nodeName = nodeName;
        _publisher = publisher;
        _logger = logger;
        _compiler = new IncrementalCompiler(nodeName) { HostGateways = hostGateways ?? [] };
    }

    /// <summary>
    /// Reads the source's current objects, publishes the first snapshot (rejecting bad objects one by one), then
    /// applies every later change as it arrives. <see cref="InitialErrors"/> says what the first load refused.
    /// </summary>
    public static ClusterController Start(IClusterSource source, string nodeName, SnapshotPublisher publisher, ILogger logger,
        IReadOnlyList<DataPlane.Packets.IpAddr>? hostGateways = null)
    {
        var controller = new ClusterController(nodeName, publisher, logger, hostGateways) { _source = source, _sourceName = source.Description };
        logger.LogInformation("watching {Source} for node {Node}", source.Description, nodeName);
        var initial = source.Start(batch => controller.Apply(batch));
        controller.InitialErrors = controller.Apply(initial);
        return controller;
    }

    /// <summary>Like <see cref="Start(IClusterSource, string, SnapshotPublisher, ILogger)"/>, publishing into <paramref name="holder"/>.</summary>
    public static ClusterController Start(IClusterSource source, string nodeName, SnapshotHolder holder, ILogger logger) =>
        Start(source, nodeName, new SnapshotPublisher(nodeName, holder), logger);

    /// <summary>The configuration in force.</summary>
    public FastPathConfiguration Configuration
    {
        get { lock (_gate) return _compiler.Configuration; }
    }

    /// <summary>What the data plane reads.</summary>
    public SnapshotHolder Holder => _publisher.Holder;

    /// <summary>Problems found by the first load (files that did not parse, objects rejected, a missing Node).</summary>
    public IReadOnlyList<ClusterError> InitialErrors { get; private set; } = [];

    /// <summary>Object changes applied and rejected so far.</summary>
    public long Applied { get; private set; }
    public long Rejected { get; private set; }

    /// <summary>Compile and publish time of the last published batch.</summary>
    public TimeSpan LastCompileTime { get; private set; }
    public TimeSpan LastPublishTime { get; private set; }

    /// <summary>The objects in force (O(objects): for checks and tests).</summary>
    public ClusterState State
    {
        get { lock (_gate) return _compiler.State(_sourceName); }
    }

    /// <summary>
    /// Applies one batch: deletes first (an address freed by one object may be taken by another in the same batch),
    /// then upserts in dependency order (configuration, Nodes, Services, Pods, EndpointSlices). Returns every problem
    /// (each also logged); publishes when anything was applied.
    /// </summary>
    public IReadOnlyList<ClusterError> Apply(ClusterChangeBatch batch)
    {
        lock (_gate)
        {
            var problems = new List<ClusterError>(batch.Errors);
            foreach (var e in batch.Errors) _logger.LogError("{Problem}", e.ToString());
            foreach (var w in batch.Warnings) _logger.LogWarning("{Problem}", w.ToString());

            var applied = new List<ClusterChange>();
            foreach (var change in batch.Changes.Where(c => c.Kind == ClusterChangeKind.Delete))
            {
                if (_compiler.Find(change.Key) is not { } old) continue;
                _index.Remove(old);
                _compiler.Delete(change.Key);
                applied.Add(change);
            }
            foreach (var change in UpsertsInOrder(batch.Changes))
            {
                var o = change.Object!;
                var errors = ClusterValidator.ValidateObject(o, _index);
                if (errors.Count > 0)
                {
                    Rejected++;
                    foreach (var e in errors) _logger.LogError("rejected, last good version kept: {Problem}", e.ToString());
                    problems.AddRange(errors);
                    continue;
                }
                if (_compiler.Find(change.Key) is { } old) _index.Remove(old);
                _compiler.Upsert(o);
                _index.Add(_compiler.Find(change.Key)!); // the form the compiler keeps (a Pod's compact record)
                if (o is ClusterObject<FastPathConfiguration>) _index.Configuration = _compiler.Configuration;
                applied.Add(change);
            }
            Applied += applied.Count;
            if (applied.Count > 0 || !_published) Publish(applied, problems);
            return problems;
        }
    }

    /// <summary>The batch's upserts in dependency order, stable within a kind (a counting sort: a full load is 175,000
    /// changes, and LINQ's OrderBy would sort an index array with a comparer).</summary>
    private static IEnumerable<ClusterChange> UpsertsInOrder(IReadOnlyList<ClusterChange> changes)
    {
        var byOrder = new List<ClusterChange>?[Order("") + 1];
        foreach (var c in changes)
            if (c.Kind == ClusterChangeKind.Upsert) (byOrder[Order(c.Key.Kind)] ??= []).Add(c);
        foreach (var list in byOrder)
            if (list is not null)
                foreach (var c in list) yield return c;
    }

    private static int Order(string kind) => kind switch
    {
        FastPathConfiguration.KindName => 0,
        "Namespace" => 1,
        "Node" => 2,
        "Service" => 3,
        "Pod" => 4,
        "EndpointSlice" => 5,
        _ => 6,
    };

    private void Publish(List<ClusterChange> applied, List<ClusterError> problems)
    {
        var compileWatch = Stopwatch.StartNew();
        TimeSpan compileTime = default;
        ForwardingSnapshot? snapshot = null;
        var errors = _publisher.Publish(generation =>
        {
            var result = _compiler.Compile(generation, _sourceName);
            compileTime = compileWatch.Elapsed;
            snapshot = result.Snapshot;
            return result;
        });
        var publishTime = compileWatch.Elapsed - compileTime;
        _index.Configuration = _compiler.Configuration;
        if (errors.Count > 0)
        {
            foreach (var e in errors) _logger.LogError("not published, previous snapshot kept: {Problem}", e.ToString());
            problems.AddRange(errors);
            return;
        }
        _published = true;
        LastCompileTime = compileTime;
        LastPublishTime = publishTime;
        double compileMs = compileTime.TotalMilliseconds, publishUs = publishTime.TotalMicroseconds;
        if (applied.Count <= 20)
        {
            foreach (var c in applied)
                _logger.LogInformation("applied {Change} {Object} ({Origin}): compile {CompileMs:F3} ms, publish {PublishUs:F1} µs, generation {Generation}",
                    c.Kind == ClusterChangeKind.Delete ? "delete" : "upsert", c.Key.ToString(), c.Origin, compileMs, publishUs, snapshot!.Generation);
        }
        else
        {
            _logger.LogInformation("applied {Count} changes: compile {CompileMs:F3} ms, publish {PublishUs:F1} µs, generation {Generation}",
                applied.Count, compileMs, publishUs, snapshot!.Generation);
        }
        _logger.LogDebug("routes rewritten {Routes}, services recompiled {Services}", _compiler.LastRouteChanges, _compiler.LastServicesCompiled);
    }

    /// <summary>Stops the source; the last published snapshot stays in the holder.</summary>
    public void Dispose() => _source?.Dispose();
}
