using System.Text.Json;
using FastPath.Tests.Support;

namespace FastPath.Tests.Trace;

/// <summary>
/// `fastpath trace` on the demo cluster: golden outputs per kind of path (read and checked by hand once, then kept;
/// set FASTPATH_UPDATE_GOLDEN=1 to rewrite them after an intended change), and the traced verdict of every packet
/// of the demo capture equal to what `replay` does with it.
/// </summary>
public class TraceCommandTests
{
    private static string Demo(string name) => Path.Combine(RepositoryFiles.Root, "pcaps", "demo", name);
    private static string Golden(string name) => Path.Combine(RepositoryFiles.Root, "tests", "FastPath.Tests", "Trace", "golden", name);

    private static (int Exit, string Out, string Err) Fastpath(params string[] args)
    {
        var stdout = new StringWriter();
        var stderr = new StringWriter();
        int exit = FastPath.Program.Run(args, stdout, stderr);
        return (exit, stdout.ToString(), stderr.ToString());
    }

    private static (int Exit, string Out, string Err) Trace(params string[] args) =>
        Fastpath(["trace", "--cluster", Demo("cluster"), "--node", "node-a", .. args]);

    public static TheoryData<string, string[]> GoldenCases => new()
    {
        { "same-node.txt", ["tcp 10.244.1.10:40000 > 10.244.1.11:8080"] },
        { "clusterip-dnat.txt", ["tcp 10.244.1.10:40000 > 10.96.0.20:80"] },
        { "clusterip-dnat.json", ["tcp 10.244.1.10:40000 > 10.96.0.20:80", "--json"] },
        { "vxlan-encap.txt", ["udp 10.244.1.10:5000 > 10.244.2.11:53"] },
        { "vxlan-encap-ipv6.txt", ["tcp [fd00:10:244:1::a]:40000 > [fd00:10:244:2::b]:8080"] },
        { "masquerade.txt", ["udp 10.244.1.10:4000 > 8.8.8.8:53"] },
        { "no-route-icmp.txt", ["icmp 10.244.1.10 > 10.244.3.1"] },
        { "drop-ttl-exceeded.txt", ["tcp 10.244.1.10:40000 > 10.244.2.11:8080 ttl 1"] },
        { "drop-spoofed-source.txt", ["--from", "default/client", "tcp 10.244.1.99:40000 > 10.244.1.11:8080"] },
        { "drop-not-for-node.txt", ["tcp 203.0.113.9:5555 > 10.244.9.9:80"] },
        { "drop-unknown-service-port.txt", ["tcp 10.244.1.10:40000 > 10.96.0.20:81"] },
        { "capture-vxlan-decap.txt", ["--capture", Demo("demo.pcapng"), "--packet", "20"] },
        { "capture-masquerade-reply.txt", ["--capture", Demo("demo.pcapng"), "--packet", "22"] },
        { "capture-conntrack-miss.txt", ["--capture", Demo("demo.pcapng"), "--packet", "23"] },
    };

    [Theory]
    [MemberData(nameof(GoldenCases))]
    public void TraceMatchesGolden(string golden, string[] args)
    {
        var (exit, stdout, stderr) = Trace(args);
        Assert.True(exit == 0, stderr);
        stdout = stdout.Replace(Demo("demo.pcapng"), "demo.pcapng");
        if (Environment.GetEnvironmentVariable("FASTPATH_UPDATE_GOLDEN") == "1") File.WriteAllText(Golden(golden), stdout);
        Assert.Equal(File.ReadAllText(Golden(golden)), stdout);
    }

    /// <summary>NetworkPolicy verdicts name the policies isolating the pod (the network-policy conformance cluster).</summary>
    [Theory]
    [InlineData("policy-allowed.txt", "tcp 10.244.1.10:40000 > 10.244.1.11:8080")]
    [InlineData("policy-denied.txt", "tcp 10.244.1.11:40000 > 10.244.1.10:8080")]
    public void PolicyVerdictsNameThePolicy(string golden, string packet)
    {
        string cluster = Path.Combine(RepositoryFiles.Root, "tests", "conformance", "cases", "network-policy", "cluster");
        var (exit, stdout, stderr) = Fastpath("trace", "--cluster", cluster, "--node", "node-a", packet);
        Assert.True(exit == 0, stderr);
        if (Environment.GetEnvironmentVariable("FASTPATH_UPDATE_GOLDEN") == "1") File.WriteAllText(Golden(golden), stdout);
        Assert.Equal(File.ReadAllText(Golden(golden)), stdout);
        Assert.Contains("default/only-client-8080", stdout);
    }

    /// <summary>The trace runs the real pipeline: for every packet of the demo capture, its traced verdict is replay's.</summary>
    [Fact]
    public void TracedVerdictOfEveryDemoPacketEqualsReplay()
    {
        using var tmp = new TempFolder();
        var (exit, _, stderr) = Fastpath("replay", Demo("demo.pcapng"), "--cluster", Demo("cluster"), "--node", "node-a", "--out", tmp.Path, "--quiet");
        Assert.True(exit == 0, stderr);
        var dropped = File.ReadAllLines(tmp.File("drops.jsonl")).Select(l => JsonDocument.Parse(l).RootElement)
            .ToDictionary(d => d.GetProperty("packet").GetInt32(), d => d.GetProperty("reason").GetString());
        using var summary = JsonDocument.Parse(File.ReadAllText(tmp.File("summary.json")));
        long packets = summary.RootElement.GetProperty("packets_in").GetInt64();

        var txByPort = new Dictionary<string, long>();
        for (int n = 1; n <= packets; n++)
        {
            var (traceExit, json, traceErr) = Trace("--capture", Demo("demo.pcapng"), "--packet", n.ToString(), "--json");
            Assert.True(traceExit == 0, traceErr);
            var verdict = JsonDocument.Parse(json).RootElement.GetProperty("verdict");
            Assert.Equal(dropped.GetValueOrDefault(n), verdict.GetProperty("drop").GetString());
            if (verdict.GetProperty("egress").GetString() is { } egress) txByPort[egress] = txByPort.GetValueOrDefault(egress) + 1;
        }
        foreach (var port in summary.RootElement.GetProperty("ports").EnumerateObject())
            Assert.Equal(port.Value.GetProperty("tx_packets").GetInt64(), txByPort.GetValueOrDefault(port.Name));
    }

    [Theory]
    [InlineData("tcp 10.244.1.10 > 10.96.0.20:80", "needs a port")]
    [InlineData("gre 10.244.1.10 > 10.96.0.20", "protocol must be")]
    [InlineData("tcp 10.244.1.10:1 > [fd00::1]:80", "same address family")]
    [InlineData("tcp 10.244.1.10:1 10.96.0.20:80", "expected PROTO")]
    [InlineData("tcp 10.244.1.10:1 > 10.96.0.20:80 bogus", "unknown option")]
    public void BadDescriptionsFailWithExitTwo(string packet, string message)
    {
        var (exit, _, stderr) = Trace(packet);
        Assert.Equal(2, exit);
        Assert.Contains(message, stderr);
    }

    [Fact]
    public void UnknownPortAndMissingPacketFailWithExitTwo()
    {
        var (exit, _, stderr) = Trace("--from", "default/nobody", "tcp 10.244.1.10:1 > 10.96.0.20:80");
        Assert.Equal(2, exit);
        Assert.Contains("no port named \"default/nobody\"", stderr);
        (exit, _, stderr) = Trace("--capture", Demo("demo.pcapng"), "--packet", "999");
        Assert.Equal(2, exit);
        Assert.Contains("no packet 999", stderr);
    }
}
