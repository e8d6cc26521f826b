using System.Runtime.InteropServices;

namespace FastPath.DataPlane.Ports;

/// <summary>
/// A Linux eventfd(2) a worker polls beside its TAP queues, so another worker that hands it packets can wake it from
/// poll at once (instead of after the poll timeout). Non-blocking; <see cref="Signal"/> from any thread,
/// <see cref="Drain"/> from the owner.
/// </summary>
public sealed partial class WakeEvent : IDisposable
{
    private const int EfdNonBlock = 0x800, EfdCloExec = 0x80000;
    private int _fd;

    public WakeEvent()
    {
        _fd = EventFd(0, EfdNonBlock | EfdCloExec);
        if (_fd < 0) throw new IOException($"eventfd: {Marshal.GetPInvokeErrorMessage(Marshal.GetLastPInvokeError())}");
    }

    public int FileDescriptor => _fd;

    public unsafe void Signal()
    {
        ulong one = 1;
        _ = WriteFile(_fd, &one, sizeof(ulong));
    }

    public unsafe void Drain()
    {
        ulong value;
        _ = ReadFile(_fd, &value, sizeof(ulong));
    }

    public void Dispose()
    {
        int fd = Interlocked.Exchange(ref _fd, -1);
        if (fd >= 0) Close(fd);
    }

    [LibraryImport("libc", EntryPoint = "eventfd", SetLastError = true)]
    private static partial int EventFd(uint initial, int flags);

    [LibraryImport("libc", EntryPoint = "read")]
    private static unsafe partial nint ReadFile(int fd, void* buffer, nuint count);

    [LibraryImport("libc", EntryPoint = "write")]
    private static unsafe partial nint WriteFile(int fd, void* buffer, nuint count);

    [LibraryImport("libc", EntryPoint = "close")]
    private static partial int Close(int fd);
}
