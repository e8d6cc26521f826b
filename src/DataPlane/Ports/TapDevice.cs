using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;

namespace FastPath.DataPlane.Ports;

/// <summary>
/// One Linux TAP device opened through /dev/net/tun (Documentation/networking/tuntap.rst): IFF_TAP | IFF_NO_PI, so
/// every read returns exactly one Ethernet frame and every write sends one, with a non-blocking descriptor.
/// A device that did not exist is created for as long as the descriptor is open (not persistent: the kernel removes it
/// when the descriptor closes, even if the process dies); an existing persistent TAP (`ip tuntap add mode tap`) is
/// attached and left in place on <see cref="Dispose"/>.
/// </summary>
[SkipLocalsInit]
public sealed partial class TapDevice : IDisposable
{
    /// <summary>IFNAMSIZ - 1: Linux interface names are at most 15 bytes.</summary>
    public const int MaxNameLength = 15;

    private const int ORdWr = 2, ONonBlock = 0x800, OCloExec = 0x80000;
    private const uint TunSetIff = 0x400454CA; // _IOW('T', 202, int)
    private const short IffTap = 0x0002, IffNoPi = 0x1000;
    private const int IfReqSize = 40; // struct ifreq: 16-byte name, then the union (ifr_flags first)
    private const int EAgain = 11, EIntr = 4;

    private int _fd;

    private TapDevice(string name, int fd, bool created)
    {
        Name = name;
        _fd = fd;
        Created = created;
    }

    public string Name { get; }

    /// <summary>True when this process created the device (it disappears on <see cref="Dispose"/>).</summary>
    public bool Created { get; }

    /// <summary>The descriptor, for poll(2).</summary>
    public int FileDescriptor => _fd;

    /// <summary>Whether <paramref name="name"/> can name a network interface (1–15 bytes, no '/', ':' or whitespace).</summary>
    public static bool IsValidName(string name) =>
        name.Length is > 0 and <= MaxNameLength && name != "." && name != ".."
        && !name.Any(c => c is '/' or ':' or '\0' || char.IsWhiteSpace(c) || c > 0x7E);

    /// <summary>Creates the TAP <paramref name="name"/>, or attaches to it if it exists.</summary>
    /// <exception cref="IOException">/dev/net/tun is missing or refuses (not root, name taken by a non-TAP device).</exception>
    public static unsafe TapDevice Open(string name)
    {
        if (!IsValidName(name)) throw new ArgumentException($"\"{name}\" is not a valid interface name (1-{MaxNameLength} characters, no '/', ':' or spaces)", nameof(name));
        bool existed = Directory.Exists(Path.Combine("/sys/class/net", name));
        int fd = OpenFile("/dev/net/tun", ORdWr | ONonBlock | OCloExec);
        if (fd < 0) throw new IOException($"/dev/net/tun: {Marshal.GetPInvokeErrorMessage(Marshal.GetLastPInvokeError())}");
        byte* ifr = stackalloc byte[IfReqSize];
        new Span<byte>(ifr, IfReqSize).Clear();
        for (int i = 0; i < name.Length; i++) ifr[i] = (byte)name[i];
        *(short*)(ifr + 16) = IffTap | IffNoPi;
        if (Ioctl(fd, TunSetIff, ifr) < 0)
        {
            int errno = Marshal.GetLastPInvokeError();
            Close(fd);
            throw new IOException($"TAP {name}: TUNSETIFF: {Marshal.GetPInvokeErrorMessage(errno)}" +
                (existed ? " (an interface of that name exists and is not a TAP this process may attach to)" : ""));
        }
        return new TapDevice(name, fd, !existed);
    }

    /// <summary>Reads one frame into <paramref name="buffer"/>.</summary>
    /// <returns>The frame length; 0 when no frame is waiting; a negative errno on failure.</returns>
    public unsafe int Read(Span<byte> buffer)
    {
        while (true)
        {
            nint n;
            fixed (byte* p = buffer) n = ReadFile(_fd, p, (nuint)buffer.Length);
            if (n >= 0) return (int)n;
            int errno = Marshal.GetLastPInvokeError();
            if (errno == EIntr) continue;
            return errno == EAgain ? 0 : -errno;
        }
    }

    /// <summary>Sends one frame.</summary>
    /// <returns>0 when sent; a negative errno otherwise (EAGAIN: the device's queue is full; EIO: the device is down).</returns>
    public unsafe int Write(ReadOnlySpan<byte> frame)
    {
        while (true)
        {
            nint n;
            fixed (byte* p = frame) n = WriteFile(_fd, p, (nuint)frame.Length);
            if (n >= 0) return 0;
            int errno = Marshal.GetLastPInvokeError();
            if (errno != EIntr) return -errno;
        }
    }

    /// <summary>Closes the descriptor; a device this process created disappears with it.</summary>
    public void Dispose()
    {
        int fd = Interlocked.Exchange(ref _fd, -1);
        if (fd >= 0) Close(fd);
    }

    [LibraryImport("libc", EntryPoint = "open", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    private static partial int OpenFile(string path, int flags);

    [LibraryImport("libc", EntryPoint = "ioctl", SetLastError = true)]
    private static unsafe partial int Ioctl(int fd, nuint request, void* argument);

    [LibraryImport("libc", EntryPoint = "read", SetLastError = true)]
    private static unsafe partial nint ReadFile(int fd, byte* buffer, nuint count);

    [LibraryImport("libc", EntryPoint = "write", SetLastError = true)]
    private static unsafe partial nint WriteFile(int fd, byte* buffer, nuint count);

    [LibraryImport("libc", EntryPoint = "close")]
    private static partial int Close(int fd);
}
