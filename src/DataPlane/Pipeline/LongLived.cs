namespace FastPath.DataPlane.Pipeline;

/// <summary>
/// Arrays of the snapshot that live as long as the snapshot parts holding them (a Service's Maglev slots and backend
/// lists, an EndpointSlice's endpoints), allocated on the pinned object heap: it belongs to the oldest generation, so
/// an ephemeral (gen0/gen1) collection neither marks nor copies them. A live change makes a few KB of such arrays, and
/// copying them at every gen0 collection was most of the EndpointSlice change's max under churn (issue 20: one gen0
/// collection promoting 13 MiB). Only arrays without references (pinned arrays may not hold any).
/// </summary>
/// <remarks>
/// The pinned heap's garbage (the arrays of replaced versions) is reclaimed only by gen2 collections, and with so little
/// promoted per change the runtime starts those rarely: measured, 80,000 EndpointSlice changes ran without one while
/// the pinned heap grew by 3 MiB per 1,000 changes. So every <see cref="ReclaimEvery"/> bytes allocated here since
/// the last gen2 collection, a background gen2 collection is requested (concurrent marking, short pauses; with
/// concurrent GC off the runtime makes it blocking), which bounds that garbage.
/// </remarks>
public static class LongLived
{
    /// <summary>Bytes allocated here between two gen2 collections at most (one is requested when more were).</summary>
    public const long ReclaimEvery = 32L << 20;

    private static long s_allocated;
    private static int s_gen2Seen;

    /// <summary>A zeroed array of <paramref name="length"/> on the pinned object heap.</summary>
    public static T[] Array<T>(int length) where T : unmanaged
    {
        if (length == 0) return [];
        Count((long)length * System.Runtime.CompilerServices.Unsafe.SizeOf<T>());
        return GC.AllocateArray<T>(length, pinned: true);
    }

    /// <summary>An array with <paramref name="items"/>' contents on the pinned object heap.</summary>
    public static T[] Copy<T>(ReadOnlySpan<T> items) where T : unmanaged
    {
        if (items.IsEmpty) return [];
        Count((long)items.Length * System.Runtime.CompilerServices.Unsafe.SizeOf<T>());
        var array = GC.AllocateUninitializedArray<T>(items.Length, pinned: true);
        items.CopyTo(array);
        return array;
    }

    private static void Count(long bytes)
    {
        int gen2 = GC.CollectionCount(2);
        if (gen2 != Volatile.Read(ref s_gen2Seen)) // a gen2 ran since: what was allocated before it is reclaimed
        {
            Volatile.Write(ref s_gen2Seen, gen2);
            Interlocked.Exchange(ref s_allocated, 0);
        }
        if (Interlocked.Add(ref s_allocated, bytes) < ReclaimEvery) return;
        Interlocked.Exchange(ref s_allocated, 0);
        GC.Collect(2, GCCollectionMode.Forced, blocking: false, compacting: false);
    }
}
