using System.CommandLine;
using System.Diagnostics;
using System.Net;
using System.Runtime.InteropServices;
using FastPath.ControlPlane.Cluster.Sources;
using FastPath.ControlPlane.Live;
using FastPath.ControlPlane.Publish;
using FastPath.DataPlane.Pipeline;
using FastPath.DataPlane.Ports;
using FastPath.FlowLog;
using FastPath.Live;
using FastPath.Metrics;

namespace FastPath.Commands;

/// <summary>
/// `fastpath run --cluster PATH --node NAME --tap`: the node's live data plane. One TAP device per local pod and one
/// for the uplink (created, or attached when they exist), a forwarding loop (receive a batch, Engine.Process, transmit
/// each packet on its egress port) on the wall clock, a status line, the cluster directory watched by a
/// <see cref="ClusterController"/> (each applied change logged with its compile and publish time), and SIGINT/SIGTERM
/// stop it and remove the devices it created.
/// </summary>
public static class RunCommand
{
    public static Command Create(TextWriter stdout, TextWriter stderr)
    {
        var cluster = new ClusterInput.Options();
        var node = new Option<string>("--node") { Description = "The node whose data plane to run", Required = true };
        var tap = new Option<bool>("--tap") { Description = "Attach to TAP devices (the only live port kind so far)", Required = true };
        var uplink = new Option<string>("--uplink-tap") { Description = "TAP device of the uplink", DefaultValueFactory = _ => "fp-uplink" };
        var host = new Option<string?>("--host-tap") { Description = "TAP device of the host port (none by default)" };
        var batchSize = new Option<int>("--batch") { Description = "Packets per batch", DefaultValueFactory = _ => 64 };
        var status = new Option<double>("--status-interval") { Description = "Seconds between status lines (0: none)", DefaultValueFactory = _ => 5 };
        var duration = new Option<double>("--duration") { Description = "Stop after this many seconds (0: run until SIGINT/SIGTERM)" };
        var metrics = new Option<string?>("--metrics") { Description = "Serve Prometheus metrics on ADDR:PORT (http://ADDR:PORT/metrics/)" };
        var flowLog = new Option<string?>("--flow-log") { Description = "Write JSON-lines flow records (connection start/end, drops) to this file" };
        var flowSample = new Option<int>("--flow-log-sample") { Description = "Keep 1 flow in N (by tuple hash)", DefaultValueFactory = _ => 1 };
        var cmd = new Command("run", "Run a node's data plane live on TAP devices")
        {
            node, tap, uplink, host, batchSize, status, duration, metrics, flowLog, flowSample,
        };
        cluster.AddTo(cmd);
        cmd.SetAction(r => Run(new RunOptions(cluster.Get(r), r.GetValue(node)!, r.GetValue(tap), r.GetValue(uplink)!,
            r.GetValue(host), r.GetValue(batchSize), r.GetValue(status), r.GetValue(duration)) { Metrics = r.GetValue(metrics), FlowLog = r.GetValue(flowLog), FlowLogSample = r.GetValue(flowSample) }, stdout, stderr));
        return cmd;
    }

    public sealed record RunOptions(ClusterInput Cluster, string Node, bool Tap, string UplinkTap, string? HostTap, int BatchSize,
        double StatusInterval, double Duration)
    {
        /// <summary>--metrics ADDR:PORT, or null.</summary>
        public string? Metrics { get; init; }

        /// <summary>--flow-log FILE (or null) and --flow-log-sample N.</summary>
        public string? FlowLog { get; init; }
        public int FlowLogSample { get; init; } = 1;
    }

    public static int Run(RunOptions o, TextWriter stdout, TextWriter stderr)
    {
        if (!o.Tap) return Fail(stderr, "--tap is required: TAP devices are the only live ports so far");
        if (o.BatchSize is < 1 or > 4096) return Fail(stderr, $"--batch {o.BatchSize}: must be between 1 and 4096");
        if (o.FlowLogSample < 1) return Fail(stderr, $"--flow-log-sample {o.FlowLogSample}: must be at least 1");
        foreach (var (option, name) in new[] { ("--uplink-tap", o.UplinkTap), ("--host-tap", o.HostTap) })
            if (name is not null && !TapDevice.IsValidName(name))
                return Fail(stderr, $"{option} {name}: not a valid interface name (1-{TapDevice.MaxNameLength} characters, no '/', ':' or spaces)");
        if (!OperatingSystem.IsLinux() || !File.Exists("/dev/net/tun")) return Fail(stderr, "/dev/net/tun is missing: TAP devices need Linux with the tun module");

        if (o.Cluster.Problem() is { } problem) return Fail(stderr, problem);
        // The controller logs from the watcher's thread while the loop below prints status lines.
        stdout = TextWriter.Synchronized(stdout);
        var publisher = new SnapshotPublisher(o.Node);
        var source = o.Cluster.CreateSource(out var configErrors);
        if (configErrors.Count > 0) { source.Dispose(); return Fail(stderr, configErrors.Select(e => e.ToString())); }
        using var controller = ClusterController.Start(source, o.Node, publisher, new TextWriterLogger(stdout, ""));
        // Like replay, run starts only from a cluster without problems; later bad changes are rejected one object at a
        // time while the last good version stays in force.
        if (controller.InitialErrors.Count > 0) return Fail(stderr, controller.InitialErrors.Select(e => e.ToString()));

        using var stop = new CancellationTokenSource();
        if (o.Duration > 0) stop.CancelAfter(TimeSpan.FromSeconds(o.Duration));
        using var sigint = PosixSignalRegistration.Create(PosixSignal.SIGINT, Stop);
        using var sigterm = PosixSignalRegistration.Create(PosixSignal.SIGTERM, Stop);

        using var taps = new TapSet(o.UplinkTap, o.HostTap, stdout);
        var port = new TapPort(TimeSpan.FromMilliseconds(100));
        var snapshot = publisher.Holder.Current;
        try
        {
            port.Attach(taps.Reconcile(snapshot));
        }
        catch (Exception e) when (e is IOException or ArgumentException)
        {
            return Fail(stderr, e.Message);
        }

        // The engine reads its own holder, advanced by this loop only once the TAPs match the new snapshot: a batch is
        // always received and processed under the same port numbering (ports are renumbered when pods come and go).
        var forwarding = new SnapshotHolder(snapshot);
        var engine = new Engine(forwarding);
        MetricsServer? metricsServer = null;
        if (o.Metrics is { } endpoint)
        {
            try
            {
                // Scrapes read the worker's plain counters from the HTTP thread: figures, not a consistent cut.
                metricsServer = MetricsServer.Start(endpoint,
                    () => NodeMetrics.Collect(engine.Snapshot, [engine], publisher.CompileLatency, publisher.PublishLatency),
                    publisher.CompileLatency, publisher.PublishLatency);
            }
            catch (Exception e) when (e is FormatException or HttpListenerException)
            {
                return Fail(stderr, e.Message);
            }
            stdout.WriteLine($"metrics: {metricsServer.Url}");
        }
        using var metricsLifetime = metricsServer;
        using var flows = o.FlowLog is null ? null : new FlowLogSession(o.FlowLog, o.FlowLogSample, engine, forwarding);
        var batch = new PacketBatch(o.BatchSize);
        var status = new StatusLine(stdout, TimeSpan.FromSeconds(o.StatusInterval));
        var clock = Stopwatch.StartNew();
        var retryAt = TimeSpan.Zero;
        stdout.WriteLine($"forwarding: node {o.Node}, {snapshot.PortCount} ports, generation {snapshot.Generation}; SIGINT/SIGTERM stops; watching {o.Cluster}");
        stdout.Flush();
        while (!stop.IsCancellationRequested)
        {
            if (port.Receive(batch) > 0)
            {
                // Packets that arrived while the loop waited meet the newest snapshot its port numbering allows.
                Advance(batchReceived: true);
                if (flows is null) engine.Process(batch);
                else flows.Process(batch);
                port.TransmitBatch(batch);
            }
            Advance(batchReceived: false);
            if (o.StatusInterval > 0) status.Report(clock.Elapsed, engine.Snapshot, engine.Counters, port);
        }
        status.Report(clock.Elapsed, engine.Snapshot, engine.Counters, port, force: true);
        flows?.Complete();
        stdout.WriteLine($"stopped: {port.Received:N0} frames received, {port.Transmitted:N0} sent; removing the TAP devices this process created");
        return 0;

        // Moves the engine to the controller's newest snapshot. One that keeps the ports (Services, policies, routes)
        // applies at once, even to a batch already received; one that renumbers them waits until no batch is in hand
        // and the TAPs were reconciled with it.
        void Advance(bool batchReceived)
        {
            var current = publisher.Holder.Current;
            if (ReferenceEquals(current, snapshot)) return;
            if (!SamePorts(current, snapshot))
            {
                if (batchReceived || clock.Elapsed < retryAt) return;
                try
                {
                    port.Attach(taps.Reconcile(current));
                }
                catch (Exception e) when (e is IOException or ArgumentException)
                {
                    // Retried a second later; meanwhile the ports that work keep forwarding.
                    stderr.WriteLine($"fastpath run: {e.Message}");
                    retryAt = clock.Elapsed + TimeSpan.FromSeconds(1);
                    return;
                }
            }
            forwarding.Publish(current);
            snapshot = current;
        }

        void Stop(PosixSignalContext ctx)
        {
            ctx.Cancel = true;
            stop.Cancel();
        }
    }

    private static bool SamePorts(ForwardingSnapshot a, ForwardingSnapshot b)
    {
        if (a.PortCount != b.PortCount) return false;
        for (int p = 0; p < a.PortCount; p++)
            if (!string.Equals(a.Ports[p].Name, b.Ports[p].Name, StringComparison.Ordinal)) return false;
        return true;
    }

    private static int Fail(TextWriter stderr, string message) => Fail(stderr, [message]);

    private static int Fail(TextWriter stderr, IEnumerable<string> messages)
    {
        foreach (var m in messages) stderr.WriteLine($"fastpath run: {m}");
        return Program.ExitBadInput;
    }
}
