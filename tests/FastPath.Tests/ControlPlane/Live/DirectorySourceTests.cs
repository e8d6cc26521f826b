using FastPath.ControlPlane.Cluster;
using FastPath.ControlPlane.Cluster.Sources;
using FastPath.ControlPlane.Live;
using FastPath.ControlPlane.Publish;

namespace FastPath.Tests.ControlPlane.Live;

/// <summary>
/// File-watch edge cases of <see cref="DirectorySource"/>: editors' temp file + rename, partial writes, deletes,
/// objects moving between files, and a burst of 1,000 files. The tests wait (bounded) for the watcher's batches;
/// they assert what arrives, never how fast.
/// </summary>
public class DirectorySourceTests
{
    private static string Service(string name, string ip, int port = 80) =>
        $"apiVersion: v1\nkind: Service\nmetadata: {{name: {name}}}\nspec: {{clusterIP: {ip}, ports: [{{port: {port}}}]}}\n";

    private sealed class Collector : IDisposable
    {
        private readonly List<ClusterChangeBatch> _batches = [];
        public readonly DirectorySource Source;
        public readonly ClusterChangeBatch Initial;

        public Collector(string path)
        {
            Source = new DirectorySource(path, debounce: TimeSpan.FromMilliseconds(50), rescan: TimeSpan.FromMilliseconds(500));
            Initial = Source.Start(b => { lock (_batches) _batches.Add(b); });
        }

        public List<ClusterChangeBatch> Batches { get { lock (_batches) return [.. _batches]; } }
        public List<ClusterChange> Changes => Batches.SelectMany(b => b.Changes).ToList();

        public void WaitFor(Func<Collector, bool> condition)
        {
            var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(30);
            while (!condition(this))
            {
                Assert.True(DateTime.UtcNow < deadline, "the watcher did not report the change within 30 s");
                Thread.Sleep(20);
            }
        }

        public void Dispose() => Source.Dispose();
    }

    [Fact]
    public void InitialLoad_ReadsEveryFile_AnyLayout()
    {
        using var dir = new TempCluster();
        dir.Write("a.yaml", Service("a", "10.96.0.1") + "---\n" + Service("b", "10.96.0.2"));
        dir.Write("deep/er/c.json", """{"apiVersion": "v1", "kind": "Service", "metadata": {"name": "c"}, "spec": {"clusterIP": "10.96.0.3"}}""");
        dir.Write("notes.txt", "not a manifest");
        using var c = new Collector(dir.Path);
        Assert.Equal(["Service default/a", "Service default/b", "Service default/c"],
            c.Initial.Changes.Select(x => x.Key.ToString()).Order());
        Assert.All(c.Initial.Changes, x => Assert.Equal(ClusterChangeKind.Upsert, x.Kind));
    }

    [Fact]
    public void TempFileRenamedIntoPlace_IsOneUpsert()
    {
        using var dir = new TempCluster();
        dir.Write("svc.yaml", Service("web", "10.96.0.10"));
        using var c = new Collector(dir.Path);

        // An editor's save: write a hidden temp file, then rename it over the original.
        var temp = dir.Write(".svc.yaml.swp", Service("web", "10.96.0.10", port: 8080));
        File.Move(temp, dir.F("svc.yaml"), overwrite: true);

        c.WaitFor(x => x.Changes.Count > 0);
        var change = Assert.Single(c.Changes);
        Assert.Equal((ClusterChangeKind.Upsert, "Service default/web", dir.F("svc.yaml")), (change.Kind, change.Key.ToString(), change.Origin));
        Assert.Equal(8080, ((ClusterObject<k8s.Models.V1Service>)change.Object!).Value.Spec.Ports[0].Port);
        Assert.All(c.Batches, b => Assert.Empty(b.Errors));
    }

    [Fact]
    public void PartialWrite_KeepsTheLastGoodObjects_AndReportsOneError()
    {
        using var dir = new TempCluster();
        dir.Write("svc.yaml", Service("web", "10.96.0.10") + "---\n" + Service("api", "10.96.0.11"));
        using var c = new Collector(dir.Path);

        dir.Write("svc.yaml", Service("web", "10.96.0.10") + "---\napiVersion: v1\nkind: Service\nmetadata: {name: api"); // cut short
        c.WaitFor(x => x.Batches.Any(b => b.Errors.Count > 0));
        var error = Assert.Single(c.Batches.SelectMany(b => b.Errors));
        Assert.StartsWith(dir.F("svc.yaml") + ":", error.ToString());
        Assert.DoesNotContain(c.Changes, x => x.Kind == ClusterChangeKind.Delete); // api is not deleted by a half-written file

        dir.Write("svc.yaml", Service("web", "10.96.0.10") + "---\n" + Service("api", "10.96.0.11", port: 81));
        c.WaitFor(x => x.Changes.Any(ch => ch.Key.Name == "api"));
        var api = Assert.Single(c.Changes);
        Assert.Equal((ClusterChangeKind.Upsert, "Service default/api"), (api.Kind, api.Key.ToString())); // web did not change: not reported
    }

    [Fact]
    public void DeletedFile_DeletesItsObjects_MovedObjectIsNot()
    {
        using var dir = new TempCluster();
        dir.Write("a.yaml", Service("moves", "10.96.0.1") + "---\n" + Service("goes", "10.96.0.2"));
        using var c = new Collector(dir.Path);

        dir.Write("b.yaml", Service("moves", "10.96.0.1"));
        File.Delete(dir.F("a.yaml"));

        c.WaitFor(x => x.Changes.Any(ch => ch.Kind == ClusterChangeKind.Delete));
        c.WaitFor(x => x.Changes.Any(ch => ch.Key.Name == "moves"));
        Assert.Equal([(ClusterChangeKind.Delete, "goes")], c.Changes.Where(x => x.Kind == ClusterChangeKind.Delete).Select(x => (x.Kind, x.Key.Name)));
        Assert.Equal(dir.F("b.yaml"), c.Changes.Last(x => x.Key.Name == "moves").Origin);
    }

    [Fact]
    public void BurstOfAThousandFiles_IsCoalesced_AndEveryObjectArrives()
    {
        using var dir = new TempCluster();
        dir.Write("base.yaml", ControllerHarness.Base);
        var logger = new ListLogger();
        var publisher = new SnapshotPublisher("node-a");
        var source = new DirectorySource(dir.Path, debounce: TimeSpan.FromMilliseconds(100), rescan: TimeSpan.FromMilliseconds(500));
        using var controller = ClusterController.Start(source, "node-a", publisher, logger);
        Assert.Empty(controller.InitialErrors);

        for (int i = 0; i < 1000; i++)
            dir.Write($"burst/svc-{i:D4}.yaml", Service($"svc-{i}", $"10.96.{10 + i / 250}.{i % 250 + 1}"));

        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(60);
        while (publisher.Holder.Current.Services.Count < 1002)
        {
            Assert.True(DateTime.UtcNow < deadline, $"only {publisher.Holder.Current.Services.Count} frontends after 60 s");
            Thread.Sleep(50);
        }
        Assert.Equal(1000, controller.State.Services.Count(s => s.Name.StartsWith("svc-", StringComparison.Ordinal)));
        Assert.True(source.BatchesDelivered < 100, $"{source.BatchesDelivered} batches for one burst");
        Assert.Equal(0, controller.Rejected);
    }
}
