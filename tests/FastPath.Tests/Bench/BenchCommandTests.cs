using System.Text.Json;
using FastPath.Tests.Support;

namespace FastPath.Tests.Bench;

/// <summary>`fastpath bench` on the command line: JSON fields, the table, and bad arguments.</summary>
public class BenchCommandTests
{
    [Fact]
    public void JsonHasOneResultPerScenarioAndWorkerCount()
    {
        var (exit, stdout, stderr) = FastpathCli.Run("bench", "--scenario", "l2-forward", "pod-to-pod", "--workers", "1", "2",
            "--duration", "0.02", "--warmup", "0.01", "--flows", "64", "--services", "100", "--json");
        Assert.True(exit == 0, stderr);
        var results = JsonDocument.Parse(stdout).RootElement.GetProperty("results").EnumerateArray().ToList();
        Assert.Equal(["l2-forward", "pod-to-pod", "l2-forward", "pod-to-pod"], results.Select(r => r.GetProperty("scenario").GetString()));
        Assert.Equal([1, 1, 2, 2], results.Select(r => r.GetProperty("workers").GetInt32()));
        foreach (var r in results)
        {
            Assert.True(r.GetProperty("packets").GetInt64() > 0);
            Assert.Equal(r.GetProperty("packets").GetInt64(), r.GetProperty("forwarded").GetInt64());
            Assert.True(r.GetProperty("mpps").GetDouble() > 0);
            Assert.Equal(64, r.GetProperty("frame_size").GetInt32());
            Assert.Equal(100, r.GetProperty("services").GetInt32());
            Assert.True(r.TryGetProperty("bytes_per_packet", out _));
        }
        Assert.Equal(1.0, results[0].GetProperty("vs_l2_forward").GetDouble());
    }

    [Fact]
    public void TablePrintsEveryScenario()
    {
        var (exit, stdout, stderr) = FastpathCli.Run("bench", "-s", "vxlan-decap", "--duration", "0.02", "--warmup", "0", "--flows", "64", "--services", "100");
        Assert.True(exit == 0, stderr);
        Assert.Contains("vxlan-decap", stdout);
        Assert.Contains("Mpps", stdout);
    }

    [Theory]
    [InlineData("--scenario", "warp-drive")]
    [InlineData("--workers", "0")]
    [InlineData("--duration", "-1")]
    [InlineData("--frame-size", "20")]
    [InlineData("--dispatch", "magic")]
    public void BadArgumentsExitTwoWithAMessage(string option, string value)
    {
        string[] args = option == "--duration" ? ["bench", option, value] : ["bench", option, value, "--duration", "0.01"];
        var (exit, _, stderr) = FastpathCli.Run(args);
        Assert.Equal(2, exit);
        Assert.Contains(value, stderr);
    }
}
