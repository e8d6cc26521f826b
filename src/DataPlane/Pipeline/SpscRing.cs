using System.Diagnostics.CodeAnalysis;
using System.Runtime.InteropServices;

namespace FastPath.DataPlane.Pipeline;

/// <summary>A counter alone on its cache line, so producer and consumer do not invalidate each other's line.</summary>
/// <remarks>Outside <see cref="SpscRing{T}"/>: a struct nested in a generic type cannot have explicit layout.</remarks>
[StructLayout(LayoutKind.Explicit, Size = 128)]
internal struct PaddedCounter
{
    [FieldOffset(64)] public long Value;
}

/// <summary>
/// A fixed-size single-producer / single-consumer ring of references (batches handed between a port thread and a
/// worker): one thread only enqueues, one only dequeues, so a volatile write of each side's counter is all the
/// synchronisation needed (as DPDK's rte_ring in SP/SC mode). No locks, no allocation after construction.
/// </summary>
public sealed class SpscRing<T> where T : class
{
    private readonly T?[] _items;
    private readonly int _mask;
    private PaddedCounter _head; // next slot to dequeue; written by the consumer only
    private PaddedCounter _tail; // next slot to fill; written by the producer only

    /// <param name="capacity">A power of two.</param>
    public SpscRing(int capacity)
    {
        if (capacity < 1 || (capacity & (capacity - 1)) != 0)
            throw new ArgumentOutOfRangeException(nameof(capacity), capacity, "must be a power of two");
        _items = new T?[capacity];
        _mask = capacity - 1;
    }

    /// <summary>Producer side: false when the ring is full.</summary>
    public bool TryEnqueue(T item)
    {
        long tail = _tail.Value;
        if (tail - Volatile.Read(ref _head.Value) == _items.Length) return false;
        _items[tail & _mask] = item;
        Volatile.Write(ref _tail.Value, tail + 1); // publishes the item written above
        return true;
    }

    /// <summary>Consumer side: false when the ring is empty.</summary>
    public bool TryDequeue([NotNullWhen(true)] out T? item)
    {
        long head = _head.Value;
        if (head == Volatile.Read(ref _tail.Value))
        {
            item = null;
            return false;
        }
        int i = (int)(head & _mask);
        item = _items[i]!;
        _items[i] = null;
        Volatile.Write(ref _head.Value, head + 1); // the slot may be reused from here on
        return true;
    }
}
