using System.Diagnostics;
using System.Globalization;
using FastPath.Tests.Policy;

namespace FastPath.Tests.Live;

/// <summary>
/// The NetworkPolicy truth-table cluster (<see cref="PolicyCluster"/>: namespaces x, y, z with pods a, b, c each, their
/// labels, addresses, MACs and named container ports, on node-a and node-b) live: scripts/demo-cluster.sh runs
/// <see cref="PolicyCluster.Manifests"/> (written into its cluster directory here, so the live nodes and the interpreter
/// read the same files) with a pod table of its own. Each pod is a network namespace "PREFIX-x-a" whose
/// scripts/demo-backend.py, named "x-a", answers on TCP 80 and 81 and UDP 53 and 80, IPv4 and IPv6; ICMP echo sockets
/// are allowed for the probers. NetworkPolicies go into policies.yaml in the directory both nodes watch.
/// </summary>
public sealed class PolicyLiveCluster() : DemoCluster("vxlan", WriteCluster)
{
    private string _policies = "";
    private int _nextSourcePort = FirstSourcePort;

    // Source ports (and ICMP echo ids) handed out to the probers, below the pods' ephemeral ports (61000-65000): a range
    // of its own per prober and probe run, so no probe reuses a flow an earlier scenario left in a node's conntrack.
    // (Two pods pinging each other with one echo id are two connections, as in Linux: the echo type is part of the
    // tuple — PolicyEnforcementTests.AnEchoRequestBackIsANewFlow_NotTheReplyOfAnAllowedPing.)
    private const int FirstSourcePort = 10000, LastSourcePort = 60000;

    private static string WriteCluster(string directory)
    {
        System.IO.Directory.CreateDirectory(directory);
        foreach (var (file, text) in PolicyCluster.Manifests) File.WriteAllText(Path.Combine(directory, file), text);
        return string.Concat(PolicyCluster.PodNames.Select(p =>
            $"{PolicyCluster.NodeOf(p)} {p[..1]} {p[2..]} {PolicyCluster.Address(p, false)} {PolicyCluster.Address(p, true)} {PolicyCluster.MacOf(p)} policy\n"));
    }

    /// <summary>A pod's network namespace suffix for <see cref="DemoCluster.In"/> and the name its server answers with: "x-a".</summary>
    public static string NameOf(string pod) => pod.Replace('/', '-');

    /// <summary>Replaces the cluster's NetworkPolicies ("" = none) and waits until both nodes applied the change.</summary>
    public void SetPolicies(string policies)
    {
        if (policies == _policies) return;
        WriteFile(Path.Combine(Directory, "cluster", "policies.yaml"), policies.Length == 0 ? null : policies);
        _policies = policies;
    }

    /// <summary>
    /// Runs one prober (tests/live/clients.py probe) per source pod, all at once, each trying all its targets
    /// ("NAME,PROTOCOL,PORT,ADDRESS") at once; returns each source's outcomes in target order ("allow", "deny" or
    /// "error: ...").
    /// </summary>
    public Dictionary<string, string[]> Probe(IReadOnlyDictionary<string, List<string>> targetsBySource, double timeoutSeconds)
    {
        int total = targetsBySource.Values.Sum(t => t.Count);
        if (_nextSourcePort + total > LastSourcePort) _nextSourcePort = FirstSourcePort;
        string timeout = timeoutSeconds.ToString(CultureInfo.InvariantCulture);
        var runs = new Dictionary<string, Task<(int Exit, string Output)>>();
        foreach (var (source, targets) in targetsBySource)
        {
            string basePort = _nextSourcePort.ToString(CultureInfo.InvariantCulture);
            _nextSourcePort += targets.Count;
            runs[source] = Task.Factory.StartNew(
                () => In(NameOf(source), TimeSpan.FromSeconds(30), ["/usr/bin/python3", Clients, "probe", basePort, timeout, .. targets]),
                TaskCreationOptions.LongRunning);
        }
        var outcomes = new Dictionary<string, string[]>();
        foreach (var (source, run) in runs)
        {
            var (exit, text) = run.Result;
            var lines = text.Split('\n', StringSplitOptions.RemoveEmptyEntries);
            var targets = targetsBySource[source];
            Assert.True(exit == 0 && lines.Length == targets.Count, $"prober in {source} failed ({exit}):\n{text}");
            outcomes[source] = [.. lines.Select((line, i) =>
            {
                Assert.StartsWith(targets[i] + " ", line);
                return line[(targets[i].Length + 1)..];
            })];
        }
        return outcomes;
    }

    /// <summary>
    /// Holds a keep-alive HTTP connection (tests/live/clients.py established) from <paramref name="from"/> to
    /// <paramref name="address"/>:80 opened under the policies <paramref name="before"/>, switches to
    /// <paramref name="after"/> once its first GET was answered, then the client tries the open connection and a new
    /// one; returns its three lines ("first|same|new: BODY" or "...: error: ...").
    /// </summary>
    public List<string> KeepAliveAcrossChange(string from, string address, string before, string after)
    {
        SetPolicies(before);
        string marker = Path.Combine(Directory, "policies-changed");
        File.Delete(marker);
        var start = new ProcessStartInfo("ip") { RedirectStandardOutput = true, UseShellExecute = false };
        foreach (var a in (string[])["netns", "exec", $"{Prefix}-{NameOf(from)}", "/usr/bin/python3", Clients, "established", address, "80", marker, "20"])
            start.ArgumentList.Add(a);
        using var client = Process.Start(start)!;
        try
        {
            var lines = new List<string> { client.StandardOutput.ReadLineAsync().WaitAsync(TimeSpan.FromSeconds(10)).GetAwaiter().GetResult() ?? "" };
            try { SetPolicies(after); }
            finally { File.WriteAllText(marker, ""); }
            var rest = client.StandardOutput.ReadToEndAsync();
            Assert.True(client.WaitForExit(TimeSpan.FromSeconds(30)), "the established client did not finish");
            lines.AddRange(rest.GetAwaiter().GetResult().Split('\n', StringSplitOptions.RemoveEmptyEntries));
            return lines;
        }
        finally
        {
            if (!client.HasExited) client.Kill(entireProcessTree: true);
        }
    }
}

/// <summary>The live NetworkPolicy tests share one truth-table cluster and run alone (probes are timed).</summary>
[CollectionDefinition(Name, DisableParallelization = true)]
public sealed class PolicyLiveClusterCollection : ICollectionFixture<PolicyLiveCluster>
{
    public const string Name = "live NetworkPolicy cluster";
}
