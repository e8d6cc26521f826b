using FastPath.Live;
using FastPath.Tests.Support;

namespace FastPath.Tests.Run;

/// <summary>`fastpath run --attach`: bad options and unusable interfaces stop with one line naming them, exit code 2,
/// before anything is forwarded; the port an interface lands on follows its name.</summary>
public class AttachOptionsTests
{
    private static string DemoCluster => Path.Combine(RepositoryFiles.Root, "pcaps", "demo", "cluster");

    [Theory]
    [InlineData(new[] { "--attach-mode", "bogus", "--attach", "eth0" }, "--attach-mode bogus: must be auto, xdp, packet or pcap")]
    [InlineData(new[] { "--attach-mode", "pcap", "--workers", "2", "--attach", "eth0" }, "--attach-mode pcap --workers 2: libpcap has one queue per interface; use --workers 1 or --attach-mode packet")]
    [InlineData(new[] { "--attach", "much-too-long-name" }, "--attach much-too-long-name: \"much-too-long-name\" is not a valid interface name")]
    [InlineData(new[] { "--attach", "eth0=" }, "--attach eth0=: the port after '=' is empty (uplink, host or NAMESPACE/POD)")]
    [InlineData(new[] { "--attach", "lo", "--attach", "lo" }, "--attach lo: lo is attached twice")]
    [InlineData(new string[0], "no ports: give --tap (TAP devices), --attach IFNAME (existing interfaces) and/or --cni-socket PATH (pods on veths)")]
    [InlineData(new[] { "--attach", "fp19nosuchif" }, "fastpath run: attach fp19nosuchif: no such interface in this network namespace (see `ip link show`)")]
    [InlineData(new[] { "--attach", "fp0123456789ab" }, "--attach fp0123456789ab: no pod of node node-a has this interface name")]
    [InlineData(new[] { "--attach", "lo=default/nobody" }, "--attach lo=default/nobody: node node-a has no port default/nobody")]
    public void BadAttachOptionsExitWithCode2AndOneLine(string[] options, string message)
    {
        var (exit, _, err) = FastpathCli.Run(["run", "--cluster", DemoCluster, "--node", "node-a", "--healthz", "off", "--duration", "3", .. options]);
        Assert.Equal(2, exit);
        Assert.Contains(message, err);
        Assert.Single(err.Split('\n', StringSplitOptions.RemoveEmptyEntries));
    }

    [Fact]
    public void AnInterfaceLandsOnThePortItsNameImplies()
    {
        var options = new LinkOptions(Taps: false, "fp-uplink", null,
            [new AttachSpec("eth1", null), new AttachSpec(TapSet.PodTapName("shop/web"), null), new AttachSpec("vethx", "default/client")],
            AttachMode.Packet);
        var set = new TapSet(options, TextWriter.Null);
        var mac = default(FastPath.DataPlane.Packets.MacAddress);
        FastPath.DataPlane.Pipeline.PortDefinition Port(string name, FastPath.DataPlane.Pipeline.PortKind kind) => new(name, kind, mac, []);
        Assert.Equal(("eth1", true, true), set.Plan(Port("uplink", FastPath.DataPlane.Pipeline.PortKind.Uplink)));
        Assert.Equal((TapSet.PodTapName("shop/web"), true, true), set.Plan(Port("shop/web", FastPath.DataPlane.Pipeline.PortKind.Pod)));
        Assert.Equal(("vethx", true, true), set.Plan(Port("default/client", FastPath.DataPlane.Pipeline.PortKind.Pod)));
        // A pod nobody named waits for its veth (the CNI plugin's), instead of failing.
        Assert.Equal((TapSet.PodTapName("shop/cart"), true, false), set.Plan(Port("shop/cart", FastPath.DataPlane.Pipeline.PortKind.Pod)));
        Assert.Null(set.Plan(Port("host", FastPath.DataPlane.Pipeline.PortKind.Host)));
    }
}
