using FastPath.DataPlane.Pipeline;
using FastPath.DataPlane.Telemetry;

namespace FastPath.FlowLog;

/// <summary>
/// Flow logging for one worker: its <see cref="FlowRing"/> (fed by the packet path through
/// <see cref="FlowLogObserver"/> and by the conntrack table as connections end) and the <see cref="FlowLogWriter"/>
/// thread draining it to a JSON-lines file. `replay --flow-log FILE [--flow-log-sample N]` uses one.
/// </summary>
public sealed class FlowLogSession : IDisposable
{
    private readonly Engine _engine;
    private readonly FlowRing _ring;
    private readonly FlowLogWriter _writer;
    private FlowLogObserver _observer;

    public FlowLogSession(string path, int sampleEvery, Engine engine, SnapshotHolder snapshots)
    {
        _engine = engine;
        _ring = new FlowRing(1 << 16, sampleEvery);
        _observer = new FlowLogObserver(_ring);
        _writer = new FlowLogWriter(path, _ring, snapshots);
    }

    /// <summary>Records the ring dropped because the writer fell behind.</summary>
    public long Lost => _ring.Lost;

    public long Written => _writer.Written;

    /// <summary>Records the ring holds (capacity) and holds now, waiting for the writer.</summary>
    public int RingCapacity => _ring.Capacity;
    public long Pending => _ring.Pending;

    /// <summary>Runs the batch through the worker with the flow-log observer.</summary>
    public void Process(PacketBatch batch)
    {
        AttachTable();
        _engine.Process(batch, ref _observer);
    }

    /// <summary>Runs the batch with the flow-log observer and <paramref name="other"/> (replay --pcapng's) side by side.</summary>
    public void Process<TOther>(PacketBatch batch, ref TOther other) where TOther : struct, IPacketObserver
    {
        AttachTable();
        var both = new ObserverPair<FlowLogObserver, TOther>(_observer, other);
        _engine.Process(batch, ref both);
        (_observer, other) = (both.First, both.Second);
    }

    /// <summary>The table exists once a snapshot needs one; attach to it (again) after a snapshot change created it.</summary>
    private void AttachTable()
    {
        if (_engine.Conntrack is { FlowLog: null } table) table.FlowLog = _ring;
    }

    /// <summary>Writes an "active" record for every connection still tracked, then drains and closes the file.</summary>
    public void Complete()
    {
        if (_engine.Conntrack is { } table)
        {
            table.FlowLog = null;
            for (int i = 0; i < table.Capacity; i++)
            {
                if (!table[i].InUse) continue;
                // Off the packet path: wait for the writer rather than lose records.
                while (_ring.Pending >= _ring.Capacity - 1) Thread.Sleep(1);
                _ring.StillActive(table[i]);
            }
        }
        _writer.Complete();
    }

    public void Dispose() => _writer.Dispose();
}
