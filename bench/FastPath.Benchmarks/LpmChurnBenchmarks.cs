using BenchmarkDotNet.Attributes;
using FastPath.DataPlane.Routing;

namespace FastPath.Benchmarks;

/// <summary>
/// IPv4 lookups at 100k prefixes while a writer thread keeps changing routes (remove one, add one, publish a new
/// table by reference swap, as the control plane does), against the same lookups with no writer, in one class.
/// Readers take the table reference once per batch of 256 lookups, as the engine takes the snapshot once per batch.
/// Also the cost of one route change + publish (copy-on-write of tbl24) vs a full rebuild.
/// </summary>
[MemoryDiagnoser]
public class LpmChurnBenchmarks
{
    private const int Batch = 256;

    [Params(false, true)]
    public bool Writer { get; set; }

    private (uint Prefix, int Length, int NextHop)[] _routes = [];
    private uint[] _addresses = [];
    private LpmTable4 _table = null!;
    private LpmTable4.Builder _builder = null!;
    private Thread? _writer;
    private volatile bool _stop;
    private long _publishes;

    [GlobalSetup]
    public void Setup()
    {
        _routes = LpmDataSets.V4Routes(100_000);
        _addresses = LpmDataSets.V4Addresses(_routes, "Random");
        _builder = new LpmTable4.Builder();
        foreach (var (p, l, h) in _routes) _builder.Add(p, l, h);
        _table = _builder.ToTable();
        if (!Writer) return;
        _stop = false;
        _writer = new Thread(() =>
        {
            var rng = new Random(9);
            while (!_stop)
            {
                var (p, l, h) = _routes[rng.Next(_routes.Length)];
                _builder.Remove(p, l);
                _builder.Add(p, l, (h + 1) & 0xFFFF);
                Volatile.Write(ref _table, _builder.ToTable());
                Interlocked.Increment(ref _publishes);
            }
        }) { IsBackground = true, Name = "route writer" };
        _writer.Start();
    }

    [GlobalCleanup]
    public void Cleanup()
    {
        _stop = true;
        _writer?.Join();
        if (Writer) Console.WriteLine($"// route tables published during the run: {Interlocked.Read(ref _publishes)}");
    }

    [Benchmark(OperationsPerInvoke = LpmDataSets.Lookups)]
    public int Lookups()
    {
        int acc = 0;
        var a = _addresses;
        for (int i = 0; i < a.Length; i += Batch)
        {
            var table = Volatile.Read(ref _table);
            int end = Math.Min(i + Batch, a.Length);
            for (int j = i; j < end; j++) acc += table.Lookup(a[j]);
        }
        return acc;
    }
}

/// <summary>One route change published (remove + add + ToTable: tbl24 copy-on-write) vs rebuilding 100k prefixes.</summary>
[MemoryDiagnoser]
public class LpmUpdateBenchmarks
{
    private (uint Prefix, int Length, int NextHop)[] _routes = [];
    private LpmTable4.Builder _builder = null!;
    private int _i;

    [GlobalSetup]
    public void Setup()
    {
        _routes = LpmDataSets.V4Routes(100_000);
        _builder = new LpmTable4.Builder();
        foreach (var (p, l, h) in _routes) _builder.Add(p, l, h);
        _builder.ToTable();
    }

    [Benchmark]
    public LpmTable4 IncrementalChange()
    {
        var (p, l, h) = _routes[_i++ % _routes.Length];
        _builder.Remove(p, l);
        _builder.Add(p, l, h);
        return _builder.ToTable();
    }

    [Benchmark(Baseline = true)]
    public LpmTable4 FullRebuild() => LpmTable4.Build(_routes);
}
