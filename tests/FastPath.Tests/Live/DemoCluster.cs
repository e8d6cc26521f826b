using FastPath.Tests.Kernel;
using FastPath.Tests.Support;

namespace FastPath.Tests.Live;

/// <summary>
/// The live demo cluster (scripts/demo-cluster.sh), built once for the live tests with a namespace prefix of its own and
/// torn down after them: two `fastpath run --tap` processes (node-a: default/client 10.244.1.10 and shop/web-a
/// 10.244.1.11; node-b: shop/web-b 10.244.2.11 and shop/cart 10.244.2.12), an underlay bridge and the external client
/// 192.168.56.1. The web pods run scripts/demo-backend.py (HTTP 8080 and UDP/DNS 5353 answering with their name and
/// the client address they saw) and an iperf3 server. Pod traffic between the nodes is VXLAN, or routed unencapsulated
/// on the underlay with <see cref="DirectRoutedDemoCluster"/>.
/// </summary>
public class DemoCluster : IDisposable
{
    private static readonly string[] Tools = ["ip", "ping", "curl", "nc", "dig", "iperf3", "sha1sum", "setsid"];
    private readonly Dictionary<string, string> _environment = [];

    public DemoCluster() : this("vxlan")
    {
    }

    /// <param name="tunnel">The FastPathConfiguration tunnel mode (FP_DEMO_TUNNEL).</param>
    /// <param name="ports">tap (FastPath's TAPs moved into the pods) or veth (pods created by fastpath-cni on veth
    /// pairs, uplinks on veths; FP_DEMO_PORTS), attached in <paramref name="attachMode"/> (FP_DEMO_ATTACH_MODE).</param>
    protected DemoCluster(string tunnel, string ports, string attachMode) : this(tunnel, null, ports, attachMode)
    {
    }

    /// <param name="tunnel">The FastPathConfiguration tunnel mode (FP_DEMO_TUNNEL).</param>
    /// <param name="writeCluster">
    /// For another cluster than the demo's: writes the manifests into the cluster directory it is given and returns the
    /// pod table (FP_DEMO_PODS, see scripts/demo-cluster.sh).
    /// </param>
    /// <param name="keepState">Each node's `run` keeps its state in a state directory (FP_DEMO_STATE_DIR), so
    /// `demo-cluster.sh restart` keeps its connections.</param>
    protected DemoCluster(string tunnel, Func<string, string>? writeCluster = null, string ports = "tap", string attachMode = "auto",
        bool keepState = false)
    {
        Tunnel = tunnel;
        Ports = ports;
        AttachMode = attachMode;
        if (!OperatingSystem.IsLinux()) { SkipReason = "TAP devices and network namespaces need Linux"; return; }
        if (!Environment.IsPrivilegedProcess) { SkipReason = "not root: TAP devices and network namespaces need root"; return; }
        if (!File.Exists("/dev/net/tun")) { SkipReason = "/dev/net/tun is missing (modprobe tun)"; return; }
        var missing = Tools.Where(t => !KernelLab.OnPath(t)).ToList();
        if (!File.Exists("/usr/bin/python3")) missing.Add("/usr/bin/python3");
        if (missing.Count > 0) { SetupFailure = $"missing {string.Join(", ", missing)}: run scripts/install-deps.sh"; return; }

        // FP_LIVE_PREFIX keeps concurrent runs on one machine apart (each its own namespaces); "fpe" by default.
        Prefix = (Environment.GetEnvironmentVariable("FP_LIVE_PREFIX") ?? "fpe") + Random.Shared.Next(0x1000, 0xFFFF).ToString("x4");
        Directory = System.IO.Directory.CreateTempSubdirectory("fastpath-live-").FullName;
        _environment["FP_DEMO"] = Prefix;
        _environment["FP_DEMO_DIR"] = Directory;
        _environment["FP_DEMO_TUNNEL"] = tunnel;
        _environment["FASTPATH"] = $"dotnet {Path.Combine(AppContext.BaseDirectory, "fastpath.dll")}";
        _environment["FASTPATH_CNI"] = $"dotnet {Path.Combine(AppContext.BaseDirectory, "fastpath-cni.dll")}";
        _environment["FP_DEMO_PORTS"] = ports;
        _environment["FP_DEMO_ATTACH_MODE"] = attachMode;
        if (keepState) _environment["FP_DEMO_STATE_DIR"] = Path.Combine(Directory, "state");
        if (writeCluster is not null)
        {
            string pods = Path.Combine(Directory, "pods.txt");
            File.WriteAllText(pods, writeCluster(Path.Combine(Directory, "cluster")));
            _environment["FP_DEMO_PODS"] = pods;
        }
        var (exit, output) = Script("up", TimeSpan.FromSeconds(60));
        if (exit != 0) SetupFailure = $"demo-cluster.sh up failed ({exit}):\n{output}\n{Logs()}";
    }

    public string Tunnel { get; }
    public string Ports { get; }
    public string AttachMode { get; }
    public string? SkipReason { get; }
    public string? SetupFailure { get; }
    public string Prefix { get; } = "";
    public string Directory { get; } = "";
    public string Manifest => Path.Combine(Directory, "cluster", "cluster.yaml");

    private static string ScriptPath => Path.Combine(RepositoryFiles.Root, "scripts", "demo-cluster.sh");
    public static string Clients => Path.Combine(RepositoryFiles.Root, "tests", "live", "clients.py");

    /// <summary>Skips without root or /dev/net/tun, fails when the cluster could not be built.</summary>
    public void Require()
    {
        if (SkipReason is not null) Assert.Skip(SkipReason);
        if (SetupFailure is not null) Assert.Fail(SetupFailure);
    }

    public (int Exit, string Output) Script(string command, TimeSpan timeout) => Script([command], timeout);

    public (int Exit, string Output) Script(string[] arguments, TimeSpan timeout) =>
        KernelLab.Run("bash", [ScriptPath, .. arguments], timeout, _environment);

    /// <summary>
    /// Runs a command inside a pod's namespace ("client", "web-a", ...; "NAMESPACE-POD" with a pod table of the caller's)
    /// or "ext" (the external client).
    /// </summary>
    public (int Exit, string Output) In(string pod, TimeSpan timeout, params string[] command) =>
        KernelLab.Run("ip", ["netns", "exec", $"{Prefix}-{pod}", .. command], timeout);

    /// <summary>Three pings from <paramref name="pod"/> to <paramref name="to"/> all come back.</summary>
    public void AssertPing(string pod, string to)
    {
        Require();
        var (exit, text) = In(pod, TimeSpan.FromSeconds(20), "ping", "-c", "3", "-i", "0.2", "-W", "2", to);
        Assert.True(exit == 0 && text.Contains("3 received"), $"{text}\n{Logs()}");
    }

    /// <summary>
    /// An HTTP GET (curl, <paramref name="protocol"/> "tcp") or a UDP datagram (nc, "udp") from <paramref name="pod"/>
    /// to a web pod's <paramref name="to"/> address is answered with <paramref name="expected"/>: "BACKEND
    /// CLIENT-ADDRESS-IT-SAW".
    /// </summary>
    public void AssertSeenBy(string pod, string to, string protocol, string expected)
    {
        Require();
        string url = to.Contains(':') ? $"http://[{to}]:8080/" : $"http://{to}:8080/";
        var (exit, text) = protocol == "tcp"
            ? In(pod, TimeSpan.FromSeconds(20), "curl", "-sS", "-m", "5", url)
            : In(pod, TimeSpan.FromSeconds(20), "sh", "-c", $"echo hi | nc -u -w 1 {to} 5353");
        Assert.True(exit == 0, $"{text}\n{Logs()}");
        Assert.Equal(expected, text.Trim());
    }

    /// <summary>The FastPath logs of both nodes (status lines, TAPs, applied changes), for failure messages.</summary>
    public string Logs() => string.Join("\n", new[] { "node-a", "node-b" }
        .Select(n => Path.Combine(Directory, n + ".log"))
        .Where(File.Exists)
        .Select(f => $"--- {Path.GetFileName(f)}\n{File.ReadAllText(f)}"));

    /// <summary>
    /// Writes <paramref name="path"/> in the cluster directory (aside, then renamed into place; null deletes it) and waits
    /// until both FastPath processes, which watch the directory, logged one more applied change.
    /// </summary>
    public void WriteFile(string path, string? content)
    {
        var nodes = new[] { "node-a", "node-b" };
        var before = nodes.Select(CountApplied).ToArray();
        if (content is null) File.Delete(path);
        else
        {
            File.WriteAllText(path + ".tmp", content);
            File.Move(path + ".tmp", path, overwrite: true);
        }
        for (int i = 0; i < nodes.Length; i++)
        {
            var deadline = DateTime.UtcNow.AddSeconds(15);
            while (CountApplied(nodes[i]) == before[i] && DateTime.UtcNow < deadline) Thread.Sleep(50);
            Assert.True(CountApplied(nodes[i]) > before[i], $"{nodes[i]} did not apply the change:\n{Logs()}");
        }

        int CountApplied(string node) =>
            File.ReadAllLines(Path.Combine(Directory, node + ".log")).Count(l => l.StartsWith("applied ", StringComparison.Ordinal));
    }

    public int NodePid(string node) => int.Parse(File.ReadAllText(Path.Combine(Directory, node + ".pid")).Trim());

    /// <summary>
    /// Runs <paramref name="command"/> in <paramref name="pod"/> while tcpdump watches the underlay bridge for
    /// <paramref name="count"/> packets matching <paramref name="filter"/> (6 s at most); returns tcpdump's lines.
    /// </summary>
    public string UnderlayDuring(string filter, int count, string pod, params string[] command)
    {
        string log = Path.Combine(Directory, "underlay-tcpdump.log");
        string inPod = string.Join(' ', new[] { "ip", "netns", "exec", $"{Prefix}-{pod}" }.Concat(command));
        var (exit, text) = KernelLab.Run("ip", ["netns", "exec", $"{Prefix}-underlay", "sh", "-c",
            $"timeout 6 tcpdump -i br0 -nn -l -c {count} '{filter}' 2>{log} & " +
            $"for i in $(seq 50); do grep -q listening {log} && break; sleep 0.1; done; {inPod} >/dev/null; wait"], TimeSpan.FromSeconds(20));
        Assert.True(exit == 0, $"{text}\n{File.ReadAllText(log)}");
        return text;
    }

    public void Dispose()
    {
        GC.SuppressFinalize(this);
        if (Prefix.Length == 0) return;
        Script("down", TimeSpan.FromSeconds(60));
        try { System.IO.Directory.Delete(Directory, recursive: true); } catch (IOException) { }
    }
}

/// <summary>The demo cluster with `tunnel: direct`: pod frames cross the underlay to the peer node's MAC, unencapsulated.</summary>
public sealed class DirectRoutedDemoCluster() : DemoCluster("direct");

/// <summary>The demo with pods on veths made by fastpath-cni, attached through AF_PACKET (TPACKET_V3).</summary>
public sealed class VethPacketDemoCluster() : DemoCluster("vxlan", "veth", "packet");

/// <summary>The demo with pods on veths made by fastpath-cni, attached through libpcap (SharpPcap).</summary>
public sealed class VethPcapDemoCluster() : DemoCluster("vxlan", "veth", "pcap");

/// <summary>The demo with pods on veths made by fastpath-cni, attached through AF_XDP (copy mode).</summary>
public sealed class VethXdpDemoCluster() : DemoCluster("vxlan", "veth", "xdp");

[CollectionDefinition(Name, DisableParallelization = true)]
public sealed class VethXdpDemoClusterCollection : ICollectionFixture<VethXdpDemoCluster>
{
    public const string Name = "live demo cluster, pods on veths, AF_XDP";
}

[CollectionDefinition(Name, DisableParallelization = true)]
public sealed class VethPacketDemoClusterCollection : ICollectionFixture<VethPacketDemoCluster>
{
    public const string Name = "live demo cluster, pods on veths, AF_PACKET";
}

[CollectionDefinition(Name, DisableParallelization = true)]
public sealed class VethPcapDemoClusterCollection : ICollectionFixture<VethPcapDemoCluster>
{
    public const string Name = "live demo cluster, pods on veths, libpcap";
}

/// <summary>The live tests share one demo cluster and run alone (iperf3 and timing-sensitive flows).</summary>
[CollectionDefinition(Name, DisableParallelization = true)]
public sealed class DemoClusterCollection : ICollectionFixture<DemoCluster>
{
    public const string Name = "live demo cluster";
}

[CollectionDefinition(Name, DisableParallelization = true)]
public sealed class DirectRoutedDemoClusterCollection : ICollectionFixture<DirectRoutedDemoCluster>
{
    public const string Name = "live demo cluster, direct routing";
}
