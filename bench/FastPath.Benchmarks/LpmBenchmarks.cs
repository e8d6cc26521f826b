using BenchmarkDotNet.Attributes;
using FastPath.DataPlane.Routing;

namespace FastPath.Benchmarks;

/// <summary>
/// IPv4 LPM, ns per lookup. Peers in the same class: a Dictionary per prefix length searched longest first (the
/// naive .NET way); rte_lpm runs from bench/rte_lpm on the same data (files from <c>export-lpm</c>).
/// </summary>
[MemoryDiagnoser]
public class Lpm4Benchmarks
{
    private LpmTable4 _table = null!;
    private uint[] _addresses = null!;
    private int[] _hops = null!;
    private Dictionary<uint, int>[] _byLength = null!;
    private int[] _lengths = null!;

    [Params(1_000, 100_000, 1_000_000)]
    public int Routes { get; set; }

    [Params("Random", "Zipf")]
    public string Traffic { get; set; } = "Random";

    [GlobalSetup]
    public void Setup()
    {
        var routes = LpmDataSets.V4Routes(Routes);
        _table = LpmTable4.Build(routes);
        _addresses = LpmDataSets.V4Addresses(routes, Traffic);
        _hops = new int[_addresses.Length];
        _byLength = new Dictionary<uint, int>[33];
        for (int l = 0; l <= 32; l++) _byLength[l] = new Dictionary<uint, int>();
        foreach (var (p, l, h) in routes) _byLength[l][p] = h;
        _lengths = Enumerable.Range(0, 33).Where(l => _byLength[l].Count > 0).Reverse().ToArray();
    }

    [Benchmark(OperationsPerInvoke = LpmDataSets.Lookups)]
    public int Single()
    {
        var t = _table;
        int x = 0;
        foreach (uint a in _addresses) x ^= t.Lookup(a);
        return x;
    }

    [Benchmark(OperationsPerInvoke = LpmDataSets.Lookups)]
    public int Batch()
    {
        _table.LookupBatch(_addresses, _hops);
        return _hops[^1];
    }

    [Benchmark(OperationsPerInvoke = LpmDataSets.Lookups, Baseline = true)]
    public int NaiveDictionary()
    {
        int x = 0;
        foreach (uint a in _addresses)
        {
            int hop = -1;
            foreach (int l in _lengths)
                if (_byLength[l].TryGetValue(a & LpmDataSets.Mask4(l), out hop)) break;
            x ^= hop;
        }
        return x;
    }
}

/// <summary>IPv6 LPM at 100k routes, ns per lookup, with the same Dictionary-per-length peer.</summary>
[MemoryDiagnoser]
public class Lpm6Benchmarks
{
    private LpmTable6 _table = null!;
    private UInt128[] _addresses = null!;
    private int[] _hops = null!;
    private Dictionary<UInt128, int>[] _byLength = null!;
    private int[] _lengths = null!;

    [Params(100_000)]
    public int Routes { get; set; }

    [Params("Random", "Zipf")]
    public string Traffic { get; set; } = "Random";

    [GlobalSetup]
    public void Setup()
    {
        var routes = LpmDataSets.V6Routes(Routes);
        _table = LpmTable6.Build(routes);
        _addresses = LpmDataSets.V6Addresses(routes, Traffic);
        _hops = new int[_addresses.Length];
        _byLength = new Dictionary<UInt128, int>[129];
        for (int l = 0; l <= 128; l++) _byLength[l] = new Dictionary<UInt128, int>();
        foreach (var (p, l, h) in routes) _byLength[l][p] = h;
        _lengths = Enumerable.Range(0, 129).Where(l => _byLength[l].Count > 0).Reverse().ToArray();
    }

    [Benchmark(OperationsPerInvoke = LpmDataSets.Lookups)]
    public int Single()
    {
        var t = _table;
        int x = 0;
        foreach (var a in _addresses) x ^= t.Lookup(a);
        return x;
    }

    [Benchmark(OperationsPerInvoke = LpmDataSets.Lookups)]
    public int Batch()
    {
        _table.LookupBatch(_addresses, _hops);
        return _hops[^1];
    }

    [Benchmark(OperationsPerInvoke = LpmDataSets.Lookups, Baseline = true)]
    public int NaiveDictionary()
    {
        int x = 0;
        foreach (var a in _addresses)
        {
            int hop = -1;
            foreach (int l in _lengths)
                if (_byLength[l].TryGetValue(a & LpmDataSets.Mask6(l), out hop)) break;
            x ^= hop;
        }
        return x;
    }
}
