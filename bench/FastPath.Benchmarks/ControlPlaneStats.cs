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
/// `dotnet run -c Release --project bench/FastPath.Benchmarks -- control-plane-stats [maglevTableSize | policy |
/// churn [--windows N] [--seconds S] [--cpus F,C] [--changes R] [--detached]] [--csv FILE] [--no-forwarding] [--slice-changes N]`: the live control plane on <see cref="LargeCluster"/>: full compile (objects in
/// memory → published snapshot, with the memory the controller retains), latency percentiles of single changes
/// (BenchmarkDotNet reports means, the targets are p99) with the garbage collections and GC pause time per 1,000
/// changes, the peer (a full recompile per change, what an iptables/nftables full sync does) in the same run, and the
/// forwarding rate while 1,000 changes per second are applied vs. none (`churn` measures only that, after one
/// compile: <see cref="ForwardingUnderChurn"/>); then the same for NetworkPolicy, Pod and
/// Namespace changes on <see cref="PolicyCluster"/>. --csv writes every change's latency ("kind,microseconds").
/// `control-plane-stats policy np|pod|add|ns` runs one policy row five times over (to profile one kind of change).
/// </summary>
public static class ControlPlaneStats
{
    /// <summary>Changes measured per row (the targets are p99 and max, so n ≥ 1,000).</summary>
    public const int Changes = 1000;

    private static readonly List<(string Kind, double Microseconds)> Latencies = [];

    /// <summary>EndpointSlice changes measured (`--slice-changes N`): a longer row holds several gen0 collections
    /// (one every ~2,000 changes with the 64 MiB budget), so their pauses are seen, not one or none by chance.</summary>
    private static int SliceChanges = 2 * Changes;

    public static void Command(string[] args)
    {
        int csvAt = Array.IndexOf(args, "--csv");
        string? csv = csvAt >= 0 ? args[csvAt + 1] : null;
        int slicesAt = Array.IndexOf(args, "--slice-changes");
        if (slicesAt >= 0) SliceChanges = int.Parse(args[slicesAt + 1], CultureInfo.InvariantCulture);
        var rest = args.Where((a, i) => a != "--no-forwarding" && (csvAt < 0 || (i != csvAt && i != csvAt + 1))
            && (slicesAt < 0 || (i != slicesAt && i != slicesAt + 1))).ToArray();
        if (rest is ["policy"]) PolicyChanges();
        else if (rest is ["policy", var only]) PolicyChanges(only);
        else if (rest is ["churn", ..])
        {
            var (controller, publisher) = FullCompile(FastPathConfiguration.Default.MaglevTableSize);
            ForwardingUnderChurn(controller, publisher, new Random(6), ChurnOptions.Parse(rest[1..]));
        }
        else Run(rest.Length > 0 ? int.Parse(rest[0], CultureInfo.InvariantCulture) : FastPathConfiguration.Default.MaglevTableSize, forwarding: !args.Contains("--no-forwarding"));
        if (csv is not null)
            File.WriteAllLines(csv, ["kind,microseconds", .. Latencies.Select(l => string.Create(CultureInfo.InvariantCulture, $"{l.Kind},{l.Microseconds:F1}"))]);
    }

    public static void Run(int maglevTableSize, bool forwarding = true)
    {
        Console.WriteLine($"cluster: {LargeCluster.Nodes:N0} nodes, {LargeCluster.Nodes * LargeCluster.PodsPerNode:N0} pods, {LargeCluster.Services:N0} services x {LargeCluster.EndpointsPerService} endpoints, Maglev M ≤ {maglevTableSize} ({FastPathConfiguration.Default.MaglevSlotsPerBackend} slots per backend); {Environment.ProcessorCount} cores, GC {(System.Runtime.GCSettings.IsServerGC ? "server" : "workstation")}{(AppContext.TryGetSwitch("System.GC.Concurrent", out bool concurrent) && !concurrent ? " non-concurrent" : "")} {System.Runtime.GCSettings.LatencyMode}");
        for (int run = 0; run < 2; run++) FullCompile(maglevTableSize);
        LargeClusterChanges(FullCompile(maglevTableSize), forwarding);
        GC.Collect(); // the large cluster is gone: the policy rows run on their own heap
        PolicyChanges();
    }

    /// <summary>
    /// One full compile of a fresh <see cref="LargeCluster"/>. Retained = what the controller and its snapshot hold once
    /// the source's objects are gone (a watch keeps only resourceVersions): the baseline is taken before the cluster
    /// objects exist, and nothing else refers to them after the apply.
    /// </summary>
    [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.NoInlining)]
    private static (ClusterController Controller, SnapshotPublisher Publisher) FullCompile(int maglevTableSize)
    {
        long baseline = GC.GetTotalMemory(forceFullCollection: true);
        var (controller, publisher, objects, elapsed, allocated, collections) = Apply(maglevTableSize);
        long retained = GC.GetTotalMemory(forceFullCollection: true) - baseline;
        long maglevBytes = publisher.Holder.Current.Services.MaglevBytes;
        Console.WriteLine(string.Format(CultureInfo.InvariantCulture, "full compile (validate {0:N0} objects, compile, publish): {1:F0} ms, retained {2:F0} MiB, allocated {3:F0} MiB, {4:N0} frontends; GC gen0/gen1/gen2 {5}/{6}/{7}, pause {8:F0} ms; Maglev tables {9:F1} MiB, {10:N0} bytes per Service",
            objects, elapsed.TotalMilliseconds, retained / 1048576.0, allocated / 1048576.0, publisher.Holder.Current.Services.Count,
            collections.Gen0, collections.Gen1, collections.Gen2, collections.Pause.TotalMilliseconds,
            maglevBytes / 1048576.0, maglevBytes / LargeCluster.Services));
        return (controller, publisher);
    }

    [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.NoInlining)]
    private static (ClusterController, SnapshotPublisher, int, TimeSpan, long, GcCounts) Apply(int maglevTableSize)
    {
        var cluster = new LargeCluster(maglevTableSize);
        var batch = cluster.Initial();
        var gc = GcCounts.Now();
        long allocated = GC.GetTotalAllocatedBytes(precise: true);
        var watch = Stopwatch.StartNew();
        var publisher = new SnapshotPublisher(LargeCluster.NodeName);
        var controller = new ClusterController(LargeCluster.NodeName, publisher, NullLogger.Instance);
        var problems = controller.Apply(batch);
        watch.Stop();
        if (problems.Count > 0) throw new InvalidOperationException(problems[0].ToString());
        return (controller, publisher, cluster.ObjectCount, watch.Elapsed, GC.GetTotalAllocatedBytes(precise: true) - allocated, GcCounts.Now() - gc);
    }

    /// <summary>Single changes on the large cluster, the peer (a full recompile per change) and forwarding under churn.</summary>
    [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.NoInlining)]
    private static void LargeClusterChanges((ClusterController Controller, SnapshotPublisher Publisher) compiled, bool forwarding)
    {
        var (controller, publisher) = compiled;
        var random = new Random(6);
        int shift = 0;
        Report("EndpointSlice change", SliceChanges, () => Batch(ClusterChange.Upsert(LargeCluster.Slice(random.Next(LargeCluster.Services), ++shift))), controller);
        Kept("EndpointSlice change", () => Batch(ClusterChange.Upsert(LargeCluster.Slice(random.Next(LargeCluster.Services), ++shift))), controller);

        int next = LargeCluster.Services;
        var added = new Queue<IClusterObject>();
        Report("Service add or remove", Changes, () =>
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
        }, controller);

        int nodeNext = LargeCluster.Nodes;
        var nodes = new Queue<IClusterObject>();
        Report("Node add or remove", Changes, () =>
        {
            if (nodes.Count > 0 && nodes.Count % 2 == 0) return Batch(ClusterChange.Delete(nodes.Dequeue()));
            var node = LargeCluster.Node(nodeNext, nodeNext);
            nodeNext++;
            nodes.Enqueue(node);
            return Batch(ClusterChange.Upsert(node));
        }, controller);

        // The peer: a full recompile for one change, as a full proxy sync rewrites every rule.
        var state = controller.State;
        var full = new SnapshotPublisher(LargeCluster.NodeName);
        Report("peer: full recompile per change", 5, () => { full.Publish(state); return ClusterChangeBatch.Empty; }, null);

        if (forwarding) ForwardingUnderChurn(controller, publisher, random, new ChurnOptions());
    }

    /// <summary>
    /// The NetworkPolicy cluster (<see cref="PolicyCluster"/>: 10,000 pods, 1,000 policies, node-0 holding 100 pods)
    /// under the live controller: the first apply, single changes (policy, pod, namespace) applied and published, and
    /// the peer in the same run: a full recompile per change.
    /// </summary>
    public static void PolicyChanges(string? only = null)
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
        if (only is not null)
        {
            Func<ClusterChangeBatch> row = only switch
            {
                "np" => () => Flip(policy, policy.A),
                "pod" => () => Flip(pod, pod.A),
                "add" => () => Flip(added, added.B),
                "ns" => () => Flip(ns, ns.A),
                _ => throw new ArgumentException($"control-plane-stats policy {only}: expected np, pod, add or ns"),
            };
            for (int round = 0; round < 5; round++) Report(only, Changes, row, controller);
            return;
        }
        Report("NetworkPolicy change (isolating local pods)", Changes, () => Flip(policy, policy.A), controller);
        Report("Pod relabelled (a policy peer)", Changes, () => Flip(pod, pod.A), controller);
        Report("Pod added or removed (a policy peer)", Changes, () => Flip(added, added.B), controller);
        Report("Namespace relabelled (namespace selectors)", Changes, () => Flip(ns, ns.A), controller);
        Kept("Namespace relabelled", () => Flip(ns, ns.A), controller, count: 200); // 200: ~160 KiB each, under one 64 MiB gen0 budget
        var full = new SnapshotPublisher("node-0");
        var current = controller.State;
        Report("peer: full recompile per change (policy cluster)", 5, () => { full.Publish(current); return ClusterChangeBatch.Empty; }, null);
    }

    private static ClusterChangeBatch Batch(ClusterChange change) => new([change], [], []);

    /// <summary>Garbage collections per generation and total pause time so far (gen1 counts include gen2, as the runtime counts).</summary>
    private readonly record struct GcCounts(int Gen0, int Gen1, int Gen2, TimeSpan Pause)
    {
        public static GcCounts Now() => new(GC.CollectionCount(0), GC.CollectionCount(1), GC.CollectionCount(2), GC.GetTotalPauseDuration());
        public static GcCounts operator -(GcCounts a, GcCounts b) => new(a.Gen0 - b.Gen0, a.Gen1 - b.Gen1, a.Gen2 - b.Gen2, a.Pause - b.Pause);
    }

    private static void Report(string what, int count, Func<ClusterChangeBatch> change, ClusterController? controller)
    {
        if (controller is not null) WarmUp(what, change, controller);
        var times = new double[count];
        var gc = GcCounts.Now();
        var collected = new List<string>(); // the collections that ran inside a change: which, how long, what they copied
        for (int i = 0; i < count; i++)
        {
            int before = GC.CollectionCount(0);
            var cpu = CpuPinning.CurrentThreadCpuTime(); // outside the timed part: the change's own CPU time, the collection's work in it included
            var watch = Stopwatch.StartNew(); // the change is built inside the measurement (for the peer it is the whole work)
            var batch = change();
            var problems = controller?.Apply(batch) ?? [];
            times[i] = watch.Elapsed.TotalMicroseconds;
            cpu = CpuPinning.CurrentThreadCpuTime() - cpu;
            if (problems.Count > 0) throw new InvalidOperationException(problems[0].ToString());
            if (GC.CollectionCount(0) != before && collected.Count < 12)
            {
                var info = GC.GetGCMemoryInfo(GCKind.Any); // the last collection (of several in one change, the others are counted above)
                collected.Add(string.Format(CultureInfo.InvariantCulture, "gen{0}{1} pause {2:F1} ms promoted {3:F1} MiB in a change of {4:F1} ms (CPU {5:F1} ms)",
                    info.Generation, info.Concurrent ? " background" : "", info.PauseDurations[0].TotalMilliseconds + info.PauseDurations[1].TotalMilliseconds,
                    info.PromotedBytes / 1048576.0, times[i] / 1000, cpu.TotalMilliseconds));
            }
        }
        var collections = GcCounts.Now() - gc;
        if (controller is not null) Latencies.AddRange(times.Select(t => (what, t)));
        Array.Sort(times);
        double P(double q) => times[Math.Min(count - 1, (int)Math.Ceiling(q * count) - 1)];
        double per = 1000.0 / count;
        Console.WriteLine(string.Format(CultureInfo.InvariantCulture,
            "{0} (validate, compile, publish; n={1}): p50 {2:F0} µs, p99 {3:F0} µs, max {4:F0} µs; per 1,000 changes: GC gen0 {5:F1}, gen1 {6:F1}, gen2 {7:F1}, pause {8:F1} ms",
            what, count, P(0.50), P(0.99), times[^1], collections.Gen0 * per, collections.Gen1 * per, collections.Gen2 * per, collections.Pause.TotalMilliseconds * per));
        if (controller is not null && collected.Count > 0) Console.WriteLine("  collections: " + string.Join("; ", collected));
    }

    /// <summary>
    /// Changes of the row's kind, unmeasured, until the JIT has moved their code to tier 1, as on a node that has run a
    /// while (tiered compilation re-compiles a method after 30 calls once tier-0 activity has been quiet for 100 ms):
    /// three rounds of 100 changes (even, so flip rows end where they began), each followed by a 250 ms pause for the
    /// background compiler. Printed with the first and the slowest change, so the cold cost stays visible.
    /// </summary>
    private static void WarmUp(string what, Func<ClusterChangeBatch> change, ClusterController controller)
    {
        var watch = Stopwatch.StartNew();
        double first = 0, max = 0;
        const int Rounds = 3, PerRound = 100;
        for (int n = 0; n < Rounds * PerRound; n++)
        {
            var start = watch.Elapsed;
            if (controller.Apply(change()) is { Count: > 0 } problems) throw new InvalidOperationException(problems[0].ToString());
            double us = (watch.Elapsed - start).TotalMicroseconds;
            if (n == 0) first = us;
            max = Math.Max(max, us);
            if (n % PerRound == PerRound - 1) Thread.Sleep(250);
        }
        Console.WriteLine(string.Format(CultureInfo.InvariantCulture,
            "{0}: warm-up {1} changes, not counted (first {2:F0} µs, slowest {3:F0} µs)", what, Rounds * PerRound, first, max));
    }

    /// <summary>
    /// What a change allocates and what it keeps alive: from a compacted heap, <paramref name="count"/> changes, then one
    /// forced gen0 collection; its promoted bytes are what those changes left reachable (the previous versions they
    /// replaced were old-generation objects and are not counted), i.e. what every ephemeral collection copies per change
    /// since the one before. The new object of the change is allocated inside, as a watch deserializes it.
    /// </summary>
    private static void Kept(string what, Func<ClusterChangeBatch> change, ClusterController controller, int count = Changes)
    {
        // Twice: a full collection promotes survivors of gen0 by one generation only (or leaves regions demoted), so the
        // second one puts everything the first found alive in gen2, and the forced gen0 below copies only the changes'.
        GC.Collect(2, GCCollectionMode.Forced, blocking: true, compacting: true);
        GC.Collect(2, GCCollectionMode.Forced, blocking: true, compacting: true);
        int collections = GC.CollectionCount(0);
        long allocated = GC.GetAllocatedBytesForCurrentThread();
        for (int i = 0; i < count; i++)
            if (controller.Apply(change()) is { Count: > 0 } problems) throw new InvalidOperationException(problems[0].ToString());
        allocated = GC.GetAllocatedBytesForCurrentThread() - allocated;
        bool clean = GC.CollectionCount(0) == collections;
        var cpu = CpuPinning.CurrentThreadCpuTime(); // a workstation gen0 runs on the thread that triggers it: its CPU time is the collection's work, whatever the machine's load
        GC.Collect(0, GCCollectionMode.Forced, blocking: true);
        cpu = CpuPinning.CurrentThreadCpuTime() - cpu;
        var info = GC.GetGCMemoryInfo(GCKind.Ephemeral);
        Console.WriteLine(string.Format(CultureInfo.InvariantCulture,
            "  {0}: allocated {1:F1} KiB per change, kept {2:F2} KiB per change (promoted by a gen{7} collection after {3:N0} changes{4}: {5:F2} MiB, pause {6:F1} ms, CPU {8:F1} ms)",
            what, allocated / 1024.0 / count, info.PromotedBytes / 1024.0 / count, count,
            clean ? "" : ", another collection ran among them: an underestimate", info.PromotedBytes / 1048576.0,
            (info.PauseDurations[0] + info.PauseDurations[1]).TotalMilliseconds, info.Generation, cpu.TotalMilliseconds));
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

    /// <summary>Where and how long <see cref="ForwardingUnderChurn"/> measures.</summary>
    /// <param name="Windows">Pairs of windows: one without changes, one with, in alternating order (none/churn, then
    /// churn/none) so a drift of the machine's load weighs on both sides.</param>
    /// <param name="Seconds">Length of each window.</param>
    /// <param name="ForwardCpu">The CPU the forwarding thread is pinned to.</param>
    /// <param name="ChangerCpu">The CPU every other thread of the process is pinned to (the changer, the thread pool
    /// it triggers, the GC's background thread, timers).</param>
    /// <param name="ChangesPerSecond">EndpointSlice changes applied per second in a churn window.</param>
    /// <param name="Detached">The peer: the changes are published as usual, but the engine keeps reading the first
    /// snapshot, so the ratio shows what the changer costs the forwarding thread without the engine following it
    /// (collections, the other CPU's cache and memory traffic); the difference to an attached run is the engine's share.</param>
    public sealed record ChurnOptions(int Windows = 5, double Seconds = 2, int ForwardCpu = 0, int ChangerCpu = 1, int ChangesPerSecond = 1000, bool Detached = false)
    {
        public static ChurnOptions Parse(string[] args)
        {
            var o = new ChurnOptions(Detached: args.Contains("--detached"));
            for (int i = 0; i + 1 < args.Length; i++)
            {
                string v = args[i + 1];
                o = args[i] switch
                {
                    "--windows" => o with { Windows = int.Parse(v, CultureInfo.InvariantCulture) },
                    "--seconds" => o with { Seconds = double.Parse(v, CultureInfo.InvariantCulture) },
                    "--changes" => o with { ChangesPerSecond = int.Parse(v, CultureInfo.InvariantCulture) },
                    "--cpus" => o with { ForwardCpu = int.Parse(v.Split(',')[0], CultureInfo.InvariantCulture), ChangerCpu = int.Parse(v.Split(',')[1], CultureInfo.InvariantCulture) },
                    _ => o,
                };
            }
            return o;
        }
    }

    /// <summary>One measured window: packets forwarded, wall and forwarding-thread CPU time, changes applied, collections.</summary>
    private readonly record struct Window(bool Churn, long Packets, TimeSpan Wall, TimeSpan Cpu, int Changes, long Allocated, GcCounts Gc)
    {
        public double Rate => Packets / Wall.TotalSeconds;
        public double RatePerCpu => Cpu > TimeSpan.Zero ? Packets / Cpu.TotalSeconds : double.NaN;
    }

    /// <summary>
    /// Packets per second through one engine without changes and while <see cref="ChurnOptions.ChangesPerSecond"/>
    /// EndpointSlice changes per second apply (each validated, compiled, published), measured side by side: the
    /// forwarding thread pinned to one CPU, the changer and every other thread of the process to the other, windows
    /// interleaved. Each pair's ratio is reported, and the median; per wall second (what the target is) and per
    /// CPU-second of the forwarding thread (what is left when the machine's other load takes the CPU away).
    /// </summary>
    private static void ForwardingUnderChurn(ClusterController controller, SnapshotPublisher publisher, Random random, ChurnOptions options)
    {
        var snapshot = publisher.Holder.Current;
        short client = (short)snapshot.FindPort("default/pod-0");
        var frames = new List<byte[]>();
        for (int i = 0; i < 1024; i++)
            frames.Add(TcpAck((ushort)(1024 + i), 0x0A00_0002, 0x0A60_0000u + (uint)random.Next(LargeCluster.Services)));
        var loop = new EngineLoop(new MemorySource(frames, repeat: int.MaxValue, ingressPort: client, intervalNs: 100), new Engine(options.Detached ? new SnapshotHolder(snapshot) : publisher.Holder), "forwarding under churn");

        // The forwarding thread opens a churn window (churning = 1) and closes it, then waits until the changer is idle
        // (active = 0) so no change spills into the next window; the changer marks itself active before it re-reads
        // churning (both by Interlocked, full fences), so a change can never start after the wait.
        int churning = 0, active = 0, stop = 0, applied = 0, shift = 1_000_000;
        long allocated = 0; // by the changes of the window, on the changer thread (the slice objects included)
        long windowStart = 0; // Stopwatch timestamp of the churn window's start, written before churning is set
        var changer = new Thread(() =>
        {
            while (Volatile.Read(ref stop) == 0)
            {
                Interlocked.Exchange(ref active, 1);
                if (Interlocked.CompareExchange(ref churning, 0, 0) == 0)
                {
                    Interlocked.Exchange(ref active, 0);
                    Thread.Sleep(1);
                    continue;
                }
                // Paced by the clock: every change due by now, then sleep (a controller is idle between changes).
                while (applied < Stopwatch.GetElapsedTime(windowStart).TotalSeconds * options.ChangesPerSecond && Volatile.Read(ref churning) != 0)
                {
                    long before = GC.GetAllocatedBytesForCurrentThread();
                    controller.Apply(Batch(ClusterChange.Upsert(LargeCluster.Slice(random.Next(LargeCluster.Services), ++shift))));
                    allocated += GC.GetAllocatedBytesForCurrentThread() - before;
                    applied++;
                }
                Interlocked.Exchange(ref active, 0);
                Thread.Sleep(1);
            }
        }) { Name = "changer", IsBackground = true };

        var windows = new List<Window>();
        int pinned = 0;
        bool forwardPinned = false;
        var forwarder = new Thread(() =>
        {
            forwardPinned = CpuPinning.PinCurrentThread(options.ForwardCpu);
            int self = CpuPinning.CurrentThreadId;
            loop.Forward(); // warm-up
            for (int w = 0; w < 2 * options.Windows; w++)
            {
                bool churn = (w % 2 == 0) == (w / 2 % 2 == 1); // none, churn, churn, none, none, churn...
                // Threads the runtime started since the last window (thread-pool workers) go to the changer's CPU too.
                pinned = CpuPinning.PinOtherThreads(options.ChangerCpu, self);
                applied = 0; // the changer is idle here
                allocated = 0;
                windowStart = Stopwatch.GetTimestamp();
                Interlocked.Exchange(ref churning, churn ? 1 : 0);
                var gc = GcCounts.Now();
                var cpu = CpuPinning.CurrentThreadCpuTime();
                var watch = Stopwatch.StartNew();
                long packets = 0;
                while (watch.Elapsed.TotalSeconds < options.Seconds)
                {
                    loop.Forward(64 * 64);
                    packets += 64 * 64;
                }
                var wall = watch.Elapsed;
                var used = CpuPinning.CurrentThreadCpuTime() - cpu;
                var collections = GcCounts.Now() - gc;
                Interlocked.Exchange(ref churning, 0);
                while (Interlocked.CompareExchange(ref active, 0, 0) != 0) Thread.Sleep(1);
                windows.Add(new Window(churn, packets, wall, used, churn ? applied : 0, churn ? allocated : 0, collections));
            }
        }) { Name = "forwarder" };

        var latency = System.Runtime.GCSettings.LatencyMode;
        System.Runtime.GCSettings.LatencyMode = System.Runtime.GCLatencyMode.SustainedLowLatency; // as `run` forwards
        CpuPinning.PinCurrentThread(options.ChangerCpu);
        changer.Start();
        forwarder.Start();
        forwarder.Join();
        Volatile.Write(ref stop, 1);
        changer.Join();
        System.Runtime.GCSettings.LatencyMode = latency;

        Console.WriteLine(string.Format(CultureInfo.InvariantCulture,
            "forwarding under churn{8}: forwarding thread on CPU {0}{1}, every other thread ({2} at the last window) on CPU {3}; {4} × {5:F1} s windows per side; GC {6}, DOTNET_GCgen0size={7}",
            options.ForwardCpu, forwardPinned ? "" : " (pinning refused)", pinned, options.ChangerCpu, options.Windows, options.Seconds,
            System.Runtime.GCLatencyMode.SustainedLowLatency, Environment.GetEnvironmentVariable("DOTNET_GCgen0size") ?? "default",
            options.Detached ? " (detached: the engine does not follow the published snapshots)" : ""));
        var ratios = new List<double>();
        var cpuRatios = new List<double>();
        for (int p = 0; p < options.Windows; p++)
        {
            var pair = windows.Skip(2 * p).Take(2).ToArray();
            var none = pair.First(x => !x.Churn);
            var busy = pair.First(x => x.Churn);
            foreach (var x in pair)
                Console.WriteLine(string.Format(CultureInfo.InvariantCulture,
                    "  window {0} {1}: {2:F2} Mpps, {3:F2} Mpps per forwarding CPU-second ({4:P0} of the window on CPU){5}; GC gen0/gen1/gen2 {6}/{7}/{8}, pause {9:F1} ms",
                    p + 1, x.Churn ? "churn" : "none ", x.Rate / 1e6, x.RatePerCpu / 1e6, x.Cpu / x.Wall,
                    x.Churn ? string.Create(CultureInfo.InvariantCulture, $", {x.Changes / x.Wall.TotalSeconds:F0} changes/s applied, {x.Allocated / 1024.0 / Math.Max(1, x.Changes):F1} KiB allocated per change") : "",
                    x.Gc.Gen0, x.Gc.Gen1, x.Gc.Gen2, x.Gc.Pause.TotalMilliseconds));
            ratios.Add(busy.Rate / none.Rate);
            cpuRatios.Add(busy.RatePerCpu / none.RatePerCpu);
            Console.WriteLine(string.Format(CultureInfo.InvariantCulture, "  pair {0}: churn / none = {1:P1} (per CPU-second {2:P1})", p + 1, ratios[^1], cpuRatios[^1]));
        }
        Console.WriteLine(string.Format(CultureInfo.InvariantCulture,
            "forwarding rate with changes / without, median of {0} pairs: {1:P1} (per CPU-second {2:P1}); none {3:F2}–{4:F2} Mpps",
            options.Windows, Median(ratios), Median(cpuRatios), windows.Where(x => !x.Churn).Min(x => x.Rate) / 1e6, windows.Where(x => !x.Churn).Max(x => x.Rate) / 1e6));
    }

    private static double Median(List<double> values)
    {
        var sorted = values.Order().ToArray();
        return sorted.Length % 2 == 1 ? sorted[sorted.Length / 2] : (sorted[sorted.Length / 2 - 1] + sorted[sorted.Length / 2]) / 2;
    }
}
