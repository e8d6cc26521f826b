using System.Text.Json;
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
public class VethXdpLiveTests(VethXdpDemoCluster cluster, ITestOutputHelper output) : DemoClusterMainCases(cluster, output);
