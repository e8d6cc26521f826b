namespace FastPath.Tests.Live;

/// <summary>
/// Pod-to-pod across nodes with `tunnel: direct` (<see cref="DirectRoutedDemoCluster"/>): what crosses the underlay is
/// the pods' own packets, to the peer node's MAC, and real programs still reach each other.
/// </summary>
[Collection(DirectRoutedDemoClusterCollection.Name)]
public class DirectRoutingTests(DirectRoutedDemoCluster cluster)
{
    [Theory]
    [InlineData("client", "10.244.2.11")]
    [InlineData("client", "fd00:10:244:2::b")]
    [InlineData("cart", "10.244.1.10")]
    public void PingAcrossNodes(string from, string to) => cluster.AssertPing(from, to);

    [Theory]
    [InlineData("client", "10.244.1.10", "10.244.2.11", "web-b")]
    [InlineData("cart", "fd00:10:244:2::c", "fd00:10:244:1::b", "web-a")]
    public void TcpAndUdpAcrossNodesKeepBothAddresses(string from, string fromIp, string to, string backend)
    {
        cluster.AssertSeenBy(from, to, "tcp", $"{backend} {fromIp}");
        cluster.AssertSeenBy(from, to, "udp", $"{backend} {fromIp}");
    }

    [Fact]
    public void PodPacketsCrossTheUnderlayUnencapsulated()
    {
        cluster.Require();
        string seen = cluster.UnderlayDuring("icmp or udp port 8472", 4, "client", "ping", "-c", "2", "-i", "0.2", "-W", "2", "10.244.2.11");
        Assert.Contains("10.244.1.10 > 10.244.2.11: ICMP echo request", seen);
        Assert.Contains("10.244.2.11 > 10.244.1.10: ICMP echo reply", seen);
        Assert.DoesNotContain(".8472", seen);
    }
}
