using FastPath.DataPlane.Packets;

namespace FastPath.DataPlane.Icmp;

/// <summary>
/// Token buckets for the ICMP errors the node sends, on the capture clock so replays are deterministic. Like
/// Linux: a global budget (net.ipv4.icmp_msgs_per_sec = 1000, burst icmp_msgs_burst = 50) and one bucket per
/// destination (icmp_ratelimit = 1 s per token, burst 6 = XRLIM_BURST_FACTOR). Per-destination buckets live in a
/// fixed array indexed by address hash: two destinations that collide share a bucket, which only ever limits more.
/// Fragmentation-needed / packet-too-big are never limited (PMTU discovery must work; Linux exempts them too).
/// </summary>
public sealed class IcmpRateLimiter
{
    private const int Buckets = 4096;
    private const long NanosPerSecond = 1_000_000_000;

    private readonly long _perDestinationInterval;
    private readonly int _perDestinationBurst;
    private readonly long _globalInterval;
    private readonly int _globalBurst;
    private readonly long[] _next = new long[Buckets]; // earliest time the bucket is full again, minus burst
    private long _globalNext;

    public IcmpRateLimiter(int perDestinationPerSecond = 1, int perDestinationBurst = 6, int globalPerSecond = 1000, int globalBurst = 50)
    {
        _perDestinationInterval = NanosPerSecond / Math.Max(1, perDestinationPerSecond);
        _perDestinationBurst = perDestinationBurst;
        _globalInterval = NanosPerSecond / Math.Max(1, globalPerSecond);
        _globalBurst = globalBurst;
        Array.Fill(_next, long.MinValue / 2);
        _globalNext = long.MinValue / 2;
    }

    /// <summary>Errors refused by the limiter so far.</summary>
    public long Limited { get; private set; }

    /// <summary>Takes a token for an error to <paramref name="destination"/> at <paramref name="now"/>; false when over the limit.</summary>
    public bool Allow(IpAddr destination, long now)
    {
        ref long bucket = ref _next[(int)(destination.Hash() & (Buckets - 1))];
        if (!Take(ref bucket, now, _perDestinationInterval, _perDestinationBurst) || !Take(ref _globalNext, now, _globalInterval, _globalBurst))
        {
            Limited++;
            return false;
        }
        return true;
    }

    /// <summary>
    /// A token bucket kept as one number, the time at which it would be empty-and-refilled ("virtual
    /// scheduling"): a send is allowed while that time is less than a burst's worth of intervals ahead of now.
    /// </summary>
    private static bool Take(ref long next, long now, long interval, int burst)
    {
        long floor = now - (burst - 1) * interval;
        long t = next < floor ? floor : next;
        if (t > now) return false;
        next = t + interval;
        return true;
    }
}
