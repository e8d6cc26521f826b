using System.CommandLine;
using System.Diagnostics;
using FastPath.ControlPlane.Cluster;
using FastPath.ControlPlane.Cluster.Sources;
using FastPath.ControlPlane.Compile;
using FastPath.ControlPlane.Live;
using FastPath.ControlPlane.Publish;
using FastPath.DataPlane.Pipeline;
using FastPath.DataPlane.Ports;
using FastPath.FlowLog;
using FastPath.Metrics;
using FastPath.Replay;

namespace FastPath.Commands;

/// <summary>
/// `fastpath replay CAPTURE... --cluster PATH --node NAME --out DIR`: runs captures through one node's data plane
/// and writes what it emitted per port, what it dropped and a summary. Everything that can be wrong with the input
/// is found before the first packet is forwarded.
/// </summary>
public static class ReplayCommand
{
    public static Command Create(TextWriter stdout, TextWriter stderr)
    {
        var captures = new Argument<string[]>("CAPTURE")
        {
            Description = "pcap or pcapng files, optionally PORT=FILE to name the port they enter on",
            Arity = ArgumentArity.OneOrMore,
        };
        var cluster = new ClusterInput.Options();
        var node = new Option<string>("--node") { Description = "The node whose data plane to run", Required = true };
        var output = new Option<string>("--out") { Description = "Directory for <port>.pcap, drops.jsonl and summary.json", Required = true };
        var batchSize = new Option<int>("--batch") { Description = "Packets per batch", DefaultValueFactory = _ => 256 };
        var quiet = new Option<bool>("--quiet", "-q") { Description = "Print only errors" };
        var repeat = new Option<int>("--repeat")
        {
            Description = "Replay the captures N times from memory (outputs written for the first round, later rounds counted)",
            DefaultValueFactory = _ => 1,
        };
        var changes = new Option<string?>("--changes")
        {
            Description = "Directory of cluster changes applied during the replay: <seconds>-<name>.yaml (added or replaced) and "
                + "<seconds>-<name>.delete.yaml (deleted), at that many seconds of capture time after the first packet",
        };
        var flowLog = new Option<string?>("--flow-log") { Description = "Write JSON-lines flow records (connection start/end, drops) to this file" };
        var flowSample = new Option<int>("--flow-log-sample") { Description = "Keep 1 flow in N (by tuple hash)", DefaultValueFactory = _ => 1 };
        var pcapng = new Option<string?>("--pcapng")
        {
            Description = "Also write one pcapng of every fate: an interface per port with its emitted packets, a 'drop' interface with "
                + "the dropped input packets, each packet commented with its input index, verdict, Service/backend and policy",
        };
        var cmd = new Command("replay", "Replay captures through a node's data plane") { captures, node, output, batchSize, quiet, repeat, changes, flowLog, flowSample, pcapng };
        cluster.AddTo(cmd);
        cmd.SetAction(r => Run(new ReplayOptions(r.GetValue(captures)!, cluster.Get(r), r.GetValue(node)!,
            r.GetValue(output)!, r.GetValue(batchSize), r.GetValue(quiet), r.GetValue(repeat), r.GetValue(flowLog), r.GetValue(flowSample))
            { Changes = r.GetValue(changes), Pcapng = r.GetValue(pcapng) }, stdout, stderr));
        return cmd;
    }

    /// <summary>A fixed conntrack hash seed keeps replays (and traces of captures) deterministic even when the table fills.</summary>
    public const ulong ConntrackSeed = 0x5EED_F00D;

    public sealed record ReplayOptions(string[] Captures, ClusterInput Cluster, string Node, string Out, int BatchSize, bool Quiet, int Repeat = 1,
        string? FlowLog = null, int FlowLogSample = 1)
    {
        /// <summary>--changes DIR, or null.</summary>
        public string? Changes { get; init; }

        /// <summary>--pcapng FILE (the verdict capture), or null.</summary>
        public string? Pcapng { get; init; }
    }

    public static int Run(ReplayOptions o, TextWriter stdout, TextWriter stderr)
    {
        if (o.BatchSize is < 1 or > 4096) return Fail(stderr, $"--batch {o.BatchSize}: must be between 1 and 4096");
        if (o.Repeat is < 1 or > 1_000_000) return Fail(stderr, $"--repeat {o.Repeat}: must be between 1 and 1000000");
        if (o.FlowLogSample < 1) return Fail(stderr, $"--flow-log-sample {o.FlowLogSample}: must be at least 1");

        var compileLatency = new LatencyHistogram();
        if (NodeSnapshot.Load(o.Cluster, o.Node, "replay", stderr, out var state, compileLatency) is not { } snapshot) return Program.ExitBadInput;

        var schedule = new List<ScheduledChange>();
        if (o.Changes is { } changesDir)
        {
            if (o.Repeat > 1) return Fail(stderr, "--changes and --repeat cannot be combined (changes happen once, at capture times)");
            var problems = new List<string>();
            schedule = ChangeSchedule.Read(changesDir, problems);
            if (problems.Count > 0) return Fail(stderr, problems);
        }

        if (OpenCaptures(o.Captures, snapshot, out bool nanosecond, out string problem) is not { } inputs) return Fail(stderr, problem);

        try
        {
            Directory.CreateDirectory(o.Out);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return Fail(stderr, $"--out {o.Out}: cannot create directory: {e.Message}");
        }

        VerdictCapture? verdicts = null;
        try
        {
            if (o.Pcapng is { } pcapngPath) verdicts = new VerdictCapture(pcapngPath, snapshot, o.BatchSize);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return Fail(stderr, $"--pcapng {o.Pcapng}: cannot create file: {e.Message}");
        }
        using var verdictsScope = verdicts;

        var holder = new SnapshotHolder(snapshot);
        // Changes are applied between packets, so a replay with changes forwards packet by packet: each change then
        // lands exactly at its capture time, and every packet sees the state of its own time.
        var changes = schedule.Count > 0 ? new ChangeReplay(o.Node, holder, state, schedule, o.Quiet ? TextWriter.Null : stderr, "replay") : null;
        var engine = new Engine(holder, conntrackSeed: ConntrackSeed);
        var batch = new PacketBatch(changes is null ? o.BatchSize : 1);
        using var captureSource = new CaptureSource(inputs, name => (short)snapshot.FindPort(name));
        using var sink = new ReplayOutput(o.Out, snapshot, nanosecond);
        using var flows = o.FlowLog is null ? null : new FlowLogSession(o.FlowLog, o.FlowLogSample, engine, holder);
        var clock = Stopwatch.StartNew();
        var progress = new ProgressLine(o.Quiet ? TextWriter.Null : stderr);
        IPacketSource source = captureSource;
        RecordedSource? recorded = null;
        long emittedLater = 0;
        try
        {
            // --repeat: the captures are read into memory first, so the rounds (and the rate) involve no file I/O.
            if (o.Repeat > 1)
            {
                source = recorded = RecordedSource.Record(captureSource, o.Repeat, o.BatchSize);
                clock.Restart();
            }
            while (source.Receive(batch) > 0)
            {
                changes?.ApplyDue(batch);
                bool firstRound = recorded is not { Round: > 0 };
                if (verdicts is not null && firstRound)
                {
                    // The verdict capture needs each stage's decision and the input as it was before processing.
                    verdicts.Keep(batch);
                    var fate = verdicts.Observer();
                    if (flows is null) engine.Process(batch, ref fate);
                    else flows.Process(batch, ref fate);
                    verdicts.Write(batch, engine.Snapshot);
                }
                else if (flows is null) engine.Process(batch);
                else flows.Process(batch);
                if (firstRound) sink.Write(batch, engine.Snapshot);
                else emittedLater += batch.CountEmitted(); // later rounds of --repeat are counted, not written
                progress.Report(recorded?.Delivered ?? captureSource.Delivered, clock.Elapsed);
            }
        }
        catch (CaptureFormatException e)
        {
            // Validated before forwarding, so only a file changed under us gets here.
            return Fail(stderr, e.Message);
        }
        clock.Stop();
        progress.Done();
        flows?.Complete();
        changes?.WarnUnapplied(stderr);
        verdicts?.Flush();

        var summary = new ReplaySummary(o.Node, inputs.Select(i => i.Path).ToArray(), engine.Snapshot, engine.Counters,
            recorded?.Delivered ?? captureSource.Delivered, sink.Emitted + emittedLater, clock.Elapsed)
        {
            Retired = engine.TakeRetiredPorts(),
            NoGatewayDrops = engine.NoGatewayDrops,
            // With changes, the controller compiled the state the replay ran and every change: its histograms count them all.
            Metrics = changes is null
                ? NodeMetrics.Collect(engine.Snapshot, [engine], compileLatency, flowLog: FlowLogMetrics.Of(flows is null ? null : [flows]))
                : NodeMetrics.Collect(engine.Snapshot, [engine], changes.Publisher.CompileLatency, changes.Publisher.PublishLatency, FlowLogMetrics.Of(flows is null ? null : [flows])),
        };
        sink.Finish(summary);
        if (!o.Quiet) summary.Print(stdout, o.Out, sink.Files);
        if (!o.Quiet && verdicts is not null) stdout.WriteLine($"  verdict capture {o.Pcapng}: {verdicts.Packets:N0} packets on {verdicts.Interfaces} interfaces");
        if (!o.Quiet && flows is not null) stdout.WriteLine($"  flow log {o.FlowLog}: {flows.Written:N0} records, {flows.Lost:N0} lost");
        return 0;
    }

    /// <summary>
    /// Parses and validates every CAPTURE argument (a broken file fails here, before anything is forwarded); null with
    /// the one-line problem otherwise. <paramref name="nanosecond"/>: some input keeps nanoseconds, so outputs do too.
    /// </summary>
    internal static List<CaptureInput>? OpenCaptures(string[] captures, ForwardingSnapshot snapshot, out bool nanosecond, out string problem)
    {
        var inputs = new List<CaptureInput>();
        nanosecond = false;
        foreach (var arg in captures)
        {
            if (!TryParseCapture(arg, snapshot, out var input, out problem)) return null;
            try
            {
                CaptureReader.Validate(input.Path);
                using var reader = new CaptureReader(input.Path);
                nanosecond |= reader.IsNanosecond;
            }
            catch (CaptureFormatException e)
            {
                problem = e.Message;
                return null;
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                problem = $"{input.Path}: cannot read capture: {e.Message}";
                return null;
            }
            inputs.Add(input);
        }
        problem = "";
        return inputs;
    }

    /// <summary>
    /// "PORT=FILE" names the ingress port; a plain path (even one containing '=') is taken as a file when it
    /// exists. An unknown port name is an error rather than a silent fallback.
    /// </summary>
    internal static bool TryParseCapture(string arg, ForwardingSnapshot snapshot, out CaptureInput input, out string problem)
    {
        input = default;
        problem = "";
        int eq = arg.IndexOf('=');
        if (eq > 0 && !File.Exists(arg))
        {
            string port = arg[..eq], path = arg[(eq + 1)..];
            int index = snapshot.FindPort(port);
            if (index < 0)
            {
                problem = $"{arg}: no port named \"{port}\" on node {snapshot.Node.NodeName} (ports: {string.Join(", ", snapshot.Ports.Select(p => p.Name))})";
                return false;
            }
            input = new CaptureInput(path, (short)index);
        }
        else
        {
            input = new CaptureInput(arg);
        }
        if (!File.Exists(input.Path))
        {
            problem = $"{input.Path}: no such capture file";
            return false;
        }
        return true;
    }

    private static int Fail(TextWriter stderr, string message) => Fail(stderr, [message]);

    private static int Fail(TextWriter stderr, IEnumerable<string> messages)
    {
        foreach (var m in messages) stderr.WriteLine($"fastpath replay: {m}");
        return Program.ExitBadInput;
    }
}
