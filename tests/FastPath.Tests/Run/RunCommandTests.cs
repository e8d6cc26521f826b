using System.Diagnostics;
using FastPath.Live;
using FastPath.Tests.Kernel;
using FastPath.Tests.Support;

namespace FastPath.Tests.Run;

/// <summary>`fastpath run --tap`: bad input stops before any device is touched; a real run in a namespace of the
/// test's own creates the documented TAPs and removes them on SIGTERM.</summary>
public class RunCommandTests(ITestOutputHelper output)
{
    private static string DemoCluster => Path.Combine(RepositoryFiles.Root, "pcaps", "demo", "cluster");

    [Fact]
    public void PodTapNamesAreTheDocumentedHash()
    {
        // README: `printf '%s' default/client | sha1sum | cut -c1-12` is ce2a28d0b7b9.
        Assert.Equal("fpce2a28d0b7b9", TapSet.PodTapName("default/client"));
        Assert.All(new[] { "default/client", "a-very-long-namespace-name/a-very-long-pod-name-0123456789" },
            p => Assert.True(TapSet.PodTapName(p).Length <= 15));
    }

    [Theory]
    [InlineData("--uplink-tap", "much-too-long-name", "--uplink-tap much-too-long-name: not a valid interface name")]
    [InlineData("--batch", "0", "--batch 0: must be between 1 and 4096")]
    public void BadOptionsExitWithCode2(string option, string value, string message)
    {
        var (exit, _, err) = FastpathCli.Run("run", "--cluster", DemoCluster, "--node", "node-a", "--tap", option, value);
        Assert.Equal(2, exit);
        Assert.Contains(message, err);
    }

    [Fact]
    public void AnInvalidClusterExitsWithCode2NamingTheProblem()
    {
        using var tmp = new TempFolder();
        File.WriteAllText(Path.Combine(tmp.Path, "node.yaml"), "apiVersion: v1\nkind: Node\nmetadata: {name: node-a}\nspec: {podCIDR: not-a-cidr}\n");
        var (exit, _, err) = FastpathCli.Run("run", "--cluster", tmp.Path, "--node", "node-a", "--tap");
        Assert.Equal(2, exit);
        Assert.Contains("node.yaml", err);
        Assert.Contains("not-a-cidr", err);
    }

    /// <summary>Also: a pod added to the watched cluster directory gets its TAP, and loses it when removed.</summary>
    [Fact]
    public async Task CreatesTheDocumentedTapsFollowsPodsOfTheWatchedDirectoryAndRemovesThemOnSigterm()
    {
        if (!OperatingSystem.IsLinux() || !Environment.IsPrivilegedProcess || !File.Exists("/dev/net/tun"))
            Assert.Skip("needs Linux, root and /dev/net/tun");
        string ns = $"fpr-{Random.Shared.Next(0x1000, 0xFFFF):x4}";
        using var cluster = new TempFolder();
        File.Copy(Path.Combine(DemoCluster, "cluster.yaml"), Path.Combine(cluster.Path, "cluster.yaml"));
        Assert.Equal(0, KernelLab.Run("ip", ["netns", "add", ns], TimeSpan.FromSeconds(10)).Exit);
        try
        {
            Assert.Equal(0, KernelLab.Run("ip", ["-n", ns, "link", "set", "lo", "up"], TimeSpan.FromSeconds(10)).Exit);
            var psi = new ProcessStartInfo("ip") { RedirectStandardOutput = true, RedirectStandardError = true };
            foreach (var a in new[] { "netns", "exec", ns, "dotnet", Path.Combine(AppContext.BaseDirectory, "fastpath.dll"),
                         "run", "--cluster", cluster.Path, "--node", "node-a", "--tap", "--duration", "60", "--metrics", "127.0.0.1:9464" })
                psi.ArgumentList.Add(a);
            using var run = Process.Start(psi)!;
            var stderr = run.StandardError.ReadToEndAsync(TestContext.Current.CancellationToken);
            var lines = new List<string>();
            // Bounded by --duration: the process ends (and its output with it) after 60 s at the latest.
            void ReadUntil(string prefix)
            {
                while (run.StandardOutput.ReadLine() is { } line)
                {
                    lines.Add(line);
                    if (line.StartsWith(prefix, StringComparison.Ordinal)) return;
                }
            }
            ReadUntil("forwarding:");
            output.WriteLine(string.Join('\n', lines));
            Assert.Contains(lines, l => l.StartsWith("forwarding: node node-a, 5 ports", StringComparison.Ordinal));
            // The Prometheus endpoint answers inside the namespace (its loopback only).
            var scrape = KernelLab.Run("ip", ["netns", "exec", ns, "curl", "-sf", "--max-time", "10", "http://127.0.0.1:9464/metrics/"], TimeSpan.FromSeconds(15));
            Assert.True(scrape.Exit == 0, scrape.Output);
            Assert.Contains("fastpath_snapshot_generation", scrape.Output);
            Assert.Contains("fastpath_conntrack_capacity", scrape.Output);
            string[] taps = ["fp-uplink", "fpce2a28d0b7b9", TapSet.PodTapName("shop/web-1"), TapSet.PodTapName("shop/web-2")];
            foreach (var tap in taps)
            {
                Assert.Contains($"tap {tap} = ", string.Join('\n', lines));
                Assert.Equal(0, KernelLab.Run("ip", ["-n", ns, "link", "show", tap], TimeSpan.FromSeconds(10)).Exit);
            }

            string extraTap = TapSet.PodTapName("default/extra");
            // Written aside and renamed into place, as editors and kubectl-style tools do: the watcher sees one change.
            string staged = Path.Combine(cluster.Path, "extra.yaml.tmp");
            File.WriteAllText(staged, """
                apiVersion: v1
                kind: Pod
                metadata: {name: extra, namespace: default}
                spec: {nodeName: node-a, containers: [{name: c, image: busybox}]}
                status: {podIP: 10.244.1.99, podIPs: [{ip: 10.244.1.99}]}
                """);
            File.Move(staged, Path.Combine(cluster.Path, "extra.yaml"));
            ReadUntil($"tap {extraTap} = default/extra (created)");
            Assert.Equal(0, KernelLab.Run("ip", ["-n", ns, "link", "show", extraTap], TimeSpan.FromSeconds(10)).Exit);
            File.Delete(Path.Combine(cluster.Path, "extra.yaml"));
            ReadUntil($"tap {extraTap} = default/extra (closed");
            Assert.NotEqual(0, KernelLab.Run("ip", ["-n", ns, "link", "show", extraTap], TimeSpan.FromSeconds(10)).Exit);
            output.WriteLine(string.Join('\n', lines));

            Assert.Equal(0, KernelLab.Run("kill", ["-TERM", run.Id.ToString()], TimeSpan.FromSeconds(10)).Exit);
            string rest = run.StandardOutput.ReadToEnd();
            Assert.True(run.WaitForExit(TimeSpan.FromSeconds(20)), "fastpath run did not stop on SIGTERM");
            Assert.True(run.ExitCode == 0, $"exit {run.ExitCode}: {rest}{await stderr}");
            Assert.Contains("stopped:", rest);
            foreach (var tap in taps)
                Assert.NotEqual(0, KernelLab.Run("ip", ["-n", ns, "link", "show", tap], TimeSpan.FromSeconds(10)).Exit);
        }
        finally
        {
            KernelLab.Run("ip", ["netns", "del", ns], TimeSpan.FromSeconds(10));
        }
    }
}
