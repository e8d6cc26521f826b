using FastPath.DataPlane.Pipeline;
using FastPath.DataPlane.Ports;

namespace FastPath.Benchmarks;

/// <summary>
/// The measured loop of the pipeline benchmarks: receive a batch of 64 from <paramref name="source"/>, process it,
/// transmit what it emits to a null port.
/// </summary>
/// <param name="scenario">Names the traffic in the error thrown when nothing was forwarded.</param>
/// <param name="mayDropAll">Hostile traffic (floods, garbage) may legitimately forward nothing.</param>
public sealed class EngineLoop(MemorySource source, Engine engine, string scenario, bool mayDropAll = false)
{
    /// <summary>Packets per benchmark invocation (the benchmarks' OperationsPerInvoke).</summary>
    public const int Packets = 64 * 1024;

    private readonly NullSink _sink = new();
    private readonly PacketBatch _batch = new(64);

    /// <summary>Forwards <paramref name="packets"/> packets (whole batches); returns how many were transmitted.</summary>
    public long Forward(int packets = Packets)
    {
        long forwarded = 0;
        for (int done = 0; done < packets; done += _batch.Count)
        {
            source.Receive(_batch);
            engine.Process(_batch);
            var meta = _batch.Meta;
            for (int i = 0; i < _batch.Count; i++)
            {
                if (meta[i].EgressPort < 0) continue;
                _sink.Transmit(meta[i].EgressPort, _batch.Frame(i), meta[i].Timestamp);
                forwarded++;
            }
        }
        if (forwarded == 0 && !mayDropAll) throw new InvalidOperationException($"{scenario}: nothing forwarded");
        return forwarded;
    }
}
