using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;

namespace FastPath.DataPlane.Routing;

/// <summary>
/// Large lookup tables backed by transparent huge pages where the kernel allows it. A 64 MiB tbl24 on 4 KiB pages
/// spans 16k pages, far more than the STLB holds, so random lookups pay a page walk on top of the cache miss; DPDK
/// avoids that by putting rte_lpm in hugepage memory. With THP in "madvise" mode (the common default) the range
/// must be marked with madvise(MADV_HUGEPAGE) before it is first touched.
/// </summary>
internal static partial class HugePages
{
    private const int MadvHugePage = 14; // <linux/mman.h>
    private const long HugePageSize = 2 << 20;

    /// <summary>
    /// Whether to ask for huge pages (set FASTPATH_NO_HUGEPAGES=1 to compare). Internal so tests/benchmarks can flip it.
    /// </summary>
    internal static bool Enabled { get; set; } = Environment.GetEnvironmentVariable("FASTPATH_NO_HUGEPAGES") != "1";

    /// <summary>
    /// A pinned (pinned object heap, never moved) uninitialised array, its 2 MiB-aligned interior advised for huge
    /// pages. Best effort: on other systems or if madvise fails it is on ordinary pages (still pinned).
    /// </summary>
    public static unsafe uint[] AllocateUInt32(int length)
    {
        // Pinned either way: LpmTable4 reads it through a raw pointer taken once.
        var array = GC.AllocateUninitializedArray<uint>(length, pinned: true);
        if (!Enabled || !OperatingSystem.IsLinux()) return array;
        long start = (long)Unsafe.AsPointer(ref MemoryMarshal.GetArrayDataReference(array));
        long end = start + (long)length * sizeof(uint);
        long alignedStart = (start + HugePageSize - 1) & ~(HugePageSize - 1);
        long alignedEnd = end & ~(HugePageSize - 1);
        if (alignedEnd > alignedStart) _ = Madvise((nint)alignedStart, (nuint)(alignedEnd - alignedStart), MadvHugePage);
        return array;
    }

    [LibraryImport("libc", EntryPoint = "madvise")]
    private static partial int Madvise(nint address, nuint length, int advice);
}
