using System.Buffers.Binary;
using FastPath.DataPlane.Packets;
using FastPath.DataPlane.Pipeline;
using FastPath.DataPlane.Ports;
using FastPath.DataPlane.Telemetry;
using FastPath.Tests.Kernel;
using FastPath.Tests.Support;
using static FastPath.Tests.Support.TestFrames;

namespace FastPath.Tests.Ports;

/// <summary>
/// Two TAP devices this test creates, moved into a network namespace it creates (the descriptors stay attached), each
/// with an address there: 10.77.0.1/24 behind port 0, 10.78.0.1/24 behind port 2. Echo requests written to a device
/// from the peer 10.7x.0.2 (a permanent neighbour, so the kernel never ARPs) come back as echo replies, which is
/// real traffic through <see cref="TapPort"/> in both directions with nothing outside the namespace involved.
/// </summary>
internal sealed class TapLab : IDisposable
{
    public const string PeerMac = "02:00:00:00:77:02";
    private readonly string _namespace;
    private readonly byte[][] _kernelMacs;

    /// <param name="offloads">Open the devices with virtio-net headers and offloads (the default, as `run` does).</param>
    public TapLab(bool offloads = true)
    {
        if (!OperatingSystem.IsLinux()) Assert.Skip("TAP devices need Linux");
        if (!Environment.IsPrivilegedProcess) Assert.Skip("not root: creating TAP devices needs root");
        if (!File.Exists("/dev/net/tun")) Assert.Skip("/dev/net/tun is missing (modprobe tun)");
        string id = Random.Shared.Next(0x1000, 0xFFFF).ToString("x4");
        _namespace = $"fpt-{id}";
        Names = [$"fpt{id}a", $"fpt{id}b"];
        Ip("netns", "add", _namespace);
        Ip("netns", "exec", _namespace, "sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=1", "net.ipv6.conf.default.disable_ipv6=1");
        Devices = Names.Select(n => TapDevice.Open(n, offloads: offloads)).ToArray();
        // Read while the devices are still in this process's namespace (/sys/class/net shows only that one).
        _kernelMacs = Names.Select(n => Mac(File.ReadAllText($"/sys/class/net/{n}/address").Trim())).ToArray();
        for (int i = 0; i < 2; i++)
        {
            Ip("link", "set", Names[i], "netns", _namespace);
            Ip("-n", _namespace, "link", "set", Names[i], "up");
            Ip("-n", _namespace, "addr", "add", $"10.7{7 + i}.0.1/24", "dev", Names[i]);
            Ip("-n", _namespace, "neigh", "add", $"10.7{7 + i}.0.2", "lladdr", PeerMac, "dev", Names[i], "nud", "permanent");
        }
        Port = new TapPort(TimeSpan.FromMilliseconds(50));
        Port.Attach([Devices[0], null, Devices[1]]);
    }

    public string[] Names { get; }
    public TapDevice[] Devices { get; }
    public TapPort Port { get; }

    /// <summary>The MAC of the kernel's side of device <paramref name="device"/>.</summary>
    public byte[] KernelMac(int device) => _kernelMacs[device];

    /// <summary>An echo request from the peer to the namespace's address behind <paramref name="device"/> (0 or 1).</summary>
    public byte[] EchoRequest(int device, ushort sequence) =>
        Ethernet(_kernelMacs[device], Mac(PeerMac), 0x0800,
            Ipv4($"10.7{7 + device}.0.2", $"10.7{7 + device}.0.1", 1, IcmpEcho(8, 0x77, sequence)));

    /// <summary>Deletes the namespace while the devices are still open: the kernel unregisters them under us.</summary>
    public void DeleteNamespace() => Ip("netns", "del", _namespace);

    public bool Exists(string name) =>
        KernelLab.Run("ip", ["-n", _namespace, "link", "show", name], TimeSpan.FromSeconds(10)).Exit == 0;

    private static void Ip(params string[] args)
    {
        var (exit, output) = KernelLab.Run("ip", args, TimeSpan.FromSeconds(10));
        Assert.True(exit == 0, $"ip {string.Join(' ', args)}: {output}");
    }

    public void Dispose()
    {
        foreach (var d in Devices ?? []) d.Dispose();
        KernelLab.Run("ip", ["netns", "del", _namespace], TimeSpan.FromSeconds(10));
    }
}

public class TapPortTests
{
    [Fact]
    public void EchoRequestsOnTwoDevicesComeBackAsRepliesOnTheirOwnPorts()
    {
        using var lab = new TapLab();
        Assert.All(lab.Devices, d => Assert.True(d.Created));
        var batch = new PacketBatch(8); // smaller than the 16 replies: they arrive over several batches
        for (ushort seq = 1; seq <= 8; seq++)
        {
            lab.Port.Transmit(0, lab.EchoRequest(0, seq), 0);
            lab.Port.Transmit(2, lab.EchoRequest(1, seq), 0);
        }
        Assert.Equal(16, lab.Port.Transmitted);
        Assert.Equal(0, lab.Port.TransmitErrors);

        var replies = new List<(short Port, byte[] Frame)>();
        var deadline = DateTime.UtcNow.AddSeconds(5);
        while (replies.Count < 16 && DateTime.UtcNow < deadline)
        {
            int n = lab.Port.Receive(batch);
            Assert.True(n <= batch.Capacity);
            for (int i = 0; i < n; i++)
            {
                var m = batch.Meta[i];
                Assert.Equal(PortIndex.None, m.EgressPort);
                Assert.InRange(m.Timestamp, TapPort.WallClock() - 10_000_000_000, TapPort.WallClock());
                replies.Add((m.IngressPort, batch.Frame(i).ToArray()));
            }
        }
        Assert.Equal(16, replies.Count);
        foreach (var (port, frame) in replies)
        {
            int device = port == 0 ? 0 : 1;
            Assert.Contains(port, new short[] { 0, 2 });
            Assert.Equal(Mac(TapLab.PeerMac), frame[..6]);
            Assert.Equal(0x0800, BinaryPrimitives.ReadUInt16BigEndian(frame.AsSpan(12)));
            Assert.Equal(Ip($"10.7{7 + device}.0.1"), frame[26..30]);
            Assert.Equal(Ip($"10.7{7 + device}.0.2"), frame[30..34]);
            Assert.Equal(0, frame[34]); // echo reply
            Assert.True(ChecksumsValid(frame));
        }
        Assert.Equal([1, 2, 3, 4, 5, 6, 7, 8], replies.Where(r => r.Port == 0).Select(r => (int)BinaryPrimitives.ReadUInt16BigEndian(r.Frame.AsSpan(40))).Order());
        Assert.Equal(8, replies.Count(r => r.Port == 2));

        foreach (var d in lab.Devices) d.Dispose();
        // Created, not persistent: closing the descriptor removed each device from the namespace it was moved to.
        Assert.All(lab.Names, n => Assert.False(lab.Exists(n), $"{n} still exists"));
    }

    [Fact]
    public void DevicesThatGoAwayAreNoLongerPolledAndWritesToThemAreCounted()
    {
        using var lab = new TapLab();
        lab.DeleteNamespace();
        var batch = new PacketBatch(8);
        // poll reports the dead devices as errors at once; each is dropped from the poll set after one report, so
        // these calls return (each after at most the 50 ms timeout) instead of spinning.
        for (int i = 0; i < 3; i++) Assert.Equal(0, lab.Port.Receive(batch));
        Assert.Equal(2, lab.Port.FailedDevices);
        lab.Port.Transmit(0, lab.EchoRequest(0, 1), 0);
        Assert.Equal(1, lab.Port.TransmitErrors);
        Assert.Equal(0, lab.Port.Transmitted);
    }

    [Fact]
    public void AnExistingPersistentTapIsAttachedAndLeftInPlace()
    {
        if (!OperatingSystem.IsLinux() || !Environment.IsPrivilegedProcess || !File.Exists("/dev/net/tun"))
            Assert.Skip("needs Linux, root and /dev/net/tun");
        string name = $"fpt{Random.Shared.Next(0x1000, 0xFFFF):x4}p";
        Assert.Equal(0, KernelLab.Run("ip", ["tuntap", "add", "mode", "tap", "name", name], TimeSpan.FromSeconds(10)).Exit);
        try
        {
            using (var device = TapDevice.Open(name)) Assert.False(device.Created);
            Assert.True(Directory.Exists($"/sys/class/net/{name}"), "an attached persistent TAP must survive the close");
        }
        finally
        {
            KernelLab.Run("ip", ["tuntap", "del", "mode", "tap", "name", name], TimeSpan.FromSeconds(10));
        }
    }

    [Theory]
    [InlineData("")]
    [InlineData("sixteen-chars-xx")]
    [InlineData("has space")]
    [InlineData("a/b")]
    public void InvalidNamesAreRefusedBeforeAnySyscall(string name)
    {
        Assert.False(TapDevice.IsValidName(name));
        Assert.Throws<ArgumentException>(() => TapDevice.Open(name));
    }
}

/// <summary>The live receive/transmit path allocates nothing per packet.</summary>
[Collection(AllocationCollection.Name)]
public class TapPortAllocationTests
{
    [Fact]
    public void EchoRoundTripsThroughTapPortAllocateNothing()
    {
        using var lab = new TapLab();
        var requests = Enumerable.Range(0, 32).Select(i => lab.EchoRequest(i % 2, (ushort)i)).ToArray();
        var batch = new PacketBatch(64);

        long RoundTrips(int rounds)
        {
            long received = 0;
            for (int r = 0; r < rounds; r++)
            {
                for (int i = 0; i < requests.Length; i++) lab.Port.Transmit(i % 2 == 0 ? 0 : 2, requests[i], 0);
                long want = received + requests.Length;
                for (int polls = 0; received < want && polls < 100; polls++) received += lab.Port.Receive(batch);
            }
            return received;
        }

        RoundTrips(50); // warm up: JIT, poll array, first kernel neighbour work
        long before = GC.GetAllocatedBytesForCurrentThread();
        long received = RoundTrips(4000); // 128k requests, 128k replies
        long allocated = GC.GetAllocatedBytesForCurrentThread() - before;
        Assert.True(received >= 4000 * 32 * 99 / 100, $"only {received} replies");
        Assert.Equal(0, allocated);
    }

    /// <summary>
    /// Super-frames leave with their virtio-net header rebuilt (a device with offloads) or cut into segments in
    /// software (a device without), allocating nothing either way once the segment buffer exists.
    /// </summary>
    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public void SuperFramesThroughTapPortAllocateNothing(bool offloads)
    {
        using var lab = new TapLab(offloads);
        var batch = new PacketBatch(8, PacketBatch.SuperFrameSlotSize);
        var frame = Ethernet(lab.KernelMac(0), Mac(TapLab.PeerMac), 0x0800, Ipv4("10.77.0.2", "10.77.0.1", 6, Tcp(40000, 9, 0x10, 30_000)));
        var template = new PacketMeta();
        Assert.Equal(DropReason.None, PacketParser.Parse(frame, ref template));
        (template.Gso, template.GsoSize, template.Offload, template.ChecksumOffset, template.EgressPort) =
            (GsoKind.TcpV4, 1398, OffloadFlags.ChecksumPartial, 16, 0);
        void Fill()
        {
            for (int i = 0; i < batch.Capacity; i++)
            {
                frame.CopyTo(batch.ReceiveArea(i));
                batch.SetReceived(i, frame.Length, 0, i + 1, 0);
                int offset = batch.Meta[i].Offset;
                batch.Meta[i] = template;
                batch.Meta[i].Offset = offset;
                batch.Meta[i].Length = frame.Length;
            }
            batch.Count = batch.Capacity;
        }
        Fill();
        lab.Port.TransmitBatch(batch); // warm up (and, without offloads, the segment buffer)
        long before = GC.GetAllocatedBytesForCurrentThread();
        for (int round = 0; round < 200; round++)
        {
            Fill();
            lab.Port.TransmitBatch(batch);
        }
        long allocated = GC.GetAllocatedBytesForCurrentThread() - before;
        Assert.Equal(0, allocated);
        Assert.Equal(offloads ? 0 : 201 * 8, lab.Port.SoftwareSegmented);
        Assert.True(lab.Port.Transmitted >= (offloads ? 201 * 8 : 201 * 8 * 22), $"{lab.Port.Transmitted} frames written, {lab.Port.TransmitErrors} refused");
    }
}
