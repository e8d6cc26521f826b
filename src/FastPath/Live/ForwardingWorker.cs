using FastPath.DataPlane.Conntrack;
using FastPath.DataPlane.Pipeline;
using FastPath.DataPlane.Routing;
using FastPath.DataPlane.Ports;
using FastPath.FlowLog;

namespace FastPath.Live;

/// <summary>
/// Which TAP devices serve which ports under which snapshot: what `fastpath run`'s coordinator hands its workers when
/// the ports are renumbered (pods came or went). <see cref="Generation"/> counts them, so the coordinator knows when
/// every worker has moved on and the devices of removed ports may be closed.
/// </summary>
public sealed record Attachment(ForwardingSnapshot Snapshot, LinkDevice?[] Devices, long Generation);

/// <summary>
/// One forwarding thread of `fastpath run`: its own <see cref="Engine"/> (conntrack, counters), its own queue of every
/// TAP (<see cref="TapPort"/>, one queue per worker on IFF_MULTI_QUEUE devices) and its own batch; nothing shared but the
/// immutable snapshot. The kernel spreads flows over the queues by a symmetric flow hash and remembers, per device and
/// flow, the queue that last wrote one of the flow's packets (tun's automatic flow steering), so a reply — on the
/// backend's TAP after DNAT, or on the uplink after VXLAN with its symmetric outer source port — comes back to the worker
/// that opened the connection and holds its NAT state. Where steering cannot know (a SNATed reply that came back by
/// another path, a flow the device forgot after 3 s idle), the engine finds the owner in the shared
/// <see cref="FlowOwners"/> and this worker hands the packet over: copied into a batch of the pair's
/// <see cref="HandOverLane"/>, then the owner is woken through its <see cref="WakeEvent"/>.
/// </summary>
public sealed class ForwardingWorker : IDisposable
{
    private readonly SnapshotHolder _forwarding;
    private readonly SnapshotHolder _published;
    private readonly PacketBatch _batch;
    private Attachment _attached;
    private long _ackedGeneration;

    private HandOverLane?[] _out = [];
    private HandOverLane?[] _in = [];
    private ForwardingWorker[] _peers = [];

    /// <param name="published">The controller's holder: snapshots that keep the port numbering apply from there at once.</param>
    /// <param name="owners">Shared by all workers when there are several; null for one.</param>
    /// <param name="neighbors">The uplink gateways' MACs, shared by all workers (a reply reaches one worker's queue).</param>
    /// <param name="umem">This worker's AF_XDP memory (its batch is built in it, so AF_XDP frames are forwarded in
    /// place); null when nothing is attached through AF_XDP.</param>
    /// <param name="conntrack">The worker's table restored from its state file (`--state-dir`), or null for a new one.</param>
    /// <param name="affinity">Likewise its session-affinity table.</param>
    public ForwardingWorker(int index, Attachment initial, SnapshotHolder published, int batchSize, TimeSpan busyPoll, FlowOwners? owners,
        UplinkNeighbors? neighbors = null, XdpUmem? umem = null, ConntrackTable? conntrack = null, DataPlane.Services.AffinityTable? affinity = null)
    {
        Index = index;
        _published = published;
        _attached = initial;
        _ackedGeneration = initial.Generation;
        _forwarding = new SnapshotHolder(initial.Snapshot);
        Engine = new Engine(_forwarding, owners: owners, workerId: index, neighbors: neighbors, conntrack: conntrack, affinity: affinity);
        Port = new TapPort(TimeSpan.FromMilliseconds(100), queue: index, busyPoll: busyPoll) { Umem = umem };
        if (owners is not null) Port.Wake = new WakeEvent();
        Port.Attach(initial.Devices);
        _batch = umem?.CreateBatch() ?? new PacketBatch(batchSize, PacketBatch.SuperFrameSlotSize);
    }

    /// <summary>Packets this worker handed to another (their owner), and ones it could not (no free batch: dropped).</summary>
    public long HandedOver { get; private set; }
    public long HandOverDrops { get; private set; }

    /// <summary>Connects every pair of workers with a lane each way (before any runs).</summary>
    public static void Connect(ForwardingWorker[] workers)
    {
        foreach (var w in workers)
        {
            w._peers = workers;
            w._out = new HandOverLane?[workers.Length];
            w._in = new HandOverLane?[workers.Length];
        }
        foreach (var from in workers)
            foreach (var to in workers)
                if (from != to) from._out[to.Index] = to._in[from.Index] = new HandOverLane();
    }

    public int Index { get; }
    public Engine Engine { get; }
    public TapPort Port { get; }

    /// <summary>Flow logging for this worker's packets, or null.</summary>
    public FlowLogSession? FlowLog { get; set; }

    /// <summary>The snapshot this worker's engine uses (its holder).</summary>
    public SnapshotHolder Forwarding => _forwarding;

    private long _rounds, _roundsSeen;

    /// <summary>Whether the worker came round its loop since the last call (coordinator thread only).</summary>
    public bool Progressed()
    {
        long rounds = Volatile.Read(ref _rounds);
        bool moved = rounds != _roundsSeen;
        _roundsSeen = rounds;
        return moved;
    }

    /// <summary>The newest <see cref="Attachment.Generation"/> this worker uses.</summary>
    public long AckedGeneration => Volatile.Read(ref _ackedGeneration);

    /// <summary>Forwards until <paramref name="stop"/>, following <paramref name="attachments"/> between batches.</summary>
    public void Run(Func<Attachment> attachments, CancellationToken stop)
    {
        while (!stop.IsCancellationRequested)
        {
            Volatile.Write(ref _rounds, _rounds + 1);
            Follow(attachments());
            TakeHandedOver();
            if (Port.Receive(_batch) == 0) continue;
            // Packets that arrived while the worker waited meet the newest snapshot their port numbering allows: a
            // change the controller applied during the wait (a new policy, say) already holds for them.
            FollowSnapshot();
            Forward(_batch);
        }
    }

    private void Forward(PacketBatch batch)
    {
        if (FlowLog is null) Engine.Process(batch);
        else FlowLog.Process(batch);
        Port.TransmitBatch(batch);
        if (_peers.Length > 1) HandOver(batch);
    }

    /// <summary>Copies the packets the engine marked for another worker into that worker's lane and wakes it.</summary>
    private void HandOver(PacketBatch batch)
    {
        bool any = false;
        for (int i = 0; i < batch.Count; i++)
        {
            ref var m = ref batch.Meta[i];
            if (m.HandOverTo == 0) continue;
            any = true;
            var lane = _out[m.HandOverTo - 1]!;
            var target = lane.Filling ??= lane.Free.TryDequeue(out var free) ? free : null;
            if (target is null)
            {
                HandOverDrops++;
                continue;
            }
            int slot = target.Count;
            batch.Frame(i).CopyTo(target.ReceiveArea(slot));
            target.SetReceived(slot, m.Length, m.Timestamp, m.InputIndex, m.IngressPort);
            target.Meta[slot].Flags = PacketFlags.HandedOver;
            target.Meta[slot].CopyOffloads(in m);
            target.Count = slot + 1;
            HandedOver++;
            if (target.Count == target.Capacity) lane.Submit();
        }
        if (!any) return;
        for (int w = 0; w < _out.Length; w++)
            if (_out[w] is { Filling: not null } lane)
            {
                lane.Submit();
                _peers[w].Port.Wake!.Signal();
            }
    }

    /// <summary>Forwards the batches other workers handed over, and gives the batches back.</summary>
    private void TakeHandedOver()
    {
        foreach (var lane in _in)
        {
            if (lane is null) continue;
            while (lane.Full.TryDequeue(out var batch))
            {
                Forward(batch);
                batch.Count = 0;
                lane.Free.TryEnqueue(batch);
            }
        }
    }

    public void Dispose() => Port.Wake?.Dispose();

    /// <summary>
    /// Moves to the newest snapshot its port numbering allows: a new attachment (devices re-read, ports renumbered)
    /// first, then any newer snapshot with the same ports (Services, policies, routes), straight from the controller.
    /// </summary>
    private void Follow(Attachment attachment)
    {
        if (!ReferenceEquals(attachment, _attached))
        {
            _attached = attachment;
            Port.Attach(attachment.Devices);
            _forwarding.Publish(attachment.Snapshot);
            Volatile.Write(ref _ackedGeneration, attachment.Generation);
        }
        FollowSnapshot();
    }

    /// <summary>Takes the controller's newest snapshot if it numbers the ports as the attached one does.</summary>
    private void FollowSnapshot()
    {
        var newest = _published.Current;
        if (!ReferenceEquals(newest, _forwarding.Current) && SamePorts(newest, _attached.Snapshot)) _forwarding.Publish(newest);
    }

    /// <summary>True when both snapshots number the same ports the same way.</summary>
    public static bool SamePorts(ForwardingSnapshot a, ForwardingSnapshot b)
    {
        if (ReferenceEquals(a, b)) return true;
        if (a.PortCount != b.PortCount) return false;
        for (int p = 0; p < a.PortCount; p++)
            if (!string.Equals(a.Ports[p].Name, b.Ports[p].Name, StringComparison.Ordinal)) return false;
        return true;
    }
}

/// <summary>
/// Packets handed from one worker to another: full batches one way, emptied ones back, over single-producer /
/// single-consumer rings (no locks). A few small batches per pair: hand-overs are the exception, not the flow.
/// </summary>
public sealed class HandOverLane
{
    private const int Batches = 4, BatchSize = 16;

    public HandOverLane()
    {
        for (int i = 0; i < Batches; i++) Free.TryEnqueue(new PacketBatch(BatchSize, PacketBatch.SuperFrameSlotSize));
    }

    public SpscRing<PacketBatch> Full { get; } = new(Batches);
    public SpscRing<PacketBatch> Free { get; } = new(Batches);

    /// <summary>The batch the sender is filling (sender's thread only).</summary>
    public PacketBatch? Filling { get; set; }

    public void Submit()
    {
        Full.TryEnqueue(Filling!); // never full: the lane owns only Batches batches
        Filling = null;
    }
}
