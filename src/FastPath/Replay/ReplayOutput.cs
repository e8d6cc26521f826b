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
    private readonly bool _nanosecond;
    private readonly Dictionary<string, PcapWriter> _byName = new(StringComparer.Ordinal);
    // Per snapshot: ports are numbered by the snapshot, files are named by the port (a cluster change renumbers).
    private ForwardingSnapshot _snapshot;
    private PcapWriter?[] _writers;
    private string[] _portJson;
    private readonly string[] _reasonJson;
    private readonly StreamWriter _drops;

    public ReplayOutput(string directory, ForwardingSnapshot snapshot, bool nanosecond)
    {
        _directory = directory;
        _nanosecond = nanosecond;
        (_snapshot, _writers, _portJson) = (snapshot, [], []);
        Bind(snapshot);
        _reasonJson = Enumerable.Range(0, DropReasons.Count).Select(r => JsonSerializer.Serialize(DropReasons.Name((DropReason)r))).ToArray();
        // Stale outputs of an earlier replay into the same directory would read as this run's packets.
        foreach (var old in Directory.EnumerateFiles(directory, "*.pcap")) File.Delete(old);
        _drops = new StreamWriter(Path.Combine(directory, "drops.jsonl"), append: false, new UTF8Encoding(false), 1 << 16);
    }

    public long Emitted { get; private set; }

    /// <summary>The files written so far, for the human summary.</summary>
    public IEnumerable<string> Files =>
        _byName.Keys.Order(StringComparer.Ordinal).Select(FileName).Append("drops.jsonl").Append("summary.json");

    public static string FileName(string portName) => portName.Replace('/', '_') + ".pcap";

    private void Bind(ForwardingSnapshot snapshot)
    {
        _snapshot = snapshot;
        _writers = snapshot.Ports.Select(p => _byName.GetValueOrDefault(p.Name)).ToArray();
        _portJson = snapshot.Ports.Select(p => JsonSerializer.Serialize(p.Name)).ToArray();
    }

    private PcapWriter Open(int port)
    {
        string name = _snapshot.Ports[port].Name;
        var writer = new PcapWriter(Path.Combine(_directory, FileName(name)), _nanosecond);
        _byName[name] = writer;
        return writer;
    }

    /// <summary>
    /// Writes every packet of a batch processed against <paramref name="snapshot"/>: its emitted frame, its drop line,
    /// or both (a drop that was answered with an ICMP error).
    /// </summary>
    public void Write(PacketBatch batch, ForwardingSnapshot snapshot)
    {
        if (!ReferenceEquals(snapshot, _snapshot)) Bind(snapshot);
        for (int i = 0; i < batch.Count; i++)
        {
            ref var m = ref batch.Meta[i];
            if (m.EgressPort >= 0)
            {
                var writer = _writers[m.EgressPort] ??= Open(m.EgressPort);
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
        foreach (var w in _byName.Values) w.Flush();
        _drops.Flush();
        using var stream = File.Create(Path.Combine(_directory, "summary.json"));
        using var json = new Utf8JsonWriter(stream, new JsonWriterOptions { Indented = true });
        summary.WriteJson(json);
    }

    public void Dispose()
    {
        foreach (var w in _byName.Values) w.Dispose();
        _drops.Dispose();
    }
}
