using FastPath.DataPlane.Packets;
using FastPath.DataPlane.Ports;
using FastPath.DataPlane.Services;
using FastPath.DataPlane.State;
using FastPath.Tests.Support;

namespace FastPath.Tests.Services;

/// <summary>`run --state-dir`: ClientIP session-affinity memories in a state file come back in the next process while live.</summary>
public class AffinityStateFileTests : IDisposable
{
    private const long Second = 1_000_000_000L;
    private readonly TempFolder _dir = new();

    public void Dispose() => _dir.Dispose();

    private static readonly IpAddr Client = IpAddr.FromV4(0x0AF4_010Au), Service = IpAddr.FromV4(0x0A60_0014u), Other = IpAddr.FromV4(0x0AF4_010Bu);

    [Fact]
    public void LiveMemoriesComeBackAndExpiredOnesDoNot()
    {
        string path = _dir.File("affinity-0.state");
        var layout = AffinityTable.StateLayout(1024, 0, 1);
        long now = TapPort.WallClock();
        var backend = new ServiceBackend(IpAddr.FromV4(0x0AF4_020Bu), 8080);
        using (var file = StateFile.Open(path, layout, now))
        {
            var table = new AffinityTable(file);
            table.Set(Client, Service, 80, IpProtocol.Tcp, backend, now, 10_800 * Second);
            table.Set(Other, Service, 80, IpProtocol.Tcp, backend, now, 5 * Second);
            file.MarkClean(TapPort.WallClock());
        }
        using (var file = StateFile.Open(path, layout, TapPort.WallClock()))
        {
            Assert.Null(file.Discarded);
            var table = new AffinityTable(file);
            // A minute later: the 3-hour memory is kept, the 5-second one has expired.
            long later = now + 60 * Second;
            Assert.Equal(1, table.Restore(later));
            Assert.True(table.TryGet(Client, Service, 80, IpProtocol.Tcp, later, out var found));
            Assert.Equal(backend, found);
            Assert.False(table.TryGet(Other, Service, 80, IpProtocol.Tcp, later, out _));
        }
        // A conntrack layout does not open it.
        using (var file = StateFile.Open(path, DataPlane.Conntrack.ConntrackTable.StateLayout(1024, 0, 1), TapPort.WallClock()))
            Assert.Contains("holds Affinity records, not Conntrack", file.Discarded);
    }
}
