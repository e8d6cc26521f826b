using System.Text.Json;
using FastPath.Tests.Support;

namespace FastPath.Tests.Replay;

/// <summary>`fastpath replay --repeat N`: the captures replayed N times from memory; outputs are the first round's.</summary>
public class ReplayRepeatTests
{
    private static string Demo(string name) => Path.Combine(RepositoryFiles.Root, "pcaps", "demo", name);

    private static JsonElement Replay(string outDir, params string[] extra)
    {
        var (exit, _, stderr) = FastpathCli.Run(["replay", Demo("demo.pcapng"), "--cluster", Demo("cluster"), "--node", "node-a", "--out", outDir, "--quiet", .. extra]);
        Assert.True(exit == 0, stderr);
        return JsonDocument.Parse(File.ReadAllText(Path.Combine(outDir, "summary.json"))).RootElement;
    }

    [Fact]
    public void RepeatWritesTheFirstRoundAndCountsEveryRound()
    {
        using var once = new TempFolder();
        using var thrice = new TempFolder();
        var one = Replay(once.Path);
        var three = Replay(thrice.Path, "--repeat", "3");

        Assert.Equal(3 * one.GetProperty("packets_in").GetInt64(), three.GetProperty("packets_in").GetInt64());
        long rx = 0, rx1 = 0;
        foreach (var port in three.GetProperty("ports").EnumerateObject()) rx += port.Value.GetProperty("rx_packets").GetInt64();
        foreach (var port in one.GetProperty("ports").EnumerateObject()) rx1 += port.Value.GetProperty("rx_packets").GetInt64();
        Assert.Equal(3 * rx1, rx);
        // Later rounds meet the connections the first one opened, so they need not emit exactly as much; they emit.
        Assert.True(three.GetProperty("packets_out").GetInt64() > 2 * one.GetProperty("packets_out").GetInt64());

        // Files are the first round's: identical to a single replay.
        var files = Directory.GetFiles(once.Path).Select(Path.GetFileName).Where(f => f != "summary.json").Order().ToList();
        Assert.Equal(files, Directory.GetFiles(thrice.Path).Select(Path.GetFileName).Where(f => f != "summary.json").Order());
        foreach (var f in files)
            Assert.True(File.ReadAllBytes(Path.Combine(once.Path, f!)).AsSpan().SequenceEqual(File.ReadAllBytes(Path.Combine(thrice.Path, f!))), f);
    }

    [Fact]
    public void RepeatMustBePositive()
    {
        using var tmp = new TempFolder();
        var (exit, _, stderr) = FastpathCli.Run("replay", Demo("demo.pcapng"), "--cluster", Demo("cluster"), "--node", "node-a", "--out", tmp.Path, "--repeat", "0");
        Assert.Equal(2, exit);
        Assert.Contains("--repeat 0", stderr);
    }
}
