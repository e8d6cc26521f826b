using System.Diagnostics;
using System.Globalization;
using FastPath.ControlPlane.Cluster;
using FastPath.ControlPlane.Cluster.Sources;
using FastPath.ControlPlane.Live;
using FastPath.ControlPlane.Publish;
using FastPath.DataPlane.Packets;
using FastPath.DataPlane.Pipeline;
using FastPath.DataPlane.Ports;
using Microsoft.Extensions.Logging.Abstractions;

namespace FastPath.Benchmarks;

/// <summary>
/// `dotnet run -c Release --project bench/FastPath.Benchmarks -- control-plane-stats [maglevTableSize | policy]`: the live
/// control plane on <see cref="LargeCluster"/>: full compile (objects in memory → published snapshot, with retained
/// memory), latency percentiles of single changes (BenchmarkDotNet reports means, the targets are p99), the peer
/// (a full recompile per change, what an iptables/nftables full sync does) in the same run, and the forwarding rate
/// while 1,000 changes per second are applied vs. none; then the same for NetworkPolicy changes on <see cref="PolicyCluster"/>.
/// </summary>
public static class ControlPlaneStats
{
    public static void Run(int maglevTableSize)
    {
        var ci = CultureInfo.InvariantCulture;
        Console.WriteLine($"cluster: {LargeCluster.Nodes:N0} nodes, {LargeCluster.Nodes * LargeCluster.PodsPerNode:N0} pods, {LargeCluster.Services:N0} services x {LargeCluster.EndpointsPerService} endpoints, Maglev M={maglevTableSize}; {Environment.ProcessorCount} cores");
        var cluster = new LargeCluster(maglevTableSize);

        ClusterController? controller = null;
        SnapshotPublisher? publisher = null;
        long before = GC.GetTotalMemory(forceFullCollection: true);
        for (int run = 0; run < 3; run++)
        {
            controller = null; publisher = null;
            GC.Collect();
            long allocated = GC.GetTotalAllocatedBytes(precise: true);
            var watch = Stopwatch.StartNew();
            publisher = new SnapshotPublisher(LargeCluster.NodeName);
            controller = new ClusterController(LargeCluster.NodeName, publisher, NullLogger.Instance);
            var problems = controller.Apply(cluster.Initial());
            watch.Stop();
            if (problems.Count > 0) throw new InvalidOperationException(problems[0].ToString());
            long allocatedNow = GC.GetTotalAllocatedBytes(precise: true);
            long retained = GC.GetTotalMemory(forceFullCollection: true) - before;
            Console.WriteLine(string.Format(ci, "full compile (validate {0:N0} objects, compile, publish): {1:F0} ms, retained {2:F0} MiB, allocated {3:F0} MiB, {4:N0} frontends",
                cluster.ObjectCount, watch.Elapsed.TotalMilliseconds, retained / 1048576.0, (allocatedNow - allocated) / 1048576.0, publisher.Holder.Current.Services.Count));
        }

        var random = new Random(6);
        int shift = 0;
        Report("EndpointSlice change", 2000, () => Batch(ClusterChange.Upsert(LargeCluster.Slice(random.Next(LargeCluster.Services), ++shift))), controller!);

        int next = LargeCluster.Services;
        var added = new Queue<IClusterObject>();
        Report("Service add or remove", 1000, () =>
        {
            if (added.Count > 0 && added.Count % 2 == 0) return Batch(ClusterChange.Delete(added.Dequeue()));
            var svc = new ClusterObject<k8s.Models.V1Service>(new k8s.Models.V1Service
            {
                Metadata = new k8s.Models.V1ObjectMeta { Name = $"svc-{next}", NamespaceProperty = "default" },
                Spec = new k8s.Models.V1ServiceSpec { ClusterIP = LargeCluster.ServiceIp(next), Ports = [new k8s.Models.V1ServicePort { Name = "http", Port = 80 }] },
            }, "Service", "default", $"svc-{next}", "bench", 1);
            next++;
            added.Enqueue(svc);
            return Batch(ClusterChange.Upsert(svc));
        }, controller!);

        int nodeNext = LargeCluster.Nodes;
        var nodes = new Queue<IClusterObject>();
        Report("Node add or remove", 1000, () =>
        {
            if (nodes.Count > 0 && nodes.Count % 2 == 0) return Batch(ClusterChange.Delete(nodes.Dequeue()));
            var node = LargeCluster.Node(nodeNext, nodeNext);
            nodeNext++;
            nodes.Enqueue(node);
            return Batch(ClusterChange.Upsert(node));
        }, controller!);

        // The peer: a full recompile for one change, as a full proxy sync rewrites every rule.
        var state = controller!.State;
        var full = new SnapshotPublisher(LargeCluster.NodeName);
        Report("peer: full recompile per change", 5, () => { full.Publish(state); return ClusterChangeBatch.Empty; }, null);

        ForwardingUnderChurn(controller, publisher!, random);
        PolicyChanges();
    }

    /// <summary>
    /// The NetworkPolicy cluster (<see cref="PolicyCluster"/>: 10,000 pods, 1,000 policies, node-0 holding 100 pods)
    /// under the live controller: the first apply, single changes (policy, pod, namespace) applied and published, and
    /// the peer in the same run: a full recompile per change.
    /// </summary>
    public static void PolicyChanges()
    {
        var state = PolicyCluster.Build(namespaces: 100, podsPerNamespace: 100, policiesPerNamespace: 10);
        var nodes = Enumerable.Range(0, 100).Select(n => new ClusterObject<k8s.Models.V1Node>(
            new k8s.Models.V1Node { Metadata = new k8s.Models.V1ObjectMeta { Name = $"node-{n}" } }, "Node", null, $"node-{n}", "bench", 1)).ToList();
        IEnumerable<IClusterObject> objects = [.. nodes, .. state.Namespaces, .. state.Pods, .. state.NetworkPolicies];
        var publisher = new SnapshotPublisher("node-0");
        var controller = new ClusterController("node-0", publisher, NullLogger.Instance);
        var watch = Stopwatch.StartNew();
        var problems = controller.Apply(new ClusterChangeBatch([.. objects.Select(ClusterChange.Upsert)], [], []));
        if (problems.Count > 0) throw new InvalidOperationException(problems[0].ToString());
        Console.WriteLine(string.Format(CultureInfo.InvariantCulture, "policy cluster: first apply ({0:N0} objects, 1,000 policies): {1:F0} ms",
            nodes.Count + state.Namespaces.Length + state.Pods.Length + state.NetworkPolicies.Length, watch.Elapsed.TotalMilliseconds));

        var policy = new Flip<k8s.Models.V1NetworkPolicy>();
        var pod = new Flip<k8s.Models.V1Pod>();
        var added = new Flip<k8s.Models.V1Pod>();
        var ns = new Flip<k8s.Models.V1Namespace>();
        (policy.A, policy.B) = PolicyCluster.PolicyChange(state);
        (pod.A, pod.B, added.B) = PolicyCluster.PodChanges(state);
        (ns.A, ns.B) = PolicyCluster.NamespaceChange(state);
        static ClusterChangeBatch Flip<T>(Flip<T> flip, IClusterObject key) where T : class =>
            Batch(flip.Next() is { } now ? ClusterChange.Upsert(now) : ClusterChange.Delete(key));
        Report("NetworkPolicy change (isolating local pods)", 200, () => Flip(policy, policy.A), controller);
        Report("Pod relabelled (a policy peer)", 200, () => Flip(pod, pod.A), controller);
        Report("Pod added or removed (a policy peer)", 200, () => Flip(added, added.B), controller);
        Report("Namespace relabelled (namespace selectors)", 100, () => Flip(ns, ns.A), controller);
        var full = new SnapshotPublisher("node-0");
        var current = controller.State;
        Report("peer: full recompile per change (policy cluster)", 5, () => { full.Publish(current); return ClusterChangeBatch.Empty; }, null);
    }

    private static ClusterChangeBatch Batch(ClusterChange change) => new([change], [], []);

    private static void Report(string what, int count, Func<ClusterChangeBatch> change, ClusterController? controller)
    {
        var times = new double[count];
        for (int i = 0; i < count; i++)
        {
            var watch = Stopwatch.StartNew(); // the change is built inside the measurement (for the peer it is the whole work)
            var batch = change();
            var problems = controller?.Apply(batch) ?? [];
            times[i] = watch.Elapsed.TotalMicroseconds;
            if (problems.Count > 0) throw new InvalidOperationException(problems[0].ToString());
        }
        Array.Sort(times);
        double P(double q) => times[Math.Min(count - 1, (int)Math.Ceiling(q * count) - 1)];
        Console.WriteLine(string.Format(CultureInfo.InvariantCulture, "{0} (validate, compile, publish; n={1}): p50 {2:F0} µs, p99 {3:F0} µs, max {4:F0} µs",
            what, count, P(0.50), P(0.99), times[^1]));
    }

    /// <summary>A 64-byte TCP ACK from a pod (gateway MAC as destination), checksums correct.</summary>
    private static byte[] TcpAck(ushort sport, uint src, uint dst)
    {
        var f = new byte[64];
        EthernetHeader.Write(f, new MacAddress(0xEEEE_EEEE_EEEEUL), new MacAddress(0x0242_0A00_0002UL), EtherType.Ipv4);
        Ipv4Header.Write(f.AsSpan(14), 0, 50, 1, Ipv4Header.FlagDontFragment, 64, IpProtocol.Tcp, src, dst);
        var tcp = f.AsSpan(34);
        System.Buffers.Binary.BinaryPrimitives.WriteUInt16BigEndian(tcp, sport);
        System.Buffers.Binary.BinaryPrimitives.WriteUInt16BigEndian(tcp[2..], 80);
        tcp[12] = 0x50;
        tcp[13] = TcpHeader.Ack;
        System.Buffers.Binary.BinaryPrimitives.WriteUInt16BigEndian(tcp[16..], Checksum.TransportV4(src, dst, IpProtocol.Tcp, tcp[..30]));
        return f;
    }

    /// <summary>Packets per second through one engine for 3 s with no changes, then while 1,000 EndpointSlice changes per second apply.</summary>
    private static void ForwardingUnderChurn(ClusterController controller, SnapshotPublisher publisher, Random random)
    {
        var snapshot = publisher.Holder.Current;
        short client = (short)snapshot.FindPort("default/pod-0");
        var frames = new List<byte[]>();
        for (int i = 0; i < 1024; i++)
            frames.Add(TcpAck((ushort)(1024 + i), 0x0A00_0002, 0x0A60_0000u + (uint)random.Next(LargeCluster.Services)));
        var loop = new EngineLoop(new MemorySource(frames, repeat: int.MaxValue, ingressPort: client), new Engine(publisher.Holder), "forwarding under churn");
        loop.Forward(); // warm-up

        double Rate(bool churn)
        {
            bool stop = false;
            int applied = 0, shift = 1_000_000;
            var changer = new Thread(() =>
            {
                var clock = Stopwatch.StartNew();
                while (!Volatile.Read(ref stop))
                {
                    // 1,000 changes per second, paced by the clock.
                    if (applied < clock.Elapsed.TotalMilliseconds)
                    {
                        controller.Apply(Batch(ClusterChange.Upsert(LargeCluster.Slice(random.Next(LargeCluster.Services), ++shift))));
                        applied++;
                    }
                    else Thread.Sleep(0);
                }
            });
            if (churn) changer.Start();
            var watch = Stopwatch.StartNew();
            long packets = 0;
            while (watch.Elapsed < TimeSpan.FromSeconds(3))
            {
                loop.Forward(64 * 64);
                packets += 64 * 64;
            }
            double rate = packets / watch.Elapsed.TotalSeconds;
            Volatile.Write(ref stop, true);
            if (churn) changer.Join();
            Console.WriteLine(string.Format(CultureInfo.InvariantCulture, "forwarding {0}: {1:F2} Mpps{2}", churn ? "with changes" : "no changes",
                rate / 1e6, churn ? $" ({applied / watch.Elapsed.TotalSeconds:F0} changes/s applied)" : ""));
            return rate;
        }

        double quiet = Rate(false), busy = Rate(true), quiet2 = Rate(false);
        Console.WriteLine(string.Format(CultureInfo.InvariantCulture, "forwarding rate with changes / without: {0:P0}", busy / ((quiet + quiet2) / 2)));
    }
}
