using System.Runtime.InteropServices;
using FastPath.DataPlane.Pipeline;

namespace FastPath.DataPlane.Ports;

/// <summary>
/// The node's live ports: one <see cref="TapDevice"/> per engine port (uplink, pods). <see cref="Receive"/> waits with
/// poll(2) until some device has frames, then reads them round-robin (one frame per ready device per round, so a busy
/// pod cannot starve the others) straight into the batch's slots, stamped with the wall clock — the engine's clock in
/// live mode. <see cref="Transmit"/> writes each emitted frame to its egress port's device. Nothing is allocated per
/// packet; at most one poll per batch and one read or write per frame.
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

    private TapDevice?[] _byPort = [];
    private PollFd[] _poll = [];
    private short[] _pollPort = [];
    private int _next;
    private long _inputIndex;
    private bool _lastFull;
    private readonly int _pollTimeoutMs;

    /// <param name="pollTimeout">How long <see cref="Receive"/> waits for a frame before returning an empty batch, so
    /// the caller can check for shutdown and publish status.</param>
    public TapPort(TimeSpan pollTimeout)
    {
        _pollTimeoutMs = (int)Math.Clamp(pollTimeout.TotalMilliseconds, 0, int.MaxValue);
    }

    /// <summary>Frames received so far.</summary>
    public long Received => _inputIndex;
    /// <summary>Frames written to a device.</summary>
    public long Transmitted { get; private set; }
    /// <summary>Frames the engine emitted to a port without a device, or that a device refused (down, queue full).</summary>
    public long TransmitErrors { get; private set; }
    /// <summary>Reads that failed with an error other than "nothing waiting".</summary>
    public long ReceiveErrors { get; private set; }
    /// <summary>Devices that went away under the port since <see cref="Attach"/> (reported by poll as an error); no
    /// longer polled.</summary>
    public int FailedDevices { get; private set; }

    /// <summary>
    /// Sets which device serves which engine port (index = port; null = none). Control path: call it between batches,
    /// from the thread that calls <see cref="Receive"/>. The devices stay owned by the caller.
    /// </summary>
    public void Attach(TapDevice?[] devicesByPort)
    {
        _byPort = devicesByPort;
        int n = devicesByPort.Count(d => d is not null);
        _poll = new PollFd[n];
        _pollPort = new short[n];
        int k = 0;
        for (int port = 0; port < devicesByPort.Length; port++)
        {
            if (devicesByPort[port] is not { } device) continue;
            _poll[k] = new PollFd { Fd = device.FileDescriptor, Events = PollIn };
            _pollPort[k++] = (short)port;
        }
        _next = 0;
        _lastFull = false;
        FailedDevices = 0;
    }

    /// <summary>
    /// Fills <paramref name="batch"/> with the frames waiting on the devices; 0 when none arrived within the poll
    /// timeout (a live source never ends: the caller decides when to stop).
    /// </summary>
    public unsafe int Receive(PacketBatch batch)
    {
        batch.Count = 0;
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
        else
        {
            int ready;
            fixed (PollFd* fds = _poll) ready = Poll(fds, (nuint)devices, _pollTimeoutMs);
            if (ready <= 0) return 0; // timeout, or EINTR: the caller loops
        }

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
                int length = _byPort[port]!.Read(batch.ReceiveArea(count));
                if (length <= 0)
                {
                    if (length < 0) ReceiveErrors++;
                    fd.Revents = 0; // drained (or failing) until the next poll
                    continue;
                }
                batch.SetReceived(count++, length, now, ++_inputIndex, port);
                more = true;
            }
        }
        _next = _next + 1 < devices ? _next + 1 : 0;
        _lastFull = count == batch.Capacity;
        batch.Count = count;
        return count;
    }

    public void Transmit(int port, ReadOnlySpan<byte> frame, long timestamp)
    {
        if ((uint)port < (uint)_byPort.Length && _byPort[port] is { } device && device.Write(frame) == 0) Transmitted++;
        else TransmitErrors++;
    }

    /// <summary>Sends every frame the engine emitted from a processed batch out of its egress port.</summary>
    public void TransmitBatch(PacketBatch batch)
    {
        var meta = batch.Meta;
        for (int i = 0; i < batch.Count; i++)
            if (meta[i].EgressPort >= 0) Transmit(meta[i].EgressPort, batch.Frame(i), meta[i].Timestamp);
    }

    /// <summary>Nanoseconds since the Unix epoch, the unit of <see cref="PacketMeta.Timestamp"/>.</summary>
    public static long WallClock() => (DateTime.UtcNow.Ticks - DateTime.UnixEpoch.Ticks) * 100;

    [LibraryImport("libc", EntryPoint = "poll", SetLastError = true)]
    private static unsafe partial int Poll(PollFd* fds, nuint count, int timeoutMs);
}
