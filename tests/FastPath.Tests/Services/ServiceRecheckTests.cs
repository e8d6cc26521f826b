using FastPath.DataPlane.Conntrack;
using FastPath.DataPlane.Nat;
using FastPath.DataPlane.Packets;
using FastPath.DataPlane.Services;

namespace FastPath.Tests.Services;

/// <summary>
/// After a Service change, established connections are re-checked only for the frontends the change touched
/// (<see cref="ServiceTable.UnchangedSincePrevious"/>, used by <see cref="ServiceNat.StillValid"/>); a touched
/// connection whose backend is gone is still released as before.
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
        Assert.Equal(before.Version, after.PreviousVersion);

        for (int s = 0; s < frontends.Count; s++)
        {
            var fe = frontends[s].Frontend;
            Assert.Equal(s is not (7 or 8), after.UnchangedSincePrevious(fe.Address, fe.Port, fe.Protocol));
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
        Assert.True(third.UnchangedSincePrevious(a.Frontend.Address, 80, IpProtocol.Tcp));
        Assert.False(ServiceNat.StillValid(third, table, flowA));
        Assert.False(table[flowA].InUse);

        // A table built whole (no previous) checks everything.
        var whole = new ServiceTable([a, b]);
        Assert.Equal(0, whole.PreviousVersion);
        Assert.False(whole.UnchangedSincePrevious(a.Frontend.Address, 80, IpProtocol.Tcp));
    }
}
