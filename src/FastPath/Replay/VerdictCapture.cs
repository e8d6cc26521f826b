using System.Text;
using FastPath.DataPlane.Pipeline;
using FastPath.DataPlane.Ports;
using FastPath.DataPlane.Services;
using FastPath.DataPlane.Telemetry;
using FastPath.Trace;

namespace FastPath.Replay;

/// <summary>
/// <c>replay --pcapng FILE</c>: one pcapng holding every packet's fate. An interface per port, named as the port (all of
/// the first snapshot's in port order, later ones as they first emit), carries the packets emitted there; an interface
/// named <c>drop</c> carries every dropped input packet as it arrived. Each packet has an <c>opt_comment</c>
/// (<see cref="Comment"/>) so Wireshark filters by <c>frame.comment</c>. Per packet it copies the input frame and writes
/// the comment into a reusable buffer: nothing is allocated but the text of a backend address the first time it is seen.
/// </summary>
public sealed class VerdictCapture : IDisposable
{
    /// <summary>The interface of dropped input packets.</summary>
    public const string DropInterface = "drop";

    private readonly PcapngWriter _writer;
    private readonly PacketBatch _inputs;
    private readonly PacketFate[] _fates;
    private readonly Dictionary<string, int> _interfaceByName = new(StringComparer.Ordinal);
    private readonly Dictionary<ServiceBackend, byte[]> _backendText = [];
    private readonly byte[] _comment = new byte[PcapngWriter.MaxCommentLength];
    private readonly int _dropInterface;
    private ForwardingSnapshot _snapshot;
    private int[] _interfaceOfPort = [];

    public VerdictCapture(string path, ForwardingSnapshot snapshot, int batchCapacity)
    {
        _writer = new PcapngWriter(path);
        _inputs = new PacketBatch(batchCapacity);
        _fates = new PacketFate[batchCapacity];
        _snapshot = snapshot;
        Bind(snapshot);
        _dropInterface = _writer.AddInterface(DropInterface);
    }

    public long Packets => _writer.PacketCount;

    public int Interfaces => _writer.InterfaceCount;

    /// <summary>Keeps the batch's input frames (processing rewrites them in place); call before processing it.</summary>
    public void Keep(PacketBatch batch) => _inputs.CopyFrom(batch);

    /// <summary>The observer to process the kept batch with.</summary>
    public FateObserver Observer()
    {
        var observer = new FateObserver(_fates);
        observer.Begin();
        return observer;
    }

    /// <summary>Writes the processed batch: each emitted packet on its port's interface, each dropped input on <c>drop</c>.</summary>
    public void Write(PacketBatch batch, ForwardingSnapshot snapshot)
    {
        if (!ReferenceEquals(snapshot, _snapshot)) Bind(snapshot);
        for (int i = 0; i < batch.Count; i++)
        {
            ref var m = ref batch.Meta[i];
            if (m.EgressPort < 0 && m.Drop == DropReason.None) continue;
            int length = Comment(_comment, in _fates[i], snapshot);
            if (m.EgressPort >= 0)
            {
                ref int iface = ref _interfaceOfPort[m.EgressPort];
                if (iface < 0) iface = Interface(snapshot.Ports[m.EgressPort].Name);
                _writer.Write(iface, batch.Frame(i), m.Timestamp, _comment.AsSpan(0, length));
            }
            if (m.Drop != DropReason.None)
                _writer.Write(_dropInterface, _inputs.Frame(i), m.Timestamp, _comment.AsSpan(0, length));
        }
    }

    public void Flush() => _writer.Flush();

    public void Dispose() => _writer.Dispose();

    /// <summary>
    /// The comment of a packet, one line of <c>key=value</c>: <c>packet=N ingress=PORT verdict=forwarded|dropped
    /// [reason=DROP] [egress=PORT] [service=NAME] [backend=ADDR:PORT] [policy=NS/NAME[+K]]</c>. <c>reason</c> and
    /// <c>ingress</c> are drops.jsonl's; <c>egress</c> on a drop is where its ICMP error went; <c>policy</c> is the
    /// first policy of the last decision (the denying ones for policy-denied), <c>+K</c> when K more took part.
    /// </summary>
    public int Comment(Span<byte> into, in PacketFate f, ForwardingSnapshot snapshot)
    {
        int n = 0;
        Put(into, ref n, "packet=");
        Put(into, ref n, f.InputIndex);
        Put(into, ref n, " ingress=");
        Put(into, ref n, (uint)f.IngressPort < (uint)snapshot.PortCount ? snapshot.Ports[f.IngressPort].Name : "unknown");
        Put(into, ref n, f.Forwarded ? " verdict=forwarded" : " verdict=dropped reason=");
        if (!f.Forwarded) Put(into, ref n, DropReasons.Name(f.Drop));
        if ((uint)f.EgressPort < (uint)snapshot.PortCount)
        {
            Put(into, ref n, " egress=");
            Put(into, ref n, snapshot.Ports[f.EgressPort].Name);
        }
        if (f.Frontend >= 0)
        {
            Put(into, ref n, " service=");
            Put(into, ref n, snapshot.Services.Frontend(f.Frontend).Name);
        }
        if (f.HasBackend)
        {
            Put(into, ref n, " backend=");
            Put(into, ref n, BackendText(f.Backend));
        }
        if (f.Policy is { } policy)
        {
            Put(into, ref n, " policy=");
            Put(into, ref n, policy);
            if (f.PolicyCount > 1)
            {
                Put(into, ref n, "+");
                Put(into, ref n, f.PolicyCount - 1);
            }
        }
        return n;
    }

    // Appenders for the comment: UTF-8 into the span at n; what does not fit is left out.
    private static void Put(Span<byte> into, ref int n, string s)
    {
        if (Encoding.UTF8.TryGetBytes(s, into[n..], out int written)) n += written;
    }

    private static void Put(Span<byte> into, ref int n, ReadOnlySpan<byte> utf8)
    {
        if (utf8.TryCopyTo(into[n..])) n += utf8.Length;
    }

    private static void Put(Span<byte> into, ref int n, long value)
    {
        if (value.TryFormat(into[n..], out int written)) n += written;
    }

    private ReadOnlySpan<byte> BackendText(ServiceBackend backend)
    {
        if (!_backendText.TryGetValue(backend, out var text))
            _backendText[backend] = text = Encoding.UTF8.GetBytes(TraceReport.Endpoint(backend.Address, backend.Port));
        return text;
    }

    /// <summary>
    /// Maps a snapshot's port numbers to interfaces. The first snapshot describes all its ports up front; a later one
    /// (a cluster change renumbers ports) reuses interfaces by port name and describes new ports when they first emit.
    /// </summary>
    private void Bind(ForwardingSnapshot snapshot)
    {
        bool first = _writer.InterfaceCount == 0;
        _snapshot = snapshot;
        _interfaceOfPort = new int[snapshot.PortCount];
        for (int p = 0; p < snapshot.PortCount; p++)
        {
            string name = snapshot.Ports[p].Name;
            _interfaceOfPort[p] = first ? Interface(name) : _interfaceByName.GetValueOrDefault(name, -1);
        }
    }

    private int Interface(string port)
    {
        if (!_interfaceByName.TryGetValue(port, out int id)) _interfaceByName[port] = id = _writer.AddInterface(port);
        return id;
    }
}
