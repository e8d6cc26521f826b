using System.CommandLine;
using FastPath.ControlPlane.Cluster;
using FastPath.ControlPlane.Cluster.Sources;

namespace FastPath.Commands;

/// <summary>
/// Where a command reads the cluster: a directory (or file) of manifests (<c>--cluster</c>), or a Kubernetes API server
/// named by a kubeconfig (<c>--kubeconfig</c>) or by the pod's own service account (<c>--in-cluster</c>), with the
/// FastPathConfiguration from a file (<c>--config</c>). <c>run</c> follows it; the other commands read a snapshot.
/// A string converts to a directory input, so existing callers keep passing paths.
/// </summary>
public sealed record ClusterInput(string? Directory, string? Kubeconfig = null, bool InCluster = false, string? Config = null)
{
    public static implicit operator ClusterInput(string directory) => new(directory);

    /// <summary>What is read, for log lines: the path, or the API.</summary>
    public override string ToString() => Directory ?? (InCluster ? "the in-cluster API server" : $"the API server of {Kubeconfig}");

    /// <summary>Null when exactly one place is named and it exists; otherwise the problem, for one error line.</summary>
    public string? Problem()
    {
        int named = (Directory is null ? 0 : 1) + (Kubeconfig is null ? 0 : 1) + (InCluster ? 1 : 0);
        if (named != 1) return "give exactly one of --cluster PATH, --kubeconfig PATH or --in-cluster";
        if (Directory is not null && !System.IO.Directory.Exists(Directory) && !File.Exists(Directory)) return $"--cluster {Directory}: no such file or directory";
        if (Kubeconfig is not null && !File.Exists(Kubeconfig)) return $"--kubeconfig {Kubeconfig}: no such file";
        if (Config is not null && Directory is not null) return "--config is for --kubeconfig and --in-cluster (a cluster directory holds its own FastPathConfiguration)";
        if (Config is not null && !File.Exists(Config)) return $"--config {Config}: no such file";
        return null;
    }

    /// <summary>A source that follows the input (the directory watched, or the API server listed and watched).</summary>
    public IClusterSource CreateSource(out IReadOnlyList<ClusterError> errors)
    {
        errors = [];
        if (Directory is not null) return new DirectorySource(Directory);
        var config = ReadConfig(out errors);
        return KubernetesApiSource.Connect(Kubeconfig, fileObjects: config);
    }

    /// <summary>Reads the cluster once: the directory, or a list of every kind from the API server, validated as one.</summary>
    public ClusterLoadResult Load()
    {
        if (Directory is not null) return ClusterDirectory.Load(Directory);
        var config = ReadConfig(out var configErrors);
        try
        {
            using var source = KubernetesApiSource.Connect(Kubeconfig, fileObjects: config);
            var snapshot = source.Snapshot();
            return ClusterDirectory.FromObjects(source.Server, snapshot.Changes.Select(c => c.Object!), [.. configErrors, .. snapshot.Errors]);
        }
        catch (Exception e) when (e is k8s.Exceptions.KubeConfigException or k8s.Exceptions.KubernetesClientException or IOException)
        {
            return ClusterDirectory.FromObjects(ToString(), [], [new ClusterError(Kubeconfig ?? "in-cluster", null, null, null, e.Message.ReplaceLineEndings(" "))]);
        }
    }

    private IReadOnlyList<IClusterObject> ReadConfig(out IReadOnlyList<ClusterError> errors)
    {
        errors = [];
        if (Config is null) return [];
        var file = ClusterDirectory.ReadFile(Config);
        errors = file.Errors;
        return [.. file.Objects.Where(o => o is ClusterObject<FastPathConfiguration>)];
    }

    /// <summary>The four options, added to a command and read back from its parse result.</summary>
    public sealed class Options
    {
        public readonly Option<string?> Cluster = new("--cluster") { Description = "Directory (or file) of cluster manifests" };
        public readonly Option<string?> Kubeconfig = new("--kubeconfig") { Description = "Read the cluster from the API server this kubeconfig names (current context)" };
        public readonly Option<bool> InCluster = new("--in-cluster") { Description = "Read the cluster from the API server, with the pod's service account" };
        public readonly Option<string?> Config = new("--config") { Description = "FastPathConfiguration file (with --kubeconfig or --in-cluster)" };

        public void AddTo(Command command)
        {
            command.Options.Add(Cluster);
            command.Options.Add(Kubeconfig);
            command.Options.Add(InCluster);
            command.Options.Add(Config);
        }

        public ClusterInput Get(ParseResult r) => new(r.GetValue(Cluster), r.GetValue(Kubeconfig), r.GetValue(InCluster), r.GetValue(Config));
    }
}
