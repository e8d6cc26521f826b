using System.CommandLine;
using System.Diagnostics;
using System.Net;
using System.Runtime.InteropServices;
using FastPath.ControlPlane.Cluster.Sources;
using FastPath.ControlPlane.Compile;
using FastPath.ControlPlane.Live;
using FastPath.ControlPlane.Publish;
using FastPath.DataPlane.Conntrack;
using FastPath.DataPlane.Pipeline;
using FastPath.DataPlane.Ports;
using FastPath.FlowLog;
using FastPath.Live;
using FastPath.Health;
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
        var tap = new Option<bool>("--tap") { Description = "TAP devices for every port without an --attach'ed interface (created, or found)" };
        var attach = new Option<string[]>("--attach") { Description = "Put an existing interface on a port: IFNAME[=PORT] (repeatable; PORT by default: a pod's when IFNAME is its veth's host end, else the uplink)" };
        var attachMode = new Option<string>("--attach-mode") { Description = "How to attach interfaces: auto (xdp, else packet, else pcap), xdp (AF_XDP, copy mode), packet (AF_PACKET TPACKET_V3), pcap (libpcap)", DefaultValueFactory = _ => "auto" };
        var cniSocket = new Option<string?>("--cni-socket") { Description = "Unix socket fastpath-cni tells this node about new pods on" };
        var uplink = new Option<string>("--uplink-tap") { Description = "TAP device of the uplink", DefaultValueFactory = _ => "fp-uplink" };
        var host = new Option<string?>("--host-tap") { Description = "TAP device of the host port (none by default)" };
        var batchSize = new Option<int>("--batch") { Description = "Packets per batch", DefaultValueFactory = _ => 64 };
        var status = new Option<double>("--status-interval") { Description = "Seconds between status lines (0: none)", DefaultValueFactory = _ => 5 };
        var duration = new Option<double>("--duration") { Description = "Stop after this many seconds (0: run until SIGINT/SIGTERM)" };
        var metrics = new Option<string?>("--metrics") { Description = "Serve Prometheus metrics on ADDR:PORT (http://ADDR:PORT/metrics/)" };
        var flowLog = new Option<string?>("--flow-log") { Description = "Write JSON-lines flow records (connection start/end, drops) to this file" };
        var flowSample = new Option<int>("--flow-log-sample") { Description = "Keep 1 flow in N (by tuple hash)", DefaultValueFactory = _ => 1 };
        var workers = new Option<int>("--workers") { Description = "Forwarding threads, each with its own queue of every TAP (IFF_MULTI_QUEUE) and its own conntrack", DefaultValueFactory = _ => 1 };
        var busyPoll = new Option<int>("--busy-poll") { Description = "Microseconds to keep polling without sleeping after the last frame (0: sleep at once)", DefaultValueFactory = _ => 50 };
        var offloads = new Option<string>("--offloads") { Description = "on: virtio-net headers, partial checksums and GSO super-frames on the TAPs; off: plain frames", DefaultValueFactory = _ => "on" };
        var healthz = new Option<string>("--healthz") { Description = "Serve /healthz and /livez on ADDR:PORT, as kube-proxy's --healthz-bind-address ('off': none)", DefaultValueFactory = _ => ":10256" };
        var stateDir = new Option<string?>("--state-dir") { Description = "Keep connection tracking in memory-mapped files in this directory (e.g. /run/fastpath/NODE, on tmpfs) and make created TAPs persistent, so the next run restores the connections and finds the TAPs again" };
        var takeover = new Option<bool>("--takeover") { Description = "With --state-dir: if a run of this node holds the state directory, ask it to hand over (it stops forwarding, saves and exits) once this one is ready, instead of failing" };
        var cmd = new Command("run", "Run a node's data plane live on TAP devices and attached interfaces")
        {
            node, tap, attach, attachMode, cniSocket, uplink, host, batchSize, status, duration, metrics, flowLog, flowSample, workers, busyPoll, offloads, healthz,
            stateDir, takeover,
        };
        cluster.AddTo(cmd);
        cmd.SetAction(r => Run(new RunOptions(cluster.Get(r), r.GetValue(node)!, r.GetValue(tap), r.GetValue(uplink)!,
            r.GetValue(host), r.GetValue(batchSize), r.GetValue(status), r.GetValue(duration))
        {
            Metrics = r.GetValue(metrics), FlowLog = r.GetValue(flowLog), FlowLogSample = r.GetValue(flowSample),
            Workers = r.GetValue(workers), BusyPollMicroseconds = r.GetValue(busyPoll), Offloads = r.GetValue(offloads)!,
            Healthz = r.GetValue(healthz)!, Attach = r.GetValue(attach) ?? [], AttachMode = r.GetValue(attachMode)!,
            CniSocket = r.GetValue(cniSocket), StateDir = r.GetValue(stateDir), Takeover = r.GetValue(takeover),
        }, stdout, stderr));
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

        /// <summary>--busy-poll MICROSECONDS: keep polling without sleeping this long after the last frame.</summary>
        public int BusyPollMicroseconds { get; init; } = 50;

        /// <summary>--workers N: forwarding threads, one queue of every TAP each.</summary>
        public int Workers { get; init; } = 1;

        /// <summary>--offloads on|off.</summary>
        public string Offloads { get; init; } = "on";

        /// <summary>--healthz ADDR:PORT for /healthz and /livez, or "off".</summary>
        public string Healthz { get; init; } = "off";

        /// <summary>--attach IFNAME[=PORT], each.</summary>
        public IReadOnlyList<string> Attach { get; init; } = [];

        /// <summary>--attach-mode auto|xdp|packet|pcap.</summary>
        public string AttachMode { get; init; } = "auto";

        /// <summary>--cni-socket PATH, or null.</summary>
        public string? CniSocket { get; init; }

        /// <summary>--state-dir DIR: conntrack in state files there, persistent TAPs; null: neither.</summary>
        public string? StateDir { get; init; }

        /// <summary>--takeover: take the state directory over from the run holding it.</summary>
        public bool Takeover { get; init; }
    }

    public static int Run(RunOptions o, TextWriter stdout, TextWriter stderr)
    {
        if (!o.Tap && o.Attach.Count == 0 && o.CniSocket is null)
            return Fail(stderr, "no ports: give --tap (TAP devices), --attach IFNAME (existing interfaces) and/or --cni-socket PATH (pods on veths)");
        var specs = new List<AttachSpec>();
        foreach (var text in o.Attach)
        {
            if (AttachSpec.Parse(text, out var error) is not { } spec) return Fail(stderr, error!);
            if (specs.Any(s => s.Interface == spec.Interface)) return Fail(stderr, $"--attach {text}: {spec.Interface} is attached twice");
            specs.Add(spec);
        }
        if (!Enum.TryParse<AttachMode>(o.AttachMode, ignoreCase: true, out var mode) || !Enum.IsDefined(mode) || o.AttachMode.Any(char.IsDigit))
            return Fail(stderr, $"--attach-mode {o.AttachMode}: must be auto, xdp, packet or pcap");
        if (mode == AttachMode.Pcap && o.Workers > 1)
            return Fail(stderr, $"--attach-mode pcap --workers {o.Workers}: libpcap has one queue per interface; use --workers 1 or --attach-mode packet");
        if (o.BatchSize is < 1 or > 4096) return Fail(stderr, $"--batch {o.BatchSize}: must be between 1 and 4096");
        if (o.FlowLogSample < 1) return Fail(stderr, $"--flow-log-sample {o.FlowLogSample}: must be at least 1");
        if (o.Workers is < 1 or > 64) return Fail(stderr, $"--workers {o.Workers}: must be between 1 and 64");
        if (o.BusyPollMicroseconds is < 0 or > 1_000_000) return Fail(stderr, $"--busy-poll {o.BusyPollMicroseconds}: must be between 0 and 1000000 microseconds");
        if (o.Offloads is not ("on" or "off")) return Fail(stderr, $"--offloads {o.Offloads}: must be on or off");
        foreach (var (option, name) in new[] { ("--uplink-tap", o.UplinkTap), ("--host-tap", o.HostTap) })
            if (name is not null && !TapDevice.IsValidName(name))
                return Fail(stderr, $"{option} {name}: not a valid interface name (1-{TapDevice.MaxNameLength} characters, no '/', ':' or spaces)");
        if (o.Tap && (!OperatingSystem.IsLinux() || !File.Exists("/dev/net/tun"))) return Fail(stderr, "/dev/net/tun is missing: TAP devices need Linux with the tun module");

        if (o.Takeover && o.StateDir is null) return Fail(stderr, "--takeover needs --state-dir: the state directory is what is taken over");
        if (o.Cluster.Problem() is { } problem) return Fail(stderr, problem);
        // The controller logs from the watcher's thread while the loop below prints status lines.
        stdout = TextWriter.Synchronized(stdout);
        var publisher = new SnapshotPublisher(o.Node);
        var source = o.Cluster.CreateSource(out var configErrors);
        if (configErrors.Count > 0) { source.Dispose(); return Fail(stderr, configErrors.Select(e => e.ToString())); }
        // A node knows its gateway: without uplinkGateway or uplinkGatewayMAC the default routes of this namespace serve.
        var hostRoutes = HostDefaultRoute.Read();
        using var controller = ClusterController.Start(source, o.Node, publisher, new TextWriterLogger(stdout, ""),
            hostRoutes.Select(r => r.Gateway).ToList());
        // Like replay, run starts only from a cluster without problems; later bad changes are rejected one object at a
        // time while the last good version stays in force.
        if (controller.InitialErrors.Count > 0) return Fail(stderr, controller.InitialErrors.Select(e => e.ToString()));
        stdout.WriteLine(UplinkGatewayLine(controller.Configuration, hostRoutes));

        using var stop = new CancellationTokenSource();
        if (o.Duration > 0) stop.CancelAfter(TimeSpan.FromSeconds(o.Duration));
        using var sigint = PosixSignalRegistration.Create(PosixSignal.SIGINT, Stop);
        using var sigterm = PosixSignalRegistration.Create(PosixSignal.SIGTERM, Stop);

        // AF_XDP interfaces of one worker share its memory, which also holds its batch, so frames move between them by
        // descriptor: made only when something may be attached through AF_XDP.
        var umems = OperatingSystem.IsLinux() && mode is (AttachMode.Xdp or AttachMode.Auto) && (specs.Count > 0 || !o.Tap)
            ? Enumerable.Range(0, o.Workers).Select(_ => new XdpUmem(o.BatchSize, PacketBatch.SuperFrameSlotSize)).ToArray()
            : null;
        // The persistent TAPs' whereabouts (--state-dir); read again once the state directory is held.
        var persist = o.StateDir is { } dir ? new PersistentTaps(dir) : null;
        using var taps = new TapSet(new LinkOptions(o.Tap, o.UplinkTap, o.HostTap, specs, mode, o.Workers, o.Offloads == "on", umems, persist), stdout);
        StateDirectory? state = null;
        if (o.StateDir is { } stateDir)
        {
            try
            {
                if (o.Takeover)
                {
                    // Before asking the running process to stop, everything of the gap that does not need what it holds:
                    // the pods' TAP descriptors opened in their namespaces, the code of the gap compiled, and the
                    // start-up garbage (manifests, the compile) collected, so none of it is in the forwarding gap.
                    int early = taps.PrepareTakeover(publisher.Holder.Current);
                    long warm = Stopwatch.GetTimestamp();
                    int methods = GapCode.Compile();
                    // The health checks' first update runs as the listeners start, in the gap: its code too.
                    _ = ServiceCompiler.HealthCheckPorts(controller.State, o.Node);
                    StateDirectory.WarmUp(publisher.Holder.Current.Node.ConntrackCapacity, o.Workers);
                    stdout.WriteLine($"takeover: {early} TAP(s) opened early; the gap's code ({methods} methods) compiled in {Stopwatch.GetElapsedTime(warm).TotalMilliseconds:F0} ms");
                    GC.Collect(2, GCCollectionMode.Forced, blocking: true, compacting: true);
                }
                state = StateDirectory.Open(stateDir, o.Takeover, stdout);
                persist!.Reload();
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                return Fail(stderr, e.Message);
            }
        }
        // Declared before everything that may read the tables (metrics), so the state files are unmapped after them.
        using var stateLifetime = state;
        // After a takeover, when each step of the gap ended (wall clock, ns) and the process's CPU time then, for the
        // "takeover: gap" line: wall time well above CPU time is time spent waiting for a core.
        var gapSteps = new List<(string Step, long At, TimeSpan Cpu, TimeSpan Jit)>();
        var (gapCpu, gapJit) = (Environment.CpuUsage.TotalTime, System.Runtime.JitInfo.GetCompilationTime());
        void GapStep(string step)
        {
            if (state?.HandedOverAt is not null)
                gapSteps.Add((step, TapPort.WallClock(), Environment.CpuUsage.TotalTime - gapCpu, System.Runtime.JitInfo.GetCompilationTime() - gapJit));
        }
        GapStep("lock taken");
        var snapshot = publisher.Holder.Current;
        Attachment attachment;
        try
        {
            foreach (var spec in specs)
                if (spec.Port is { } named && !snapshot.Ports.Any(p => p.Name == named))
                    return Fail(stderr, $"--attach {spec.Interface}={named}: node {o.Node} has no port {named} (ports: {string.Join(", ", snapshot.Ports.Select(p => p.Name))})");
            foreach (var spec in specs)
                if (spec.Port is null && TapSet.LooksLikePodInterface(spec.Interface)
                    && !snapshot.Ports.Any(p => p.Kind == PortKind.Pod && TapSet.PodTapName(p.Name) == spec.Interface))
                    return Fail(stderr, $"--attach {spec.Interface}: no pod of node {o.Node} has this interface name (fp + 12 hex of SHA-1 of namespace/pod); name the port with --attach {spec.Interface}=PORT");
            attachment = new Attachment(snapshot, taps.Reconcile(snapshot), 1);
            GapStep("TAPs attached");
        }
        catch (Exception e) when (e is IOException or ArgumentException)
        {
            return Fail(stderr, e.Message);
        }
        CniEndpoint? cni = null;
        if (o.CniSocket is { } socketPath)
        {
            try
            {
                cni = CniEndpoint.Start(socketPath);
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                return Fail(stderr, e.Message);
            }
            stdout.WriteLine($"cni: listening on {socketPath}");
        }
        using var cniLifetime = cni;
        var relookAt = TimeSpan.FromSeconds(1);

        // Each worker's engine reads its own holder, advanced by the worker between batches once its TAP queues match
        // the new snapshot: a batch is always received and processed under one port numbering (ports are renumbered
        // when pods come and go).
        var busyPoll = TimeSpan.FromMicroseconds(o.BusyPollMicroseconds);
        var owners = o.Workers > 1 ? new FlowOwners(o.Workers) : null;
        var neighbors = new DataPlane.Routing.UplinkNeighbors();
        ConntrackTable[]? tables;
        DataPlane.Services.AffinityTable[]? affinity;
        try
        {
            tables = state?.OpenConntrack(snapshot.Node.ConntrackCapacity, o.Workers, owners, stdout);
            affinity = state?.OpenAffinity(o.Workers, stdout);
            GapStep("state files mapped and checked");
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return Fail(stderr, $"--state-dir {o.StateDir}: {e.Message}");
        }
        var workers = Enumerable.Range(0, o.Workers)
            .Select(w => new ForwardingWorker(w, attachment, publisher.Holder, o.BatchSize, busyPoll, owners, neighbors, umems?[w], tables?[w], affinity?[w])).ToArray();
        ForwardingWorker.Connect(workers);
        GapStep("workers built");
        var busyPollGate = new BusyPollGate();
        foreach (var w in workers) w.Port.BusyPollGate = busyPollGate;
        var engines = workers.Select(w => w.Engine).ToArray();
        var ports = workers.Select(w => w.Port).ToArray();
        // One flow log per worker (its own ring and writer thread): FILE for the first, FILE.N for worker N.
        var flows = o.FlowLog is null ? [] : workers.Select(w => w.FlowLog =
            new FlowLogSession(w.Index == 0 ? o.FlowLog : $"{o.FlowLog}.{w.Index}", o.FlowLogSample, w.Engine, w.Forwarding)).ToArray();
        GapStep("flow logs");
        var status = new StatusLine(stdout, TimeSpan.FromSeconds(o.StatusInterval));
        var clock = Stopwatch.StartNew();
        var retryAt = TimeSpan.Zero;
        var recordAt = TimeSpan.Zero;
        // The workers allocate nothing, but a collection stops them too: collect the start-up garbage (manifests, the
        // first compile) now, before traffic, and keep later collections of the control plane's garbage background
        // ones (no blocking gen2 while forwarding). Measured: the first pings after start-up took up to 30 ms without.
        // The rest of the GC choice (workstation, concurrent, DOTNET_GCgen0size=64 MiB set by deploy/Dockerfile) and its
        // measurements: docs/BENCHMARKS.md, "Control plane: live changes at 5,000 nodes". A takeover collected before it
        // asked for the hand-over.
        if (!o.Takeover) GC.Collect(2, GCCollectionMode.Forced, blocking: true, compacting: true);
        System.Runtime.GCSettings.LatencyMode = System.Runtime.GCLatencyMode.SustainedLowLatency;
        var threads = workers.Select(w => new Thread(() => w.Run(() => Volatile.Read(ref attachment), stop.Token))
        {
            Name = $"fastpath-worker-{w.Index}",
            IsBackground = true,
        }).ToArray();
        foreach (var t in threads) t.Start();
        long forwardingFrom = TapPort.WallClock();
        GapStep("threads started");
        state?.Forwarding();
        // The listeners start once the workers forward (a takeover's gap is for forwarding, not for serving pages); one
        // that cannot start stops the workers again.
        MetricsServer? metricsServer = null;
        HealthServing health;
        try
        {
            if (o.Metrics is { } endpoint)
            {
                // Scrapes read the workers' plain counters from the HTTP thread: figures, not a consistent cut.
                metricsServer = MetricsServer.Start(endpoint,
                    () => NodeMetrics.Collect(engines[0].Snapshot, engines, publisher.CompileLatency, publisher.PublishLatency,
                        FlowLogMetrics.Of([.. workers.Select(w => w.FlowLog).OfType<FlowLogSession>()])),
                    publisher.CompileLatency, publisher.PublishLatency);
                stdout.WriteLine($"metrics: {metricsServer.Url}");
            }
            health = HealthServing.Start(o.Healthz, o.Node, controller, publisher, stdout);
        }
        catch (Exception e) when (e is FormatException or HttpListenerException)
        {
            metricsServer?.Dispose();
            stop.Cancel();
            foreach (var t in threads) t.Join();
            foreach (var w in workers) w.Dispose();
            foreach (var f in flows) f.Dispose();
            return Fail(stderr, e.Message);
        }
        using var metricsLifetime = metricsServer;
        using var healthLifetime = health;
        if (state?.HandedOverAt is { } gapStart)
            stdout.WriteLine($"takeover: gap {string.Join(", ", gapSteps.Select(g => $"{g.Step} +{(g.At - gapStart) / 1e6:F1} ms (CPU {g.Cpu.TotalMilliseconds:F0} ms, JIT {g.Jit.TotalMilliseconds:F0} ms)"))}");
        stdout.WriteLine($"forwarding: node {o.Node}, {snapshot.PortCount} ports, generation {snapshot.Generation}, {o.Workers} worker(s); SIGINT/SIGTERM stops; watching {o.Cluster}; from {forwardingFrom} (wall clock, ns)");
        stdout.Flush();
        state?.ListenForTakeover(stop.Cancel);
        // The coordinator: re-reads the TAPs when a snapshot renumbers the ports, closes the devices of removed ports
        // once every worker has moved past them, and prints the status line.
        while (!stop.IsCancellationRequested)
        {
            stop.Token.WaitHandle.WaitOne(TimeSpan.FromMilliseconds(5));
            // /healthz turns 503 when a worker stops coming round its loop (it does at least every poll timeout).
            if (workers.Count(w => w.Progressed()) == workers.Length) health.Server.Beat();
            Reattach();
            AnswerCni();
            if (taps.HasRetired && workers.All(w => w.AckedGeneration >= attachment.Generation)) taps.CloseRetired();
            if (state is not null && clock.Elapsed >= recordAt)
            {
                taps.RecordWhereabouts();
                recordAt = clock.Elapsed + TimeSpan.FromSeconds(1);
            }
            if (o.StatusInterval > 0) status.Report(clock.Elapsed, engines[0].Snapshot, engines, ports, attachedSkipped: taps.Skipped,
                handOverDrops: workers.Sum(w => w.HandOverDrops));
        }
        foreach (var t in threads) t.Join();
        long stoppedAt = TapPort.WallClock();
        int kept = taps.PersistentCount;
        foreach (var w in workers) w.Dispose();
        if (state is not null)
        {
            taps.RecordWhereabouts();
            state.Save(stdout);
            if (state.TakeoverRequested)
            {
                kept = taps.PersistentCount;
                // The new process attaches the TAPs and binds the listeners once this one lets go: first the queues
                // (the kernel would keep steering flows to them) and the ports, then the lock.
                taps.Dispose();
                health.Dispose();
                metricsServer?.Dispose();
                cni?.Dispose();
                state.Release(stoppedAt);
                stdout.WriteLine($"takeover: handed the state directory over at {TapPort.WallClock()} (wall clock, ns)");
                state.WaitForSuccessor(TimeSpan.FromSeconds(5));
            }
        }
        status.Report(clock.Elapsed, engines[0].Snapshot, engines, ports, force: true, attachedSkipped: taps.Skipped,
            handOverDrops: workers.Sum(w => w.HandOverDrops));
        foreach (var f in flows)
        {
            f.Complete();
            f.Dispose();
        }
        stdout.WriteLine($"stopped: {ports.Sum(p => p.Received):N0} frames received, {ports.Sum(p => p.Transmitted):N0} sent; forwarding stopped at {stoppedAt} (wall clock, ns); "
            + (state is null ? "removing the TAP devices this process created" : $"keeping {kept} persistent TAP device(s) for the next run (--state-dir)"));
        return 0;

        // Re-reads the devices when a snapshot renumbers the ports, and every second while interfaces are attached
        // (a pod's veth appears when the CNI plugin creates it and goes with the pod's namespace), or when asked to.
        void Reattach(bool now = false)
        {
            var current = publisher.Holder.Current;
            bool renumbered = !ForwardingWorker.SamePorts(current, attachment.Snapshot);
            bool look = now || (clock.Elapsed >= relookAt && (taps.Waiting > 0 || specs.Count > 0 || !o.Tap));
            if ((!renumbered && !look) || clock.Elapsed < retryAt) return;
            if (look) relookAt = clock.Elapsed + TimeSpan.FromSeconds(1);
            try
            {
                var devices = taps.Reconcile(renumbered ? current : attachment.Snapshot, deferClose: true);
                if (renumbered || !devices.SequenceEqual(attachment.Devices))
                    Volatile.Write(ref attachment, new Attachment(renumbered ? current : attachment.Snapshot, devices, attachment.Generation + 1));
            }
            catch (Exception e) when (e is IOException or ArgumentException)
            {
                // Retried a second later; meanwhile the ports that work keep forwarding.
                stderr.WriteLine($"fastpath run: {e.Message}");
                retryAt = clock.Elapsed + TimeSpan.FromSeconds(1);
            }
        }

        // fastpath-cni's requests: look at the devices now, then say whether the pod's port has its interface.
        void AnswerCni()
        {
            if (cni is null || cni.Requests.IsEmpty) return;
            Reattach(now: true);
            while (cni.Requests.TryDequeue(out var request))
            {
                var snap = attachment.Snapshot;
                int p = snap.FindPort(request.Pod);
                string answer = request.Command == "DEL" ? "ok"
                    : p < 0 ? $"error pod {request.Pod} is not on node {o.Node} in the cluster directory {o.Cluster}"
                    : attachment.Devices[p] is { } device ? $"ok {device.Name} = {request.Pod} ({device.Kind.ToString().ToLowerInvariant()})"
                    : $"error {request.Interface} for {request.Pod} is not attached (missing or down)";
                request.Answer.TrySetResult(answer);
            }
        }

        void Stop(PosixSignalContext ctx)
        {
            ctx.Cancel = true;
            stop.Cancel();
        }
    }

    /// <summary>Where off-cluster traffic goes, in one line: the configured gateway, or the host's default route.</summary>
    public static string UplinkGatewayLine(ControlPlane.Cluster.FastPathConfiguration config, List<(DataPlane.Packets.IpAddr Gateway, string Device)> hostRoutes)
    {
        if (!config.UplinkGateways.IsEmpty)
            return $"uplink gateway: {string.Join(", ", config.UplinkGateways)} (uplinkGateway; MAC {(config.UplinkGatewayMac is { } m ? $"{m}, uplinkGatewayMAC" : "resolved by ARP / neighbor discovery on the uplink")})";
        if (config.UplinkGatewayMac is { } mac) return $"uplink gateway: MAC {mac} (uplinkGatewayMAC)";
        if (hostRoutes.Count == 0)
            return "uplink gateway: none (no uplinkGateway or uplinkGatewayMAC in the FastPathConfiguration, and no default route in /proc/net/route or /proc/net/ipv6_route): off-cluster traffic drops as no-route";
        return $"uplink gateway: {string.Join(", ", hostRoutes.Select(r => $"{r.Gateway} (default route via {r.Device})"))} taken from the host's routing table (no uplinkGateway or uplinkGatewayMAC in the FastPathConfiguration); MAC resolved by ARP / neighbor discovery on the uplink";
    }

    private static int Fail(TextWriter stderr, string message) => Fail(stderr, [message]);

    private static int Fail(TextWriter stderr, IEnumerable<string> messages)
    {
        foreach (var m in messages) stderr.WriteLine($"fastpath run: {m}");
        return Program.ExitBadInput;
    }
}
