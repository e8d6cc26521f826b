using System.Text.Encodings.Web;
using System.Text.Json;
using FastPath.DataPlane.Conntrack;
using FastPath.DataPlane.Nat;
using FastPath.DataPlane.Pipeline;
using FastPath.DataPlane.Services;
using FastPath.DataPlane.Telemetry;
using FastPath.Trace;

namespace FastPath.FlowLog;

/// <summary>
/// Drains a worker's <see cref="FlowRing"/> on its own thread and writes one JSON object per line: event (start,
/// end, active, drop), first and last packet time, the 5-tuple before and after NAT, Service and backend, packets and
/// bytes per direction, verdict and drop reason. The forwarding thread only copies fixed-size records into the ring.
/// </summary>
public sealed class FlowLogWriter : IDisposable
{
    private readonly FlowRing _ring;
    private readonly SnapshotHolder _snapshots;
    private readonly FileStream _file;
    private readonly Utf8JsonWriter _json;
    private readonly Thread _thread;
    private readonly ManualResetEventSlim _stop = new();
    private bool _completed;

    public FlowLogWriter(string path, FlowRing ring, SnapshotHolder snapshots)
    {
        (_ring, _snapshots) = (ring, snapshots);
        _file = new FileStream(path, FileMode.Create, FileAccess.Write, FileShare.Read, 1 << 16);
        _json = new Utf8JsonWriter(_file, new JsonWriterOptions { Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping, SkipValidation = true });
        _thread = new Thread(Drain) { IsBackground = true, Name = "flow-log" };
        _thread.Start();
    }

    /// <summary>Records written so far (read after <see cref="Complete"/> for the final count).</summary>
    public long Written { get; private set; }

    /// <summary>Stops the drain thread once the ring is empty and flushes the file. Call after the producer is done.</summary>
    public void Complete()
    {
        if (_completed) return;
        _completed = true;
        _stop.Set();
        _thread.Join();
        _json.Flush();
        _file.Flush();
    }

    private void Drain()
    {
        while (true)
        {
            bool stopping = _stop.IsSet; // read before draining: whatever was published before Set() is drained below
            bool wrote = false;
            while (_ring.TryRead(out var r))
            {
                WriteRecord(r);
                wrote = true;
            }
            if (stopping) return;
            if (wrote) _file.Flush(); // live runs: records reach the file within milliseconds
            _stop.Wait(TimeSpan.FromMilliseconds(5));
        }
    }

    private void WriteRecord(in FlowRecord r)
    {
        var snap = _snapshots.Current;
        var w = _json;
        w.Reset(_file);
        w.WriteStartObject();
        w.WriteString("event", r.Event switch { FlowEvent.Start => "start", FlowEvent.End => "end", FlowEvent.Active => "active", _ => "drop" });
        w.WriteNumber("start_ns", r.Start);
        w.WriteNumber("end_ns", r.End);
        if (HasTuple(r.Original)) w.WriteString("protocol", TraceReport.ProtocolName(r.Original.Protocol));
        else w.WriteNull("protocol");
        WriteTuple(w, "original", r.Original);
        bool drop = r.Event == FlowEvent.Drop;
        if (drop) w.WriteNull("translated");
        else WriteTuple(w, "translated", r.Reply.Reverse());
        w.WriteString("nat", r.NatKind switch { ServiceNat.NatKind => "service", Masquerade.NatKind => "masquerade", _ => "none" });
        int frontend = r.NatKind == ServiceNat.NatKind
            ? snap.Services.Lookup(r.Original.Destination, r.Original.DestinationPort, r.Original.Protocol)
            : -1;
        bool service = frontend >= 0;
        if (service) w.WriteString("service", snap.Services.Frontend(frontend).Name);
        else w.WriteNull("service");
        if (service) w.WriteString("backend", TraceReport.Endpoint(r.Reply.Source, r.Reply.SourcePort));
        else w.WriteNull("backend");
        if (drop) w.WriteNull("state");
        else w.WriteString("state", TraceReport.StateName(r.State));
        w.WriteNumber("packets", r.PacketsOriginal);
        w.WriteNumber("bytes", r.BytesOriginal);
        w.WriteNumber("reply_packets", r.PacketsReply);
        w.WriteNumber("reply_bytes", r.BytesReply);
        w.WriteString("verdict", drop ? "dropped" : "forwarded");
        if (drop) w.WriteString("drop_reason", DropReasons.Name(r.Drop));
        else w.WriteNull("drop_reason");
        if (drop && (uint)r.Ingress < (uint)snap.PortCount) w.WriteString("ingress", snap.Ports[r.Ingress].Name);
        else w.WriteNull("ingress");
        w.WriteEndObject();
        w.Flush();
        _file.WriteByte((byte)'\n');
        Written++;
    }

    private static void WriteTuple(Utf8JsonWriter w, string name, in FlowKey k)
    {
        if (!HasTuple(k))
        {
            w.WriteNull(name); // a dropped packet without a tuple (malformed, non-IP)
            return;
        }
        w.WriteStartObject(name);
        w.WriteString("source", k.Source.ToString());
        w.WriteNumber("source_port", k.SourcePort);
        w.WriteString("destination", k.Destination.ToString());
        w.WriteNumber("destination_port", k.DestinationPort);
        w.WriteEndObject();
    }

    private static bool HasTuple(in FlowKey k) => k.Protocol != 0 || k.Source.Value != UInt128.Zero;

    public void Dispose()
    {
        Complete();
        _json.Dispose();
        _file.Dispose();
        _stop.Dispose();
    }
}
