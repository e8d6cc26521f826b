using System.Runtime.InteropServices;

namespace FastPath.DataPlane.Telemetry;

/// <summary>
/// CPU time of the calling thread (Linux CLOCK_THREAD_CPUTIME_ID). On a shared machine a worker is often descheduled;
/// its own CPU time per packet stays meaningful where wall-clock time per packet does not. No allocation. Used by
/// <c>fastpath bench</c> and the LPM comparison against rte_lpm (bench/rte_lpm/compare.sh).
/// </summary>
public static class ThreadCpuClock
{
    private const int ClockThreadCpuTime = 3; // CLOCK_THREAD_CPUTIME_ID, linux/time.h

    [StructLayout(LayoutKind.Sequential)]
    private struct Timespec
    {
        public long Seconds;
        public long Nanoseconds;
    }

    // DllImport (blittable, no marshalling stub).
    [DllImport("libc", EntryPoint = "clock_gettime")]
    private static extern int ClockGetTime(int clock, out Timespec time);

    /// <summary>Nanoseconds of CPU time this thread has used, or -1 where the clock is not available.</summary>
    public static long Now()
    {
        if (!OperatingSystem.IsLinux()) return -1;
        return ClockGetTime(ClockThreadCpuTime, out var t) == 0 ? t.Seconds * 1_000_000_000L + t.Nanoseconds : -1;
    }
}
