using FastPath.ControlPlane.Compile;
using FastPath.ControlPlane.Live;
using FastPath.ControlPlane.Publish;
using FastPath.Metrics;

namespace FastPath.Health;

/// <summary>
/// `run`'s health checks: the <see cref="HealthCheckServer"/> plus a once-a-second check that moves its health check
/// node ports to the cluster in force whenever a new snapshot was published (O(objects) per change, never per request).
/// </summary>
public sealed class HealthServing : IDisposable
{
    private readonly Timer _timer;
    private long _generation = -1;

    private HealthServing(HealthCheckServer server, ClusterController controller, SnapshotPublisher publisher, string node)
    {
        Server = server;
        _timer = new Timer(_ =>
        {
            long generation = publisher.Holder.Current.Generation;
            if (generation == Interlocked.Exchange(ref _generation, generation)) return;
            server.Update(ServiceCompiler.HealthCheckPorts(controller.State, node));
        }, null, TimeSpan.Zero, TimeSpan.FromSeconds(1));
    }

    public HealthCheckServer Server { get; }

    /// <summary>
    /// Starts serving <paramref name="healthz"/> ("ADDR:PORT", ":PORT" for every address, or "off") and the health
    /// check node ports on the same address (every address by default, as kube-proxy with no nodePortAddresses). A
    /// port that cannot be bound is logged and left out, never fatal: the data plane matters more than its health page.
    /// Throws <see cref="FormatException"/> for a malformed <paramref name="healthz"/>.
    /// </summary>
    public static HealthServing Start(string healthz, string node, ClusterController controller, SnapshotPublisher publisher, TextWriter log)
    {
        string host = "+";
        int port = 0;
        if (healthz != "off")
        {
            try
            {
                (host, port) = MetricsServer.ParseEndpoint(healthz);
            }
            catch (FormatException)
            {
                throw new FormatException($"--healthz {healthz}: expected ADDR:PORT, :PORT or off (e.g. :10256)");
            }
        }
        var server = new HealthCheckServer(host, line => { log.WriteLine(line); log.Flush(); });
        if (port > 0) server.ServeHealthz(port);
        return new HealthServing(server, controller, publisher, node);
    }

    private bool _disposed;

    public void Dispose()
    {
        if (_disposed) return;
        _disposed = true;
        _timer.Dispose();
        Server.Dispose();
    }
}
