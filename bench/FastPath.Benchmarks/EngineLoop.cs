using FastPath.DataPlane.Pipeline;
using FastPath.DataPlane.Ports;

namespace FastPath.Benchmarks;

/// <summary>The measured loop of the pipeline benchmarks: receive a batch, process it, transmit what it emits.</summary>
public static class EngineLoop
{
    /// <param name="mayDropAll">Hostile traffic (floods, garbage) may legitimately forward nothing.</param>
    public static long Forward(MemorySource source, Engine engine, NullSink sink, PacketBatch batch, int packets, string scenario, bool mayDropAll = false)
    {
        long forwarded = 0;
        for (int done = 0; done < packets; done += batch.Count)
        {
            source.Receive(batch);
            engine.Process(batch);
            var meta = batch.Meta;
            for (int i = 0; i < batch.Count; i++)
            {
                if (meta[i].EgressPort < 0) continue;
                sink.Transmit(meta[i].EgressPort, batch.Frame(i), meta[i].Timestamp);
                forwarded++;
            }
        }
        if (forwarded == 0 && !mayDropAll) throw new InvalidOperationException($"{scenario}: nothing forwarded");
        return forwarded;
    }
}
