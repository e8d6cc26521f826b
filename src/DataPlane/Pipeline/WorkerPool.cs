using FastPath.DataPlane.Packets;
using FastPath.DataPlane.Telemetry;

namespace FastPath.DataPlane.Pipeline;

/// <summary>
/// N forwarding threads, each with its own <see cref="Engine"/> (so its own conntrack, counters and learned MACs) and
/// its own batches. The port thread calls <see cref="Dispatch"/>: every received packet is copied into the batch of
/// the worker its <see cref="SymmetricFlowHash"/> names (software RSS), full batches go to the worker through a
/// single-producer/single-consumer ring, and processed batches come back through another, to be handed to
/// <c>completed</c> on the port thread. A flow stays on one worker and each ring is FIFO, so packets of a flow
/// complete in input order. No locks; nothing is allocated after construction.
/// </summary>
public sealed class WorkerPool : IDisposable
{
    private sealed class Worker(Engine engine, int batches)
    {
        public readonly Engine Engine = engine;
        public readonly SpscRing<PacketBatch> ToWorker = new(batches);
        public readonly SpscRing<PacketBatch> FromWorker = new(batches);
        public readonly Stack<PacketBatch> Free = new(batches);
        public PacketBatch? Filling;
        public int InFlight;
        public long Allocated;
        public Thread? Thread;
    }

    private readonly Worker[] _workers;
    private readonly Action<PacketBatch> _completed;
    private volatile bool _stopping;

    /// <param name="completed">Receives every processed batch on the dispatching thread; the batch is reused afterwards.</param>
    /// <param name="batchesPerWorker">Batches each worker cycles through (a power of two): the depth of its rings.</param>
    public WorkerPool(SnapshotHolder snapshots, int workers, int batchSize, Action<PacketBatch> completed,
        ulong? conntrackSeed = null, int batchesPerWorker = 8)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(workers, 1);
        _completed = completed;
        _workers = new Worker[workers];
        for (int w = 0; w < workers; w++)
        {
            var worker = _workers[w] = new Worker(new Engine(snapshots, conntrackSeed), batchesPerWorker);
            for (int b = 0; b < batchesPerWorker; b++) worker.Free.Push(new PacketBatch(batchSize));
            worker.Thread = new Thread(() => Run(worker)) { IsBackground = true, Name = $"fastpath worker {w}" };
        }
        foreach (var worker in _workers) worker.Thread!.Start();
    }

    /// <summary>Worker <paramref name="index"/>'s engine (read its counters once the pool is flushed).</summary>
    public Engine Engine(int index) => _workers[index].Engine;

    /// <summary>
    /// Bytes the worker threads have allocated since they started, as of their last batch (their own counters, read
    /// after <see cref="Flush"/>): the steady state adds nothing.
    /// </summary>
    public long AllocatedBytes
    {
        get
        {
            long sum = 0;
            foreach (var worker in _workers) sum += Volatile.Read(ref worker.Allocated);
            return sum;
        }
    }

    /// <summary>Spreads a received batch over the workers; hands back whatever batches they finished meanwhile.</summary>
    public void Dispatch(PacketBatch received)
    {
        var arena = received.Arena;
        for (int i = 0; i < received.Count; i++)
        {
            ref var m = ref received.Meta[i];
            var scratch = m;
            var frame = arena.AsSpan(m.Offset, m.Length);
            // Frames the parser refuses (and ones already dropped on receive) carry no flow: worker 0 counts them.
            int w = _workers.Length == 1 || m.Drop != DropReason.None || PacketParser.Parse(frame, ref scratch) != DropReason.None
                ? 0
                : SymmetricFlowHash.Worker(SymmetricFlowHash.Compute(frame, in scratch), _workers.Length);
            var worker = _workers[w];
            var target = worker.Filling ??= TakeFree(worker);
            int slot = target.Count;
            frame.CopyTo(target.ReceiveArea(slot));
            ref var t = ref target.Meta[slot];
            t = m;
            t.Offset = target.SlotStart(slot) + PacketBatch.Headroom;
            target.Count = slot + 1;
            if (target.Count == target.Capacity) Submit(worker);
        }
        Collect();
    }

    /// <summary>Submits the partly filled batches and waits until every batch has been processed and handed back.</summary>
    public void Flush()
    {
        foreach (var worker in _workers)
            if (worker.Filling is { Count: > 0 }) Submit(worker);
        var spin = new SpinWait();
        while (true)
        {
            Collect();
            bool idle = true;
            foreach (var worker in _workers) idle &= worker.InFlight == 0;
            if (idle) return;
            spin.SpinOnce(sleep1Threshold: -1);
        }
    }

    public void Dispose()
    {
        _stopping = true;
        foreach (var worker in _workers) worker.Thread!.Join();
    }

    private void Submit(Worker worker)
    {
        var batch = worker.Filling!;
        worker.Filling = null;
        worker.InFlight++;
        worker.ToWorker.TryEnqueue(batch); // never full: the ring holds every batch the worker has
    }

    private PacketBatch TakeFree(Worker worker)
    {
        var spin = new SpinWait();
        while (worker.Free.Count == 0)
        {
            Collect();
            if (worker.Free.Count == 0) spin.SpinOnce(sleep1Threshold: -1);
        }
        var batch = worker.Free.Pop();
        batch.Count = 0;
        return batch;
    }

    private void Collect()
    {
        foreach (var worker in _workers)
            while (worker.FromWorker.TryDequeue(out var done))
            {
                worker.InFlight--;
                _completed(done);
                worker.Free.Push(done);
            }
    }

    private void Run(Worker worker)
    {
        var spin = new SpinWait();
        long start = GC.GetAllocatedBytesForCurrentThread();
        while (true)
        {
            if (worker.ToWorker.TryDequeue(out var batch))
            {
                worker.Engine.Process(batch);
                Volatile.Write(ref worker.Allocated, GC.GetAllocatedBytesForCurrentThread() - start);
                worker.FromWorker.TryEnqueue(batch);
                spin.Reset();
            }
            else if (_stopping) return;
            else spin.SpinOnce(sleep1Threshold: -1);
        }
    }
}
