using System.Diagnostics;
using FastPath.ControlPlane.Cluster;
using FastPath.ControlPlane.Compile;
using FastPath.ControlPlane.Publish;
using FastPath.DataPlane.Pipeline;

namespace FastPath.Commands;

/// <summary>The first step of every command that forwards: load the cluster directory and compile one node's snapshot.</summary>
public static class NodeSnapshot
{
    /// <summary>
    /// The compiled snapshot, or null after printing every problem as "fastpath COMMAND: file: Kind ns/name: field:
    /// message" (warnings go to <paramref name="stderr"/> either way).
    /// </summary>
    /// <param name="state">The objects loaded (replay --changes starts its controller from them).</param>
    /// <param name="compileLatency">Receives the compile time (summary.json reports it).</param>
    public static ForwardingSnapshot? Load(ClusterInput cluster, string node, string command, TextWriter stderr, out ClusterState state,
        LatencyHistogram? compileLatency = null)
    {
        if (cluster.Problem() is { } problem)
        {
            stderr.WriteLine($"fastpath {command}: {problem}");
            state = ClusterDirectory.FromObjects("", [], []).State;
            return null;
        }
        var load = cluster.Load();
        state = load.State;
        foreach (var w in load.Warnings) stderr.WriteLine($"warning: {w}");
        IEnumerable<ClusterError> errors = load.Errors;
        if (load.IsValid)
        {
            long start = Stopwatch.GetTimestamp();
            var compiled = SnapshotCompiler.Compile(load.State, node, 1);
            compileLatency?.Record(Stopwatch.GetElapsedTime(start));
            if (compiled.Snapshot is { } snapshot) return snapshot;
            errors = compiled.Errors;
        }
        foreach (var e in errors) stderr.WriteLine($"fastpath {command}: {e}");
        return null;
    }
}
