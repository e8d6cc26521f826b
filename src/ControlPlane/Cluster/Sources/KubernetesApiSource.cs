using System.Net;
using System.Threading.Channels;
using k8s;
using k8s.Autorest;
using k8s.Models;

namespace FastPath.ControlPlane.Cluster.Sources;

/// <summary>
/// Follows a Kubernetes API server the way client-go's informers do, for the six kinds the node reads (Nodes, Pods,
/// Services, EndpointSlices, Namespaces, NetworkPolicies), through KubernetesClient:
/// <list type="bullet">
/// <item>List in pages (<c>limit</c>/<c>continue</c>, a consistent read); a continue token that expired (410) restarts
/// the list.</item>
/// <item>Watch from the list's resourceVersion with <c>allowWatchBookmarks</c>, so a quiet kind's resourceVersion
/// stays recent; a watch the server ends (its timeoutSeconds) resumes from the last version seen.</item>
/// <item>410 Gone (an ERROR event, or a refused watch): the version is too old, so the kind is listed again and the
/// difference with what was known (upserts, and deletes for objects gone while disconnected) is one batch.</item>
/// <item>A dropped connection or a failing server: reconnect after a jittered exponential backoff (client-go's
/// 800 ms → 30 s, factor 2, jitter 1); a server that sends nothing, not even a bookmark, for
/// <see cref="KubernetesApiSourceOptions.StallTimeout"/> is dropped the same way.</item>
/// <item>No torn state: every change seen while the previous batch was being applied (and a relist's whole
/// difference) is delivered as one batch, one at a time, from one thread.</item>
/// </list>
/// managedFields are dropped on arrival (client-go's informer transform does the same): they are most of an
/// object's size and nothing FastPath reads. The FastPathConfiguration can come from a file.
/// </summary>
public sealed class KubernetesApiSource : IClusterSource
{
    private readonly IKubernetes _client;
    private readonly KubernetesApiSourceOptions _options;
    private readonly IReadOnlyList<IClusterObject> _fileObjects;
    private readonly CancellationTokenSource _stop = new();
    private readonly Channel<ClusterChangeBatch> _pending = Channel.CreateUnbounded<ClusterChangeBatch>(new() { SingleReader = true });
    private readonly List<Informer> _informers;
    private readonly List<Task> _tasks = [];
    private Action<ClusterChangeBatch>? _onChanges;

    /// <param name="server">How the API server is named in log and error lines ("https://10.0.0.1:6443").</param>
    /// <param name="fileObjects">Objects read from files (the FastPathConfiguration), part of the first batch.</param>
    public KubernetesApiSource(IKubernetes client, string server, KubernetesApiSourceOptions? options = null, IReadOnlyList<IClusterObject>? fileObjects = null)
    {
        _client = client;
        _options = options ?? new KubernetesApiSourceOptions();
        _fileObjects = fileObjects ?? [];
        Description = $"Kubernetes API {server}";
        Server = server;
        _informers =
        [
            new Informer<V1Namespace, V1NamespaceList>(this, "Namespace", "namespaces",
                (rv, c, l, ct) => _client.CoreV1.ListNamespaceAsync(continueParameter: c, limit: l, resourceVersion: rv, cancellationToken: ct),
                (rv, t, onError, ct) => _client.CoreV1.WatchListNamespaceAsync(allowWatchBookmarks: true, resourceVersion: rv, timeoutSeconds: t, onError: onError, cancellationToken: ct)),
            new Informer<V1Node, V1NodeList>(this, "Node", "nodes",
                (rv, c, l, ct) => _client.CoreV1.ListNodeAsync(continueParameter: c, limit: l, resourceVersion: rv, cancellationToken: ct),
                (rv, t, onError, ct) => _client.CoreV1.WatchListNodeAsync(allowWatchBookmarks: true, resourceVersion: rv, timeoutSeconds: t, onError: onError, cancellationToken: ct)),
            new Informer<V1Service, V1ServiceList>(this, "Service", "services",
                (rv, c, l, ct) => _client.CoreV1.ListServiceForAllNamespacesAsync(continueParameter: c, limit: l, resourceVersion: rv, cancellationToken: ct),
                (rv, t, onError, ct) => _client.CoreV1.WatchListServiceForAllNamespacesAsync(allowWatchBookmarks: true, resourceVersion: rv, timeoutSeconds: t, onError: onError, cancellationToken: ct)),
            new Informer<V1Pod, V1PodList>(this, "Pod", "pods",
                (rv, c, l, ct) => _client.CoreV1.ListPodForAllNamespacesAsync(continueParameter: c, limit: l, resourceVersion: rv, cancellationToken: ct),
                (rv, t, onError, ct) => _client.CoreV1.WatchListPodForAllNamespacesAsync(allowWatchBookmarks: true, resourceVersion: rv, timeoutSeconds: t, onError: onError, cancellationToken: ct)),
            new Informer<V1EndpointSlice, V1EndpointSliceList>(this, "EndpointSlice", "endpointslices",
                (rv, c, l, ct) => _client.DiscoveryV1.ListEndpointSliceForAllNamespacesAsync(continueParameter: c, limit: l, resourceVersion: rv, cancellationToken: ct),
                (rv, t, onError, ct) => _client.DiscoveryV1.WatchListEndpointSliceForAllNamespacesAsync(allowWatchBookmarks: true, resourceVersion: rv, timeoutSeconds: t, onError: onError, cancellationToken: ct)),
            new Informer<V1NetworkPolicy, V1NetworkPolicyList>(this, "NetworkPolicy", "networkpolicies",
                (rv, c, l, ct) => _client.NetworkingV1.ListNetworkPolicyForAllNamespacesAsync(continueParameter: c, limit: l, resourceVersion: rv, cancellationToken: ct),
                (rv, t, onError, ct) => _client.NetworkingV1.WatchListNetworkPolicyForAllNamespacesAsync(allowWatchBookmarks: true, resourceVersion: rv, timeoutSeconds: t, onError: onError, cancellationToken: ct)),
        ];
    }

    /// <summary>A source for the cluster a kubeconfig file names (its current context), or the pod's own (in-cluster).</summary>
    public static KubernetesApiSource Connect(string? kubeconfig, KubernetesApiSourceOptions? options = null, IReadOnlyList<IClusterObject>? fileObjects = null)
    {
        var config = kubeconfig is null
            ? KubernetesClientConfiguration.InClusterConfig()
            : KubernetesClientConfiguration.BuildConfigFromConfigFile(kubeconfig);
        return new KubernetesApiSource(new Kubernetes(config), config.Host, options, fileObjects);
    }

    public string Description { get; }

    /// <summary>The API server's address, used as the "file" of every object and error read from it.</summary>
    public string Server { get; }

    /// <summary>Lists done after the first (410 Gone, expired continue tokens), watches (re)opened, and reconnects after failures.</summary>
    public long Relists => _informers.Sum(i => i.Relists);
    public long Watches => _informers.Sum(i => i.Watches);
    public long Reconnects => _informers.Sum(i => i.Reconnects);
    /// <summary>BOOKMARK events taken (each moves its kind's resourceVersion on without a change).</summary>
    public long Bookmarks => _informers.Sum(i => Interlocked.Read(ref i.Bookmarks));

    /// <summary>Batches delivered after <see cref="Start"/> (tests wait on it).</summary>
    public long BatchesDelivered { get; private set; }

    /// <summary>Lists every kind, returns them as the first batch, then watches; fails with one error when the server cannot be listed.</summary>
    public ClusterChangeBatch Start(Action<ClusterChangeBatch> onChanges)
    {
        if (_onChanges is not null) throw new InvalidOperationException("KubernetesApiSource.Start was already called");
        _onChanges = onChanges;
        var initial = Snapshot();
        if (initial.Errors.Count > 0) return initial;
        _tasks.Add(Task.Factory.StartNew(Deliver, TaskCreationOptions.LongRunning));
        foreach (var informer in _informers) _tasks.Add(Task.Run(() => informer.WatchLoopAsync(_stop.Token)));
        return initial;
    }

    /// <summary>
    /// Lists every kind once (the file objects included) without watching: what <c>check</c>, <c>replay</c> and
    /// <c>trace</c> read from a live cluster. No changes, one error per kind, when the server cannot be listed.
    /// </summary>
    public ClusterChangeBatch Snapshot()
    {
        var changes = new List<ClusterChange>();
        foreach (var o in _fileObjects) changes.Add(ClusterChange.Upsert(o));
        var errors = new List<ClusterError>();
        var initial = Task.WhenAll(_informers.Select(i => i.InitialListAsync(_stop.Token))).GetAwaiter().GetResult();
        foreach (var (kindChanges, error) in initial)
        {
            changes.AddRange(kindChanges);
            if (error is not null) errors.Add(error);
        }
        return errors.Count > 0 ? new ClusterChangeBatch([], errors, []) : new ClusterChangeBatch(changes, [], []);
    }

    /// <summary>
    /// The delivery thread: waits for a change, then takes everything pending as one batch (a later change of the same
    /// object replaces an earlier one), so a burst, or a relist, is applied as one.
    /// </summary>
    private void Deliver()
    {
        var reader = _pending.Reader;
        try
        {
            while (reader.WaitToReadAsync(_stop.Token).AsTask().GetAwaiter().GetResult())
            {
                var changes = new Dictionary<ObjectKey, ClusterChange>();
                var order = new List<ObjectKey>();
                var errors = new List<ClusterError>();
                while (reader.TryRead(out var batch))
                {
                    foreach (var c in batch.Changes)
                    {
                        if (!changes.ContainsKey(c.Key)) order.Add(c.Key);
                        changes[c.Key] = c;
                    }
                    errors.AddRange(batch.Errors);
                }
                if (changes.Count == 0 && errors.Count == 0) continue;
                BatchesDelivered++;
                try
                {
                    _onChanges!(new ClusterChangeBatch([.. order.Select(k => changes[k])], errors, []));
                }
                catch (Exception e) when (e is not OperationCanceledException)
                {
                    // The watches must outlive one failed apply: say so with the next batch and go on.
                    Post(new ClusterChangeBatch([], [new ClusterError(Server, null, null, null, $"applying {changes.Count} changes failed: {e.Message.ReplaceLineEndings(" ")}")], []));
                }
            }
        }
        catch (OperationCanceledException) { }
    }

    private void Post(ClusterChangeBatch batch) => _pending.Writer.TryWrite(batch);

    public void Dispose()
    {
        if (_stop.IsCancellationRequested) return;
        _stop.Cancel();
        _pending.Writer.TryComplete();
        try { Task.WaitAll([.. _tasks], TimeSpan.FromSeconds(5)); }
        catch (AggregateException) { }
        _stop.Dispose();
    }

    /// <summary>
    /// The change one decoded watch event makes: ADDED and MODIFIED upsert the object (managedFields dropped, named by
    /// <paramref name="server"/>), DELETED deletes its key; null for BOOKMARK and ERROR events and objects without
    /// metadata. Namespaced kinds without a namespace are in "default", as the API server would have put them.
    /// </summary>
    public static ClusterChange? ChangeOf<T>(WatchEventType type, T? item, string kind, string server)
        where T : class, IKubernetesObject<V1ObjectMeta>
    {
        if (item?.Metadata is null) return null;
        return type switch
        {
            WatchEventType.Added or WatchEventType.Modified => ClusterChange.Upsert(ObjectOf(item, kind, server)),
            WatchEventType.Deleted => new ClusterChange(ClusterChangeKind.Delete, new ObjectKey(kind, NamespaceOf(item, kind), item.Metadata.Name ?? ""), null, server),
            _ => null,
        };
    }

    private static ClusterObject<T> ObjectOf<T>(T value, string kind, string server) where T : class, IKubernetesObject<V1ObjectMeta>
    {
        var meta = value.Metadata;
        meta.ManagedFields = null;
        return new ClusterObject<T>(value, kind, NamespaceOf(value, kind), meta.Name ?? "", server, 0);
    }

    private static string? NamespaceOf<T>(T value, string kind) where T : IKubernetesObject<V1ObjectMeta> =>
        kind is "Node" or "Namespace" ? null : value.Metadata.NamespaceProperty ?? "default";

    private abstract class Informer
    {
        public long Relists, Watches, Reconnects, Bookmarks;

        public abstract Task<(List<ClusterChange> Changes, ClusterError? Error)> InitialListAsync(CancellationToken stop);

        public abstract Task WatchLoopAsync(CancellationToken stop);
    }

    private sealed class Informer<T, TList>(
        KubernetesApiSource source, string kind, string resource,
        Func<string?, string?, int?, CancellationToken, Task<TList>> list,
        Func<string?, int?, Action<Exception>, CancellationToken, IAsyncEnumerable<(WatchEventType, T)>> watch) : Informer
        where T : class, IKubernetesObject<V1ObjectMeta>
        where TList : IItems<T>, IMetadata<V1ListMeta>
    {
        /// <summary>The versions in force, by key: a relist is compared with them.</summary>
        private readonly Dictionary<ObjectKey, string?> _known = [];
        private string? _resourceVersion;
        private readonly Random _jitter = new();
        /// <summary>Set by the watch's onError when the server answered 410 Gone (an ERROR event with a Status).</summary>
        private volatile bool _gone;
        private readonly KubernetesApiSourceOptions _options = source._options;

        private ClusterObject<T> Wrap(T value) => ObjectOf(value, kind, source.Server);

        public override async Task<(List<ClusterChange>, ClusterError?)> InitialListAsync(CancellationToken stop)
        {
            try
            {
                return (await ListAsync(stop).ConfigureAwait(false), null);
            }
            catch (Exception e) when (e is not OperationCanceledException || !stop.IsCancellationRequested)
            {
                return ([], new ClusterError(source.Server, null, null, null, $"cannot list {resource}: {Describe(e)}"));
            }
        }

        /// <summary>Lists every page and returns the difference with what was known (all upserts the first time).</summary>
        private async Task<List<ClusterChange>> ListAsync(CancellationToken stop)
        {
            while (true)
            {
                var items = new List<T>();
                string? next = null, version = null;
                bool expired = false;
                do
                {
                    using var page = CancellationTokenSource.CreateLinkedTokenSource(stop);
                    page.CancelAfter(_options.StallTimeout);
                    TList result;
                    try
                    {
                        result = await list(null, next, _options.PageSize, page.Token).ConfigureAwait(false);
                    }
                    catch (HttpOperationException e) when (e.Response.StatusCode == HttpStatusCode.Gone && next is not null)
                    {
                        // The continue token outlived etcd's compaction: start the list again (client-go does the same).
                        expired = true;
                        break;
                    }
                    items.AddRange(result.Items ?? []);
                    next = result.Metadata?.ContinueProperty;
                    version = result.Metadata?.ResourceVersion;
                } while (!string.IsNullOrEmpty(next));
                if (expired) { Interlocked.Increment(ref Relists); continue; }

                var changes = new List<ClusterChange>();
                var seen = new HashSet<ObjectKey>();
                foreach (var item in items)
                {
                    var o = Wrap(item);
                    seen.Add(o.Key);
                    if (_known.TryGetValue(o.Key, out var rv) && rv is not null && rv == item.Metadata.ResourceVersion) continue;
                    _known[o.Key] = item.Metadata.ResourceVersion;
                    changes.Add(ClusterChange.Upsert(o));
                }
                foreach (var key in _known.Keys.Where(k => !seen.Contains(k)).ToList())
                {
                    _known.Remove(key);
                    changes.Add(new ClusterChange(ClusterChangeKind.Delete, key, null, source.Server));
                }
                _resourceVersion = version;
                return changes;
            }
        }

        public override async Task WatchLoopAsync(CancellationToken stop)
        {
            int failures = 0;
            while (!stop.IsCancellationRequested)
            {
                bool gone = false;
                try
                {
                    if (_resourceVersion is null)
                    {
                        Interlocked.Increment(ref Relists);
                        var changes = await ListAsync(stop).ConfigureAwait(false);
                        if (changes.Count > 0) source.Post(new ClusterChangeBatch(changes, [], []));
                    }
                    gone = await WatchOnceAsync(stop).ConfigureAwait(false);
                    failures = 0;
                }
                catch (OperationCanceledException) when (stop.IsCancellationRequested)
                {
                    return;
                }
                catch (HttpOperationException e) when (e.Response.StatusCode == HttpStatusCode.Gone)
                {
                    gone = true;
                }
                catch (Exception e)
                {
                    failures++;
                    Interlocked.Increment(ref Reconnects);
                    if (failures == 1 || failures % 10 == 0)
                        source.Post(new ClusterChangeBatch([], [new ClusterError(source.Server, null, null, null,
                            $"watch {resource}: {Describe(e)}; reconnecting (attempt {failures})")], []));
                    try { await Task.Delay(Backoff(failures), stop).ConfigureAwait(false); }
                    catch (OperationCanceledException) { return; }
                }
                // 410 Gone: the version we hold was compacted away; only a new list can say what changed meanwhile.
                if (gone) _resourceVersion = null;
            }
        }

        /// <summary>Client-go's watch backoff: 800 ms doubling to 30 s, each wait jittered by up to 100 %.</summary>
        private TimeSpan Backoff(int failures)
        {
            double baseMs = Math.Min(_options.BackoffMax.TotalMilliseconds, _options.BackoffInitial.TotalMilliseconds * Math.Pow(2, Math.Min(failures - 1, 30)));
            return TimeSpan.FromMilliseconds(baseMs * (1 + _jitter.NextDouble()));
        }

        /// <summary>One watch request; returns whether it ended with 410 Gone.</summary>
        private async Task<bool> WatchOnceAsync(CancellationToken stop)
        {
            Interlocked.Increment(ref Watches);
            using var idle = CancellationTokenSource.CreateLinkedTokenSource(stop);
            idle.CancelAfter(_options.StallTimeout);
            // client-go asks the server to end each watch after 5-10 minutes, so connections are rebalanced.
            int timeout = (int)_options.WatchTimeout.TotalSeconds;
            timeout += _jitter.Next(timeout + 1);
            long started = Environment.TickCount64;
            try
            {
                _gone = false;
                await foreach (var (type, item) in watch(_resourceVersion, timeout, OnWatchError, idle.Token).WithCancellation(idle.Token).ConfigureAwait(false))
                {
                    idle.CancelAfter(_options.StallTimeout);
                    if (_gone) return true;
                    if (item?.Metadata is null) continue;
                    if (type == WatchEventType.Bookmark)
                    {
                        _resourceVersion = item.Metadata.ResourceVersion ?? _resourceVersion;
                        Interlocked.Increment(ref Bookmarks);
                        continue;
                    }
                    if (ChangeOf(type, item, kind, source.Server) is not { } change) continue;
                    if (change.Kind == ClusterChangeKind.Upsert) _known[change.Key] = item.Metadata.ResourceVersion;
                    else _known.Remove(change.Key);
                    _resourceVersion = item.Metadata.ResourceVersion ?? _resourceVersion;
                    source.Post(new ClusterChangeBatch([change], [], []));
                }
            }
            catch (OperationCanceledException) when (!stop.IsCancellationRequested)
            {
                throw new TimeoutException($"no event or bookmark for {_options.StallTimeout.TotalSeconds:0.#} s");
            }
            catch (HttpRequestException e) when (e.InnerException is EndOfStreamException && Environment.TickCount64 - started >= timeout * 1000L)
            {
                // The server ended an idle watch at its timeoutSeconds without a byte; KubernetesClient reads the
                // empty body as an error. It is the normal end of a watch: resume from the same version, no backoff.
            }
            return _gone;
        }

        /// <summary>
        /// KubernetesClient's watch reports an ERROR event (a Status) or an event it cannot read here, and goes on
        /// reading. 410 Gone ends this watch with a relist; anything else loses that one event (the last good version
        /// stays, the object's next change or the next relist brings it back in step) and is reported at once.
        /// </summary>
        private void OnWatchError(Exception e)
        {
            if (e is KubernetesException { Status.Code: 410 }) { _gone = true; return; }
            source.Post(new ClusterChangeBatch([], [new ClusterError(source.Server, null, null, resource, $"watch event rejected: {Describe(e)}")], []));
        }

        private static string Describe(Exception e) => Trim(DescribeFully(e));

        private static string DescribeFully(Exception e) => e switch
        {
            HttpOperationException h => $"HTTP {(int)h.Response.StatusCode} {h.Response.ReasonPhrase} {Trim(h.Response.Content)}".TrimEnd(),
            KubernetesException k => $"{k.Status?.Code} {k.Status?.Reason}: {k.Status?.Message}",
            // HttpClient wraps the cause ("Error while copying content to a stream." ← "connection reset"): say both.
            _ => e.InnerException is { } inner ? $"{e.Message.ReplaceLineEndings(" ")} ({DescribeFully(inner)})" : e.Message.ReplaceLineEndings(" "),
        };

        private static string Trim(string? s) => s is null ? "" : s.Length <= 300 ? s.ReplaceLineEndings(" ") : s[..300].ReplaceLineEndings(" ") + "…";
    }
}

/// <summary>Timing of <see cref="KubernetesApiSource"/>; the defaults are client-go's.</summary>
public sealed record KubernetesApiSourceOptions
{
    /// <summary>Objects per list page (kube-proxy's informers ask for 500).</summary>
    public int PageSize { get; init; } = 500;

    /// <summary>The watch's timeoutSeconds: the server ends each watch after this (plus up to as much again, jittered).</summary>
    public TimeSpan WatchTimeout { get; init; } = TimeSpan.FromMinutes(5);

    /// <summary>A watch or list page that yields nothing for this long is dropped and reopened (bookmarks count).</summary>
    public TimeSpan StallTimeout { get; init; } = TimeSpan.FromMinutes(11);

    public TimeSpan BackoffInitial { get; init; } = TimeSpan.FromMilliseconds(800);
    public TimeSpan BackoffMax { get; init; } = TimeSpan.FromSeconds(30);
}
