using FastPath.DataPlane.Pipeline;
using FastPath.DataPlane.Telemetry;
using FastPath.Trace;

namespace FastPath.Fuzz;

public static partial class FuzzTargets
{
    private static Engine? _liveEngine, _tracedEngine;
    private static PacketBatch? _liveBatch, _tracedBatch;
    private static long _traceClock;

    /// <summary>
    /// Differential: the same frames (the pipeline target's format) through two engines built alike, one as `run` and
    /// `replay` forward (<see cref="Engine.Process(PacketBatch)"/>), one as `fastpath trace` does (a
    /// <see cref="TraceObserver"/>, then a <see cref="TraceReport"/> printed as text and JSON). Each frame is its own
    /// batch in both, so their connection tables stay identical. The trace must tell exactly what forwarding did: the
    /// same drop reason, egress port and output bytes, and its report's verdict must be that one.
    /// </summary>
    public static void TraceDifferential(ReadOnlySpan<byte> input)
    {
        _liveEngine ??= new Engine(new SnapshotHolder(DemoSnapshot()), conntrackSeed: 7);
        _tracedEngine ??= new Engine(new SnapshotHolder(DemoSnapshot()), conntrackSeed: 7);
        var live = _liveBatch ??= new PacketBatch(1);
        var traced = _tracedBatch ??= new PacketBatch(1);
        var snapshot = _tracedEngine.Snapshot;
        for (int count = 0; input.Length >= 3 && count < 8; count++)
        {
            int length = Math.Min(input[1] << 8 | input[2], Math.Min(input.Length - 3, PacketBatch.MaxFrameLength));
            var frame = input[3..(3 + length)];
            short port = (short)((input[0] % (snapshot.PortCount + 2)) - 2);
            if (port == PortIndex.None) port = PortIndex.Auto;
            input = input[(3 + length)..];
            _traceClock++;
            foreach (var b in (ReadOnlySpan<PacketBatch>)[live, traced])
            {
                frame.CopyTo(b.ReceiveArea(0));
                b.SetReceived(0, length, _traceClock * 1_000_000L, _traceClock, port);
                b.Count = 1;
            }
            _liveEngine.Process(live);
            var trace = new PacketTrace();
            var observer = new TraceObserver(trace);
            _tracedEngine.Process(traced, ref observer);
            var report = new TraceReport("node-a", "fuzz", snapshot, trace, frame.ToArray(), traced.Frame(0).ToArray(), _tracedEngine.Neighbors);
            report.WriteText(TextWriter.Null);
            report.WriteJson(Stream.Null);

            ref var a = ref live.Meta[0];
            ref var t = ref traced.Meta[0];
            if (a.Drop != t.Drop || a.EgressPort != t.EgressPort || a.HandOverTo != t.HandOverTo)
                throw new InvalidOperationException($"frame {count}: forwarding said {Verdict(a)}, the traced run {Verdict(t)}");
            if (report.Drop != a.Drop || report.Egress != a.EgressPort)
                throw new InvalidOperationException($"frame {count}: forwarding said {Verdict(a)}, the trace report drop {DropReasons.Name(report.Drop)} egress {report.Egress}");
            if (a.EgressPort >= 0 && !live.Frame(0).SequenceEqual(traced.Frame(0)))
                throw new InvalidOperationException($"frame {count}: the traced run emitted other bytes than forwarding");
        }
    }

    private static string Verdict(in PacketMeta m) => m.Drop != DropReason.None ? $"drop {DropReasons.Name(m.Drop)}" : $"egress {m.EgressPort}";
}
