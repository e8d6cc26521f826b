using FastPath.ControlPlane.Cluster;
using FastPath.ControlPlane.Cluster.Sources;
using FastPath.ControlPlane.Live;
using FastPath.ControlPlane.Publish;
using FastPath.DataPlane.Pipeline;
using Microsoft.Extensions.Logging;

namespace FastPath.Replay;

/// <summary>
/// A <c>--changes DIR</c> schedule driven by the capture clock: the live controller starts from the cluster the replay
/// loaded and applies each change file once the clock reaches its time (between two packets, since replays with
/// changes forward packet by packet). Used by <c>replay --changes</c> and by the after side of <c>diff --changes</c>.
/// </summary>
public sealed class ChangeReplay
{
    private readonly IReadOnlyList<ScheduledChange> _schedule;
    private readonly ClusterController _controller;
    private readonly TextWriter _log;
    private readonly string _command;
    private long? _start;
    private int _next;

    /// <param name="log">Where each applied change is logged (from <paramref name="minimum"/> up; a rejected object is an error).</param>
    public ChangeReplay(string node, SnapshotHolder holder, ClusterState state, IReadOnlyList<ScheduledChange> schedule, TextWriter log, string command,
        LogLevel minimum = LogLevel.Information)
    {
        _schedule = schedule;
        _log = minimum <= LogLevel.Information ? log : TextWriter.Null;
        _command = command;
        Publisher = new SnapshotPublisher(node, holder);
        _controller = new ClusterController(node, Publisher, new TextWriterLogger(log, $"fastpath {command}: ", minimum));
        _controller.Apply(new ClusterChangeBatch(state.Objects().Select(ClusterChange.Upsert).ToList(), [], []));
    }

    /// <summary>Compiles and publishes the initial state and every applied change (its histograms count them all).</summary>
    public SnapshotPublisher Publisher { get; }

    /// <summary>Applies every change due at the time of the batch's first packet (call before processing it).</summary>
    public void ApplyDue(PacketBatch batch)
    {
        if (batch.Count == 0) return;
        ref var first = ref batch.Meta[0];
        _start ??= first.Timestamp;
        for (; _next < _schedule.Count && _start + _schedule[_next].Offset <= first.Timestamp; _next++)
        {
            _log.WriteLine($"fastpath {_command}: at packet {first.InputIndex}: {_schedule[_next].File}");
            _controller.Apply(_schedule[_next].Batch);
        }
    }

    /// <summary>Warns about change files timed after the last packet, which never applied.</summary>
    public void WarnUnapplied(TextWriter stderr)
    {
        if (_next < _schedule.Count)
            stderr.WriteLine($"fastpath {_command}: warning: {_schedule.Count - _next} change file(s) after the last packet were not applied ({_schedule[_next].File}, ...)");
    }
}
