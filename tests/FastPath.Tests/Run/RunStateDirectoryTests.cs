using FastPath.Tests.Kernel;
using FastPath.Tests.Support;

namespace FastPath.Tests.Run;

/// <summary>
/// `fastpath run --state-dir`: a corrupted conntrack state file is discarded with one line naming it and the reason,
/// and `run` starts clean; the clean stop that follows leaves a file the next run restores; `--takeover` without a
/// state directory is refused.
/// </summary>
public class RunStateDirectoryTests(ITestOutputHelper output)
{
    private static string DemoCluster => Path.Combine(RepositoryFiles.Root, "pcaps", "demo", "cluster");

    [Fact]
    public void TakeoverNeedsAStateDirectory()
    {
        var (exit, _, err) = FastpathCli.Run("run", "--cluster", DemoCluster, "--node", "node-a", "--tap", "--takeover");
        Assert.Equal(2, exit);
        Assert.Contains("--takeover needs --state-dir", err);
    }

    [Fact]
    public void ACorruptedStateFileIsDiscardedWithOneLineAndRunStartsClean()
    {
        if (!OperatingSystem.IsLinux() || !Environment.IsPrivilegedProcess || !File.Exists("/dev/net/tun"))
            Assert.Skip("needs Linux, root and /dev/net/tun");
        string ns = $"{Environment.GetEnvironmentVariable("FP_LIVE_PREFIX") ?? "fpr"}s{Random.Shared.Next(0x1000, 0xFFFF):x4}";
        using var state = new TempFolder();
        string file = state.File("conntrack-0.state");
        File.WriteAllBytes(file, Enumerable.Repeat((byte)'x', 8192).ToArray());
        Assert.Equal(0, KernelLab.Run("ip", ["netns", "add", ns], TimeSpan.FromSeconds(10)).Exit);
        try
        {
            string Run()
            {
                var (exit, text) = KernelLab.Run("ip", ["netns", "exec", ns, "dotnet", Path.Combine(AppContext.BaseDirectory, "fastpath.dll"),
                    "run", "--cluster", DemoCluster, "--node", "node-a", "--tap", "--state-dir", state.Path, "--duration", "2",
                    "--healthz", "off", "--status-interval", "0"], TimeSpan.FromSeconds(60));
                output.WriteLine(text);
                Assert.True(exit == 0, text);
                Assert.Contains("forwarding: node node-a", text);
                return text;
            }
            var lines = Run().Split('\n');
            var discarded = Assert.Single(lines, l => l.Contains("discarded", StringComparison.Ordinal));
            Assert.Equal($"state: {file}: discarded: not a FastPath state file (bad magic); worker 0 starts with an empty conntrack table", discarded.Trim());
            Assert.Contains(lines, l => l.StartsWith("state: saved 0 connection(s)", StringComparison.Ordinal));
            // What the clean stop left is a good file: the next run restores it.
            Assert.Contains($"state: {file}: restored 0 connection(s) (clean shutdown)", Run());
        }
        finally
        {
            // The TAPs are persistent; they go with the namespace.
            KernelLab.Run("ip", ["netns", "del", ns], TimeSpan.FromSeconds(10));
        }
    }
}
