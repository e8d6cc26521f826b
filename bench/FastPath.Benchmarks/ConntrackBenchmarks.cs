using System.Collections.Concurrent;
using BenchmarkDotNet.Attributes;
using FastPath.DataPlane.Conntrack;
using FastPath.DataPlane.Packets;

namespace FastPath.Benchmarks;

/// <summary>
/// Conntrack lookup hit, lookup miss and insert+remove on a 1M-connection table at 50 % and 100 % fill (1,048,576
/// connections, 2,097,152 tuples), one key at a time and batched (<see cref="ConntrackTable.LookupBatch"/>),
/// against <see cref="Dictionary{TKey,TValue}"/> and <see cref="ConcurrentDictionary{TKey,TValue}"/> holding the same
/// connections under both tuples. Keys are drawn at random from the whole set, so most lookups miss the CPU caches as
/// they would on a busy node. Results are per operation (OperationsPerInvoke = batch size).
/// </summary>
[MemoryDiagnoser]
public class ConntrackBenchmarks
{
    private const int Capacity = 1 << 20;
    private const int Batch = 4096;

    [Params(50, 100)]
    public int FillPercent { get; set; }

    private ConntrackTable _table = null!;
    private Dictionary<FlowKey, int> _dictionary = null!;
    private ConcurrentDictionary<FlowKey, int> _concurrent = null!;
    private FlowKey[] _present = [];
    private FlowKey[] _absent = [];
    private FlowKey[] _fresh = [];
    private readonly int[] _results = new int[Batch];
    private readonly bool[] _isReply = new bool[Batch];

    private static FlowKey RandomKey(Random rng) => new(
        IpAddr.FromV4(0x0AF4_0000u | (uint)rng.Next(1 << 16)), IpAddr.FromV4((uint)rng.Next()),
        (ushort)rng.Next(1024, 65536), (ushort)rng.Next(1, 1024), rng.Next(2) == 0 ? IpProtocol.Tcp : IpProtocol.Udp);

    [GlobalSetup]
    public void Setup()
    {
        var rng = new Random(2024);
        int n = Capacity / 100 * FillPercent;
        _table = new ConntrackTable(Capacity, seed: 0x5EED);
        _dictionary = new Dictionary<FlowKey, int>(2 * Capacity);
        _concurrent = new ConcurrentDictionary<FlowKey, int>(1, 2 * Capacity);
        var keys = new FlowKey[n];
        for (int i = 0; i < n; )
        {
            var k = RandomKey(rng);
            int e = _table.Insert(k, k.Reverse(), 0);
            if (e < 0) continue;
            _dictionary.Add(k, e); _dictionary.Add(k.Reverse(), e);
            _concurrent.TryAdd(k, e); _concurrent.TryAdd(k.Reverse(), e);
            keys[i++] = k;
        }
        _present = new FlowKey[Batch];
        _absent = new FlowKey[Batch];
        _fresh = new FlowKey[Batch];
        for (int i = 0; i < Batch; i++)
        {
            var k = keys[rng.Next(n)];
            _present[i] = (i & 1) == 0 ? k : k.Reverse(); // both directions, as traffic has
            _absent[i] = RandomKey(rng);
            _fresh[i] = RandomKey(rng);
        }
    }

    [Benchmark(OperationsPerInvoke = Batch)]
    public int TableLookupHit()
    {
        int s = 0;
        foreach (ref readonly var k in _present.AsSpan()) s += _table.Lookup(k, 1, out _);
        return s;
    }

    [Benchmark(OperationsPerInvoke = Batch)]
    public int TableLookupHitBatch()
    {
        _table.LookupBatch(_present, 1, _results, _isReply);
        return _results[Batch - 1];
    }

    [Benchmark(OperationsPerInvoke = Batch)]
    public int DictionaryLookupHit()
    {
        int s = 0;
        foreach (ref readonly var k in _present.AsSpan()) { _dictionary.TryGetValue(k, out int v); s += v; }
        return s;
    }

    [Benchmark(OperationsPerInvoke = Batch)]
    public int ConcurrentLookupHit()
    {
        int s = 0;
        foreach (ref readonly var k in _present.AsSpan()) { _concurrent.TryGetValue(k, out int v); s += v; }
        return s;
    }

    [Benchmark(OperationsPerInvoke = Batch)]
    public int TableLookupMiss()
    {
        int s = 0;
        foreach (ref readonly var k in _absent.AsSpan()) s += _table.Lookup(k, 1, out _);
        return s;
    }

    [Benchmark(OperationsPerInvoke = Batch)]
    public int TableLookupMissBatch()
    {
        _table.LookupBatch(_absent, 1, _results, _isReply);
        return _results[Batch - 1];
    }

    [Benchmark(OperationsPerInvoke = Batch)]
    public int DictionaryLookupMiss()
    {
        int s = 0;
        foreach (ref readonly var k in _absent.AsSpan()) s += _dictionary.TryGetValue(k, out _) ? 1 : 0;
        return s;
    }

    [Benchmark(OperationsPerInvoke = Batch)]
    public int ConcurrentLookupMiss()
    {
        int s = 0;
        foreach (ref readonly var k in _absent.AsSpan()) s += _concurrent.TryGetValue(k, out _) ? 1 : 0;
        return s;
    }

    /// <summary>Insert (both tuples indexed, clash check included) then remove: one connection's life without its packets.</summary>
    [Benchmark(OperationsPerInvoke = Batch)]
    public int TableInsertRemove()
    {
        int s = 0;
        foreach (ref readonly var k in _fresh.AsSpan())
        {
            int e = _table.Insert(k, k.Reverse(), 1);
            _table.Remove(e);
            s += e;
        }
        return s;
    }

    [Benchmark(OperationsPerInvoke = Batch)]
    public int DictionaryInsertRemove()
    {
        int s = 0;
        foreach (ref readonly var k in _fresh.AsSpan())
        {
            var r = k.Reverse();
            if (_dictionary.TryAdd(k, 1) && _dictionary.TryAdd(r, 1)) s++;
            _dictionary.Remove(k);
            _dictionary.Remove(r);
        }
        return s;
    }

    [Benchmark(OperationsPerInvoke = Batch)]
    public int ConcurrentInsertRemove()
    {
        int s = 0;
        foreach (ref readonly var k in _fresh.AsSpan())
        {
            var r = k.Reverse();
            if (_concurrent.TryAdd(k, 1) && _concurrent.TryAdd(r, 1)) s++;
            _concurrent.TryRemove(k, out _);
            _concurrent.TryRemove(r, out _);
        }
        return s;
    }
}
