using System.Text.Json;
using FastPath.Tests.Support;

namespace FastPath.Tests.Diff;

/// <summary>
/// `fastpath diff`: the demo capture through the demo cluster and a changed one. Golden outputs per kind of change
/// (read and checked by hand once, then kept; FASTPATH_UPDATE_GOLDEN=1 rewrites them), and the deny-all diff checked
/// against a plain replay of each side.
/// </summary>
public class DiffCommandTests
{
    private static string Demo(string name) => Path.Combine(RepositoryFiles.Root, "pcaps", "demo", name);

    private static string Case(string name) => Path.Combine(RepositoryFiles.Root, "tests", "FastPath.Tests", "Diff", "cases", name);

    private static string Golden(string name) => Path.Combine(RepositoryFiles.Root, "tests", "FastPath.Tests", "Diff", "golden", name);

    /// <summary>The demo cluster plus the files of a case directory: the "after" of --against.</summary>
    private static string DemoPlus(TempFolder tmp, string caseName)
    {
        string dir = tmp.File("after");
        Directory.CreateDirectory(dir);
        File.Copy(Demo("cluster/cluster.yaml"), Path.Combine(dir, "cluster.yaml"));
        foreach (var f in Directory.EnumerateFiles(Case(caseName))) File.Copy(f, Path.Combine(dir, Path.GetFileName(f)));
        return dir;
    }

    private static (int Exit, string Stdout, string Stderr) Fastpath(params string[] args)
    {
        var stdout = new StringWriter();
        var stderr = new StringWriter();
        int exit = FastPath.Program.Run(args, stdout, stderr);
        return (exit, stdout.ToString(), stderr.ToString());
    }

    [Theory]
    [InlineData("policy-tightening", "--against")] // a deny-all NetworkPolicy for namespace shop
    [InlineData("endpoint-removed", "--changes")]  // shop/web's EndpointSlice loses web-1
    [InlineData("route-change", "--changes")]      // node-b (web-3's node) gets another underlay address
    public void DiffMatchesGolden(string name, string mode)
    {
        using var tmp = new TempFolder();
        string after = mode == "--against" ? DemoPlus(tmp, name) : Case(name);
        var (exit, stdout, stderr) = Fastpath("diff", Demo("demo.pcapng"), "--cluster", Demo("cluster"), mode, after, "--node", "node-a");
        Assert.True(exit == 1, $"exit {exit}: {stderr}");
        Assert.Equal("", stderr);
        string text = stdout.Replace(tmp.Path, "TMP").Replace(RepositoryFiles.Root + "/", "");
        if (Environment.GetEnvironmentVariable("FASTPATH_UPDATE_GOLDEN") == "1") File.WriteAllText(Golden(name + ".txt"), text);
        Assert.Equal(File.ReadAllText(Golden(name + ".txt")), text);
    }

    [Fact]
    public void DenyAll_ListsExactlyThePacketsAReplayOfEachSideDrops_WithThePolicy()
    {
        using var tmp = new TempFolder();
        string after = DemoPlus(tmp, "policy-tightening");
        var before = Drops(tmp, Demo("cluster"), "replay-before");
        var afterDrops = Drops(tmp, after, "replay-after");
        // What the two replays say: forwarded before and dropped after, and dropped on both sides for another reason.
        var denied = afterDrops.Keys.Where(p => !before.ContainsKey(p)).Order().ToList();
        var reasonChanged = afterDrops.Keys.Where(p => before.TryGetValue(p, out var r) && r != afterDrops[p]).Order().ToList();
        Assert.NotEmpty(denied);
        Assert.All(denied, p => Assert.Equal("policy-denied", afterDrops[p]));
        Assert.DoesNotContain(before.Keys, p => !afterDrops.ContainsKey(p)); // nothing is allowed that was not

        var (exit, stdout, stderr) = Fastpath("diff", Demo("demo.pcapng"), "--cluster", Demo("cluster"), "--against", after, "--node", "node-a", "--json");
        Assert.True(exit == 1, stderr);
        using var doc = JsonDocument.Parse(stdout);
        var changes = doc.RootElement.GetProperty("flows").EnumerateArray()
            .SelectMany(f => f.GetProperty("changes").EnumerateArray())
            .Select(c => (Kind: c.GetProperty("kind").GetString(), First: c.GetProperty("first_packet").GetInt64(),
                Packets: c.GetProperty("packets").GetInt64(), After: c.GetProperty("after")))
            .ToList();
        // The demo has one packet per flow and direction, so each change is one packet.
        Assert.Equal(denied, changes.Where(c => c.Kind == "denied").Select(c => c.First).Order().ToList());
        Assert.Equal(reasonChanged, changes.Where(c => c.Kind == "drop-reason").Select(c => c.First).Order().ToList());
        Assert.All(changes, c => Assert.Equal(1, c.Packets));
        Assert.All(changes, c => Assert.Equal(("policy-denied", "shop/deny-all"),
            (c.After.GetProperty("drop").GetString(), c.After.GetProperty("policy").GetString())));
        Assert.Equal(denied.Count + reasonChanged.Count, doc.RootElement.GetProperty("changed_packets").GetInt64());
    }

    /// <summary>drops.jsonl of a replay of the demo capture through <paramref name="cluster"/>: input index → reason.</summary>
    private static Dictionary<long, string> Drops(TempFolder tmp, string cluster, string name)
    {
        var (exit, _, stderr) = Fastpath("replay", Demo("demo.pcapng"), "--cluster", cluster, "--node", "node-a", "--out", tmp.File(name), "-q");
        Assert.True(exit == 0, stderr);
        return File.ReadAllLines(tmp.File(name + "/drops.jsonl")).Select(l => JsonDocument.Parse(l).RootElement)
            .ToDictionary(d => d.GetProperty("packet").GetInt64(), d => d.GetProperty("reason").GetString()!);
    }

    [Fact]
    public void NoChange_ExitsZero()
    {
        var (exit, stdout, stderr) = Fastpath("diff", Demo("demo.pcapng"), "--cluster", Demo("cluster"), "--against", Demo("cluster"), "--node", "node-a");
        Assert.True(exit == 0, stderr);
        Assert.EndsWith("24 packets, no fate changed", stdout.Trim());

        (exit, stdout, _) = Fastpath("diff", Demo("demo.pcapng"), "--cluster", Demo("cluster"), "--against", Demo("cluster"), "--node", "node-a", "--json");
        Assert.Equal(0, exit);
        using var doc = JsonDocument.Parse(stdout);
        Assert.Equal((24, 0, 0), (doc.RootElement.GetProperty("packets").GetInt64(), doc.RootElement.GetProperty("changed_packets").GetInt64(),
            doc.RootElement.GetProperty("flows").GetArrayLength()));
    }

    [Fact]
    public void BadInput_ExitsTwo_WithOneLineNamingTheProblem()
    {
        using var tmp = new TempFolder();
        var (exit, _, stderr) = Fastpath("diff", Demo("demo.pcapng"), "--cluster", Demo("cluster"), "--node", "node-a");
        Assert.Equal((2, "fastpath diff: give the changed cluster: --against AFTER and/or --changes DIR"), (exit, stderr.Trim()));

        Directory.CreateDirectory(tmp.File("bad"));
        File.WriteAllText(tmp.File("bad/svc.yaml"), "apiVersion: v1\nkind: Service\nmetadata: {name: web, namespace: shop}\nspec: {clusterIP: 10.96.0.300, ports: [{port: 80}]}\n");
        (exit, _, stderr) = Fastpath("diff", Demo("demo.pcapng"), "--cluster", Demo("cluster"), "--against", tmp.File("bad"), "--node", "node-a");
        Assert.Equal(2, exit);
        Assert.Contains(tmp.File("bad/svc.yaml") + ": Service shop/web: spec.clusterIP", stderr);

        File.WriteAllText(tmp.File("broken.pcap"), "not a capture");
        (exit, _, stderr) = Fastpath("diff", tmp.File("broken.pcap"), "--cluster", Demo("cluster"), "--against", Demo("cluster"), "--node", "node-a");
        Assert.Equal(2, exit);
        Assert.Single(stderr.Trim().Split('\n'));
        Assert.StartsWith($"fastpath diff: {tmp.File("broken.pcap")}", stderr);
    }
}
