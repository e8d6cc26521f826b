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

    /// <param name="umem">For AF_XDP: the memory its socket shares (XDP_SHARED_UMEM) with other labs'; null: its own.</param>
    public VethLab(LinkKind kind, int queues = 1, XdpUmem? umem = null)
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
            LinkKind.Xdp => umem is null ? XdpSocketDevice.Open(Name, queues) : XdpSocketDevice.Open(Name, [umem]),
            _ => PacketSocketDevice.Open(Name, queues),
        };
        Port = new TapPort(TimeSpan.FromMilliseconds(50));
        // On a shared UMEM the port of whoever shares it stocks the fill ring: a port of its own would too.
        if (umem is null) Port.Attach([Device]);
    }

    public string Name { get; }
    public LinkDevice Device { get; }
    public TapPort Port { get; }

    public byte[] EchoRequest(ushort sequence) =>
        Ethernet(_kernelMac, Mac(PeerMac), 0x0800, Ipv4("10.77.0.2", "10.77.0.1", 1, IcmpEcho(8, 0x77, sequence)));

    private static readonly byte[] PeerMacBytes = Mac(PeerMac);

    /// <summary>
    /// Turns, in place, an echo reply that another lab's kernel sent (10.77.0.1 → 10.77.0.2) into an echo request to
    /// this lab's kernel (10.77.0.2 → 10.77.0.1, to its MAC), as a router between the two would forward it: the same
    /// bytes, addresses swapped. False (and untouched) for any other frame.
    /// </summary>
    public bool MakeRequestFrom(Span<byte> frame)
    {
        if (frame.Length < 42 || frame[12] != 0x08 || frame[13] != 0 || frame[23] != 1 || frame[34] != 0) return false;
        _kernelMac.CopyTo(frame);
        PeerMacBytes.CopyTo(frame[6..]);
        Span<byte> address = stackalloc byte[4];
        frame.Slice(26, 4).CopyTo(address);
        frame.Slice(30, 4).CopyTo(frame[26..]);
        address.CopyTo(frame[30..]);
        frame[34] = 8;
        var icmp = frame[34..(14 + BinaryPrimitives.ReadUInt16BigEndian(frame[16..]))];
        icmp[2] = icmp[3] = 0;
        BinaryPrimitives.WriteUInt16BigEndian(icmp[2..], DataPlane.Packets.Checksum.Fold(DataPlane.Packets.Checksum.Sum(icmp)));
        return true;
    }

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

/// <summary>
/// Two veth labs attached through AF_XDP on one UMEM and one <see cref="TapPort"/> whose batch lives in that UMEM, as a
/// worker of `fastpath run` has them: <see cref="Forward"/> injects echo requests into one kernel, then turns each
/// reply that comes back into a request to the other kernel, in place, and sends it by descriptor — frames bouncing
/// between two real kernels through the zero-copy path until they have been forwarded the asked number of times.
/// </summary>
internal sealed class SharedUmemBounce : IDisposable
{
    public const int InFlight = 32;
    private readonly VethLab[] _labs;
    private readonly byte[][] _requests;

    public SharedUmemBounce()
    {
        Umem = new XdpUmem(batchCapacity: 64, chunks: 1024);
        _labs = [new VethLab(LinkKind.Xdp, umem: Umem), null!];
        try
        {
            _labs[1] = new VethLab(LinkKind.Xdp, umem: Umem);
        }
        catch
        {
            _labs[0].Dispose();
            throw;
        }
        Port = new TapPort(TimeSpan.FromMilliseconds(50)) { Umem = Umem };
        Port.Attach([_labs[0].Device, _labs[1].Device]);
        Batch = Umem.CreateBatch();
        _requests = Enumerable.Range(1, InFlight).Select(i => _labs[0].EchoRequest((ushort)i)).ToArray();
    }

    public XdpUmem Umem { get; }
    public TapPort Port { get; }
    public PacketBatch Batch { get; }

    /// <summary>Injects <see cref="InFlight"/> requests (copied into free chunks), forwards replies until
    /// <paramref name="forwards"/> were sent on, then takes the last replies without sending them.</summary>
    /// <returns>Frames received (forwards + <see cref="InFlight"/> when none was lost).</returns>
    public long Forward(long forwards, TimeSpan timeout)
    {
        for (int i = 0; i < _requests.Length; i++) Port.Transmit(0, _requests[i], 0);
        long received = 0, forwarded = 0;
        long deadline = Environment.TickCount64 + (long)timeout.TotalMilliseconds;
        while (received < forwards + InFlight && Environment.TickCount64 < deadline)
        {
            int n = Port.Receive(Batch);
            for (int i = 0; i < n; i++)
            {
                ref var m = ref Batch.Meta[i];
                received++;
                int to = 1 - m.IngressPort;
                if (forwarded < forwards && _labs[to].MakeRequestFrom(Batch.Frame(i)))
                {
                    m.EgressPort = (short)to;
                    forwarded++;
                }
            }
            Port.TransmitBatch(Batch);
        }
        return received;
    }

    /// <summary>Lets the last batch's chunks go and waits (bounded) for the kernel's last completions.</summary>
    public void Settle()
    {
        for (int i = 0; i < 40 && (Umem.WithEngine > 0 || Umem.InFlight > 0); i++) Port.Receive(Batch);
    }

    public void Dispose()
    {
        foreach (var lab in _labs) lab?.Dispose();
    }
}

public class SharedUmemTests
{
    /// <summary>
    /// Frames received on one AF_XDP port and forwarded to another on the same UMEM leave by descriptor: every forward
    /// is counted without a copy (only the injected requests were copied), no frame is lost, and afterwards every chunk
    /// is accounted for — free or on a fill ring, none with the engine or in flight, no move from a wrong state.
    /// The reply offsets also show the headroom: each frame starts at least <see cref="PacketBatch.Headroom"/> bytes
    /// into its chunk, so VXLAN's 50 bytes can be prepended in place.
    /// </summary>
    [Fact]
    public void FramesForwardedBetweenAfXdpPortsOnOneUmemAreNotCopiedAndNoChunkLeaks()
    {
        using var bounce = new SharedUmemBounce();
        var umem = bounce.Umem;
        Assert.Equal(umem.Chunks, umem.FreeChunks + umem.OnFillRings);
        const int forwards = 4000;
        long received = bounce.Forward(forwards, TimeSpan.FromSeconds(60));
        Assert.Equal(forwards + SharedUmemBounce.InFlight, received);
        Assert.Equal(forwards, bounce.Port.TransmittedWithoutCopy(LinkKind.Xdp));
        Assert.Equal(SharedUmemBounce.InFlight, bounce.Port.TransmittedCopied(LinkKind.Xdp));
        Assert.Equal(0, bounce.Port.TransmitErrors);
        for (int i = 0; i < bounce.Batch.Count; i++)
        {
            int offset = bounce.Batch.Meta[i].Offset;
            Assert.True(offset >= umem.ChunkRegionOffset, "received into a batch slot, not a UMEM chunk");
            Assert.True((offset - umem.ChunkRegionOffset) % XdpUmem.ChunkSize >= PacketBatch.Headroom);
        }
        bounce.Settle();
        Assert.Equal(0, umem.OwnershipErrors);
        Assert.Equal(0, umem.WithEngine);
        Assert.Equal(0, umem.InFlight);
        Assert.Equal(umem.Chunks, umem.FreeChunks + umem.OnFillRings);
    }

    /// <summary>Closing an AF_XDP device gives its fill-ring chunks back to the worker's UMEM at the next batch.</summary>
    [Fact]
    public void ClosingADeviceOnASharedUmemGivesItsChunksBack()
    {
        var umem = new XdpUmem(batchCapacity: 8, chunks: 256);
        using var a = new VethLab(LinkKind.Xdp, umem: umem);
        var port = new TapPort(TimeSpan.FromMilliseconds(10)) { Umem = umem };
        using (var b = new VethLab(LinkKind.Xdp, umem: umem))
        {
            port.Attach([a.Device, b.Device]);
            Assert.Equal(2 * umem.FillTarget, umem.OnFillRings);
            port.Attach([a.Device]);
        }
        var batch = umem.CreateBatch();
        port.Receive(batch);
        Assert.Equal(umem.FillTarget, umem.OnFillRings);
        Assert.Equal(umem.Chunks, umem.FreeChunks + umem.OnFillRings);
        Assert.Equal(0, umem.OwnershipErrors);
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

    /// <summary>The shared-UMEM path: frames received in place, rewritten and sent on by descriptor.</summary>
    [Fact]
    public void FramesForwardedByDescriptorBetweenAfXdpPortsAllocateNothing()
    {
        using var bounce = new SharedUmemBounce();
        bounce.Forward(2000, TimeSpan.FromSeconds(60));
        bounce.Settle();
        long before = GC.GetAllocatedBytesForCurrentThread();
        long received = bounce.Forward(100_000, TimeSpan.FromSeconds(240));
        long allocated = GC.GetAllocatedBytesForCurrentThread() - before;
        Assert.Equal(100_000 + SharedUmemBounce.InFlight, received);
        Assert.Equal(0, allocated);
    }
}
