using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;

namespace FastPath.DataPlane.Ports;

/// <summary>What a TAP device was opened with: the virtio-net header and the offloads the kernel agreed to.</summary>
[Flags]
public enum TapOffloads
{
    None = 0,
    /// <summary>TUN_F_CSUM: frames may come and go with a partial TCP/UDP checksum.</summary>
    Checksum = 1,
    /// <summary>TUN_F_TSO4 / TSO6 (and TSO_ECN): TCP super-frames of up to 64 KB.</summary>
    Tso = 2,
    /// <summary>TUN_F_USO4 / USO6: UDP super-frames (Linux 6.2+).</summary>
    Uso = 4,
    /// <summary>TUN_F_UDP_TUNNEL_GSO (+ _CSUM): VXLAN-encapsulated super-frames, with the 24-byte tunnel header (Linux 6.17+).</summary>
    UdpTunnelGso = 8,
}

/// <summary>
/// One Linux TAP device opened through /dev/net/tun (Documentation/networking/tuntap.rst): IFF_TAP | IFF_NO_PI, so
/// every read returns exactly one Ethernet frame and every write sends one, on non-blocking descriptors.
/// With offloads (the default) the device is opened with IFF_VNET_HDR: each frame is preceded by a virtio-net header
/// (<see cref="VirtioNetHeader"/>) and TUNSETOFFLOAD tells the kernel we take partial checksums and TCP/UDP
/// super-frames, so a pod's stack hands over 64 KB GSO frames instead of segmenting them (as a VM's virtio-net does
/// through vhost). With several queues (IFF_MULTI_QUEUE) each queue is its own descriptor, read and written by one
/// worker. A device that did not exist is created for as long as its descriptors are open (not persistent: the kernel
/// removes it when they close, even if the process dies); an existing persistent TAP (`ip tuntap add mode tap`) is
/// attached and left in place on <see cref="Dispose"/>.
/// </summary>
[SkipLocalsInit]
public sealed partial class TapDevice : LinkDevice
{
    private const int ORdWr = 2, ONonBlock = 0x800, OCloExec = 0x80000;
    private const uint TunSetIff = 0x400454CA; // _IOW('T', 202, int)
    private const uint TunSetOffload = 0x400454D0; // _IOW('T', 208, unsigned int)
    private const uint TunSetVnetHdrSz = 0x400454D8; // _IOW('T', 216, int)
    private const uint TunSetPersist = 0x400454CB; // _IOW('T', 203, int)
    private const uint TunGetIff = 0x800454D2; // _IOR('T', 210, unsigned int)
    private const uint TunGetDevNetns = 0x54E3; // _IO('T', 227), Linux 5.2+
    private const int CloneNewNet = 0x40000000;
    private const short IffTap = 0x0002, IffNoPi = 0x1000, IffVnetHdr = 0x4000, IffMultiQueue = 0x0100;
    private const uint TunFCsum = 0x01, TunFTso4 = 0x02, TunFTso6 = 0x04, TunFTsoEcn = 0x08, TunFUso4 = 0x20, TunFUso6 = 0x40,
        TunFUdpTunnelGso = 0x80, TunFUdpTunnelGsoCsum = 0x100;
    private const int IfReqSize = 40; // struct ifreq: 16-byte name, then the union (ifr_flags first)
    private const int EAgain = 11, EIntr = 4;

    private readonly int[] _fds;

    private TapDevice(string name, int[] fds, bool created, TapOffloads offloads, int headerLength)
        : base(name, LinkKind.Tap, created, offloads, headerLength) => _fds = fds;

    /// <summary>Queues (descriptors) of the device.</summary>
    public override int Queues => _fds.Length;

    /// <summary>The descriptor of queue <paramref name="queue"/>, for poll(2).</summary>
    public override int FileDescriptor(int queue = 0) => _fds[queue];

    /// <summary>Creates the TAP <paramref name="name"/>, or attaches to it if it exists.</summary>
    /// <param name="queues">Descriptors to open (IFF_MULTI_QUEUE when more than one).</param>
    /// <param name="offloads">Ask for the virtio-net header and every offload the kernel has; false: plain frames.</param>
    /// <param name="persist">Make a device this call creates persistent (TUNSETPERSIST): it outlives this process, so
    /// the pod behind it keeps its interface, addresses and connections until the next `run` attaches again.</param>
    /// <param name="owned">Count an existing device as this process's (<see cref="LinkDevice.Created"/>): a persistent
    /// TAP a previous `run` created.</param>
    /// <exception cref="IOException">/dev/net/tun is missing or refuses (not root, name taken by a non-TAP device).</exception>
    public static TapDevice Open(string name, int queues = 1, bool offloads = true, bool persist = false, bool owned = false)
    {
        var device = Open(name, name, queues, offloads, owned);
        if (persist && device.Created) device.SetPersistent(true);
        return device;
    }

    /// <summary>
    /// Attaches to the TAP a previous `run` created as <paramref name="name"/> (persistent) that now lives in another
    /// network namespace as <paramref name="ifName"/> — a pod's TAP is moved into the pod's namespace and renamed eth0.
    /// TUNSETIFF looks the name up in the namespace the /dev/net/tun descriptor was opened in, so the queues are opened
    /// on a thread of their own that enters <paramref name="netnsPath"/> (setns) for the purpose; the descriptors work
    /// from any namespace afterwards.
    /// </summary>
    /// <param name="tun">Descriptors <see cref="OpenTun"/> already opened in <paramref name="netnsPath"/> (one per queue,
    /// taken over: attached, or closed on failure): no thread and no setns here, only the ioctls.</param>
    public static TapDevice OpenIn(string netnsPath, string ifName, string name, int queues = 1, bool offloads = true, int[]? tun = null)
    {
        if (tun is not null) return Open(ifName, name, queues, offloads, owned: true, tun);
        TapDevice? device = null;
        Exception? failure = null;
        var thread = new Thread(() =>
        {
            try
            {
                device = Open(ifName, name, queues, offloads, owned: true, InNamespace(netnsPath, name, () => OpenTun(queues)));
            }
            catch (Exception e)
            {
                failure = e;
            }
        }) { Name = "fastpath-tap-attach" };
        // The thread ends in the other namespace: its OS thread exits with it, nothing else ever runs there.
        thread.Start();
        thread.Join();
        if (failure is not null) throw failure as IOException ?? new IOException(failure.Message, failure);
        return device!;
    }

    /// <summary>
    /// <paramref name="count"/> /dev/net/tun descriptors opened in the network namespace <paramref name="netnsPath"/>,
    /// not attached to any device yet. A descriptor keeps the namespace it was opened in, and TUNSETIFF looks the name up
    /// there, so <see cref="OpenIn"/> with them needs neither a thread nor setns: `run --takeover` opens them before it
    /// asks for the hand-over, leaving only the ioctls in the forwarding gap. Close unused ones with <see cref="CloseTun"/>.
    /// </summary>
    public static int[] OpenTunIn(string netnsPath, int count)
    {
        int[]? fds = null;
        Exception? failure = null;
        var thread = new Thread(() =>
        {
            try
            {
                fds = InNamespace(netnsPath, netnsPath, () => OpenTun(count));
            }
            catch (Exception e)
            {
                failure = e;
            }
        }) { Name = "fastpath-tap-open" };
        thread.Start(); // ends in the other namespace, as in OpenIn
        thread.Join();
        if (failure is not null) throw failure as IOException ?? new IOException(failure.Message, failure);
        return fds!;
    }

    /// <summary>Closes descriptors of <see cref="OpenTunIn"/> that were not used.</summary>
    public static void CloseTun(int[] fds)
    {
        foreach (int fd in fds) if (fd >= 0) Close(fd);
    }

    /// <summary>Enters <paramref name="netnsPath"/> on the calling thread (which must end there) and runs <paramref name="action"/>.</summary>
    private static T InNamespace<T>(string netnsPath, string name, Func<T> action)
    {
        int target = OpenFile(netnsPath, OCloExec);
        if (target < 0) throw new IOException($"TAP {name}: {netnsPath}: {Marshal.GetPInvokeErrorMessage(Marshal.GetLastPInvokeError())}");
        int entered = SetNamespace(target, CloneNewNet);
        int errno = Marshal.GetLastPInvokeError();
        Close(target);
        if (entered != 0) throw new IOException($"TAP {name}: setns {netnsPath}: {Marshal.GetPInvokeErrorMessage(errno)}");
        return action();
    }

    private static int[] OpenTun(int count)
    {
        var fds = new int[count];
        Array.Fill(fds, -1);
        for (int q = 0; q < count; q++)
        {
            fds[q] = OpenFile("/dev/net/tun", ORdWr | ONonBlock | OCloExec);
            if (fds[q] >= 0) continue;
            int errno = Marshal.GetLastPInvokeError();
            CloseTun(fds);
            throw new IOException($"/dev/net/tun: {Marshal.GetPInvokeErrorMessage(errno)}");
        }
        return fds;
    }

    private static TapDevice Open(string ifName, string name, int queues, bool offloads, bool owned, int[]? tun = null)
    {
        var fds = tun;
        try
        {
            if (!IsValidName(name)) throw new ArgumentException($"\"{name}\" is not a valid interface name (1-{MaxNameLength} characters, no '/', ':' or spaces)", nameof(name));
            ArgumentOutOfRangeException.ThrowIfLessThan(queues, 1);
            if (fds is not null && fds.Length != queues) throw new ArgumentException($"{fds.Length} descriptors for {queues} queue(s)", nameof(tun));
            // (In another namespace /sys still shows this process's: the device is known to exist there.)
            bool existed = ifName != name || Directory.Exists(Path.Combine("/sys/class/net", name));
            fds ??= OpenTun(queues);
            short flags = (short)(IffTap | IffNoPi | (offloads ? IffVnetHdr : 0) | (queues > 1 ? IffMultiQueue : 0));
            for (int q = 0; q < queues; q++) Attach(fds[q], ifName, flags, existed);
            var (granted, header) = offloads ? Negotiate(fds[0], name) : (TapOffloads.None, 0);
            return new TapDevice(name, fds, !existed || owned, granted, header);
        }
        catch
        {
            if (fds is not null) CloseTun(fds);
            throw;
        }
    }

    /// <summary>TUNSETIFF: attaches the /dev/net/tun descriptor <paramref name="fd"/> to the TAP <paramref name="name"/> (creating it if needed).</summary>
    private static unsafe void Attach(int fd, string name, short flags, bool existed)
    {
        byte* ifr = stackalloc byte[IfReqSize];
        new Span<byte>(ifr, IfReqSize).Clear();
        for (int i = 0; i < name.Length; i++) ifr[i] = (byte)name[i];
        *(short*)(ifr + 16) = flags;
        if (Ioctl(fd, TunSetIff, ifr) < 0)
        {
            int errno = Marshal.GetLastPInvokeError();
            throw new IOException($"TAP {name}: TUNSETIFF: {Marshal.GetPInvokeErrorMessage(errno)}" +
                (existed ? " (an interface of that name exists and is not a TAP this process may attach to with these flags)" : ""));
        }
    }

    /// <summary>
    /// Asks for the most the kernel offers, newest first: GSO over UDP tunnels needs the 24-byte header
    /// (virtio_net_hdr_v1_hash_tunnel) and Linux 6.17; USO Linux 6.2; checksum and TSO every kernel with vnet headers.
    /// The settings are the device's, shared by its queues.
    /// </summary>
    private static unsafe (TapOffloads, int) Negotiate(int fd, string name)
    {
        const uint tcp = TunFCsum | TunFTso4 | TunFTso6 | TunFTsoEcn;
        (uint Flags, TapOffloads Offloads, int Header)[] tries =
        [
            (tcp | TunFUso4 | TunFUso6 | TunFUdpTunnelGso | TunFUdpTunnelGsoCsum,
                TapOffloads.Checksum | TapOffloads.Tso | TapOffloads.Uso | TapOffloads.UdpTunnelGso, VirtioNetHeader.TunnelLength),
            (tcp | TunFUso4 | TunFUso6, TapOffloads.Checksum | TapOffloads.Tso | TapOffloads.Uso, VirtioNetHeader.Length),
            (tcp, TapOffloads.Checksum | TapOffloads.Tso, VirtioNetHeader.Length),
            (TunFCsum, TapOffloads.Checksum, VirtioNetHeader.Length),
        ];
        foreach (var (flags, offloads, header) in tries)
        {
            int size = header;
            if (Ioctl(fd, TunSetVnetHdrSz, &size) < 0) continue;
            if (Ioctl(fd, TunSetOffload, (void*)(nuint)flags) == 0) return (offloads, header);
        }
        int none = VirtioNetHeader.Length;
        if (Ioctl(fd, TunSetVnetHdrSz, &none) < 0 || Ioctl(fd, TunSetOffload, (void*)0) < 0)
            throw new IOException($"TAP {name}: TUNSETOFFLOAD: {Marshal.GetPInvokeErrorMessage(Marshal.GetLastPInvokeError())}");
        return (TapOffloads.None, VirtioNetHeader.Length);
    }

    /// <summary>Reads one frame, with its virtio-net header in front when the device has one, into <paramref name="buffer"/>.</summary>
    /// <returns>The bytes read (header included); 0 when no frame is waiting; a negative errno on failure.</returns>
    public override unsafe int Read(int queue, Span<byte> buffer)
    {
        int fd = _fds[queue];
        while (true)
        {
            nint n;
            fixed (byte* p = buffer) n = ReadFile(fd, p, (nuint)buffer.Length);
            if (n >= 0) return (int)n;
            int errno = Marshal.GetLastPInvokeError();
            if (errno == EIntr) continue;
            return errno == EAgain ? 0 : -errno;
        }
    }

    /// <summary>Sends one frame preceded by <paramref name="header"/> (empty for a device without one), in one writev.</summary>
    /// <returns>0 when sent; a negative errno otherwise (EAGAIN: the device's queue is full; EIO: the device is down).</returns>
    public override unsafe int Write(int queue, ReadOnlySpan<byte> header, ReadOnlySpan<byte> frame)
    {
        int fd = _fds[queue];
        fixed (byte* h = header)
        fixed (byte* f = frame)
        {
            IoVec* iov = stackalloc IoVec[2];
            iov[0] = new IoVec { Base = h, Length = (nuint)header.Length };
            iov[1] = new IoVec { Base = f, Length = (nuint)frame.Length };
            while (true)
            {
                nint n = WriteVector(fd, iov, 2);
                if (n >= 0) return 0;
                int errno = Marshal.GetLastPInvokeError();
                if (errno != EIntr) return -errno;
            }
        }
    }

    /// <summary>Sets or clears TUNSETPERSIST: a persistent device stays when its descriptors close.</summary>
    public unsafe void SetPersistent(bool on)
    {
        if (Ioctl(_fds[0], TunSetPersist, (void*)(nuint)(on ? 1 : 0)) < 0)
            throw new IOException($"TAP {Name}: TUNSETPERSIST: {Marshal.GetPInvokeErrorMessage(Marshal.GetLastPInvokeError())}");
        Persistent = on;
    }

    /// <summary>Whether this process made the device persistent.</summary>
    public bool Persistent { get; private set; }

    /// <summary>
    /// Where the device is now: its network namespace (device and inode numbers of the namespace file, from
    /// TUNGETDEVNETNS) and its name there (TUNGETIFF) — wherever it was moved and renamed since it was created. False
    /// on kernels before 5.2.
    /// </summary>
    public unsafe bool Whereabouts(out ulong netnsDevice, out ulong netnsInode, out string ifName)
    {
        netnsDevice = netnsInode = 0;
        ifName = "";
        int ns = Ioctl(_fds[0], TunGetDevNetns, null);
        if (ns < 0) return false;
        byte* st = stackalloc byte[256];
        bool ok = FileStat(ns, st) == 0;
        Close(ns);
        if (!ok) return false;
        netnsDevice = *(ulong*)st; // struct stat (x86-64 and arm64 alike): st_dev at 0, st_ino at 8
        netnsInode = *(ulong*)(st + 8);
        byte* ifr = stackalloc byte[IfReqSize];
        new Span<byte>(ifr, IfReqSize).Clear();
        if (Ioctl(_fds[0], TunGetIff, ifr) < 0) return false;
        ifName = Marshal.PtrToStringUTF8((nint)ifr) ?? "";
        return true;
    }

    /// <summary>The device and inode numbers of the file at <paramref name="path"/> (a network namespace's identity, as
    /// <see cref="Whereabouts"/> gives it), or false.</summary>
    public static unsafe bool FileId(string path, out ulong device, out ulong inode)
    {
        device = inode = 0;
        byte* st = stackalloc byte[256];
        if (PathStat(path, st) != 0) return false;
        device = *(ulong*)st;
        inode = *(ulong*)(st + 8);
        return true;
    }

    /// <summary>Closes the descriptors; a device this process created disappears with them unless it is persistent.</summary>
    public override void Dispose()
    {
        for (int q = 0; q < _fds.Length; q++)
        {
            int fd = Interlocked.Exchange(ref _fds[q], -1);
            if (fd >= 0) Close(fd);
        }
    }

    [StructLayout(LayoutKind.Sequential)]
    private unsafe struct IoVec
    {
        public byte* Base;
        public nuint Length;
    }

    [LibraryImport("libc", EntryPoint = "open", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    private static partial int OpenFile(string path, int flags);

    [LibraryImport("libc", EntryPoint = "ioctl", SetLastError = true)]
    private static unsafe partial int Ioctl(int fd, nuint request, void* argument);

    [LibraryImport("libc", EntryPoint = "read", SetLastError = true)]
    private static unsafe partial nint ReadFile(int fd, byte* buffer, nuint count);

    [LibraryImport("libc", EntryPoint = "writev", SetLastError = true)]
    private static unsafe partial nint WriteVector(int fd, IoVec* iov, int count);

    [LibraryImport("libc", EntryPoint = "close")]
    private static partial int Close(int fd);

    [LibraryImport("libc", EntryPoint = "fstat", SetLastError = true)]
    private static unsafe partial int FileStat(int fd, byte* stat);

    [LibraryImport("libc", EntryPoint = "stat", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    private static unsafe partial int PathStat(string path, byte* stat);

    [LibraryImport("libc", EntryPoint = "setns", SetLastError = true)]
    private static partial int SetNamespace(int fd, int type);
}
