using FastPath.DataPlane.Pipeline;
using FastPath.DataPlane.Telemetry;

namespace FastPath.DataPlane.Ports;

/// <summary>
/// Replays a fixed set of frames from memory, optionally several times over, for tests and benchmarks. The frames are
/// copied once into one array at construction; <see cref="Receive"/> only copies into the batch.
/// </summary>
public sealed class MemorySource : IPacketSource
{
    private readonly byte[] _data;
    private readonly int[] _starts;
    private readonly int[] _lengths;
    private readonly int _repeat;
    private readonly short _ingressPort;
    private readonly long _firstTimestamp;
    private readonly long _intervalNs;
    private readonly PacketMeta _offload;
    private int _round;
    private int _next;
    private long _inputIndex;

    /// <param name="frames">Ethernet frames, delivered in order.</param>
    /// <param name="repeat">How many times the whole set is replayed.</param>
    /// <param name="ingressPort">Port every frame enters on.</param>
    /// <param name="firstTimestamp">Timestamp of the first frame, nanoseconds since the Unix epoch.</param>
    /// <param name="intervalNs">Time between consecutive frames, across rounds too.</param>
    /// <param name="offload">Offload metadata every frame arrives with (Offload, Gso, GsoSize, ChecksumStart/Offset), as
    /// a TAP's virtio-net header would give it; default: none.</param>
    public MemorySource(IReadOnlyList<byte[]> frames, int repeat = 1, short ingressPort = PortIndex.Auto,
        long firstTimestamp = 0, long intervalNs = 1_000, PacketMeta offload = default)
    {
        _offload = offload;
        ArgumentNullException.ThrowIfNull(frames);
        ArgumentOutOfRangeException.ThrowIfNegative(repeat);
        _starts = new int[frames.Count];
        _lengths = new int[frames.Count];
        int total = 0;
        for (int i = 0; i < frames.Count; i++)
        {
            _starts[i] = total;
            _lengths[i] = frames[i].Length;
            total += frames[i].Length;
        }
        _data = new byte[total];
        for (int i = 0; i < frames.Count; i++)
            frames[i].CopyTo(_data, _starts[i]);
        _repeat = frames.Count == 0 ? 0 : repeat;
        _ingressPort = ingressPort;
        _firstTimestamp = firstTimestamp;
        _intervalNs = intervalNs;
    }

    /// <summary>Frames delivered so far.</summary>
    public long Delivered => _inputIndex;

    /// <summary>Starts over from the first frame of the first round.</summary>
    public void Reset()
    {
        _round = 0;
        _next = 0;
        _inputIndex = 0;
    }

    public int Receive(PacketBatch batch)
    {
        int count = 0;
        while (count < batch.Capacity && _round < _repeat)
        {
            int length = _lengths[_next];
            long timestamp = _firstTimestamp + _inputIndex * _intervalNs;
            _inputIndex++;
            var area = batch.ReceiveArea(count);
            if (length <= area.Length)
            {
                _data.AsSpan(_starts[_next], length).CopyTo(area);
                batch.SetReceived(count, length, timestamp, _inputIndex, _ingressPort);
                batch.Meta[count].CopyOffloads(in _offload);
            }
            else
            {
                batch.SetReceived(count, 0, timestamp, _inputIndex, _ingressPort);
                batch.Meta[count].Drop = DropReason.FrameTooLarge;
            }
            count++;
            if (++_next == _lengths.Length)
            {
                _next = 0;
                _round++;
            }
        }
        batch.Count = count;
        return count;
    }
}
