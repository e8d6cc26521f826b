using System.Text.Json;
using FastPath.Tests.Support;

namespace FastPath.Tests.Replay;

/// <summary>`fastpath replay` end to end, in process: the demo capture, the real captures nobody here wrote, and bad input.</summary>
public class ReplayCommandTests
{
    private static (int Exit, string Out, string Err) Fastpath(params string[] args) => FastpathCli.Run(args);

    private static string Demo(string name) => Path.Combine(RepositoryFiles.Root, "pcaps", "demo", name);

    [Fact]
    public void TheDemoReplaysAsDocumented()
    {
        using var tmp = new TempFolder();
        var (exit, stdout, stderr) = Fastpath("replay", Demo("demo.pcapng"), "--cluster", Demo("cluster"), "--node", "node-a", "--out", tmp.Path);
        Assert.True(exit == 0, stderr);
        Assert.Contains("replayed 24 packets", stdout);

        using var summary = JsonDocument.Parse(File.ReadAllText(tmp.File("summary.json")));
        var root = summary.RootElement;
        Assert.Equal(24, root.GetProperty("packets_in").GetInt64());
        Assert.Equal(1, root.GetProperty("drops").GetProperty("no-route").GetInt64());
        Assert.Equal(2, root.GetProperty("ports").GetProperty("uplink").GetProperty("tx_packets").GetInt64()); // VXLAN + masqueraded SYN
        Assert.Equal(2, root.GetProperty("drops").GetProperty("ttl-exceeded").GetInt64());
        Assert.Equal(1, root.GetProperty("drops").GetProperty("spoofed-source").GetInt64());
        Assert.Equal(1, root.GetProperty("drops").GetProperty("malformed").GetInt64());
        Assert.Equal(8, root.GetProperty("ports").GetProperty("shop/web-1").GetProperty("tx_packets").GetInt64()); // incl. the ClusterIP SYN, DNATed

        var drops = File.ReadAllLines(tmp.File("drops.jsonl")).Select(l => JsonDocument.Parse(l).RootElement).ToList();
        Assert.Equal([13, 14, 15, 16, 23], drops.Select(d => d.GetProperty("packet").GetInt32()));
        Assert.All(drops, d => Assert.Equal("default/client", d.GetProperty("port").GetString()));

        // Nothing lost: every input is emitted somewhere or listed as dropped (an ICMP-answered drop counts once each way).
        long emitted = root.GetProperty("packets_out").GetInt64();
        Assert.Equal(24 + 3, emitted + drops.Count);
        Assert.True(File.Exists(tmp.File("shop_web-1.pcap")));
        Assert.True(File.Exists(tmp.File("default_client.pcap")));
        Assert.True(File.Exists(tmp.File("uplink.pcap")));
        AssertTsharkClean(tmp.Path);
    }

    /// <summary>Every real capture from tcpdump's test suite replays without a crash, and no packet goes missing.</summary>
    [Theory]
    [MemberData(nameof(ExternalCaptures))]
    public void RealCapturesReplayWithoutLoss(string capture)
    {
        using var tmp = new TempFolder();
        var (exit, _, stderr) = Fastpath("replay", capture, "--cluster", Demo("cluster"), "--node", "node-a", "--out", tmp.Path, "--quiet");
        Assert.True(exit == 0, stderr);
        using var summary = JsonDocument.Parse(File.ReadAllText(tmp.File("summary.json")));
        long input = summary.RootElement.GetProperty("packets_in").GetInt64();
        long emitted = summary.RootElement.GetProperty("packets_out").GetInt64();
        var dropped = File.ReadAllLines(tmp.File("drops.jsonl")).Select(l => JsonDocument.Parse(l).RootElement.GetProperty("packet").GetInt64()).ToList();
        Assert.Equal(input, FastPath.DataPlane.Ports.CaptureReader.Validate(capture));
        Assert.Equal(dropped.Count, dropped.Distinct().Count());
        Assert.All(dropped, d => Assert.InRange(d, 1, input));
        // Every input yields a drop line, an emitted frame, or both (an ICMP-answered drop): none can vanish.
        Assert.True(dropped.Count + emitted >= input, $"{input} inputs, {dropped.Count} dropped, {emitted} emitted");
        AssertTsharkClean(tmp.Path);
    }

    public static TheoryData<string> ExternalCaptures()
    {
        var data = new TheoryData<string>();
        foreach (var f in Directory.GetFiles(Path.Combine(RepositoryFiles.Root, "pcaps", "external")).Where(f => f.EndsWith(".pcap") || f.EndsWith(".pcapng")).Order())
            data.Add(f);
        return data;
    }

    [Fact]
    public void AnUnreadableCaptureStopsBeforeForwardingWithExitCode2()
    {
        using var tmp = new TempFolder();
        File.WriteAllBytes(tmp.File("bad.pcap"), [0xd4, 0xc3, 0xb2, 0xa1, 2, 0, 4, 0]);
        var (exit, _, stderr) = Fastpath("replay", Demo("demo.pcapng"), tmp.File("bad.pcap"), "--cluster", Demo("cluster"), "--node", "node-a", "--out", tmp.File("out"));
        Assert.Equal(2, exit);
        Assert.Contains("bad.pcap", stderr);
        Assert.False(Directory.Exists(tmp.File("out")), "nothing may be forwarded before every input is validated");
    }

    [Fact]
    public void AnInvalidClusterObjectStopsWithOneLineNamingFileObjectAndField()
    {
        using var tmp = new TempFolder();
        Directory.CreateDirectory(tmp.File("cluster"));
        File.WriteAllText(tmp.File("cluster/pods.yaml"), File.ReadAllText(Path.Combine(Demo("cluster"), "cluster.yaml")).Replace("podIP: 10.244.1.11,", "podIP: 10.244.1.300,"));
        var (exit, _, stderr) = Fastpath("replay", Demo("demo.pcapng"), "--cluster", tmp.File("cluster"), "--node", "node-a", "--out", tmp.File("out"));
        Assert.Equal(2, exit);
        var line = Assert.Single(stderr.Split('\n', StringSplitOptions.RemoveEmptyEntries), l => l.Contains("10.244.1.300"));
        Assert.Contains("pods.yaml", line);
        Assert.Contains("Pod shop/web-1", line);
        Assert.Contains("status.podIP", line);
    }

    [Theory]
    [InlineData("--node", "node-x", "no Node named node-x")]
    [InlineData("PORT", "nosuch/pod", "no port named \"nosuch/pod\"")]
    [InlineData("FILE", "missing.pcap", "no such capture file")]
    public void BadArgumentsAreRefusedWithExitCode2(string what, string value, string message)
    {
        using var tmp = new TempFolder();
        string capture = what switch { "PORT" => $"{value}={Demo("demo.pcapng")}", "FILE" => tmp.File(value), _ => Demo("demo.pcapng") };
        string node = what == "--node" ? value : "node-a";
        var (exit, _, stderr) = Fastpath("replay", capture, "--cluster", Demo("cluster"), "--node", node, "--out", tmp.File("out"));
        Assert.Equal(2, exit);
        Assert.Contains(message, stderr);
    }

    [Fact]
    public void CheckReportsValidAndInvalidClusters()
    {
        Assert.Equal(0, Fastpath("check", "--cluster", Demo("cluster"), "--node", "node-a").Exit);
        Assert.Equal(2, Fastpath("check", "--cluster", Demo("cluster"), "--node", "node-x").Exit);
        Assert.Equal(2, Fastpath("replay").Exit);
    }

    private static void AssertTsharkClean(string directory)
    {
        if (!Tshark.Available) return; // the tshark tests themselves report the skip
        foreach (var pcap in Directory.GetFiles(directory, "*.pcap"))
            Assert.Empty(Tshark.Problems(pcap));
    }
}
