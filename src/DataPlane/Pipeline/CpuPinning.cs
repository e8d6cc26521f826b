using System.Runtime.InteropServices;

namespace FastPath.DataPlane.Pipeline;

/// <summary>
/// Keeps a forwarding thread on one CPU and everything else of the process off it, with sched_setaffinity(2) on
/// thread ids (a managed thread is one kernel thread on Linux). A thread created later inherits its creator's mask
/// (clone(2)), so once the control-plane threads sit on their CPU, the thread-pool workers, timers and parallel
/// loops they start land there too; <see cref="PinOtherThreads"/> is cheap enough to call again to catch threads
/// created from elsewhere. Linux only; elsewhere every call reports false / 0.
/// </summary>
public static partial class CpuPinning
{
    /// <summary>The calling thread's kernel id (gettid(2)); -1 off Linux.</summary>
    public static int CurrentThreadId => OperatingSystem.IsLinux() ? GetTid() : -1;

    /// <summary>Restricts the calling thread to <paramref name="cpu"/>; false where the kernel refused (a CPU outside
    /// the cgroup's set) or off Linux.</summary>
    public static bool PinCurrentThread(int cpu) => OperatingSystem.IsLinux() && Pin(0, cpu);

    /// <summary>
    /// Restricts every thread of the process but <paramref name="exceptThreadId"/> to <paramref name="cpu"/> (the
    /// threads listed in /proc/self/task). Returns how many threads were pinned; a thread that exited meanwhile is
    /// skipped.
    /// </summary>
    public static int PinOtherThreads(int cpu, int exceptThreadId)
    {
        if (!OperatingSystem.IsLinux() || !Directory.Exists("/proc/self/task")) return 0;
        int pinned = 0;
        foreach (var task in Directory.EnumerateDirectories("/proc/self/task"))
            if (int.TryParse(Path.GetFileName(task), out int tid) && tid != exceptThreadId && Pin(tid, cpu)) pinned++;
        return pinned;
    }

    /// <summary>CPU time the calling thread has used (CLOCK_THREAD_CPUTIME_ID), so a rate can be given per CPU-second
    /// as well as per wall second on a machine the thread shares; zero off Linux.</summary>
    public static unsafe TimeSpan CurrentThreadCpuTime()
    {
        if (!OperatingSystem.IsLinux()) return TimeSpan.Zero;
        TimeSpec t;
        return ClockGetTime(ClockThreadCpuTime, &t) == 0 ? TimeSpan.FromTicks(t.Seconds * TimeSpan.TicksPerSecond + t.Nanoseconds / 100) : TimeSpan.Zero;
    }

    private static bool Pin(int tid, int cpu)
    {
        if ((uint)cpu >= 64) return false;
        ulong mask = 1UL << cpu; // cpu_set_t's first word (<sched.h>); the kernel zero-fills the rest of a short mask
        return SchedSetAffinity(tid, sizeof(ulong), ref mask) == 0;
    }

    private const int ClockThreadCpuTime = 3; // <linux/time.h> CLOCK_THREAD_CPUTIME_ID

    [StructLayout(LayoutKind.Sequential)]
    private struct TimeSpec
    {
        public long Seconds;
        public long Nanoseconds;
    }

    [LibraryImport("libc", EntryPoint = "sched_setaffinity")]
    private static partial int SchedSetAffinity(int pid, nuint size, ref ulong mask);

    [LibraryImport("libc", EntryPoint = "gettid")]
    private static partial int GetTid();

    [LibraryImport("libc", EntryPoint = "clock_gettime")]
    private static unsafe partial int ClockGetTime(int clock, TimeSpec* time);
}
