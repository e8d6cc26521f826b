using System.Buffers.Binary;
using FastPath.DataPlane.Pipeline;
using FastPath.DataPlane.Ports;
using FastPath.Tests.Kernel;
using FastPath.Tests.Support;
using static FastPath.Tests.Support.TestFrames;

namespace FastPath.Tests.Ports;

/// <summary>
/// A veth pair this test creates: end A (fp19vXXXXa) stays in this process's namespace and is attached through
/// <see cref="PacketSocketDevice"/>, <see cref="PcapLinkDevice"/> or <see cref="XdpSocketDevice"/> on port 0 of a <see cref="TapPort"/>; end B is moved
/// into a namespace of its own (fp19v-XXXX) with 10.77.0.1/24 and a permanent neighbour 10.77.0.2. Echo requests
/// written to A from 10.77.0.2 come back from B's kernel as echo replies: an existing interface in both directions,
/// nothing outside the pair involved.
/// </summary>
internal sealed class VethLab : IDisposable
{
    public const string PeerMac = "02:00:00:00:77:02";
    private readonly string _namespace;
    private readonly byte[] _kernelMac;

    public VethLab(LinkKind kind, int queues = 1)
    {
        if (!OperatingSystem.IsLinux()) Assert.Skip("AF_PACKET and veths need Linux");
        if (!Environment.IsPrivilegedProcess) Assert.Skip("not root: creating veths and raw sockets needs root");
        string id = Random.Shared.Next(0x1000, 0xFFFF).ToString("x4");
        _namespace = $"fp19v-{id}";
        Name = $"fp19v{id}a";
        string peer = $"fp19v{id}b";
        Ip("netns", "add", _namespace);
        Ip("netns", "exec", _namespace, "sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=1", "net.ipv6.conf.default.disable_ipv6=1");
        Ip("link", "add", Name, "type", "veth", "peer", "name", peer, "netns", _namespace);
        KernelLab.Run("sysctl", ["-qw", $"net.ipv6.conf.{Name}.disable_ipv6=1"], TimeSpan.FromSeconds(5));
        Ip("link", "set", Name, "up");
        Ip("-n", _namespace, "link", "set", peer, "up");
        Ip("-n", _namespace, "addr", "add", "10.77.0.1/24", "dev", peer);
        Ip("-n", _namespace, "neigh", "add", "10.77.0.2", "lladdr", PeerMac, "dev", peer, "nud", "permanent");
        _kernelMac = Mac(KernelLab.Run("ip", ["-n", _namespace, "-br", "link", "show", peer], TimeSpan.FromSeconds(5)).Output.Split(' ', StringSplitOptions.RemoveEmptyEntries)[2]);
        Device = kind switch
        {
            LinkKind.Pcap => PcapLinkDevice.Open(Name),
            LinkKind.Xdp => XdpSocketDevice.Open(Name, queues),
            _ => PacketSocketDevice.Open(Name, queues),
        };
        Port = new TapPort(TimeSpan.FromMilliseconds(50));
        Port.Attach([Device]);
    }

    public string Name { get; }
    public LinkDevice Device { get; }
    public TapPort Port { get; }

    public byte[] EchoRequest(ushort sequence) =>
        Ethernet(_kernelMac, Mac(PeerMac), 0x0800, Ipv4("10.77.0.2", "10.77.0.1", 1, IcmpEcho(8, 0x77, sequence)));

    private static void Ip(params string[] args)
    {
        var (exit, output) = KernelLab.Run("ip", args, TimeSpan.FromSeconds(10));
        Assert.True(exit == 0, $"ip {string.Join(' ', args)}: {output}");
    }

    public void Dispose()
    {
        Device?.Dispose();
        KernelLab.Run("ip", ["link", "del", Name], TimeSpan.FromSeconds(10));
        KernelLab.Run("ip", ["netns", "del", _namespace], TimeSpan.FromSeconds(10));
    }
}

public class AttachedPortTests
{
    [Theory]
    [InlineData(LinkKind.Packet)]
    [InlineData(LinkKind.Pcap)]
    [InlineData(LinkKind.Xdp)]
    public void EchoRequestsThroughAnAttachedVethComeBackAsReplies(LinkKind kind)
    {
        using var lab = new VethLab(kind);
        Assert.Equal(kind, lab.Device.Kind);
        Assert.False(lab.Device.Created);
        var batch = new PacketBatch(8);
        for (ushort seq = 1; seq <= 16; seq++) lab.Port.Transmit(0, lab.EchoRequest(seq), 0);
        Assert.Equal(16, lab.Port.Transmitted);
        var replies = new List<byte[]>();
        var deadline = DateTime.UtcNow.AddSeconds(5);
        while (replies.Count < 16 && DateTime.UtcNow < deadline)
        {
            int n = lab.Port.Receive(batch);
            for (int i = 0; i < n; i++)
            {
                Assert.Equal(0, batch.Meta[i].IngressPort);
                replies.Add(batch.Frame(i).ToArray());
            }
        }
        Assert.Equal(16, replies.Count); // our own 16 requests never come back: outgoing frames are not captured
        foreach (var frame in replies)
        {
            Assert.Equal(Mac(VethLab.PeerMac), frame[..6]);
            Assert.Equal(Ip("10.77.0.1"), frame[26..30]);
            Assert.Equal(0, frame[34]); // echo reply
            Assert.True(ChecksumsValid(frame));
        }
        Assert.Equal(Enumerable.Range(1, 16), replies.Select(f => (int)BinaryPrimitives.ReadUInt16BigEndian(f.AsSpan(40))).Order());
    }

    [Fact]
    public void AFanoutGroupSpreadsFlowsOverItsQueuesAndEachFrameArrivesOnce()
    {
        using var lab = new VethLab(LinkKind.Packet, queues: 2);
        var ports = new[] { lab.Port, new TapPort(TimeSpan.FromMilliseconds(50), queue: 1) };
        ports[1].Attach([lab.Device]);
        var batch = new PacketBatch(64);
        for (ushort seq = 1; seq <= 32; seq++) lab.Port.Transmit(0, lab.EchoRequest(seq), 0);
        long received = 0;
        var deadline = DateTime.UtcNow.AddSeconds(5);
        while (received < 32 && DateTime.UtcNow < deadline)
            foreach (var port in ports) received += port.Receive(batch);
        Thread.Sleep(100);
        foreach (var port in ports) received += port.Receive(batch);
        Assert.Equal(32, received);
    }

    /// <summary>A veth has one queue: AF_XDP for two workers fails with one line naming the interface and the queue
    /// (what `--attach-mode auto` logs before falling back to AF_PACKET, which fans out over any number of sockets),
    /// and leaves nothing attached: AF_PACKET then opens the same interface.</summary>
    [Fact]
    public void AfXdpForMoreQueuesThanTheInterfaceHasFailsCleanlyAndAfPacketTakesOver()
    {
        using var lab = new VethLab(LinkKind.Packet);
        var e = Assert.Throws<IOException>(() => XdpSocketDevice.Open(lab.Name, queues: 2));
        Assert.StartsWith($"attach {lab.Name} (xdp): bind to queue 1 (the interface has fewer queues than workers: `ethtool -l {lab.Name}`): ", e.Message);
        Assert.DoesNotContain('\n', e.Message);
        using var xdp = XdpSocketDevice.Open(lab.Name); // the failed attempt left no program or socket behind
        using var packet = PacketSocketDevice.Open(lab.Name, queues: 2);
        Assert.Equal(2, packet.Queues);
    }

    [Fact]
    public void AMissingOrDownInterfaceIsNamedWithWhatToDo()
    {
        if (!OperatingSystem.IsLinux()) Assert.Skip("Linux interfaces");
        var missing = Assert.Throws<IOException>(() => PacketSocketDevice.Open("fp19nosuchif"));
        Assert.Equal("attach fp19nosuchif: no such interface in this network namespace (see `ip link show`)", missing.Message);
        if (!Environment.IsPrivilegedProcess) return;
        string name = $"fp19d{Random.Shared.Next(0x1000, 0xFFFF):x4}";
        Assert.Equal(0, KernelLab.Run("ip", ["link", "add", name, "type", "veth", "peer", "name", name + "p"], TimeSpan.FromSeconds(5)).Exit);
        try
        {
            var down = Assert.Throws<IOException>(() => PacketSocketDevice.Open(name));
            Assert.Equal($"attach {name}: the interface is down (`ip link set {name} up` first)", down.Message);
        }
        finally
        {
            KernelLab.Run("ip", ["link", "del", name], TimeSpan.FromSeconds(5));
        }
    }
}

/// <summary>The attached ports' receive and transmit paths allocate nothing per packet.</summary>
[Collection(AllocationCollection.Name)]
public class AttachedPortAllocationTests
{
    [Theory]
    [InlineData(LinkKind.Packet)]
    [InlineData(LinkKind.Pcap)]
    [InlineData(LinkKind.Xdp)]
    public void EchoRoundTripsThroughAnAttachedVethAllocateNothing(LinkKind kind)
    {
        using var lab = new VethLab(kind);
        var requests = Enumerable.Range(0, 32).Select(i => lab.EchoRequest((ushort)i)).ToArray();
        var batch = new PacketBatch(64);

        long RoundTrips(int rounds)
        {
            long received = 0;
            for (int r = 0; r < rounds; r++)
            {
                for (int i = 0; i < requests.Length; i++) lab.Port.Transmit(0, requests[i], 0);
                long want = received + requests.Length;
                for (int polls = 0; received < want && polls < 100; polls++) received += lab.Port.Receive(batch);
            }
            return received;
        }

        RoundTrips(50);
        long before = GC.GetAllocatedBytesForCurrentThread();
        long received = RoundTrips(2000); // 64k requests, 64k replies
        long allocated = GC.GetAllocatedBytesForCurrentThread() - before;
        Assert.True(received >= 2000 * 32 * 99 / 100, $"only {received} replies");
        Assert.Equal(0, allocated);
    }
}
