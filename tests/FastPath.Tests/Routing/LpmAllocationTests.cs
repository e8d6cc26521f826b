using FastPath.DataPlane.Routing;
using FastPath.Tests.Support;

namespace FastPath.Tests.Routing;

[Collection(AllocationCollection.Name)]
public class LpmAllocationTests
{
    /// <summary>1M single and 1M batched lookups per family move the thread's allocation counter by 0 bytes.</summary>
    [Fact]
    public void OneMillionLookupsAllocateNothing()
    {
        var rng = new Random(1);
        var v4 = LpmTable4.Build(Enumerable.Range(0, 5000).Select(i => ((uint)rng.NextInt64(), rng.Next(8, 33), i)));
        var v6 = LpmTable6.Build(Enumerable.Range(0, 5000).Select(i => (new UInt128(0x2001_0000_0000_0000UL | (ulong)rng.NextInt64() >> 3, 0), rng.Next(16, 65), i)));
        var a4 = new uint[1024];
        var a6 = new UInt128[1024];
        for (int i = 0; i < a4.Length; i++) { a4[i] = (uint)rng.NextInt64(); a6[i] = new UInt128(0x2001_0000_0000_0000UL | (ulong)rng.NextInt64() >> 3, 1); }
        var hops = new int[1024];
        long sink = 0;

        void Run()
        {
            for (int round = 0; round < 1_000_000 / a4.Length + 1; round++)
            {
                for (int i = 0; i < a4.Length; i++) sink += v4.Lookup(a4[i]) + v6.Lookup(a6[i]);
                v4.LookupBatch(a4, hops);
                sink += hops[round & 1023];
                v6.LookupBatch(a6, hops);
                sink += hops[round & 1023];
            }
        }

        Run(); // JIT and tiering before measuring
        Assert.Equal(0, Allocations.Measure(Run));
        Assert.NotEqual(long.MinValue, sink);
    }
}
