using System.CommandLine;
using FastPath.ControlPlane.Cluster;
using FastPath.ControlPlane.Compile;

namespace FastPath.Commands;

/// <summary>`fastpath check --cluster PATH [--node NAME]`: validates every object and reports all problems at once.</summary>
public static class CheckCommand
{
    public static Command Create(TextWriter stdout, TextWriter stderr)
    {
        var cluster = new Option<string>("--cluster") { Description = "Directory (or file) of cluster manifests", Required = true };
        var node = new Option<string?>("--node") { Description = "Also compile the snapshot of this node" };
        var cmd = new Command("check", "Validate cluster objects; exit 0 when valid, 2 otherwise") { cluster, node };
        cmd.SetAction(r => Run(r.GetValue(cluster)!, r.GetValue(node), stdout, stderr));
        return cmd;
    }

    public static int Run(string clusterPath, string? nodeName, TextWriter stdout, TextWriter stderr)
    {
        var load = ClusterDirectory.Load(clusterPath);
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
            stderr.WriteLine($"{clusterPath}: {errors.Count} problem(s) in {counts}");
            return Program.ExitBadInput;
        }
        stdout.WriteLine($"{clusterPath}: ok ({counts})");
        return 0;
    }
}
