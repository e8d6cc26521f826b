using System.Diagnostics;
using System.Runtime.InteropServices;
using FastPath.DataPlane.Offload;
using FastPath.DataPlane.Pipeline;

namespace FastPath.DataPlane.Ports;

/// <summary>
/// One worker's view of the node's live ports: queue <see cref="Queue"/> of every <see cref="TapDevice"/> per engine
/// port (uplink, pods). <see cref="Receive"/> waits with poll(2) until some device has frames, then reads them
/// round-robin (one frame per ready device per round, so a busy pod cannot starve the others) straight into the
/// batch's slots — the virtio-net header into the headroom in front of the frame, then into the packet's metadata —
/// stamped with the wall clock, the engine's clock in live mode. Before sleeping in poll it keeps polling without a
/// timeout for a short while after recent traffic (adaptive busy-poll), so a reply that follows a request a few tens of
/// microseconds later does not pay a wake-up. <see cref="TransmitBatch"/> writes each emitted packet to its egress
/// port's device with the header rebuilt from the metadata (partial checksum, super-frame), or, for a device that cannot
/// take it, finishes the checksum or cuts the super-frame in software first (<see cref="GsoSegmenter"/>). Nothing is
/// allocated per packet; at most one poll per batch and one read or write per frame (or segment).
/// <para>
/// With <see cref="Umem"/> (the worker's AF_XDP memory, which the batch lives in), a frame from an AF_XDP interface on
/// that memory is not copied into a slot: the packet's offset is where the kernel received it, in its UMEM chunk, and
/// if the engine sends it out of another AF_XDP interface on the same memory it leaves by descriptor
/// (<see cref="XdpSocketDevice.TransmitInPlace"/>). Every other frame is copied on the way out (a TAP's writev, a
/// packet socket's write, libpcap, a free UMEM chunk), and counted as such per kind of port
/// (<see cref="TransmittedWithoutCopy"/>, <see cref="TransmittedCopied"/>). The chunks a batch received go back to the
/// worker at the next <see cref="Receive"/>, when the batch is done with (sent, dropped, or handed over).
/// </para>
/// </summary>
public sealed partial class TapPort : IPacketSource, IPacketSink
{
    private const short PollIn = 0x001, PollErr = 0x008, PollHup = 0x010, PollNval = 0x020;

    [StructLayout(LayoutKind.Sequential)]
    private struct PollFd
    {
        public int Fd;
        public short Events;
        public short Revents;
    }

    private LinkDevice?[] _byPort = [];
    private PollFd[] _poll = [];
    private short[] _pollPort = [];
    private int _next;
    private long _inputIndex;
    private bool _lastFull;
    private readonly int _pollTimeoutMs;
    private readonly long _busyPollTicks;
    private long _lastTrafficAt;
    private readonly byte[] _header = new byte[VirtioNetHeader.TunnelLength];
    private byte[] _segment = [];
    private XdpSocketDevice?[] _xdpByPort = [];
    private bool[] _onUmem = [];
    private XdpSocketDevice[] _xdp = [];
    private int[] _held = [];
    private int _heldCount;
    private const int Kinds = (int)LinkKind.Xdp + 1;
    private readonly long[] _withoutCopy = new long[Kinds];
    private readonly long[] _copied = new long[Kinds];

    /// <param name="pollTimeout">How long <see cref="Receive"/> waits for a frame before returning an empty batch, so
    /// the caller can check for shutdown and publish status.</param>
    /// <param name="queue">Which queue of each device this port reads and writes (one per worker).</param>
    /// <param name="busyPoll">How long to keep polling without sleeping after the last frame (0: never).</param>
    public TapPort(TimeSpan pollTimeout, int queue = 0, TimeSpan busyPoll = default)
    {
        _pollTimeoutMs = (int)Math.Clamp(pollTimeout.TotalMilliseconds, 0, int.MaxValue);
        Queue = queue;
        _busyPollTicks = (long)(busyPoll.TotalSeconds * Stopwatch.Frequency);
    }

    /// <summary>The queue of every device this port uses.</summary>
    public int Queue { get; }

    /// <summary>
    /// Shared by the ports of one process's workers: at most one of them busy-polls at a time, the others sleep in poll
    /// at once. Several threads spinning on a machine with few cores take the CPU from the pods and the kernel work
    /// they wait for (measured: 2 spinning workers per node on 2 vCPUs turned a 0.2 ms ping into 10 ms). Null: every
    /// port spins on its own.
    /// </summary>
    public BusyPollGate? BusyPollGate { get; set; }

    /// <summary>Polled beside the devices: when signalled, <see cref="Receive"/> returns (with what it read) so the
    /// caller can take packets other workers handed it. Set before <see cref="Attach"/>.</summary>
    public WakeEvent? Wake { get; set; }

    /// <summary>
    /// The worker's AF_XDP memory: frames of AF_XDP devices on it are received in place when the batch given to
    /// <see cref="Receive"/> is <see cref="XdpUmem.CreateBatch"/>'s, and sent on by descriptor. Set before
    /// <see cref="Attach"/>; null: every frame is copied.
    /// </summary>
    public XdpUmem? Umem { get; set; }

    /// <summary>Frames sent out of a port of kind <paramref name="kind"/> without a copy by FastPath (an AF_XDP frame
    /// forwarded by descriptor to another AF_XDP port on the same UMEM).</summary>
    public long TransmittedWithoutCopy(LinkKind kind) => _withoutCopy[(int)kind];

    /// <summary>Frames sent out of a port of kind <paramref name="kind"/> by copying them (into a UMEM chunk, or by
    /// the kernel in write/writev/pcap_sendpacket).</summary>
    public long TransmittedCopied(LinkKind kind) => _copied[(int)kind];

    /// <summary>Frames received so far.</summary>
    public long Received => _inputIndex;
    /// <summary>Frames written to a device (a super-frame cut in software counts once per segment).</summary>
    public long Transmitted { get; private set; }
    /// <summary>Frames the engine emitted to a port without a device, or that a device refused (down, queue full).</summary>
    public long TransmitErrors { get; private set; }
    /// <summary>Super-frames cut into segments in software because their egress device could not take them.</summary>
    public long SoftwareSegmented { get; private set; }
    /// <summary>GSO super-frames received (a TAP with offloads handed over several segments' worth at once).</summary>
    public long SuperFramesReceived { get; private set; }
    /// <summary>Reads that failed with an error other than "nothing waiting".</summary>
    public long ReceiveErrors { get; private set; }
    /// <summary>Devices that went away under the port since <see cref="Attach"/> (reported by poll as an error); no
    /// longer polled.</summary>
    public int FailedDevices { get; private set; }

    /// <summary>
    /// Sets which device serves which engine port (index = port; null = none). Control path: call it between batches,
    /// from the thread that calls <see cref="Receive"/>. The devices stay owned by the caller.
    /// </summary>
    public void Attach(LinkDevice?[] devicesByPort)
    {
        _byPort = devicesByPort;
        int n = devicesByPort.Count(d => d is not null) + (Wake is null ? 0 : 1);
        _poll = new PollFd[n];
        _pollPort = new short[n];
        int k = 0;
        if (Wake is { } wake)
        {
            _poll[k] = new PollFd { Fd = wake.FileDescriptor, Events = PollIn };
            _pollPort[k++] = PortIndex.None;
        }
        for (int port = 0; port < devicesByPort.Length; port++)
        {
            if (devicesByPort[port] is not { } device) continue;
            _poll[k] = new PollFd { Fd = device.FileDescriptor(Queue), Events = PollIn };
            _pollPort[k++] = (short)port;
        }
        _next = 0;
        _lastFull = false;
        FailedDevices = 0;
        _xdpByPort = new XdpSocketDevice?[devicesByPort.Length];
        _onUmem = new bool[devicesByPort.Length];
        var xdp = new List<XdpSocketDevice>();
        for (int port = 0; port < devicesByPort.Length; port++)
        {
            if (devicesByPort[port] is not XdpSocketDevice device) continue;
            _xdpByPort[port] = device;
            _onUmem[port] = Umem is not null && ReferenceEquals(device.UmemOf(Queue), Umem);
            if (!xdp.Contains(device)) xdp.Add(device);
        }
        _xdp = [.. xdp];
        Umem?.SetSockets(_onUmem.Count(on => on));
        ServiceXdp();
    }

    /// <summary>
    /// Gives the worker the chunks of the last batch that were not sent on by descriptor, takes back those of sockets
    /// closed since, then takes the completions and stocks the fill ring of every AF_XDP device (between batches).
    /// </summary>
    private void ServiceXdp()
    {
        if (Umem is { } umem)
        {
            for (int i = 0; i < _heldCount; i++) umem.Release(_held[i]);
            _heldCount = 0;
            if (umem.HasClosed) umem.ReclaimClosed();
        }
        foreach (var device in _xdp) device.Service(Queue);
    }

    /// <summary>
    /// Fills <paramref name="batch"/> with the frames waiting on the devices; 0 when none arrived within the poll
    /// timeout (a live source never ends: the caller decides when to stop).
    /// </summary>
    public unsafe int Receive(PacketBatch batch)
    {
        batch.Count = 0;
        ServiceXdp();
        bool inPlace = Umem is { } umem && ReferenceEquals(batch.Arena, umem.Arena);
        if (inPlace && _held.Length < batch.Capacity) _held = new int[batch.Capacity];
        int devices = _poll.Length;
        if (devices == 0)
        {
            Thread.Sleep(_pollTimeoutMs);
            return 0;
        }
        if (_lastFull)
        {
            // The last batch was full, so frames are most likely still waiting: read without asking poll (saves one
            // syscall per batch under load; an idle device costs one EAGAIN read instead).
            for (int k = 0; k < devices; k++) _poll[k].Revents = PollIn;
        }
        else if (!WaitReady(devices)) return 0;

        long now = WallClock();
        int count = 0;
        bool more = true;
        while (more && count < batch.Capacity)
        {
            more = false;
            for (int k = 0; k < devices && count < batch.Capacity; k++)
            {
                int i = _next + k < devices ? _next + k : _next + k - devices;
                ref var fd = ref _poll[i];
                if ((fd.Revents & PollIn) == 0)
                {
                    // The device is gone (its namespace was deleted, or it was removed): poll would report it at once
                    // forever. A negative descriptor is ignored by poll(2); writes to the port fail and are counted.
                    if ((fd.Revents & (PollErr | PollHup | PollNval)) != 0 && fd.Fd >= 0)
                    {
                        fd.Fd = -1;
                        FailedDevices++;
                    }
                    continue;
                }
                short port = _pollPort[i];
                if (port < 0)
                {
                    Wake!.Drain();
                    fd.Revents = 0;
                    continue;
                }
                if (inPlace && _onUmem[port])
                {
                    int frameLength = _xdpByPort[port]!.ReadInPlace(Queue, out int offset);
                    if (frameLength == 0)
                    {
                        fd.Revents = 0;
                        continue;
                    }
                    _held[_heldCount++] = (offset - Umem!.ChunkRegionOffset) / XdpUmem.ChunkSize;
                    batch.SetReceivedAt(count, offset, frameLength, now, ++_inputIndex, port);
                    count++;
                    more = true;
                    continue;
                }
                var device = _byPort[port]!;
                int header = device.HeaderLength;
                // The header lands in the headroom just in front of the frame, which then starts where every frame does.
                var area = batch.Slot(count)[(PacketBatch.Headroom - header)..];
                int length = device.Read(Queue, area) - header;
                if (length <= 0)
                {
                    if (length + header < 0) ReceiveErrors++;
                    fd.Revents = 0; // drained (or failing) until the next poll
                    continue;
                }
                batch.SetReceived(count, length, now, ++_inputIndex, port);
                if (header > 0)
                {
                    ref var m = ref batch.Meta[count];
                    if (!VirtioNetHeader.Read(area[..header], ref m)) m.Drop = Telemetry.DropReason.Malformed;
                    else if (m.Gso != GsoKind.None) SuperFramesReceived++;
                }
                count++;
                more = true;
            }
        }
        _next = _next + 1 < devices ? _next + 1 : 0;
        _lastFull = count == batch.Capacity;
        if (count > 0) _lastTrafficAt = Stopwatch.GetTimestamp();
        batch.Count = count;
        return count;
    }

    /// <summary>
    /// Polls until a device is readable: first without sleeping for as long as the busy-poll window after the last
    /// traffic lasts, then with the timeout. False when nothing arrived (timeout, EINTR: the caller loops).
    /// </summary>
    private unsafe bool WaitReady(int devices)
    {
        fixed (PollFd* fds = _poll)
        {
            long until = _lastTrafficAt + _busyPollTicks;
            if (_busyPollTicks > 0 && Stopwatch.GetTimestamp() < until && (BusyPollGate?.TryEnter(this) ?? true))
            {
                try
                {
                    do
                    {
                        if (Poll(fds, (nuint)devices, 0) > 0) return true;
                        Thread.Yield();
                    } while (Stopwatch.GetTimestamp() < until);
                }
                finally
                {
                    BusyPollGate?.Exit(this);
                }
            }
            return Poll(fds, (nuint)devices, _pollTimeoutMs) > 0;
        }
    }

    /// <summary>Sends one plain frame (no offloads) out of <paramref name="port"/>.</summary>
    public void Transmit(int port, ReadOnlySpan<byte> frame, long timestamp)
    {
        if ((uint)port < (uint)_byPort.Length && _byPort[port] is { } device)
        {
            var header = _header.AsSpan(0, device.HeaderLength);
            header.Clear();
            Count(device.Write(Queue, header, frame), device.Kind);
        }
        else TransmitErrors++;
    }

    /// <summary>Sends every frame the engine emitted from a processed batch out of its egress port.</summary>
    public void TransmitBatch(PacketBatch batch)
    {
        var meta = batch.Meta;
        var umem = Umem;
        bool inPlace = umem is not null && ReferenceEquals(batch.Arena, umem.Arena);
        for (int i = 0; i < batch.Count; i++)
        {
            ref var m = ref meta[i];
            int port = m.EgressPort;
            if (port < 0) continue;
            if ((uint)port >= (uint)_byPort.Length || _byPort[port] is not { } device)
            {
                TransmitErrors++;
                continue;
            }
            var frame = batch.Frame(i);
            if (!VirtioNetHeader.Fits(device.Offloads, in m))
            {
                if (m.Gso != GsoKind.None)
                {
                    SegmentTo(device, frame, in m);
                    continue;
                }
                if (!ChecksumOffload.Complete(frame, ref m, ChecksumOffload.TransportStart(in m)))
                {
                    TransmitErrors++;
                    continue;
                }
            }
            if (inPlace && _onUmem[port] && m.Offset >= umem!.ChunkRegionOffset)
            {
                // Received into a chunk of this UMEM and still inside it (the engine moves the start by at most the
                // headroom): out by descriptor.
                int address = m.Offset - umem.ChunkRegionOffset;
                if (address % XdpUmem.ChunkSize + m.Length <= XdpUmem.ChunkSize)
                {
                    if (_xdpByPort[port]!.TransmitInPlace(Queue, (ulong)address, m.Length) == 0)
                    {
                        Transmitted++;
                        _withoutCopy[(int)LinkKind.Xdp]++;
                    }
                    else TransmitErrors++;
                    continue;
                }
            }
            var header = _header.AsSpan(0, device.HeaderLength);
            if (header.Length > 0) VirtioNetHeader.Write(header, in m);
            Count(device.Write(Queue, header, frame), device.Kind);
        }
        if (inPlace) foreach (var device in _xdp) device.Flush(Queue);
    }

    private void SegmentTo(LinkDevice device, ReadOnlySpan<byte> frame, in PacketMeta m)
    {
        if (_segment.Length == 0) _segment = GC.AllocateUninitializedArray<byte>(PacketBatch.SuperFrameSlotSize, pinned: true);
        var sink = new DeviceSink(this, device);
        if (GsoSegmenter.Segment(frame, in m, _segment, ref sink) == 0) TransmitErrors++;
        else SoftwareSegmented++;
    }

    private readonly struct DeviceSink(TapPort port, LinkDevice device) : ISegmentSink
    {
        public void Emit(ReadOnlySpan<byte> segment)
        {
            var header = port._header.AsSpan(0, device.HeaderLength);
            header.Clear();
            port.Count(device.Write(port.Queue, header, segment), device.Kind);
        }
    }

    private void Count(int writeResult, LinkKind kind)
    {
        if (writeResult == 0)
        {
            Transmitted++;
            _copied[(int)kind]++;
        }
        else TransmitErrors++;
    }

    /// <summary>Nanoseconds since the Unix epoch, the unit of <see cref="PacketMeta.Timestamp"/>.</summary>
    public static long WallClock() => (DateTime.UtcNow.Ticks - DateTime.UnixEpoch.Ticks) * 100;

    [LibraryImport("libc", EntryPoint = "poll", SetLastError = true)]
    private static unsafe partial int Poll(PollFd* fds, nuint count, int timeoutMs);
}

/// <summary>Lets one port at a time busy-poll (<see cref="TapPort.BusyPollGate"/>); lock-free, off the per-packet path.</summary>
public sealed class BusyPollGate
{
    private object? _holder;

    public bool TryEnter(object port) => Interlocked.CompareExchange(ref _holder, port, null) is var previous
        && (previous is null || ReferenceEquals(previous, port));

    public void Exit(object port) => Interlocked.CompareExchange(ref _holder, null, port);
}
