using FastPath.ControlPlane.Cluster;
using FastPath.ControlPlane.Cluster.Sources;
using k8s;
using k8s.Models;

namespace FastPath.Fuzz;

public static partial class FuzzTargets
{
    /// <summary>The six kinds <see cref="KubernetesApiSource"/> watches, in the order the watch target's first byte picks them.</summary>
    public static readonly string[] WatchKinds = ["Namespace", "Node", "Service", "Pod", "EndpointSlice", "NetworkPolicy"];

    private const string FuzzServer = "https://fuzz.invalid:6443";
    private static ClusterIndex? _watchIndex;

    /// <summary>
    /// A watch response body as the API server streams it (one JSON event per line) for the kind the first byte picks,
    /// decoded by KubernetesClient's own watch reader (the one KubernetesApiSource reads through), turned into changes
    /// by <see cref="KubernetesApiSource.ChangeOf"/> and validated against the demo cluster as the live controller
    /// validates each change. The reader may reject a line (onError, as the source reports it) or fail the stream
    /// (the source reconnects); conversion and validation must never throw, and every problem must name the server,
    /// and the object.
    /// </summary>
    public static void Watch(ReadOnlySpan<byte> input)
    {
        if (input.Length < 1) return;
        _watchIndex ??= DemoIndex();
        byte[] body = input[1..].ToArray();
        switch (input[0] % WatchKinds.Length)
        {
            case 0: WatchAs<V1Namespace>(body, WatchKinds[0]); break;
            case 1: WatchAs<V1Node>(body, WatchKinds[1]); break;
            case 2: WatchAs<V1Service>(body, WatchKinds[2]); break;
            case 3: WatchAs<V1Pod>(body, WatchKinds[3]); break;
            case 4: WatchAs<V1EndpointSlice>(body, WatchKinds[4]); break;
            default: WatchAs<V1NetworkPolicy>(body, WatchKinds[5]); break;
        }
    }

    private static void WatchAs<T>(byte[] body, string kind) where T : class, IKubernetesObject<V1ObjectMeta>
    {
        Exception? broken = null;
        using var closed = new ManualResetEventSlim();
        // KubernetesClient's Watcher reads lines with the same decoder (Watcher<T>.CreateWatchEventEnumerator) as the
        // WatchList…Async methods KubernetesApiSource calls; a line it cannot read goes to onError, as in the source.
        using var watcher = new Watcher<T>(() => Task.FromResult<TextReader>(new StreamReader(new MemoryStream(body))),
            (type, item) =>
            {
                try { ConvertAndValidate(type, item, kind); }
                catch (Exception e) { broken ??= e; }
            },
            onError: _ => { }, onClosed: closed.Set);
        if (!closed.Wait(TimeSpan.FromSeconds(30))) throw new TimeoutException("the watch reader did not finish an in-memory stream");
        if (broken is not null) System.Runtime.ExceptionServices.ExceptionDispatchInfo.Throw(broken);
    }

    private static void ConvertAndValidate<T>(WatchEventType type, T item, string kind) where T : class, IKubernetesObject<V1ObjectMeta>
    {
        if (KubernetesApiSource.ChangeOf(type, item, kind, FuzzServer) is not { Kind: ClusterChangeKind.Upsert, Object: { } o }) return;
        foreach (var error in ClusterValidator.ValidateObject(o, _watchIndex!))
            if (error.File != FuzzServer || string.IsNullOrEmpty(error.Object))
                throw new InvalidOperationException($"a validation error does not name the server and the object: {error}");
    }

    private static ClusterIndex DemoIndex()
    {
        var load = ClusterDirectory.Load(Path.Combine(RepositoryRoot(), "pcaps", "demo", "cluster"));
        var index = new ClusterIndex(load.State.Configuration);
        foreach (var o in load.State.Objects()) index.Add(o);
        return index;
    }
}
