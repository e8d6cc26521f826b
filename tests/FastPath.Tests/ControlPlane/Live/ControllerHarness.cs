using System.Net;
using FastPath.ControlPlane.Cluster;
using FastPath.ControlPlane.Cluster.Sources;
using FastPath.ControlPlane.Live;
using FastPath.ControlPlane.Publish;
using FastPath.DataPlane.Pipeline;
using FastPath.DataPlane.Telemetry;
using FastPath.Tests.Support;
using Microsoft.Extensions.Logging;
using static FastPath.Tests.Support.TestFrames;

namespace FastPath.Tests.ControlPlane.Live;

/// <summary>
/// node-a with pods client (10.244.1.10), web-1 (.11) and web-2 (.12), node-b with web-3 (10.244.2.13), and Service
/// default/web (10.96.0.10: TCP 80 → 8080, UDP 53 → 5353) whose slice starts with web-1 only; a controller fed batch by
/// batch (as a source would) and an engine forwarding through the controller's snapshots.
/// </summary>
internal sealed class ControllerHarness : IDisposable
{
    public static readonly string Base = $$$"""
        apiVersion: fastpath.io/v1alpha1
        kind: FastPathConfiguration
        clusterCIDRs: [10.244.0.0/16]
        conntrackMaxEntries: 4096
        maglevTableSize: 251
        ---
        {{{Node("node-a", "10.244.1.0/24", "192.168.56.11", "02:00:00:00:01:01")}}}
        ---
        {{{Node("node-b", "10.244.2.0/24", "192.168.56.12", "02:00:00:00:02:01")}}}
        ---
        {{{Pod("client", "10.244.1.10", "02:42:0a:f4:01:0a")}}}
        ---
        {{{Pod("web-1", "10.244.1.11", "02:42:0a:f4:01:0b")}}}
        ---
        {{{Pod("web-2", "10.244.1.12", "02:42:0a:f4:01:0c")}}}
        ---
        {{{Pod("web-3", "10.244.2.13", null, "node-b")}}}
        ---
        apiVersion: v1
        kind: Service
        metadata: {name: web}
        spec:
          clusterIP: 10.96.0.10
          ports: [{name: http, port: 80, protocol: TCP}, {name: dns, port: 53, protocol: UDP}]
        """;

    private static string Node(string name, string cidr, string ip, string mac) =>
        $"apiVersion: v1\nkind: Node\nmetadata: {{name: {name}, annotations: {{fastpath.io/mac: \"{mac}\"}}}}\n"
        + $"spec: {{podCIDR: {cidr}}}\nstatus: {{addresses: [{{type: InternalIP, address: {ip}}}]}}";

    private static string Pod(string name, string ip, string? mac, string node = "node-a") =>
        $"apiVersion: v1\nkind: Pod\nmetadata: {{name: {name}{(mac is null ? "" : $", annotations: {{fastpath.io/mac: \"{mac}\"}}")}}}\n"
        + $"spec: {{nodeName: {node}}}\nstatus: {{podIP: {ip}}}";

    public static string Slice(string name, string service, params string[] endpoints) => $$$"""
        apiVersion: discovery.k8s.io/v1
        kind: EndpointSlice
        metadata: {name: {{{name}}}, labels: {kubernetes.io/service-name: {{{service}}}}}
        addressType: IPv4
        ports: [{name: http, port: 8080, protocol: TCP}, {name: dns, port: 5353, protocol: UDP}]
        endpoints: [{{{string.Join(", ", endpoints)}}}]
        """;

    public static string Ready(string ip, string node = "node-a") => $"{{addresses: [{ip}], nodeName: {node}}}";

    private readonly TempCluster _dir = new();
    private int _files;
    private long _clock = 1_000_000_000_000;

    public ControllerHarness(string? slice = null)
    {
        Logger = new ListLogger();
        Publisher = new SnapshotPublisher("node-a");
        Controller = new ClusterController("node-a", Publisher, Logger);
        var problems = Apply("base.yaml", Base + "\n---\n" + (slice ?? Slice("web-abc", "web", Ready("10.244.1.11"))));
        Assert.Empty(problems);
        Engine = new Engine(Publisher.Holder, conntrackSeed: 1);
    }

    public ListLogger Logger { get; }
    public SnapshotPublisher Publisher { get; }
    public ClusterController Controller { get; }
    public Engine Engine { get; }
    public string Dir => _dir.Path;

    /// <summary>Reads <paramref name="yaml"/> as the file <paramref name="file"/> and applies its objects (and read errors) as one batch.</summary>
    public IReadOnlyList<ClusterError> Apply(string file, string yaml) => Controller.Apply(Read(file, yaml));

    public ClusterChangeBatch Read(string file, string yaml)
    {
        var path = _dir.Write($"{_files++:D4}-{file}", yaml);
        File.Move(path, _dir.F(file), overwrite: true);
        var read = ClusterDirectory.ReadFile(_dir.F(file));
        return new ClusterChangeBatch(read.Objects.Select(ClusterChange.Upsert).ToList(), read.Errors, read.Warnings);
    }

    public IReadOnlyList<ClusterError> Delete(string kind, string? ns, string name) =>
        Controller.Apply(new ClusterChangeBatch([new ClusterChange(ClusterChangeKind.Delete, new ObjectKey(kind, ns, name), null, "test")], [], []));

    public sealed record Sent(DropReason Drop, string? Egress, string? Destination, ushort DestinationPort, byte[] Frame);

    /// <summary>Sends one IPv4 frame from the client pod through the engine (one batch) and decodes where it went.</summary>
    public Sent FromClient(byte proto, string dst, byte[] l4) => Run(ClientFrame(proto, dst, l4))[0];

    public static byte[] ClientFrame(byte proto, string dst, byte[] l4) =>
        Ethernet(GatewayMac, Mac("02:42:0a:f4:01:0a"), 0x0800, Ipv4("10.244.1.10", dst, proto, l4));

    /// <summary>Runs the frames as one batch (ingress resolved by source address) and decodes each verdict.</summary>
    public List<Sent> Run(params byte[][] frames)
    {
        var batch = new PacketBatch(frames.Length);
        for (int i = 0; i < frames.Length; i++)
        {
            frames[i].CopyTo(batch.ReceiveArea(i));
            batch.SetReceived(i, frames[i].Length, _clock += 1_000_000_000, i + 1, PortIndex.Auto);
        }
        batch.Count = frames.Length;
        Engine.Process(batch);
        var sent = new List<Sent>(frames.Length);
        for (int i = 0; i < frames.Length; i++)
        {
            var m = batch.Meta[i];
            if (m.EgressPort < 0) { sent.Add(new Sent(m.Drop, null, null, 0, [])); continue; }
            var f = batch.Frame(i).ToArray();
            string egress = Engine.Snapshot.Ports[m.EgressPort].Name;
            // Uplink frames to another node carry VXLAN: the inner IPv4 header starts 50 bytes later.
            int ip = egress == "uplink" && f.Length > 50 + 38 && f[14 + 9] == 17 && ((f[36] << 8) | f[37]) == 8472 ? 14 + 50 : 14;
            sent.Add(new Sent(m.Drop, egress, new IPAddress(f[(ip + 16)..(ip + 20)]).ToString(), (ushort)((f[ip + 22] << 8) | f[ip + 23]), f));
        }
        return sent;
    }

    public Sent Tcp(ushort sport, byte flags = 0x02) => FromClient(6, "10.96.0.10", TestFrames.Tcp(sport, 80, flags));
    public Sent Udp(ushort sport) => FromClient(17, "10.96.0.10", TestFrames.Udp(sport, 53));

    public void Dispose()
    {
        Controller.Dispose();
        _dir.Dispose();
    }
}

/// <summary>Collects log lines (level and rendered message) for assertions.</summary>
internal sealed class ListLogger : ILogger
{
    public List<(LogLevel Level, string Message)> Lines { get; } = [];

    public IDisposable? BeginScope<TState>(TState state) where TState : notnull => null;
    public bool IsEnabled(LogLevel logLevel) => true;

    public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter)
    {
        lock (Lines) Lines.Add((logLevel, formatter(state, exception)));
    }
}
