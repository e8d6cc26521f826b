using FastPath.DataPlane.Conntrack;
using FastPath.DataPlane.Nat;
using FastPath.DataPlane.Packets;
using FastPath.DataPlane.Services;

namespace FastPath.Tests.Services;

/// <summary>
/// After a Service change, established connections are re-checked only for the frontends the change touched
/// (<see cref="ServiceTable.UnchangedSince"/>, used by <see cref="ServiceNat.StillValid"/>), however many tables
/// back it was last checked; a touched connection whose backend is gone is still released as before.
/// </summary>
public class ServiceRecheckTests
{
    private static readonly IpAddr Client = IpAddr.FromV4(0x0A00_0002);

    private static CompiledFrontend Frontend(int service, byte protocol, params uint[] backends) =>
        CompiledFrontend.Build(new ServiceFrontend($"svc-{service}", IpAddr.FromV4(0x0A60_0000u + (uint)service), 80, protocol,
            backends.Select(b => new ServiceBackend(IpAddr.FromV4(b), 8080)).ToList()), MaglevTable.MinSize, new MaglevTable.Builder());

    /// <summary>A tracked connection from the client to the frontend, translated to its first backend, checked against <paramref name="services"/>.</summary>
    private static int Open(ConntrackTable table, ServiceTable services, CompiledFrontend f, ushort sourcePort)
    {
        var fe = f.Frontend;
        int index = ConntrackNat.InsertUnique(table, new FlowKey(Client, fe.Address, sourcePort, fe.Port, fe.Protocol),
            fe.Backends[0].Address, fe.Backends[0].Port, Client, now: 0);
        Assert.True(index >= 0);
        table[index].NatKind = ServiceNat.NatKind;
        table[index].NatTag = services.Version;
        return index;
    }

    [Fact]
    public void OneChangeRechecksOnlyTheConnectionsOfTheServiceItTouched()
    {
        // 200 Services over several shards, one UDP connection each.
        var frontends = Enumerable.Range(0, 200).Select(s => Frontend(s, IpProtocol.Udp, 0x0AF4_0000u + (uint)s, 0x0AF5_0000u + (uint)s)).ToList();
        var before = new ServiceTable(frontends);
        var table = new ConntrackTable(1024);
        var flows = frontends.Select((f, i) => Open(table, before, f, (ushort)(10_000 + i))).ToList();

        // Service 7 loses the backend its connection uses; service 8 gets a backend added (same shard or not).
        var seven = Frontend(7, IpProtocol.Udp, 0x0AF5_0007);
        var eight = Frontend(8, IpProtocol.Udp, 0x0AF4_0008, 0x0AF5_0008, 0x0AF6_0008);
        var after = before.Update([frontends[7], frontends[8]], [seven, eight]);
        for (int s = 0; s < frontends.Count; s++)
        {
            var fe = frontends[s].Frontend;
            Assert.Equal(s is not (7 or 8), after.UnchangedSince(before.Version, fe.Address, fe.Port, fe.Protocol));
        }
        // Untouched connections are kept and re-tagged; the touched ones are checked: 7's backend is gone (released),
        // 8's is still listed (kept).
        for (int s = 0; s < flows.Count; s++)
        {
            Assert.Equal(s != 7, ServiceNat.StillValid(after, table, flows[s]));
            if (s != 7) Assert.Equal(after.Version, table[flows[s]].NatTag);
        }
        Assert.False(table[flows[7]].InUse);
        Assert.Equal(199, table.Count);
    }

    [Fact]
    public void AConnectionMoreThanOneTableBehindIsCheckedInFull()
    {
        var a = Frontend(1, IpProtocol.Tcp, 0x0AF4_0001);
        var b = Frontend(2, IpProtocol.Tcp, 0x0AF4_0002);
        var first = new ServiceTable([a, b]);
        var table = new ConntrackTable(64);
        int flowA = Open(table, first, a, 10_000);
        // Table 2 removes a's only backend (a TCP connection to a backend no longer listed is released); table 3
        // touches only b. A connection last checked against table 1 must not take table 3's "a untouched" as valid.
        var aWithout = Frontend(1, IpProtocol.Tcp, 0x0AF4_0009);
        var second = first.Update([a], [aWithout]);
        var third = second.Update([b], [Frontend(2, IpProtocol.Tcp, 0x0AF4_0003)]);
        Assert.True(third.UnchangedSince(second.Version, a.Frontend.Address, 80, IpProtocol.Tcp));
        Assert.False(third.UnchangedSince(first.Version, a.Frontend.Address, 80, IpProtocol.Tcp));
        Assert.False(ServiceNat.StillValid(third, table, flowA));
        Assert.False(table[flowA].InUse);

        // A table built whole starts a line of its own: nothing is known unchanged since any other table.
        var whole = new ServiceTable([a, b]);
        Assert.False(whole.UnchangedSince(first.Version, a.Frontend.Address, 80, IpProtocol.Tcp));
        Assert.False(whole.UnchangedSince(third.Version, b.Frontend.Address, 80, IpProtocol.Tcp));
    }

    [Fact]
    public void AConnectionManyTablesBehindIsOnlyReTaggedWhenItsFrontendWasLeftAlone()
    {
        var frontends = Enumerable.Range(0, 200).Select(s => Frontend(s, IpProtocol.Tcp, 0x0AF4_0000u + (uint)s)).ToList();
        var first = new ServiceTable(frontends);
        var table = new ConntrackTable(1024);
        int flow0 = Open(table, first, frontends[0], 10_000);
        int flow1 = Open(table, first, frontends[1], 10_001);
        // 50 changes to other Services (each a new object, so every shard they fall in is rebuilt), then service 1's
        // only backend is replaced: flow 0 is re-tagged, flow 1 is checked and released.
        var current = first;
        for (int c = 0; c < 50; c++)
        {
            int s = 2 + c % 198;
            var replaced = Frontend(s, IpProtocol.Tcp, 0x0AF6_0000u + (uint)c);
            current = current.Update([frontends[s]], [replaced]);
            frontends[s] = replaced;
        }
        current = current.Update([frontends[1]], [Frontend(1, IpProtocol.Tcp, 0x0AF7_0001)]);
        Assert.True(current.UnchangedSince(first.Version, frontends[0].Frontend.Address, 80, IpProtocol.Tcp));
        Assert.True(ServiceNat.StillValid(current, table, flow0));
        Assert.Equal(current.Version, table[flow0].NatTag);
        Assert.False(ServiceNat.StillValid(current, table, flow1));
        Assert.False(table[flow1].InUse);
    }

    [Fact]
    public void ATableOnAnotherLineIsNeverTakenForAnAncestor()
    {
        // Table X is built whole after `first`, so its version lies between `first` and first's update `y`; a
        // connection checked against X must not pass for one checked against an ancestor of y.
        var a = Frontend(1, IpProtocol.Tcp, 0x0AF4_0001);
        var first = new ServiceTable([a]);
        var other = new ServiceTable([Frontend(1, IpProtocol.Tcp, 0x0AF4_0009)]);
        var y = first.Update([], [Frontend(2, IpProtocol.Tcp, 0x0AF4_0002)]);
        Assert.True(other.Version > first.Version && other.Version < y.Version);
        Assert.False(y.UnchangedSince(other.Version, a.Frontend.Address, 80, IpProtocol.Tcp));
        Assert.True(y.UnchangedSince(first.Version, a.Frontend.Address, 80, IpProtocol.Tcp));
    }

    /// <summary>
    /// Against the obviously correct answer: along random updates (frontends replaced, removed, added back), a frontend
    /// is "unchanged since" an earlier table exactly when both tables hold the same frontend object for its address,
    /// for every earlier table within <see cref="ServiceTable.AncestryDepth"/>; beyond that the answer is false. (An
    /// address without a frontend in either table is left out: no connection is ever checked against one.)
    /// </summary>
    [Fact]
    public void UnchangedSinceAgreesWithComparingTheFrontendObjects()
    {
        var random = new Random(20);
        var live = Enumerable.Range(0, 300).Select(s => Frontend(s, IpProtocol.Tcp, 0x0AF4_0000u + (uint)s)).ToDictionary(f => f.Frontend.Address);
        var history = new List<ServiceTable> { new(live.Values.ToList()) };
        for (int c = 0; c < 200; c++)
        {
            int s = random.Next(320);
            var address = IpAddr.FromV4(0x0A60_0000u + (uint)s);
            List<CompiledFrontend> removed = live.TryGetValue(address, out var old) ? [old] : [];
            List<CompiledFrontend> added = removed.Count == 0 || random.Next(3) > 0 ? [Frontend(s, IpProtocol.Tcp, 0x0AF5_0000u + (uint)c)] : [];
            foreach (var r in removed) live.Remove(address);
            foreach (var x in added) live[address] = x;
            history.Add(history[^1].Update(removed, added));
        }
        var now = history[^1];
        for (int t = 0; t < history.Count; t++)
        {
            var then = history[t];
            for (int s = 0; s < 320; s++)
            {
                var address = IpAddr.FromV4(0x0A60_0000u + (uint)s);
                int f = now.Lookup(address, 80, IpProtocol.Tcp), g = then.Lookup(address, 80, IpProtocol.Tcp);
                bool unchanged = now.UnchangedSince(then.Version, address, 80, IpProtocol.Tcp);
                if (f < 0 && g < 0) continue; // no connection can have been checked against an absent frontend
                bool same = f >= 0 && g >= 0 && ReferenceEquals(now.Frontend(f), then.Frontend(g));
                bool recent = history.Count - 1 - t < ServiceTable.AncestryDepth;
                Assert.Equal(same && recent, unchanged);
            }
        }
    }
}
