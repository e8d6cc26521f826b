namespace FastPath.DataPlane.State;

/// <summary>
/// Makes a table allocated up front resident at once. The kernel backs an anonymous page only when it is first
/// written, so a table whose entries are written at scattered places (a hash index, a ring) otherwise grows the
/// process's RSS for minutes after start-up — in issue 21's soak the conntrack index alone added 6 MiB in the first
/// 2.5 minutes and went on growing — and each first write is a page fault (a kernel entry and a page zeroed) on the
/// packet path. DPDK pre-faults its memory for the same reason.
/// </summary>
public static class ResidentMemory
{
    /// <summary>Writes one byte of every page <paramref name="array"/> spans (its own value back), so the kernel backs
    /// them now. Off the packet path: ~1 ms per 8 MiB.</summary>
    public static void Prefault<T>(T[] array) where T : unmanaged
    {
        var bytes = System.Runtime.InteropServices.MemoryMarshal.AsBytes(array.AsSpan());
        if (bytes.IsEmpty) return;
        int page = Environment.SystemPageSize;
        for (int i = 0; i < bytes.Length; i += page) Volatile.Write(ref bytes[i], bytes[i]);
        Volatile.Write(ref bytes[^1], bytes[^1]);
    }
}
