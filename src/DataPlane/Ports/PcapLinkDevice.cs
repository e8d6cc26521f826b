using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using SharpPcap;
using FastPath.DataPlane.Pipeline;
using SharpPcap.LibPcap;

namespace FastPath.DataPlane.Ports;

/// <summary>
/// An existing interface attached through libpcap, the portable fallback: SharpPcap finds and opens the device
/// (promiscuous, immediate mode so a frame is delivered as it arrives, non-blocking), and the per-frame calls go
/// straight to libpcap on SharpPcap's handle — pcap_next_ex and pcap_sendpacket — because SharpPcap's own
/// GetNextPacket builds a header object per packet. The capture direction is inbound only (pcap_setdirection), so
/// the frames this node's kernel or FastPath send out of the interface do not come back. One queue: libpcap has no
/// fanout, so `run --attach-mode pcap` takes one worker.
/// </summary>
[SkipLocalsInit]
public sealed unsafe partial class PcapLinkDevice : LinkDevice
{
    private const string LibPcap = "libpcap.so.0.8"; // Debian's libpcap0.8, as SharpPcap loads it on Linux
    private const int PcapDirectionIn = 1;
    private readonly LibPcapLiveDevice _device;
    private readonly nint _handle;
    private readonly int _fd;

    private PcapLinkDevice(string name, LibPcapLiveDevice device) : base(name, LinkKind.Pcap, created: false, TapOffloads.None, 0)
    {
        _device = device;
        _handle = device.Handle.DangerousGetHandle();
        _fd = GetSelectableFd(_handle);
        _ = SetDirection(_handle, PcapDirectionIn);
    }

    public override int Queues => 1;

    public override int FileDescriptor(int queue = 0) => queue == 0 ? _fd : -1;

    /// <summary>Opens <paramref name="name"/> through libpcap.</summary>
    /// <exception cref="IOException">libpcap is missing, or the interface is missing, down or not permitted.</exception>
    public static PcapLinkDevice Open(string name)
    {
        InterfaceState.Require(name);
        LibPcapLiveDevice? device;
        try
        {
            device = LibPcapLiveDeviceList.New().FirstOrDefault(d => d.Name == name);
        }
        catch (Exception e) when (e is DllNotFoundException or TypeInitializationException or PcapException)
        {
            throw new IOException($"attach {name} (pcap): libpcap is not available ({e.Message}); install libpcap0.8");
        }
        if (device is null) throw new IOException($"attach {name} (pcap): libpcap does not list the interface");
        try
        {
            device.Open(new DeviceConfiguration
            {
                Mode = DeviceModes.Promiscuous,
                Immediate = true,
                Snaplen = PacketBatch.SuperFrameSlotSize,
                ReadTimeout = 1,
                BufferSize = 4 << 20,
            });
            device.NonBlockingMode = true;
        }
        catch (PcapException e)
        {
            device.Dispose();
            string hint = e.Message.Contains("ermission", StringComparison.Ordinal) ? " (capturing needs CAP_NET_RAW: run as root)" : "";
            throw new IOException($"attach {name} (pcap): {e.Message}{hint}");
        }
        var link = new PcapLinkDevice(name, device);
        if (link._fd < 0)
        {
            link.Dispose();
            throw new IOException($"attach {name} (pcap): libpcap has no selectable descriptor for it");
        }
        return link;
    }

    public override int Read(int queue, Span<byte> buffer)
    {
        nint header, data;
        int status = NextEx(_handle, &header, &data);
        if (status == 0) return 0;
        if (status < 0) return -5; // EIO: the device went away
        // struct pcap_pkthdr: struct timeval ts (16 bytes on LP64), caplen u32 @16, len u32 @20.
        int length = (int)*(uint*)(header + 16);
        if (length > buffer.Length) return 0;
        new ReadOnlySpan<byte>((void*)data, length).CopyTo(buffer);
        return length;
    }

    public override int Write(int queue, ReadOnlySpan<byte> header, ReadOnlySpan<byte> frame)
    {
        fixed (byte* f = frame) return SendPacket(_handle, f, frame.Length) == 0 ? 0 : -105; // ENOBUFS: refused
    }

    public override void Dispose()
    {
        _device.Close();
        _device.Dispose();
    }

    [LibraryImport(LibPcap, EntryPoint = "pcap_next_ex")]
    private static partial int NextEx(nint handle, nint* header, nint* data);

    [LibraryImport(LibPcap, EntryPoint = "pcap_sendpacket")]
    private static partial int SendPacket(nint handle, byte* data, int length);

    [LibraryImport(LibPcap, EntryPoint = "pcap_get_selectable_fd")]
    private static partial int GetSelectableFd(nint handle);

    [LibraryImport(LibPcap, EntryPoint = "pcap_setdirection")]
    private static partial int SetDirection(nint handle, int direction);
}
