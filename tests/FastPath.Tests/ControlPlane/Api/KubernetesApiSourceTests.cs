using System.Text.Json.Nodes;
using FastPath.ControlPlane.Cluster;
using FastPath.ControlPlane.Cluster.Sources;
using FastPath.ControlPlane.Live;
using FastPath.ControlPlane.Publish;
using FastPath.Tests.ControlPlane.Live;
using FastPath.Tests.Support;
using Microsoft.Extensions.Logging;

namespace FastPath.Tests.ControlPlane.Api;

/// <summary>
/// <see cref="KubernetesApiSource"/> against <see cref="FakeApiServer"/>: real HTTP, paginated JSON lists, chunked
/// watch streams, 410 Gone, bookmarks, dropped and stalled connections, with a live <see cref="ClusterController"/>
/// fed by it. What this does not prove: TLS and authentication (kubeconfig users, in-cluster tokens: KubernetesClient's),
/// HTTP/2, the API server's own watch cache timing, and list/watch at 5,000 nodes over a real network.
/// </summary>
public sealed class KubernetesApiSourceTests
{
    private static readonly KubernetesApiSourceOptions Fast = new()
    {
        PageSize = 100,
        StallTimeout = TimeSpan.FromSeconds(30),
        BackoffInitial = TimeSpan.FromMilliseconds(20),
        BackoffMax = TimeSpan.FromMilliseconds(200),
    };

    /// <summary>The fake API server with objects, a source on it and a controller for node-a fed by the source.</summary>
    internal sealed class Harness : IAsyncDisposable
    {
        public FakeApiServer Server = null!;
        public KubernetesApiSource Source = null!;
        public ClusterController Controller = null!;
        public readonly ListLogger Logger = new();
        private readonly TempCluster _dir = new();

        public static async Task<Harness> StartAsync(IEnumerable<JsonObject> objects, KubernetesApiSourceOptions? options = null)
        {
            var h = new Harness { Server = await FakeApiServer.StartAsync() };
            h.Server.ApplyAll(objects);
            var config = ClusterDirectory.ReadFile(h._dir.Write("config.yaml", ApiObjects.Configuration));
            h.Source = KubernetesApiSource.Connect(h.Server.WriteKubeconfig(h._dir.F("kubeconfig")), options ?? Fast, config.Objects);
            h.Controller = ClusterController.Start(h.Source, "node-a", new SnapshotPublisher("node-a"), h.Logger);
            return h;
        }

        public ClusterState State => Controller.State;

        public void WaitFor(Func<Harness, bool> condition, string what, double seconds = 15)
        {
            var deadline = DateTime.UtcNow.AddSeconds(seconds);
            while (!condition(this))
            {
                if (DateTime.UtcNow > deadline)
                    Assert.Fail($"timed out waiting for {what}; log: {string.Join(" | ", Logger.Lines.TakeLast(4).Select(l => l.Message))}");
                Thread.Sleep(10);
            }
        }

        public string[] Errors { get { lock (Logger.Lines) return [.. Logger.Lines.Where(l => l.Level >= LogLevel.Error).Select(l => l.Message)]; } }

        public async ValueTask DisposeAsync()
        {
            Controller.Dispose();
            await Server.DisposeAsync();
            _dir.Dispose();
        }
    }

    [Fact]
    public async Task InitialSync_AtScale_ListsInPages_AndEveryObjectArrives()
    {
        await using var h = await Harness.StartAsync(ApiObjects.Demo().Concat(ApiObjects.Scale(services: 2000, endpoints: 10)));
        Assert.Empty(h.Controller.InitialErrors);
        var s = h.State;
        Assert.Equal(2000 + 1, s.Services.Length);
        Assert.Equal(2000 + 1, s.EndpointSlices.Length);
        Assert.Equal(4, s.Pods.Length);
        Assert.NotNull(s.ConfigurationFile);
        Assert.True(h.Server.Lists >= 6 + 2 * 20, $"{h.Server.Lists} list requests: 2,001 objects in pages of 100 are 21 pages per kind");
        Assert.All(s.EndpointSlices, e => Assert.Null(e.Value.Metadata.ManagedFields));
        Assert.StartsWith(h.Server.Url, s.Services[0].File);
        h.WaitFor(x => x.Server.OpenWatches == 6, "six watches");
    }

    [Fact]
    public async Task WatchEvents_AddedModifiedDeleted_ReachTheSnapshot()
    {
        await using var h = await Harness.StartAsync(ApiObjects.Demo());
        h.WaitFor(x => x.Server.OpenWatches == 6, "six watches");
        long generation = h.Controller.Holder.Current!.Generation;

        h.Server.Apply(ApiObjects.Pod("web-9", "shop", "node-a", "10.244.1.19"));
        h.WaitFor(x => x.State.Pods.Any(p => p.Name == "web-9"), "ADDED pod");
        Assert.Contains(h.Controller.Holder.Current!.Ports, p => p.Name == "shop/web-9");

        h.Server.Apply(ApiObjects.Slice("web-abc12", "shop", "web", ("10.244.1.19", "node-a")));
        h.WaitFor(x => x.State.EndpointSlices.Single(e => e.Name == "web-abc12").Value.Endpoints.Count == 1, "MODIFIED slice");

        Assert.True(h.Server.Delete("Pod", "shop", "web-9"));
        h.WaitFor(x => x.State.Pods.All(p => p.Name != "web-9"), "DELETED pod");
        Assert.DoesNotContain(h.Controller.Holder.Current!.Ports, p => p.Name == "shop/web-9");
        Assert.True(h.Controller.Holder.Current!.Generation > generation);
        Assert.Empty(h.Errors);
        Assert.Equal(0, h.Source.Relists);
    }

    [Fact]
    public async Task Bookmarks_KeepAQuietKindsVersionCurrent_SoAReconnectAfterCompactionNeedsNoRelist()
    {
        await using var h = await Harness.StartAsync(ApiObjects.Demo());
        h.WaitFor(x => x.Server.OpenWatches == 6, "six watches");
        h.Server.Apply(ApiObjects.Pod("web-9", "shop", "node-a", "10.244.1.19")); // only the Pod watch sees a version move
        h.WaitFor(x => x.State.Pods.Any(p => p.Name == "web-9"), "pod");
        long bookmarks = h.Source.Bookmarks;
        h.Server.Bookmark();
        // Bookmarks carry no change: wait until every kind's watch has taken its one (a fixed sleep was too short on a
        // busy machine, and the compaction then forced a relist).
        h.WaitFor(x => x.Source.Bookmarks >= bookmarks + 6, "a bookmark on each of the six watches");
        h.Server.Compact();
        h.Server.DropConnections();
        h.WaitFor(x => x.Server.OpenWatches == 6 && x.Source.Watches >= 12, "six watches again");
        Assert.Equal(0, h.Source.Relists);
    }

    [Fact]
    public async Task Gone410_Relists_AndRemovesAnObjectDeletedWhileDisconnected()
    {
        await using var h = await Harness.StartAsync(ApiObjects.Demo());
        h.WaitFor(x => x.Server.OpenWatches == 6, "six watches");
        Assert.Contains(h.State.Pods, p => p.Name == "web-2");
        int lists = h.Server.Lists;
        h.Server.DeleteUnseen("Pod", "shop", "web-2");     // no DELETED event, history compacted past it
        h.Server.Apply(ApiObjects.Service("late", "shop", "10.96.0.99")); // changed "meanwhile" too, its event compacted
        h.Server.Compact();
        h.WaitFor(x => x.State.Pods.All(p => p.Name != "web-2") && x.State.Services.Any(s => s.Name == "late"), "relist after 410");
        Assert.True(h.Source.Relists >= 1);
        Assert.True(h.Server.Lists > lists);
        Assert.DoesNotContain(h.Controller.Holder.Current!.Ports, p => p.Name == "shop/web-2");
        Assert.Empty(h.Errors);
    }

    [Fact]
    public async Task DroppedConnections_Reconnect_AndChangesMadeMeanwhileArrive()
    {
        await using var h = await Harness.StartAsync(ApiObjects.Demo());
        h.WaitFor(x => x.Server.OpenWatches == 6, "six watches");
        for (int round = 0; round < 3; round++)
        {
            h.Server.DropConnections();
            h.Server.Apply(ApiObjects.Pod($"web-{10 + round}", "shop", "node-a", $"10.244.1.{30 + round}"));
        }
        h.WaitFor(x => Enumerable.Range(0, 3).All(r => x.State.Pods.Any(p => p.Name == $"web-{10 + r}")), "pods added across drops");
        Assert.True(h.Source.Watches > 6);
        Assert.Equal(0, h.Source.Relists);
    }

    [Fact]
    public async Task StalledServer_IsDroppedAfterTheStallTimeout_AndFollowedAgainWhenItRecovers()
    {
        await using var h = await Harness.StartAsync(ApiObjects.Demo(), Fast with { StallTimeout = TimeSpan.FromSeconds(1) });
        h.WaitFor(x => x.Server.OpenWatches == 6, "six watches");
        h.Server.Stalled = true;     // new requests hang without a byte
        h.Server.DropConnections();  // and the open ones go
        h.WaitFor(x => x.Errors.Any(e => e.Contains("no event or bookmark for 1 s") || e.Contains("reconnecting")), "a stall reported", 20);
        Assert.Contains(h.Errors, e => e.StartsWith(h.Server.Url, StringComparison.Ordinal));
        h.Server.Stalled = false;
        h.Server.Apply(ApiObjects.Pod("web-20", "shop", "node-a", "10.244.1.40"));
        h.WaitFor(x => x.State.Pods.Any(p => p.Name == "web-20"), "change after recovery", 20);
        Assert.True(h.Source.Reconnects >= 1);
    }

    [Fact]
    public async Task IdleWatch_ServerTimeoutEndsIt_AndItResumesWithoutARelist()
    {
        // timeoutSeconds 1..2: the server ends each watch cleanly, as kube-apiserver does after --min-request-timeout.
        await using var h = await Harness.StartAsync(ApiObjects.Demo(), Fast with { WatchTimeout = TimeSpan.FromSeconds(1) });
        h.WaitFor(x => x.Source.Watches >= 12, "watches reopened after their timeout", 20);
        h.Server.Apply(ApiObjects.Pod("web-21", "shop", "node-a", "10.244.1.41"));
        h.WaitFor(x => x.State.Pods.Any(p => p.Name == "web-21"), "change after a reopened watch");
        Assert.Equal(0, h.Source.Relists);
        Assert.True(h.Source.Reconnects == 0, string.Join(" | ", h.Errors));
    }

    [Fact]
    public async Task BadObjects_AreRejected_TheLastGoodStateStays_AndLaterEventsStillApply()
    {
        await using var h = await Harness.StartAsync(ApiObjects.Demo());
        h.WaitFor(x => x.Server.OpenWatches == 6, "six watches");
        // valid for the API server, invalid for the node: web-1's IP moved outside node-a's podCIDR
        h.Server.Apply(ApiObjects.Pod("web-1", "shop", "node-a", "10.244.9.11"));
        // not an object at all: KubernetesClient cannot read it
        h.Server.SendRaw(FakeApiServer.Pods, "{\"type\":\"MODIFIED\",\"object\":{\"kind\":\"Pod\",\"metadata\":{\"name\":7}}}");
        h.WaitFor(x => x.Errors.Length >= 2, "two rejections");
        Assert.Contains(h.Errors, e => e.Contains($"{h.Server.Url}: Pod shop/web-1: status.podIP") && e.Contains("last good version kept"));
        Assert.Contains(h.Errors, e => e.StartsWith($"{h.Server.Url}: pods: watch event rejected", StringComparison.Ordinal));
        Assert.Equal("10.244.1.11", h.State.Pods.Single(p => p.Name == "web-1").Value.Status.PodIP);
        h.Server.Apply(ApiObjects.Pod("web-22", "shop", "node-a", "10.244.1.42"));
        h.WaitFor(x => x.State.Pods.Any(p => p.Name == "web-22"), "a later good event");
        Assert.Contains(h.Controller.Holder.Current!.Ports, p => p.Name == "shop/web-1");
    }

    [Fact]
    public async Task UnreachableServer_IsOneErrorNamingTheServer()
    {
        using var dir = new TempCluster();
        var port = new System.Net.Sockets.TcpListener(System.Net.IPAddress.Loopback, 0);
        port.Start();
        int free = ((System.Net.IPEndPoint)port.LocalEndpoint).Port;
        port.Stop();
        var kubeconfig = dir.Write("kubeconfig", $"apiVersion: v1\nkind: Config\nclusters: [{{name: c, cluster: {{server: \"http://127.0.0.1:{free}\"}}}}]\nusers: [{{name: u, user: {{token: t}}}}]\ncontexts: [{{name: x, context: {{cluster: c, user: u}}}}]\ncurrent-context: x\n");
        using var source = KubernetesApiSource.Connect(kubeconfig, Fast);
        var initial = source.Start(_ => { });
        Assert.Empty(initial.Changes);
        Assert.All(initial.Errors, e => Assert.Matches($@"^http://127\.0\.0\.1:{free}/?: cannot list \w+: ", e.ToString()));
        Assert.Equal(6, initial.Errors.Count);
        await Task.CompletedTask;
    }
}
