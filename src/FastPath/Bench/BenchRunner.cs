using System.Diagnostics;
using FastPath.DataPlane.Packets;
using FastPath.DataPlane.Pipeline;
using FastPath.DataPlane.Ports;
using FastPath.DataPlane.Telemetry;

namespace FastPath.Bench;

/// <summary>How packets reach the workers.</summary>
public enum BenchDispatch
{
    /// <summary>One receive queue per worker, filled by the symmetric flow hash beforehand (a NIC's RSS): no shared state.</summary>
    Rss,
    /// <summary>One port thread hashes and copies every packet to its worker through SPSC rings (<see cref="WorkerPool"/>).</summary>
    Software,
}

/// <summary>What to measure.</summary>
/// <param name="FlowLogRing">Records per worker's flow-log ring, 0 for no flow log. Nothing drains it: once full,
/// every record is dropped and counted, the state a stalled flow-log writer leaves (RSS queues only).</param>
public sealed record BenchOptions(TrafficScenario Scenario, TrafficParameters Traffic, int Workers, TimeSpan Duration,
    TimeSpan WarmUp, BenchDispatch Dispatch = BenchDispatch.Rss, int BatchSize = 64, int FlowLogRing = 0);

/// <summary>
/// Where the bounded state stood at the end of a run, summed over workers, and the process's memory while measuring
/// (sampled every 50 ms): resident set (RSS) when measuring started and at its peak, and the managed heap's peak.
/// </summary>
/// <param name="InsertsMeasured">Connections inserted while measuring (the others counted from the start, warm-up included).</param>
public sealed record BenchLimits(long ConntrackCapacity, long ConntrackEntries, long Inserts, long Evictions, long InsertFailures,
    long ConntrackFullDrops, long FlowRingCapacity, long FlowRecordsLost, long RssAtStart, long RssPeak, long GcHeapPeak, long InsertsMeasured = 0);

/// <summary>One measurement. Rates are over the measured interval only (after warm-up, no generation or setup inside).</summary>
/// <param name="CpuSeconds">CPU time the packet threads used while measuring (their own clocks), or null where not measured.</param>
public sealed record BenchResult(BenchOptions Options, long Packets, long Forwarded, long Dropped, double Seconds, long AllocatedBytes,
    double? CpuSeconds = null)
{
    /// <summary>Conntrack, flow-log ring and memory figures (RSS queues only; null for software dispatch).</summary>
    public BenchLimits? Limits { get; init; }

    public double Mpps => Seconds > 0 ? Packets / Seconds / 1e6 : 0;
    /// <summary>Wall-clock nanoseconds per packet (all workers together).</summary>
    public double NsPerPacket => Packets > 0 ? Seconds * 1e9 / Packets : 0;
    /// <summary>Threads busy with packets: the workers, plus the port thread when it dispatches in software.</summary>
    public int Cores => Options.Workers + (Options.Dispatch == BenchDispatch.Software ? 1 : 0);
    /// <summary>Wall-clock time per packet times the busy threads: CPU time per packet if nothing else ran.</summary>
    public double CoreNsPerPacket => NsPerPacket * Cores;
    /// <summary>
    /// CPU time per packet from the threads' own clocks, else <see cref="CoreNsPerPacket"/>: on a shared machine the
    /// steadier of the two, since time a worker spends descheduled is not counted.
    /// </summary>
    public double CpuNsPerPacket => CpuSeconds is { } cpu && Packets > 0 ? cpu * 1e9 / Packets : CoreNsPerPacket;
    public double BytesPerPacket => Packets > 0 ? (double)AllocatedBytes / Packets : 0;
}

/// <summary>
/// Runs a scenario for a duration on N worker threads and counts packets, forwarded and dropped, and the bytes the
/// packet threads allocated while measuring (their own counters, so nothing else in the process is counted). Traffic
/// comes from memory (<see cref="MemorySource"/>: one copy into the batch slot per packet, as a NIC ring) and leaves
/// into counters: no I/O in the measured loop.
/// </summary>
public static class BenchRunner
{
    private const int Warming = 0, Measuring = 1, Stopped = 2;

    public static BenchResult Run(BenchOptions o)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(o.Workers, 1);
        var traffic = TrafficGenerator.Generate(o.Scenario, o.Traffic);
        var holder = new SnapshotHolder(traffic.Snapshot);
        return o.Dispatch == BenchDispatch.Rss ? RunRss(o, traffic, holder) : RunSoftware(o, traffic, holder);
    }

    /// <summary>A worker's run-to-completion loop over its own queue, as DPDK's l3fwd polls one RX queue per lcore.</summary>
    private sealed class QueueWorker(MemorySource queue, Engine? engine, int batchSize, int flows, int slotSize, FlowRing? ring)
    {
        private readonly PacketBatch _batch = new(batchSize, slotSize);
        private FlowLogObserver _flowLog = ring is null ? default : new FlowLogObserver(ring);
        public Engine? Engine => engine;
        public FlowRing? Ring => ring;
        public long Packets, Forwarded, Dropped, StartTicks, EndTicks, Allocated, CpuNs, Inserts;
        public readonly ManualResetEventSlim Warm = new(), Measuring = new();

        public void Run(Func<int> phase, bool openConnections)
        {
            if (openConnections) Step(flows);
            Warm.Set();
            while (phase() == Warming) Step(16 * _batch.Capacity);
            Packets = Forwarded = Dropped = 0;
            long cpu = ThreadCpuClock.Now();
            long allocated = GC.GetAllocatedBytesForCurrentThread();
            long inserts = engine?.Conntrack?.Inserts ?? 0;
            StartTicks = Stopwatch.GetTimestamp();
            Measuring.Set();
            do Step(16 * _batch.Capacity);
            while (phase() == BenchRunner.Measuring);
            EndTicks = Stopwatch.GetTimestamp();
            Inserts = (engine?.Conntrack?.Inserts ?? 0) - inserts;
            Allocated = GC.GetAllocatedBytesForCurrentThread() - allocated;
            CpuNs = cpu < 0 ? -1 : ThreadCpuClock.Now() - cpu;
        }

        private void Step(int packets)
        {
            var batch = _batch;
            for (int done = 0; done < packets; done += batch.Count)
            {
                queue.Receive(batch);
                if (engine is null) MacSwap(batch);
                else if (ring is null) engine.Process(batch);
                else
                {
                    // As FlowLogSession: starts and drops from the observer, ends from the table.
                    if (engine.Conntrack is { FlowLog: null } table) table.FlowLog = ring;
                    engine.Process(batch, ref _flowLog);
                }
                Count(batch, ref Forwarded, ref Dropped);
                Packets += batch.Count;
            }
        }
    }

    private static BenchResult RunRss(BenchOptions o, GeneratedTraffic traffic, SnapshotHolder holder)
    {
        var queues = o.Workers == 1 ? [traffic.Source()] : traffic.Queues(o.Workers);
        int phase = Warming;
        var workers = queues.Select(q => new QueueWorker(q,
            o.Scenario == TrafficScenario.L2Forward ? null : new Engine(holder), o.BatchSize, traffic.Frames.Count, traffic.SlotSize,
            o.FlowLogRing > 0 ? new FlowRing(o.FlowLogRing) : null)).ToArray();
        var threads = workers.Select((w, i) => new Thread(() => w.Run(() => Volatile.Read(ref phase), traffic.OpensConnections))
        { IsBackground = true, Name = $"bench worker {i}" }).ToArray();
        foreach (var t in threads) t.Start();
        foreach (var w in workers) w.Warm.Wait();
        Thread.Sleep(o.WarmUp);
        bool noGc = StartNoGcRegion();
        Volatile.Write(ref phase, Measuring);
        foreach (var w in workers) w.Measuring.Wait(); // a worker may still be finishing a warm-up step
        long rssAtStart = Environment.WorkingSet, rssPeak = rssAtStart, heapPeak = GC.GetGCMemoryInfo().HeapSizeBytes;
        var end = Stopwatch.GetTimestamp() + (long)(o.Duration.TotalSeconds * Stopwatch.Frequency);
        for (long now; (now = Stopwatch.GetTimestamp()) < end;)
        {
            Thread.Sleep(TimeSpan.FromTicks(Math.Min(TimeSpan.TicksPerMillisecond * 50, Stopwatch.GetElapsedTime(now, end).Ticks + 1)));
            rssPeak = Math.Max(rssPeak, Environment.WorkingSet);
            heapPeak = Math.Max(heapPeak, GC.GetGCMemoryInfo().HeapSizeBytes);
        }
        Volatile.Write(ref phase, Stopped);
        foreach (var t in threads) t.Join();
        EndNoGcRegion(noGc);
        // Each worker's own interval; the rate is the sum of the workers' rates.
        double seconds = workers.Max(w => Stopwatch.GetElapsedTime(w.StartTicks, w.EndTicks).TotalSeconds);
        double rate = workers.Sum(w => w.Packets / Stopwatch.GetElapsedTime(w.StartTicks, w.EndTicks).TotalSeconds);
        long packets = workers.Sum(w => w.Packets);
        var tables = workers.Select(w => w.Engine?.Conntrack).OfType<DataPlane.Conntrack.ConntrackTable>().ToList();
        var limits = new BenchLimits(tables.Sum(t => (long)t.Capacity), tables.Sum(t => (long)t.Count), tables.Sum(t => t.Inserts),
            tables.Sum(t => t.Evictions), tables.Sum(t => t.InsertFailures),
            workers.Sum(w => w.Engine is { } e ? ConntrackFullDrops(e.Counters) : 0),
            workers.Sum(w => (long)(w.Ring?.Capacity ?? 0)), workers.Sum(w => w.Ring?.Lost ?? 0), rssAtStart, rssPeak, heapPeak,
            workers.Sum(w => w.Inserts));
        return new BenchResult(o, packets, workers.Sum(w => w.Forwarded), workers.Sum(w => w.Dropped),
            rate > 0 ? packets / rate : seconds, workers.Sum(w => w.Allocated),
            workers.All(w => w.CpuNs >= 0) ? workers.Sum(w => w.CpuNs) / 1e9 : null) { Limits = limits };
    }

    private static long ConntrackFullDrops(PortCounters counters)
    {
        long drops = 0;
        for (int p = 0; p < counters.PortCount; p++) drops += counters.Drops(p, DropReason.ConntrackFull);
        return drops;
    }

    private static BenchResult RunSoftware(BenchOptions o, GeneratedTraffic traffic, SnapshotHolder holder)
    {
        if (o.Scenario == TrafficScenario.L2Forward) throw new ArgumentException("l2-forward has no engine to dispatch to; use RSS queues");
        if (traffic.SlotSize != PacketBatch.SlotSize) throw new ArgumentException($"{o.Scenario}: super-frames run on RSS queues only");
        if (o.FlowLogRing > 0) throw new ArgumentException("--flow-log-ring runs on RSS queues only");
        long forwarded = 0, dropped = 0, packets = 0;
        using var pool = new WorkerPool(holder, o.Workers, o.BatchSize, b =>
        {
            Count(b, ref forwarded, ref dropped);
            packets += b.Count;
        });
        var source = traffic.Source();
        var batch = new PacketBatch(o.BatchSize);
        void Send(long until)
        {
            for (int k = 0; k < 256; k++)
            {
                source.Receive(batch);
                pool.Dispatch(batch);
            }
            while (Stopwatch.GetTimestamp() < until)
                for (int k = 0; k < 16; k++)
                {
                    source.Receive(batch);
                    pool.Dispatch(batch);
                }
        }
        if (traffic.OpensConnections)
            for (int sent = 0; sent < traffic.Frames.Count; sent += batch.Count)
            {
                source.Receive(batch);
                pool.Dispatch(batch);
            }
        Send(Stopwatch.GetTimestamp() + (long)(o.WarmUp.TotalSeconds * Stopwatch.Frequency));
        pool.Flush();
        packets = forwarded = dropped = 0;
        bool noGc = StartNoGcRegion();
        long allocated = GC.GetAllocatedBytesForCurrentThread() + pool.AllocatedBytes;
        long start = Stopwatch.GetTimestamp();
        Send(start + (long)(o.Duration.TotalSeconds * Stopwatch.Frequency));
        pool.Flush();
        double seconds = Stopwatch.GetElapsedTime(start).TotalSeconds;
        allocated = GC.GetAllocatedBytesForCurrentThread() + pool.AllocatedBytes - allocated;
        EndNoGcRegion(noGc);
        return new BenchResult(o, packets, forwarded, dropped, seconds, allocated);
    }

    /// <summary>
    /// No garbage collection while measuring: the packet threads allocate nothing, but a collection triggered by
    /// anything else in the process (a test runner's threads) retires their allocation contexts, which their counters
    /// then show as ~8 KB "allocated" (seen in the full test suite), and it would pause them. False when another
    /// measurement already holds the region (two benchmarks in one process) or the runtime refuses it.
    /// </summary>
    private static bool StartNoGcRegion()
    {
        try
        {
            return GC.TryStartNoGCRegion(16 << 20);
        }
        catch (InvalidOperationException)
        {
            return false;
        }
    }

    private static void EndNoGcRegion(bool started)
    {
        if (started && System.Runtime.GCSettings.LatencyMode == System.Runtime.GCLatencyMode.NoGCRegion) GC.EndNoGCRegion();
    }

    private static void Count(PacketBatch batch, ref long forwarded, ref long dropped)
    {
        int emitted = batch.CountEmitted();
        forwarded += emitted;
        dropped += batch.Count - emitted;
    }

    /// <summary>testpmd's macswap: swap the Ethernet addresses and send back out of the port it came in on.</summary>
    private static void MacSwap(PacketBatch batch)
    {
        var arena = batch.Arena;
        var meta = batch.Meta;
        for (int i = 0; i < batch.Count; i++)
        {
            ref var m = ref meta[i];
            var frame = arena.AsSpan(m.Offset, m.Length);
            var destination = MacAddress.Read(frame);
            EthernetHeader.Write(frame, MacAddress.Read(frame[6..]), destination, (ushort)((frame[12] << 8) | frame[13]));
            m.EgressPort = m.IngressPort;
        }
    }
}
