using FastPath.DataPlane.Conntrack;
using FastPath.DataPlane.Packets;
using FastPath.DataPlane.Services;

namespace FastPath.Tests.Services;

/// <summary>
/// <see cref="ServiceTable.Update"/> (only the touched shards rebuilt) against the obviously correct reference: a
/// table built from scratch over the same frontends. Random adds and removes, including the resharding thresholds.
/// </summary>
public class ServiceTableUpdateTests
{
    [Fact]
    public void UpdatedTable_AnswersLikeATableBuiltFromScratch()
    {
        var random = new Random(6);
        var maglev = new MaglevTable.Builder();
        var live = new List<CompiledFrontend>();
        var table = new ServiceTable(live);
        int next = 0, largest = 0;
        for (int step = 0; step < 300; step++)
        {
            var removed = live.Where(_ => random.Next(step < 150 ? 64 : 6) == 0).ToList();
            // Grow fast first (several reshardings), then shrink.
            int adds = step < 150 ? random.Next(1, 40) : random.Next(0, 3);
            var added = Enumerable.Range(0, adds).Select(_ =>
            {
                int n = next++;
                var backends = new List<ServiceBackend> { new(IpAddr.FromV4(0x0AF4_0000u + (uint)(n % 250) + 2), 8080) };
                // Several ports per address: one address's frontends share a shard.
                var frontend = new ServiceFrontend($"svc-{n}", IpAddr.FromV4(0x0A60_0000u + (uint)(n / 3)), (ushort)(80 + n % 3), IpProtocol.Tcp, backends);
                return CompiledFrontend.Build(frontend, MaglevTable.MinSize, maglev);
            }).ToList();
            foreach (var r in removed) live.Remove(r);
            live.AddRange(added);
            table = table.Update(removed, added);
            largest = Math.Max(largest, live.Count);

            var reference = new ServiceTable(live);
            Assert.Equal(reference.Count, table.Count);
            for (uint a = 0; a < next / 3 + 2; a++)
            {
                var address = IpAddr.FromV4(0x0A60_0000u + a);
                Assert.Equal(reference.IsVirtualIp(address), table.IsVirtualIp(address));
                for (ushort port = 79; port <= 83; port++)
                {
                    int got = table.Lookup(address, port, IpProtocol.Tcp), want = reference.Lookup(address, port, IpProtocol.Tcp);
                    Assert.Equal(want >= 0, got >= 0);
                    if (got >= 0) Assert.Same(reference.Frontend(want), table.Frontend(got));
                }
            }
        }
        Assert.True(largest > 1024, $"grew to {largest} only: the shard count never changed"); // 64 per shard, resharded at 4×
        Assert.True(live.Count < 16, $"shrank to {live.Count} only");
    }
    /// <summary>The engine takes <see cref="ServiceTable.PrefetchOpen"/>'s frontends as facts (a SYN with one skips the
    /// virtual-IP check): they must be <see cref="ServiceTable.Lookup"/>'s answers for the marked tuples, -1 for the rest.</summary>
    [Fact]
    public void PrefetchOpen_FindsTheFrontendsLookupFinds()
    {
        var maglev = new MaglevTable.Builder();
        var frontends = Enumerable.Range(0, 500).Select(n => CompiledFrontend.Build(new ServiceFrontend($"svc-{n}",
            IpAddr.FromV4(0x0A60_0000u + (uint)(n / 2)), (ushort)(80 + n % 2), IpProtocol.Tcp,
            [new ServiceBackend(IpAddr.FromV4(0x0AF4_0002u + (uint)n), 8080)]), MaglevTable.MinSize, maglev)).ToList();
        var table = new ServiceTable(frontends);
        var random = new Random(16);
        var keys = new FlowKey[256];
        var opening = new bool[256];
        for (int i = 0; i < keys.Length; i++)
        {
            var destination = IpAddr.FromV4(0x0A60_0000u + (uint)random.Next(0, 300)); // some addresses are no Service
            keys[i] = new FlowKey(IpAddr.FromV4(0x0AF4_1000u + (uint)i), destination, (ushort)(40000 + i), (ushort)random.Next(79, 83),
                random.Next(8) == 0 ? IpProtocol.Udp : IpProtocol.Tcp);
            opening[i] = random.Next(4) != 0;
        }
        var found = Enumerable.Repeat(12345, keys.Length).ToArray();
        table.PrefetchOpen(keys, opening, found);
        int hits = 0;
        for (int i = 0; i < keys.Length; i++)
        {
            int want = opening[i] ? table.Lookup(keys[i].Destination, keys[i].DestinationPort, keys[i].Protocol) : -1;
            Assert.Equal(want, found[i]);
            if (want >= 0) hits++;
        }
        Assert.True(hits > 50, $"only {hits} tuples reached a frontend");
    }
}
