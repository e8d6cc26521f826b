using BenchmarkDotNet.Attributes;
using FastPath.ControlPlane.Cluster;
using FastPath.ControlPlane.Cluster.Sources;
using FastPath.ControlPlane.Live;
using FastPath.ControlPlane.Publish;
using Microsoft.Extensions.Logging.Abstractions;

namespace FastPath.Benchmarks;

/// <summary>
/// The live control plane on <see cref="LargeCluster"/> (5,000 nodes, 150k pods, 10k Services × 10 endpoints):
/// one change validated, compiled and published, next to the full compile every change would cost without
/// incremental compilation (the peer: what a proxy's full sync does). Means only; control-plane-stats has the p99.
/// </summary>
[MemoryDiagnoser]
public class ControlPlaneBenchmarks
{
    private LargeCluster _cluster = null!;
    private ClusterController _controller = null!;
    private int _shift, _next = LargeCluster.Services, _node = LargeCluster.Nodes;
    private readonly Random _random = new(6);

    [GlobalSetup]
    public void Setup()
    {
        _cluster = new LargeCluster(maglevTableSize: 1021);
        _controller = new ClusterController(LargeCluster.NodeName, new SnapshotPublisher(LargeCluster.NodeName), NullLogger.Instance);
        _controller.Apply(_cluster.Initial());
    }

    private static ClusterChangeBatch Batch(ClusterChange change) => new([change], [], []);

    [Benchmark(Baseline = true)]
    public long FullCompile()
    {
        var publisher = new SnapshotPublisher(LargeCluster.NodeName);
        new ClusterController(LargeCluster.NodeName, publisher, NullLogger.Instance).Apply(_cluster.Initial());
        return publisher.Holder.Current.Generation;
    }

    [Benchmark]
    public int EndpointSliceChange() =>
        _controller.Apply(Batch(ClusterChange.Upsert(LargeCluster.Slice(_random.Next(LargeCluster.Services), ++_shift)))).Count;

    [Benchmark]
    public int ServiceAddThenRemove()
    {
        int s = _next = LargeCluster.Services + (_next + 1) % 50_000; // names and addresses are reused once removed
        var svc = new ClusterObject<k8s.Models.V1Service>(new k8s.Models.V1Service
        {
            Metadata = new k8s.Models.V1ObjectMeta { Name = $"svc-{s}", NamespaceProperty = "default" },
            Spec = new k8s.Models.V1ServiceSpec { ClusterIP = LargeCluster.ServiceIp(s), Ports = [new k8s.Models.V1ServicePort { Name = "http", Port = 80 }] },
        }, "Service", "default", $"svc-{s}", "bench", 1);
        return _controller.Apply(Batch(ClusterChange.Upsert(svc))).Count + _controller.Apply(Batch(ClusterChange.Delete(svc))).Count;
    }

    [Benchmark]
    public int NodeAddThenRemove()
    {
        int n = _node = LargeCluster.Nodes + (_node + 1) % 15_000; // pod CIDRs stay below the service range
        var node = LargeCluster.Node(n, n);
        return _controller.Apply(Batch(ClusterChange.Upsert(node))).Count + _controller.Apply(Batch(ClusterChange.Delete(node))).Count;
    }
}
