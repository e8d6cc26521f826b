using FastPath.ControlPlane.Cluster;
using FastPath.Tests.Support;
using k8s.Models;

namespace FastPath.Tests.ControlPlane.Api;

/// <summary>
/// deploy/fastpath.yaml checked offline (kubectl's client-side dry run needs a server for discovery): read by the
/// project's own reader and by KubernetesClient's typed YAML loader, its RBAC is exactly list/watch on the six kinds
/// <see cref="FastPath.ControlPlane.Cluster.Sources.KubernetesApiSource"/> reads, and its ConfigMap is a valid
/// FastPathConfiguration.
/// </summary>
public sealed class DeployManifestTests
{
    private static string Manifest => Path.Combine(RepositoryFiles.Root, "deploy", "fastpath.yaml");

    [Fact]
    public void ProjectReader_ReadsIt_OnlySkippingKindsItDoesNotUse()
    {
        var load = ClusterDirectory.Load(Manifest);
        Assert.Empty(load.Errors);
        Assert.Equal(["ServiceAccount", "ClusterRole", "ClusterRoleBinding", "ConfigMap", "DaemonSet"],
            load.Warnings.Select(w => w.Object!.Split(' ')[0]));
        Assert.All(load.Warnings, w => Assert.Contains("skipped: FastPath does not use kind", w.Message));
        Assert.Equal("fastpath-system", Assert.Single(load.State.Namespaces).Name);
    }

    [Fact]
    public void ClusterRole_IsListAndWatchOnExactlyTheKindsTheSourceReads()
    {
        var objects = k8s.KubernetesYaml.LoadAllFromString(File.ReadAllText(Manifest), strict: true);
        var role = Assert.Single(objects.OfType<V1ClusterRole>());
        var granted = role.Rules.SelectMany(r => r.ApiGroups.SelectMany(g => r.Resources.Select(res => $"{g}/{res}"))).Order();
        Assert.Equal(["/namespaces", "/nodes", "/pods", "/services", "discovery.k8s.io/endpointslices", "networking.k8s.io/networkpolicies"], granted);
        Assert.All(role.Rules, r => Assert.Equal(["list", "watch"], r.Verbs));
        var binding = Assert.Single(objects.OfType<V1ClusterRoleBinding>());
        Assert.Equal(role.Metadata.Name, binding.RoleRef.Name);
        var account = Assert.Single(objects.OfType<V1ServiceAccount>());
        Assert.Equal(account.Metadata.Name, Assert.Single(binding.Subjects).Name);

        var ds = Assert.Single(objects.OfType<V1DaemonSet>());
        var pod = ds.Spec.Template.Spec;
        Assert.Equal(account.Metadata.Name, pod.ServiceAccountName);
        Assert.True(pod.HostNetwork);
        var c = Assert.Single(pod.Containers);
        Assert.Equal(["run", "--in-cluster", "--config", "/etc/fastpath/config.yaml", "--node", "$(NODE_NAME)", "--tap"], c.Args.Take(7));
        Assert.Equal("spec.nodeName", c.Env.Single(e => e.Name == "NODE_NAME").ValueFrom.FieldRef.FieldPath);
        Assert.Contains("NET_ADMIN", c.SecurityContext.Capabilities.Add);
        Assert.Contains("NET_RAW", c.SecurityContext.Capabilities.Add);
        Assert.Contains(pod.Volumes, v => v.HostPath?.Path == "/dev/net/tun");
    }

    [Fact]
    public void ConfigMap_HoldsAValidFastPathConfiguration()
    {
        var objects = k8s.KubernetesYaml.LoadAllFromString(File.ReadAllText(Manifest));
        var map = Assert.Single(objects.OfType<V1ConfigMap>());
        using var dir = new TempCluster();
        var file = ClusterDirectory.ReadFile(dir.Write("config.yaml", map.Data["config.yaml"]));
        Assert.Empty(file.Errors);
        Assert.Empty(file.Warnings);
        Assert.IsType<ClusterObject<FastPathConfiguration>>(Assert.Single(file.Objects));
    }

    [Fact]
    public void Dockerfile_PublishesTheCommandProject()
    {
        var dockerfile = File.ReadAllText(Path.Combine(RepositoryFiles.Root, "deploy", "Dockerfile"));
        Assert.Contains("dotnet publish src/FastPath/FastPath.csproj", dockerfile);
        Assert.True(File.Exists(Path.Combine(RepositoryFiles.Root, "src", "FastPath", "FastPath.csproj")));
        Assert.Contains("FROM mcr.microsoft.com/dotnet/runtime:10.0", dockerfile);
    }
}
