using FastPath.DataPlane.Conntrack;

namespace FastPath.DataPlane.Services;

/// <summary>
/// When a worker's Services change, releases the tracked connections and affinity memories of removed frontends and
/// backends (<see cref="ServiceNat.FlushStale"/>). Correctness does not wait for it — each connection is checked on
/// its next packet (<see cref="ServiceNat.StillValid"/>) — so the walk over the whole table runs at most once per
/// second of capture time: 1,000 Service changes a second cost one walk, not a thousand.
/// </summary>
public struct StaleServiceSweep
{
    private const long Interval = 1_000_000_000;
    private long _last;
    private bool _ran;

    /// <summary>Set when the Services changed; cleared by the sweep.</summary>
    public bool Pending;

    public void Run(ServiceTable services, ConntrackTable? table, AffinityTable? affinity, long now)
    {
        if (_ran && now - _last < Interval) return;
        if (table is { Count: > 0 }) ServiceNat.FlushStale(services, table, affinity);
        else affinity?.Release(services);
        (_last, _ran, Pending) = (now, true, false);
    }
}
