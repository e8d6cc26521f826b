using FastPath.DataPlane.Packets;
using FastPath.DataPlane.Services;
using FastPath.Tests.Support;

namespace FastPath.Tests.Services;

public class AffinityTableTests
{
    private static IpAddr A(string s) => EngineHarness.Addr(s);

    [Fact]
    public void AffinityLastsUntilIdleForTheTimeoutAndIsRefreshedByUse()
    {
        var t = new AffinityTable(64);
        var backend = new ServiceBackend(A("10.244.1.11"), 8080);
        const long second = 1_000_000_000;
        t.Set(A("10.244.1.10"), A("10.96.0.10"), 80, IpProtocol.Tcp, backend, now: 0, timeout: 10 * second);
        Assert.True(t.TryGet(A("10.244.1.10"), A("10.96.0.10"), 80, IpProtocol.Tcp, 9 * second, out var got));
        Assert.Equal(backend, got);
        Assert.False(t.TryGet(A("10.244.1.10"), A("10.96.0.10"), 443, IpProtocol.Tcp, 9 * second, out _)); // another port
        Assert.False(t.TryGet(A("10.244.1.99"), A("10.96.0.10"), 80, IpProtocol.Tcp, 9 * second, out _));  // another client
        t.Set(A("10.244.1.10"), A("10.96.0.10"), 80, IpProtocol.Tcp, backend, now: 9 * second, timeout: 10 * second);
        Assert.True(t.TryGet(A("10.244.1.10"), A("10.96.0.10"), 80, IpProtocol.Tcp, 18 * second, out _));  // refreshed
        Assert.False(t.TryGet(A("10.244.1.10"), A("10.96.0.10"), 80, IpProtocol.Tcp, 19 * second, out _)); // idle too long
    }

    [Fact]
    public void AFullProbeWindowReplacesItsStalestEntry()
    {
        var t = new AffinityTable(16);
        var b = new ServiceBackend(A("10.244.1.11"), 8080);
        for (int i = 0; i < 100; i++)
            t.Set(IpAddr.FromV4(0x0A00_0000u + (uint)i), A("10.96.0.10"), 80, IpProtocol.Tcp, b, now: i, timeout: 1_000_000);
        Assert.True(t.TryGet(IpAddr.FromV4(0x0A00_0000u + 99), A("10.96.0.10"), 80, IpProtocol.Tcp, 100, out _)); // newest kept
    }
}
