using FastPath.DataPlane.Pipeline;
using FastPath.DataPlane.Telemetry;

namespace FastPath.DataPlane.Ports;

/// <summary>
/// Feeds the engine from one or more capture files. Several captures are merged by timestamp; ties go to the earlier
/// file in argument order, so a replay is deterministic. Records are read straight into the batch slots, and
/// <see cref="PacketMeta.InputIndex"/> numbers them 1, 2, ... in merged order.
/// </summary>
/// <remarks>
/// Ingress port of a record: the input's explicit port; else, for pcapng, the port named like the record's interface
/// (if_name), looked up once per interface; else <see cref="PortIndex.Auto"/>. Records the capture truncated are
/// delivered with <see cref="DropReason.CaptureTruncated"/>, records longer than a slot with
/// <see cref="DropReason.FrameTooLarge"/>: counted, never lost.
/// </remarks>
public sealed class CaptureSource : IPacketSource, IDisposable
{
    /// <summary>Marks an interface whose port has not been looked up yet.</summary>
    private const short Unresolved = short.MinValue;

    private readonly CaptureReader[] _readers;
    private readonly short?[] _explicitPorts;
    private readonly short[][] _interfacePorts;
    private readonly Func<string, short>? _portByName;
    /// <summary>Inputs not yet exhausted, in argument order (the order breaks timestamp ties).</summary>
    private readonly int[] _live;
    private int _liveCount;
    private long _inputIndex;

    /// <param name="inputs">Captures in argument order.</param>
    /// <param name="portByName">Port index for a pcapng interface name, -1 if no port has that name.</param>
    /// <exception cref="CaptureFormatException">A capture cannot be opened as pcap/pcapng.</exception>
    public CaptureSource(IReadOnlyList<CaptureInput> inputs, Func<string, short>? portByName = null)
    {
        ArgumentNullException.ThrowIfNull(inputs);
        _readers = new CaptureReader[inputs.Count];
        _explicitPorts = new short?[inputs.Count];
        _interfacePorts = new short[inputs.Count][];
        _live = new int[inputs.Count];
        _portByName = portByName;
        try
        {
            for (int i = 0; i < inputs.Count; i++)
            {
                _readers[i] = new CaptureReader(inputs[i].Path);
                _explicitPorts[i] = inputs[i].Port;
                _interfacePorts[i] = NewPortMap(Math.Max(_readers[i].InterfaceCount, 4));
                _live[i] = i;
            }
        }
        catch
        {
            foreach (var reader in _readers)
                reader?.Dispose();
            throw;
        }
        _liveCount = inputs.Count;
    }

    /// <summary>Records delivered so far (the last <see cref="PacketMeta.InputIndex"/>).</summary>
    public long Delivered => _inputIndex;

    /// <exception cref="CaptureFormatException">A capture turned out broken mid-file.</exception>
    public int Receive(PacketBatch batch)
    {
        int count = 0;
        while (count < batch.Capacity && _liveCount > 0)
        {
            int input = _liveCount == 1 ? _live[0] : EarliestInput();
            if (input < 0)
                break;
            var reader = _readers[input];
            Span<byte> area = batch.ReceiveArea(count);
            if (!reader.TryRead(area, out var record))
            {
                RemoveLive(input);
                continue;
            }
            _inputIndex++;
            batch.SetReceived(count, record.Length, record.Timestamp, _inputIndex, IngressPort(input, record.InterfaceIndex));
            if (record.IsOversize)
                batch.Meta[count].Drop = DropReason.FrameTooLarge;
            else if (record.IsTruncated)
                batch.Meta[count].Drop = DropReason.CaptureTruncated;
            count++;
        }
        batch.Count = count;
        return count;
    }

    public void Dispose()
    {
        foreach (var reader in _readers)
            reader.Dispose();
    }

    /// <summary>The live input whose next record is earliest; the first in argument order on a tie. -1 if none left.</summary>
    private int EarliestInput()
    {
        while (_liveCount > 0)
        {
            int best = -1;
            long bestTime = 0;
            for (int i = 0; i < _liveCount; i++)
            {
                int input = _live[i];
                if (!_readers[input].TryPeekTimestamp(out long time))
                {
                    RemoveLive(input);
                    best = -2; // the live list changed: scan again
                    break;
                }
                if (best < 0 || time < bestTime)
                {
                    best = input;
                    bestTime = time;
                }
            }
            if (best >= 0)
                return best;
        }
        return -1;
    }

    /// <summary>Removes an exhausted input, keeping argument order for the tie-break.</summary>
    private void RemoveLive(int input)
    {
        int at = Array.IndexOf(_live, input, 0, _liveCount);
        Array.Copy(_live, at + 1, _live, at, _liveCount - at - 1);
        _liveCount--;
    }

    private short IngressPort(int input, int interfaceIndex)
    {
        short? explicitPort = _explicitPorts[input];
        if (explicitPort.HasValue)
            return explicitPort.Value;
        short[] ports = _interfacePorts[input];
        if ((uint)interfaceIndex < (uint)ports.Length && ports[interfaceIndex] != Unresolved)
            return ports[interfaceIndex];
        return ResolveInterfacePort(input, interfaceIndex);
    }

    /// <summary>Once per interface: map its if_name to a port.</summary>
    private short ResolveInterfacePort(int input, int interfaceIndex)
    {
        ref short[] ports = ref _interfacePorts[input];
        if (interfaceIndex >= ports.Length)
        {
            var grown = NewPortMap(Math.Max(ports.Length * 2, interfaceIndex + 1));
            ports.CopyTo(grown, 0);
            ports = grown;
        }
        string? name = _readers[input].InterfaceName(interfaceIndex);
        short port = PortIndex.Auto;
        if (name is not null && _portByName is not null)
        {
            short named = _portByName(name);
            if (named >= 0)
                port = named;
        }
        ports[interfaceIndex] = port;
        return port;
    }

    private static short[] NewPortMap(int length)
    {
        var map = new short[length];
        map.AsSpan().Fill(Unresolved);
        return map;
    }
}
