namespace FastPath.ControlPlane.Publish;

/// <summary>
/// Durations of a control-plane step (compile, publish) in fixed buckets, the Prometheus histogram model
/// (cumulative "le" buckets are derived when exported). Thread-safe: a watcher and a manual reload may record at once.
/// <see cref="Recorded"/> lets an exporter with its own histogram type (prometheus-net) see every sample.
/// </summary>
public sealed class LatencyHistogram
{
    /// <summary>Upper bounds in seconds: 100 µs (a one-pod change) to 10 s (tens of thousands of objects).</summary>
    public static IReadOnlyList<double> Bounds { get; } = [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];

    private readonly long[] _buckets = new long[Bounds.Count + 1];
    private long _count;
    private long _sumTicks;

    /// <summary>Raised after each sample, with its duration in seconds.</summary>
    public event Action<double>? Recorded;

    public long Count => Interlocked.Read(ref _count);
    public double SumSeconds => TimeSpan.FromTicks(Interlocked.Read(ref _sumTicks)).TotalSeconds;

    /// <summary>Samples in bucket <paramref name="index"/> alone (not cumulative); index <c>Bounds.Count</c> is +Inf.</summary>
    public long Bucket(int index) => Interlocked.Read(ref _buckets[index]);

    public void Record(TimeSpan elapsed)
    {
        double seconds = elapsed.TotalSeconds;
        int i = 0;
        while (i < Bounds.Count && seconds > Bounds[i]) i++;
        Interlocked.Increment(ref _buckets[i]);
        Interlocked.Increment(ref _count);
        Interlocked.Add(ref _sumTicks, elapsed.Ticks);
        Recorded?.Invoke(seconds);
    }
}
