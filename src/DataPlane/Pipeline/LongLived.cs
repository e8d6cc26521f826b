namespace FastPath.DataPlane.Pipeline;

/// <summary>
/// Arrays of the snapshot that live as long as the snapshot parts holding them (Maglev slots, backend lists, Service
/// shard slots, address tables), allocated on the pinned object heap: it belongs to the oldest generation, so an
/// ephemeral (gen0/gen1) collection neither marks nor copies them. A live change makes a few KB of such arrays, and
/// copying them at every gen0 collection was most of the EndpointSlice change's max under churn (issue 20: one gen0
/// collection promoting 13 MiB). Only arrays without references (pinned arrays may not hold any); their space is
/// reclaimed by the next gen2 collection instead, like the large-object heap's.
/// </summary>
public static class LongLived
{
    /// <summary>A zeroed array of <paramref name="length"/> on the pinned object heap.</summary>
    public static T[] Array<T>(int length) where T : unmanaged => length == 0 ? [] : GC.AllocateArray<T>(length, pinned: true);

    /// <summary>An array with <paramref name="items"/>' contents on the pinned object heap.</summary>
    public static T[] Copy<T>(ReadOnlySpan<T> items) where T : unmanaged
    {
        if (items.IsEmpty) return [];
        var array = GC.AllocateUninitializedArray<T>(items.Length, pinned: true);
        items.CopyTo(array);
        return array;
    }
}
