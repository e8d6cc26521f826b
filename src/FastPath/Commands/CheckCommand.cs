using System.CommandLine;
using FastPath.ControlPlane.Cluster;
using FastPath.ControlPlane.Compile;

namespace FastPath.Commands;

/// <summary>`fastpath check --cluster PATH [--node NAME]`: validates every object and reports all problems at once.</summary>
public static class CheckCommand
{
    public static Command Create(TextWriter stdout, TextWriter stderr)
    {
        var cluster = new ClusterInput.Options();
        var node = new Option<string?>("--node") { Description = "Also compile the snapshot of this node" };
        var cmd = new Command("check", "Validate cluster objects; exit 0 when valid, 2 otherwise") { node };
        cluster.AddTo(cmd);
        cmd.SetAction(r => Run(cluster.Get(r), r.GetValue(node), stdout, stderr));
        return cmd;
    }

    public static int Run(ClusterInput clusterPath, string? nodeName, TextWriter stdout, TextWriter stderr)
    {
        if (clusterPath.Problem() is { } problem)
        {
            stderr.WriteLine($"fastpath check: {problem}");
            return Program.ExitBadInput;
        }
        var load = clusterPath.Load();
        foreach (var w in load.Warnings) stderr.WriteLine($"warning: {w}");
        var errors = load.Errors.ToList();
        if (load.IsValid && nodeName is not null)
            errors.AddRange(SnapshotCompiler.Compile(load.State, nodeName, 1).Errors);
        foreach (var e in errors) stderr.WriteLine(e);
        var s = load.State;
        string counts = $"{s.Nodes.Length} nodes, {s.Pods.Length} pods, {s.Services.Length} services, " +
                        $"{s.EndpointSlices.Length} endpointslices, {s.NetworkPolicies.Length} networkpolicies";
        if (errors.Count > 0)
        {
            stderr.WriteLine($"{s.Source}: {errors.Count} problem(s) in {counts}");
            return Program.ExitBadInput;
        }
        stdout.WriteLine($"{s.Source}: ok ({counts})");
        return 0;
    }
}
