using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using FastPath.DataPlane.Conntrack;
using FastPath.DataPlane.State;
using FastPath.DataPlane.Telemetry;

namespace FastPath.Tests.Conntrack;

/// <summary>
/// Tables allocated up front and written all over (the conntrack index, the flow-log ring, the flow-owner map, the
/// session-affinity table) are resident as soon as they exist, so the process's RSS does not creep up for minutes as
/// their pages are first written (issue 21's soak: the index of a 262,144-connection table added up to 8 MiB over the
/// first ten minutes, page fault by page fault on the packet path). Which pages are backed is read from
/// /proc/self/pagemap.
/// </summary>
public class ResidentTablesTests
{
    [Fact]
    public void ConntrackIndex_IsResidentWhenTheTableIsMade()
    {
        SkipUnlessPagemap();
        // Megabytes of index slots: a fresh large-object allocation, which the kernel backs only where it is written.
        var table = new ConntrackTable(262_144);
        var (pages, resident) = Residency(table.IndexMemory);
        Assert.True(pages >= table.IndexMemory.Length / Environment.SystemPageSize && pages >= 1024, $"{pages} pages");
        Assert.Equal(pages, resident);
    }

    [Fact]
    public void FlowRing_IsResidentWhenMade()
    {
        SkipUnlessPagemap();
        var ring = new FlowRing(1 << 16);
        var (pages, resident) = Residency(ring.Memory);
        Assert.True(pages > 2000, $"{pages} pages");
        Assert.Equal(pages, resident);
    }

    [Fact]
    public void FlowOwnersAndAffinity_AreResidentWhenMade()
    {
        SkipUnlessPagemap();
        var owners = new FlowOwners(2);
        var (pages, resident) = Residency(owners.Memory);
        Assert.True(pages >= 256, $"{pages} pages");
        Assert.Equal(pages, resident);
        var affinity = new DataPlane.Services.AffinityTable(1 << 16);
        (pages, resident) = Residency(affinity.Memory);
        Assert.True(pages >= 256, $"{pages} pages");
        Assert.Equal(pages, resident);
    }

    [Fact]
    public void Prefault_BacksEveryPageOfAFreshArray_AndKeepsItsContents()
    {
        SkipUnlessPagemap();
        var array = new long[3 << 20]; // 24 MiB: untouched pages until written
        array[12345] = 42;
        array[^1] = -7;
        ResidentMemory.Prefault(array);
        var (pages, resident) = Residency(MemoryMarshal.AsBytes(array.AsSpan()));
        Assert.Equal(pages, resident);
        Assert.Equal(42, array[12345]);
        Assert.Equal(-7, array[^1]);
        Assert.Equal(0, array[1 << 20]);
    }

    private static void SkipUnlessPagemap()
    {
        if (!OperatingSystem.IsLinux() || !File.Exists("/proc/self/pagemap")) Assert.Skip("needs Linux's /proc/self/pagemap");
    }

    /// <summary>Pages <paramref name="memory"/> spans, and how many of them are backed (present or swapped). The
    /// tables are large objects, which the GC does not move.</summary>
    private static (int Pages, int Resident) Residency(ReadOnlySpan<byte> memory)
    {
        long start = Unsafe.ByteOffset(ref Unsafe.NullRef<byte>(), ref MemoryMarshal.GetReference(memory));
        long size = Environment.SystemPageSize;
        long first = start / size, last = (start + memory.Length - 1) / size;
        var entries = new byte[(last - first + 1) * 8];
        using var pagemap = File.OpenHandle("/proc/self/pagemap");
        Assert.Equal(entries.Length, RandomAccess.Read(pagemap, entries, first * 8));
        int resident = 0;
        for (int i = 0; i < entries.Length; i += 8)
            if ((BitConverter.ToUInt64(entries, i) >> 62) != 0) resident++;
        return (entries.Length / 8, resident);
    }
}
