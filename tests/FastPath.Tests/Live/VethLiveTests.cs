using System.Globalization;
using System.Text.Json;
using System.Text.RegularExpressions;
using FastPath.DataPlane.Ports;
using FastPath.Tests.Kernel;

namespace FastPath.Tests.Live;

/// <summary>The demo's main cases with pods on veths made by fastpath-cni, attached through AF_PACKET; and the
/// plugin itself, invoked as a container runtime invokes it (scripts/demo-cluster.sh cni).</summary>
[Collection(VethPacketDemoClusterCollection.Name)]
public class VethPacketLiveTests(VethPacketDemoCluster cluster, ITestOutputHelper output) : DemoClusterMainCases(cluster, output)
{
    // node namespace pod ipv4 ipv6 mac, as scripts/demo-cluster.sh's PODS.
    public static TheoryData<string, string, string, string, string, string> DemoPods => new()
    {
        { "node-a", "default", "client", "10.244.1.10", "fd00:10:244:1::a", "02:42:0a:f4:01:0a" },
        { "node-a", "shop", "web-a", "10.244.1.11", "fd00:10:244:1::b", "02:42:0a:f4:01:0b" },
        { "node-b", "shop", "web-b", "10.244.2.11", "fd00:10:244:2::b", "02:42:0a:f4:02:0b" },
        { "node-b", "shop", "cart", "10.244.2.12", "fd00:10:244:2::c", "02:42:0a:f4:02:0c" },
    };

    [Theory]
    [MemberData(nameof(DemoPods))]
    public void CniCheckPassesForEveryDemoPodAndItsResultIsSpec10(string node, string ns, string pod, string ip4, string ip6, string mac)
    {
        Cluster.Require();
        string result = Path.Combine(Cluster.Directory, pod + ".cni.json");
        using (var json = JsonDocument.Parse(File.ReadAllText(result)))
        {
            var root = json.RootElement;
            Assert.Equal("1.0.0", root.GetProperty("cniVersion").GetString());
            Assert.Equal(LinkDevice.PortInterfaceName($"{ns}/{pod}"), root.GetProperty("interfaces")[0].GetProperty("name").GetString());
            Assert.Equal(mac, root.GetProperty("interfaces")[1].GetProperty("mac").GetString());
            Assert.Equal([$"{ip4}/32", $"{ip6}/128"], root.GetProperty("ips").EnumerateArray().Select(i => i.GetProperty("address").GetString()));
        }
        var (exit, text) = Cni("CHECK", node, ns, pod, ip4, ip6, mac, result);
        Assert.True(exit == 0, text);
    }

    [Fact]
    public void AFailedAddLeavesNothingBehindAndDelIsIdempotent()
    {
        Cluster.Require();
        // shop/ghost is in no manifest: the node refuses to attach it, and the plugin undoes the veth and the address.
        string netns = $"{Cluster.Prefix}-ghost";
        Assert.Equal(0, KernelLab.Run("ip", ["netns", "add", netns], Short).Exit);
        try
        {
            var (exit, text) = Cni("ADD", "node-a", "shop", "ghost", "10.244.1.30", "fd00:10:244:1::1e", "02:42:0a:f4:01:1e");
            Assert.NotEqual(0, exit);
            using (var error = JsonDocument.Parse(text)) Assert.Equal(101, error.RootElement.GetProperty("code").GetInt32());
            Assert.Contains("shop/ghost", text);
            string host = LinkDevice.PortInterfaceName("shop/ghost");
            Assert.NotEqual(0, KernelLab.Run("ip", ["-n", $"{Cluster.Prefix}-node-a", "link", "show", host], Short).Exit);
            Assert.NotEqual(0, KernelLab.Run("ip", ["-n", netns, "link", "show", "eth0"], Short).Exit);
            Assert.False(File.Exists(Path.Combine(Cluster.Directory, "ipam-node-a", "fastpath", "10.244.1.30")), "the address was not released");
            for (int i = 0; i < 2; i++) Assert.Equal(0, Cni("DEL", "node-a", "shop", "ghost", "10.244.1.30", "fd00:10:244:1::1e", "02:42:0a:f4:01:1e").Exit);
        }
        finally
        {
            KernelLab.Run("ip", ["netns", "del", netns], Short);
        }
    }

    [Fact]
    public void ANewPodIsAddedTalksAndIsDeletedThroughThePlugin()
    {
        Cluster.Require();
        string manifest = Path.Combine(Cluster.Directory, "cluster", "extra.yaml");
        string netns = $"{Cluster.Prefix}-extra";
        string[] pod = ["node-a", "shop", "extra", "10.244.1.20", "fd00:10:244:1::14", "02:42:0a:f4:01:14"];
        Cluster.WriteFile(manifest, """
            apiVersion: v1
            kind: Pod
            metadata:
              name: extra
              namespace: shop
              labels: {app: client}
              annotations: {fastpath.io/mac: "02:42:0a:f4:01:14"}
            spec: {nodeName: node-a, containers: [{name: c, image: demo}]}
            status: {podIP: 10.244.1.20, podIPs: [{ip: 10.244.1.20}, {ip: "fd00:10:244:1::14"}]}
            """);
        Assert.Equal(0, KernelLab.Run("ip", ["netns", "add", netns], Short).Exit);
        try
        {
            var (exit, result) = Cni("ADD", pod);
            Assert.True(exit == 0, $"{result}\n{Cluster.Logs()}");
            string resultFile = Path.Combine(Cluster.Directory, "extra.cni.json");
            File.WriteAllText(resultFile, result);
            Cluster.AssertPing("extra", WebB);
            Cluster.AssertPing("extra", "fd00:10:244:2::b");
            var seen = HttpConnections("extra", "10.96.0.20", 80, connections: 8, requests: 1);
            Assert.All(seen, s => Assert.Equal("10.244.1.20", s.Source));
            Assert.Equal(0, Cni("CHECK", [.. pod, resultFile]).Exit);

            Assert.Equal(0, Cni("DEL", pod).Exit);
            string host = LinkDevice.PortInterfaceName("shop/extra");
            Assert.NotEqual(0, KernelLab.Run("ip", ["-n", $"{Cluster.Prefix}-node-a", "link", "show", host], Short).Exit);
            Assert.NotEqual(0, Cni("CHECK", [.. pod, resultFile]).Exit);
            Assert.Equal(0, Cni("DEL", pod).Exit); // idempotent
        }
        finally
        {
            KernelLab.Run("ip", ["netns", "del", netns], Short);
            Cluster.WriteFile(manifest, null);
        }
    }

    private (int Exit, string Output) Cni(string command, params string[] arguments) =>
        Cluster.Script(["cni", command, .. arguments], TimeSpan.FromSeconds(60));
}

/// <summary>The demo's main cases with pods on veths, attached through libpcap.</summary>
[Collection(VethPcapDemoClusterCollection.Name)]
public class VethPcapLiveTests(VethPcapDemoCluster cluster, ITestOutputHelper output) : DemoClusterMainCases(cluster, output);

/// <summary>The demo's main cases with pods on veths, attached through AF_XDP.</summary>
[Collection(VethXdpDemoClusterCollection.Name)]
public class VethXdpLiveTests(VethXdpDemoCluster cluster, ITestOutputHelper output) : DemoClusterMainCases(cluster, output)
{
    /// <summary>
    /// Between two pods of one node (client and web-a on node-a), both veths attached through AF_XDP on the worker's
    /// one UMEM, every frame is forwarded by descriptor: the node's status line counts the forwards without a copy, and
    /// none copied (node-a's uplink is an AF_XDP veth too, so nothing it sends is copied either). Nothing is lost: 50
    /// pings all answered, and 8 MiB sent over TCP arrive with the same SHA-1.
    /// </summary>
    [Fact]
    public void PodToPodOnOneNodeIsForwardedWithoutACopyAndLosesNothing()
    {
        Cluster.Require();
        var (withoutCopyBefore, _) = Copies(StatusLines().LastOrDefault() ?? "");
        var (exit, text) = Cluster.In("client", TimeSpan.FromSeconds(30), "ping", "-c", "50", "-i", "0.02", "-W", "2", WebA);
        Assert.True(exit == 0 && text.Contains("50 received"), $"{text}\n{Cluster.Logs()}");
        // 8 MiB of random bytes client → web-a over TCP (nc), hashed where they arrive.
        var data = new byte[8 << 20];
        new Random(19).NextBytes(data);
        string file = Path.Combine(Cluster.Directory, "transfer.bin"), received = Path.Combine(Cluster.Directory, "transfer.sha1");
        File.WriteAllBytes(file, data);
        string p = Cluster.Prefix;
        (exit, text) = KernelLab.Run("sh", ["-c",
            $"ip netns exec {p}-web-a sh -c 'timeout 30 nc -l {WebA} 9100 | sha1sum' > {received} & " +
            $"for i in $(seq 50); do ip netns exec {p}-client timeout 30 nc -N {WebA} 9100 < {file} && break; sleep 0.2; done; wait"],
            TimeSpan.FromSeconds(60));
        Assert.True(exit == 0, $"{text}\n{Cluster.Logs()}");
        Assert.Equal(Convert.ToHexStringLower(System.Security.Cryptography.SHA1.HashData(data)), File.ReadAllText(received).Split(' ')[0]);
        // The status line comes every 5 s: wait (bounded) for the first one printed after the traffic.
        int seen = StatusLines().Count;
        var deadline = DateTime.UtcNow.AddSeconds(15);
        while (StatusLines().Count == seen && DateTime.UtcNow < deadline) Thread.Sleep(100);
        var lines = StatusLines();
        Assert.True(lines.Count > seen, $"no status line after the traffic\n{Cluster.Logs()}");
        var (withoutCopy, copied) = Copies(lines[^1]);
        Output.WriteLine(lines[^1]);
        // 100 ICMP frames plus the transfer: 8 MiB in at most 1448-byte segments, each way through the node.
        Assert.True(withoutCopy - withoutCopyBefore >= 100 + (8 << 20) / 1448, lines[^1]);
        Assert.Equal(0, copied);
    }

    private List<string> StatusLines() =>
        File.ReadAllLines(Path.Combine(Cluster.Directory, "node-a.log")).Where(l => l.StartsWith("status: ", StringComparison.Ordinal)).ToList();

    /// <summary>The totals of a status line's "tx without copy KIND=N ..." and ", copied KIND=N ..." parts.</summary>
    private static (long WithoutCopy, long Copied) Copies(string line) =>
        (Sum(Regex.Match(line, ", tx without copy ([^,]*)")), Sum(Regex.Match(line, ", copied ([^,]*)")));

    private static long Sum(Match part) => !part.Success ? 0
        : part.Groups[1].Value.Split(' ').Sum(kv => long.Parse(kv[(kv.IndexOf('=') + 1)..], CultureInfo.InvariantCulture));
}
