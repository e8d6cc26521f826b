using FastPath.Tests.Support;

namespace FastPath.Tests.ControlPlane.Api;

/// <summary>
/// The commands with <c>--kubeconfig</c>: the demo cluster served by <see cref="FakeApiServer"/> (its
/// FastPathConfiguration from a file, <c>--config</c>) reads, validates and forwards exactly as the demo directory does.
/// </summary>
public sealed class ApiCommandTests
{
    private static async Task<(FakeApiServer Server, TempCluster Dir, string Kubeconfig, string Config)> DemoApiAsync()
    {
        var server = await FakeApiServer.StartAsync();
        server.ApplyAll(ApiObjects.Demo());
        var dir = new TempCluster();
        return (server, dir, server.WriteKubeconfig(dir.F("kubeconfig")), dir.Write("config.yaml", ApiObjects.Configuration));
    }

    [Fact]
    public async Task Check_FromTheApi_CountsWhatTheDirectoryHolds()
    {
        var (server, dir, kubeconfig, config) = await DemoApiAsync();
        await using var _ = server;
        using var __ = dir;
        var fromDir = FastpathCli.Run("check", "--cluster", ApiObjects.DemoFile, "--node", "node-a");
        var fromApi = FastpathCli.Run("check", "--kubeconfig", kubeconfig, "--config", config, "--node", "node-a");
        Assert.Equal(0, fromApi.Exit);
        Assert.Equal(fromDir.Out.Replace(ApiObjects.DemoFile, "X"), fromApi.Out.Replace(server.Url, "X").Replace(server.Url + "/", "X"));
    }

    [Fact]
    public async Task Replay_FromTheApi_WritesTheSameCapturesAndDrops()
    {
        var (server, dir, kubeconfig, config) = await DemoApiAsync();
        await using var _ = server;
        using var __ = dir;
        string capture = Path.Combine(RepositoryFiles.Root, "pcaps", "demo", "demo.pcapng");
        var a = FastpathCli.Run("replay", capture, "--cluster", ApiObjects.DemoFile, "--node", "node-a", "--out", dir.F("dir"), "-q");
        var b = FastpathCli.Run("replay", capture, "--kubeconfig", kubeconfig, "--config", config, "--node", "node-a", "--out", dir.F("api"), "-q");
        Assert.Equal(0, a.Exit);
        Assert.Equal(0, b.Exit);
        var files = Directory.GetFiles(dir.F("dir")).Select(Path.GetFileName).Where(f => f != "summary.json").Order().ToList();
        Assert.Contains("drops.jsonl", files);
        Assert.True(files.Count >= 3, string.Join(", ", files));
        Assert.Equal(files, Directory.GetFiles(dir.F("api")).Select(Path.GetFileName).Where(f => f != "summary.json").Order());
        foreach (var f in files) Assert.Equal(File.ReadAllBytes(Path.Combine(dir.F("dir"), f!)), File.ReadAllBytes(Path.Combine(dir.F("api"), f!)));
    }

    [Fact]
    public async Task Trace_FromTheApi_IsTheDirectorysTrace()
    {
        var (server, dir, kubeconfig, config) = await DemoApiAsync();
        await using var _ = server;
        using var __ = dir;
        const string packet = "tcp 10.244.1.10:40000 > 10.96.0.20:80 syn";
        var a = FastpathCli.Run("trace", packet, "--cluster", ApiObjects.DemoFile, "--node", "node-a");
        var b = FastpathCli.Run("trace", packet, "--kubeconfig", kubeconfig, "--config", config, "--node", "node-a");
        Assert.Equal(0, b.Exit);
        Assert.Contains("10.244.", b.Out);
        Assert.Equal(a.Out, b.Out);
    }

    [Fact]
    public async Task BadInputs_AreOneLineAndExit2()
    {
        using var dir = new TempCluster();
        var none = FastpathCli.Run("check");
        Assert.Equal(2, none.Exit);
        Assert.Equal("fastpath check: give exactly one of --cluster PATH, --kubeconfig PATH or --in-cluster", none.Err.Trim());
        var both = FastpathCli.Run("check", "--cluster", dir.Path, "--kubeconfig", dir.F("k"));
        Assert.Equal(2, both.Exit);
        var missing = FastpathCli.Run("replay", "x.pcap", "--kubeconfig", dir.F("nope"), "--node", "n", "--out", dir.F("o"));
        Assert.Equal(2, missing.Exit);
        Assert.Equal($"fastpath replay: --kubeconfig {dir.F("nope")}: no such file", missing.Err.Trim());
        // a server that is not there: one line per kind, naming it
        var down = dir.Write("kubeconfig", "apiVersion: v1\nkind: Config\nclusters: [{name: c, cluster: {server: \"http://127.0.0.1:9\"}}]\nusers: [{name: u, user: {token: t}}]\ncontexts: [{name: x, context: {cluster: c, user: u}}]\ncurrent-context: x\n");
        var unreachable = FastpathCli.Run("check", "--kubeconfig", down);
        Assert.Equal(2, unreachable.Exit);
        Assert.Contains("cannot list nodes: ", unreachable.Err);
        Assert.All(unreachable.Err.Trim().Split('\n'), l => Assert.DoesNotContain("   at ", l));
        await Task.CompletedTask;
    }
}
