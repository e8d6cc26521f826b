using System.Text;
using System.Text.Json;
using FastPath.DataPlane.Pipeline;
using FastPath.DataPlane.Ports;
using FastPath.DataPlane.Telemetry;

namespace FastPath.Replay;

/// <summary>
/// Writes a replay's results as the contract says: one &lt;port&gt;.pcap per egress port that emitted packets
/// ('/' in port names becomes '_'), drops.jsonl with one line per dropped input packet, and summary.json.
/// </summary>
public sealed class ReplayOutput : IDisposable
{
    private readonly string _directory;
    private readonly ForwardingSnapshot _snapshot;
    private readonly bool _nanosecond;
    private readonly PcapWriter?[] _writers;
    private readonly string[] _portJson;
    private readonly string[] _reasonJson;
    private readonly StreamWriter _drops;

    public ReplayOutput(string directory, ForwardingSnapshot snapshot, bool nanosecond)
    {
        _directory = directory;
        _snapshot = snapshot;
        _nanosecond = nanosecond;
        _writers = new PcapWriter?[snapshot.PortCount];
        _portJson = snapshot.Ports.Select(p => JsonSerializer.Serialize(p.Name)).ToArray();
        _reasonJson = Enumerable.Range(0, DropReasons.Count).Select(r => JsonSerializer.Serialize(DropReasons.Name((DropReason)r))).ToArray();
        // Stale outputs of an earlier replay into the same directory would read as this run's packets.
        foreach (var old in Directory.EnumerateFiles(directory, "*.pcap")) File.Delete(old);
        _drops = new StreamWriter(Path.Combine(directory, "drops.jsonl"), append: false, new UTF8Encoding(false), 1 << 16);
    }

    public long Emitted { get; private set; }

    /// <summary>The files written so far, for the human summary.</summary>
    public IEnumerable<string> Files =>
        _writers.Select((w, p) => w is null ? null : FileName(p)).OfType<string>().Append("drops.jsonl").Append("summary.json");

    public static string FileName(string portName) => portName.Replace('/', '_') + ".pcap";

    private string FileName(int port) => FileName(_snapshot.Ports[port].Name);

    /// <summary>Writes every packet of a processed batch: its emitted frame, its drop line, or both (a drop that was answered with an ICMP error).</summary>
    public void Write(PacketBatch batch)
    {
        for (int i = 0; i < batch.Count; i++)
        {
            ref var m = ref batch.Meta[i];
            if (m.EgressPort >= 0)
            {
                var writer = _writers[m.EgressPort] ??= new PcapWriter(Path.Combine(_directory, FileName(m.EgressPort)), _nanosecond);
                writer.Write(batch.Frame(i), m.Timestamp);
                Emitted++;
            }
            if (m.Drop != DropReason.None)
            {
                _drops.Write("{\"packet\": ");
                _drops.Write(m.InputIndex);
                _drops.Write(", \"port\": ");
                _drops.Write((uint)m.IngressPort < (uint)_portJson.Length ? _portJson[m.IngressPort] : "\"unknown\"");
                _drops.Write(", \"reason\": ");
                _drops.Write(_reasonJson[(int)m.Drop]);
                _drops.Write("}\n");
            }
        }
    }

    /// <summary>Flushes every file and writes summary.json.</summary>
    public void Finish(ReplaySummary summary)
    {
        foreach (var w in _writers) w?.Flush();
        _drops.Flush();
        using var stream = File.Create(Path.Combine(_directory, "summary.json"));
        using var json = new Utf8JsonWriter(stream, new JsonWriterOptions { Indented = true });
        summary.WriteJson(json);
    }

    public void Dispose()
    {
        foreach (var w in _writers) w?.Dispose();
        _drops.Dispose();
    }
}
