using System.CommandLine;
using System.Text.Encodings.Web;
using System.Text.Json;
using FastPath.DataPlane.Pipeline;
using FastPath.DataPlane.Ports;
using FastPath.DataPlane.Telemetry;
using FastPath.Diff;
using FastPath.Replay;
using Microsoft.Extensions.Logging;

namespace FastPath.Commands;

/// <summary>
/// `fastpath diff CAPTURE... --cluster BEFORE --against AFTER --node NAME`: what a cluster change would do to real
/// traffic. The captures are read once; each batch is copied and processed by two engines in lock step, one per
/// cluster (the after side optionally with a <c>--changes DIR</c> sequence applied at capture times), each with a
/// <see cref="FateObserver"/>; the two fates of every input packet are compared and the changes grouped by flow.
/// Exit 0: nothing changed, 1: some packet's fate changed (a CI gate), 2: bad input.
/// </summary>
public static class DiffCommand
{
    public const int ExitChanged = 1;

    public sealed record DiffOptions(string[] Captures, string Cluster, string? Against, string? Changes, string Node, bool Json, int BatchSize);

    public static Command Create(TextWriter stdout, TextWriter stderr)
    {
        var captures = new Argument<string[]>("CAPTURE")
        {
            Description = "pcap or pcapng files, optionally PORT=FILE to name the port they enter on",
            Arity = ArgumentArity.OneOrMore,
        };
        var cluster = new Option<string>("--cluster") { Description = "The cluster as it is (directory or file of manifests)", Required = true };
        var against = new Option<string?>("--against") { Description = "The cluster as it would be (default: --cluster)" };
        var changes = new Option<string?>("--changes")
        {
            Description = "Directory of changes applied to the after side during the replay (as replay --changes: <seconds>-<name>.yaml)",
        };
        var node = new Option<string>("--node") { Description = "The node whose data plane to run", Required = true };
        var json = new Option<bool>("--json") { Description = "Print the changes as JSON" };
        var batchSize = new Option<int>("--batch") { Description = "Packets per batch", DefaultValueFactory = _ => 256 };
        var cmd = new Command("diff", "Replay captures through two clusters and report every flow whose fate changes")
            { captures, cluster, against, changes, node, json, batchSize };
        cmd.SetAction(r => Run(new DiffOptions(r.GetValue(captures)!, r.GetValue(cluster)!, r.GetValue(against), r.GetValue(changes),
            r.GetValue(node)!, r.GetValue(json), r.GetValue(batchSize)), stdout, stderr));
        return cmd;
    }

    public static int Run(DiffOptions o, TextWriter stdout, TextWriter stderr)
    {
        if (o.Against is null && o.Changes is null) return Fail(stderr, "give the changed cluster: --against AFTER and/or --changes DIR");
        if (o.BatchSize is < 1 or > 4096) return Fail(stderr, $"--batch {o.BatchSize}: must be between 1 and 4096");
        if (NodeSnapshot.Load(o.Cluster, o.Node, "diff", stderr, out var beforeState) is not { } beforeSnapshot) return Program.ExitBadInput;
        var (afterState, afterSnapshot) = (beforeState, beforeSnapshot);
        if (o.Against is { } againstPath)
        {
            if (NodeSnapshot.Load(againstPath, o.Node, "diff", stderr, out afterState) is not { } loaded) return Program.ExitBadInput;
            afterSnapshot = loaded;
        }

        var schedule = new List<ScheduledChange>();
        if (o.Changes is { } changesDir)
        {
            var problems = new List<string>();
            schedule = ChangeSchedule.Read(changesDir, problems);
            if (problems.Count > 0) return Fail(stderr, problems);
        }
        if (ReplayCommand.OpenCaptures(o.Captures, beforeSnapshot, out _, out string problem) is not { } inputs) return Fail(stderr, problem);

        var before = new Side(new SnapshotHolder(beforeSnapshot));
        var afterHolder = new SnapshotHolder(afterSnapshot);
        var changes = schedule.Count > 0 ? new ChangeReplay(o.Node, afterHolder, afterState, schedule, stderr, "diff", LogLevel.Warning) : null;
        var after = new Side(afterHolder);
        // With changes the after side forwards packet by packet (as replay --changes), so both sides do: the same batches.
        int batchSize = changes is null ? o.BatchSize : 1;
        var input = new PacketBatch(batchSize);
        before.Size(batchSize);
        after.Size(batchSize);
        var diff = new FateDiff();
        using var source = new CaptureSource(inputs, name => (short)beforeSnapshot.FindPort(name));
        try
        {
            while (source.Receive(input) > 0)
            {
                after.Batch.CopyFrom(input);
                changes?.ApplyDue(after.Batch);
                after.RenumberIngress(beforeSnapshot);
                before.Process(input);
                after.Process(after.Batch);
                diff.Compare(before.Fates, before.Engine.Snapshot, after.Fates, after.Engine.Snapshot, input.Count);
            }
        }
        catch (CaptureFormatException e)
        {
            return Fail(stderr, e.Message);
        }
        changes?.WarnUnapplied(stderr);

        string afterName = (o.Against ?? o.Cluster) + (o.Changes is null ? "" : $" + changes {o.Changes}");
        var report = new DiffReport(diff, o.Node, o.Cluster, afterName);
        if (o.Json)
        {
            using var stream = new MemoryStream();
            using (var w = new Utf8JsonWriter(stream, new JsonWriterOptions { Indented = true, Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping }))
                report.WriteJson(w);
            stdout.WriteLine(System.Text.Encoding.UTF8.GetString(stream.ToArray()));
        }
        else report.WriteText(stdout);
        return diff.ChangedPackets == 0 ? 0 : ExitChanged;
    }

    /// <summary>One cluster's engine, its batch and the fates its observer records.</summary>
    private sealed class Side
    {
        private readonly SnapshotHolder _holder;
        private FateObserver _observer;
        private int[] _ingressMap = [];
        private ForwardingSnapshot? _mappedFrom, _mappedTo;

        public Side(SnapshotHolder holder)
        {
            _holder = holder;
            Engine = new Engine(holder, conntrackSeed: ReplayCommand.ConntrackSeed);
        }

        public Engine Engine { get; }
        public PacketBatch Batch { get; private set; } = null!;
        public PacketFate[] Fates { get; private set; } = [];

        public void Size(int batchSize)
        {
            Batch = new PacketBatch(batchSize);
            Fates = new PacketFate[batchSize];
            _observer = new FateObserver(Fates);
        }

        public void Process(PacketBatch batch)
        {
            _observer.Begin();
            Engine.Process(batch, ref _observer);
        }

        /// <summary>
        /// The capture source numbered ingress ports by the before snapshot; ports are numbered per snapshot, so map them
        /// by name to this side's (a port this side lacks becomes unknown: the packet drops with unknown-port).
        /// </summary>
        public void RenumberIngress(ForwardingSnapshot from)
        {
            var to = _holder.Current;
            if (!ReferenceEquals(from, _mappedFrom) || !ReferenceEquals(to, _mappedTo))
            {
                _ingressMap = new int[from.PortCount];
                for (int p = 0; p < from.PortCount; p++) _ingressMap[p] = to.FindPort(from.Ports[p].Name);
                (_mappedFrom, _mappedTo) = (from, to);
            }
            for (int i = 0; i < Batch.Count; i++)
            {
                ref var m = ref Batch.Meta[i];
                if (m.IngressPort >= 0) m.IngressPort = (short)((uint)m.IngressPort < (uint)_ingressMap.Length ? _ingressMap[m.IngressPort] : PortIndex.None);
            }
        }
    }

    private static int Fail(TextWriter stderr, string message) => Fail(stderr, [message]);

    private static int Fail(TextWriter stderr, IEnumerable<string> messages)
    {
        foreach (var m in messages) stderr.WriteLine($"fastpath diff: {m}");
        return Program.ExitBadInput;
    }
}
