using FastPath.DataPlane.Pipeline;
using FastPath.DataPlane.Telemetry;

namespace FastPath.DataPlane.Ports;

/// <summary>
/// Everything another source delivers, held in memory and replayed <c>repeat</c> times with no I/O (`replay --repeat`).
/// Each round after the first moves the timestamps on by the recording's span plus one gap, so the engine's clock keeps
/// going forward as if the capture were looped on a wire, and input indices keep counting. A batch never spans two
/// rounds, so <see cref="Round"/> names the round of the batch just received.
/// </summary>
public sealed class RecordedSource : IPacketSource
{
    private readonly byte[] _data;
    private readonly (int Start, int Length, long Timestamp, short Port, DropReason Drop)[] _records;
    private readonly int _repeat;
    private readonly long _roundShift;
    private int _next;
    private int _nextRound;
    private long _inputIndex;

    private RecordedSource(byte[] data, (int, int, long, short, DropReason)[] records, int repeat)
    {
        _data = data;
        _records = records;
        _repeat = records.Length == 0 ? 0 : repeat;
        _roundShift = records.Length == 0 ? 0 : records[^1].Item3 - records[0].Item3 + 1_000;
    }

    /// <summary>Reads <paramref name="source"/> to its end (control path: allocates as it grows).</summary>
    public static RecordedSource Record(IPacketSource source, int repeat, int batchSize = 256)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(repeat, 1);
        var batch = new PacketBatch(batchSize);
        var data = new MemoryStream();
        var records = new List<(int, int, long, short, DropReason)>();
        while (source.Receive(batch) > 0)
            for (int i = 0; i < batch.Count; i++)
            {
                ref var m = ref batch.Meta[i];
                records.Add(((int)data.Length, m.Length, m.Timestamp, m.IngressPort, m.Drop));
                data.Write(batch.Frame(i));
            }
        return new RecordedSource(data.ToArray(), records.ToArray(), repeat);
    }

    /// <summary>Packets delivered so far, over all rounds (the last input index).</summary>
    public long Delivered => _inputIndex;

    /// <summary>The 0-based round of the last batch received.</summary>
    public int Round { get; private set; }

    public int Receive(PacketBatch batch)
    {
        int count = 0;
        if (_next == 0 && _nextRound < _repeat) Round = _nextRound;
        while (count < batch.Capacity && _nextRound < _repeat)
        {
            var r = _records[_next];
            _inputIndex++;
            _data.AsSpan(r.Start, r.Length).CopyTo(batch.ReceiveArea(count));
            batch.SetReceived(count, r.Length, r.Timestamp + Round * _roundShift, _inputIndex, r.Port);
            batch.Meta[count].Drop = r.Drop;
            count++;
            if (++_next == _records.Length)
            {
                _next = 0;
                _nextRound++;
                break; // a batch never spans two rounds
            }
        }
        batch.Count = count;
        return count;
    }
}
