using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Text;
using System.Text.Json;
using FastPath.ControlPlane.Compile;

namespace FastPath.Health;

/// <summary>
/// What kube-proxy serves over HTTP besides the data plane (pkg/proxy/healthcheck):
/// <list type="bullet">
/// <item>one server per health check node port (LoadBalancer Services with externalTrafficPolicy Local): 200 when
/// this node has ready local endpoints, 503 otherwise, with kube-proxy's JSON body and its
/// X-Load-Balancing-Endpoint-Weight header, so cloud load balancers only send to nodes that can serve;</item>
/// <item>the proxy's own <c>/healthz</c> (with <c>nodeEligible</c>) and <c>/livez</c> on the healthz address
/// (kube-proxy's --healthz-bind-address, default 0.0.0.0:10256): 200 while the forwarding loop turns
/// (<see cref="Beat"/> within <see cref="Staleness"/>), 503 when it stalled.</item>
/// </list>
/// The set of ports follows the cluster (<see cref="Update"/>); each port is its own <see cref="HttpListener"/>, opened
/// and closed as Services come and go. Off the packet path: the forwarding loop only stores a timestamp.
/// </summary>
public sealed class HealthCheckServer : IDisposable
{
    private readonly string _host;
    private readonly Dictionary<int, HttpListener> _listeners = [];
    private readonly Action<string> _log;
    private volatile IReadOnlyDictionary<int, ServiceCompiler.HealthCheckPort> _ports = new Dictionary<int, ServiceCompiler.HealthCheckPort>();
    private readonly Stopwatch _clock = Stopwatch.StartNew();
    private long _lastBeat;
    private DateTimeOffset _lastUpdated = DateTimeOffset.UtcNow;
    private readonly object _gate = new();

    /// <param name="host">The address every listener binds ("+" for all, as kube-proxy's default nodePortAddresses).</param>
    public HealthCheckServer(string host, Action<string> log)
    {
        (_host, _log) = (host, log);
        _lastBeat = _clock.ElapsedTicks;
    }

    /// <summary>How long the forwarding loop may be silent before /healthz answers 503.</summary>
    public TimeSpan Staleness { get; init; } = TimeSpan.FromSeconds(10);

    /// <summary>The forwarding loop turned (one store; called every iteration).</summary>
    public void Beat() => Volatile.Write(ref _lastBeat, _clock.ElapsedTicks);

    private bool Healthy => _clock.ElapsedTicks - Volatile.Read(ref _lastBeat) < Staleness.TotalSeconds * Stopwatch.Frequency;

    /// <summary>Serves /healthz and /livez on <paramref name="port"/>; false (logged) when the port cannot be bound.</summary>
    public bool ServeHealthz(int port) => Open(port, "healthz");

    /// <summary>Brings the health check node ports in line with the cluster: opens new ones, closes gone ones.</summary>
    public void Update(IReadOnlyList<ServiceCompiler.HealthCheckPort> ports)
    {
        lock (_gate)
        {
            var next = ports.GroupBy(p => p.Port).ToDictionary(g => g.Key, g => g.First());
            foreach (var gone in _ports.Keys.Where(p => !next.ContainsKey(p)).ToList()) Close(gone);
            _ports = next;
            _lastUpdated = DateTimeOffset.UtcNow;
            foreach (var p in next.Values.Where(p => !_listeners.ContainsKey(p.Port)))
                Open(p.Port, $"health check node port of {p.Namespace}/{p.Name}");
        }
    }

    private bool Open(int port, string what)
    {
        var listener = new HttpListener();
        string host = _host.Contains(':') ? $"[{_host}]" : _host;
        listener.Prefixes.Add($"http://{host}:{port.ToString(CultureInfo.InvariantCulture)}/");
        try
        {
            listener.Start();
        }
        catch (HttpListenerException e)
        {
            _log($"health: cannot serve the {what} on {host}:{port}: {e.Message}");
            listener.Close();
            return false;
        }
        lock (_gate) _listeners[port] = listener;
        _log($"health: serving the {what} on http://{host}:{port}/");
        _ = Task.Run(() => Accept(listener, port));
        return true;
    }

    private void Close(int port)
    {
        if (_listeners.Remove(port, out var listener)) listener.Close();
    }

    private async Task Accept(HttpListener listener, int port)
    {
        while (listener.IsListening)
        {
            HttpListenerContext context;
            try
            {
                context = await listener.GetContextAsync().ConfigureAwait(false);
            }
            catch (Exception e) when (e is HttpListenerException or ObjectDisposedException or InvalidOperationException)
            {
                return;
            }
            try
            {
                Respond(context, port);
            }
            catch (Exception e) when (e is HttpListenerException or IOException or ObjectDisposedException)
            {
                // the client went away
            }
        }
    }

    private void Respond(HttpListenerContext context, int port)
    {
        var response = context.Response;
        response.ContentType = "application/json";
        response.Headers["X-Content-Type-Options"] = "nosniff";
        string path = context.Request.Url?.AbsolutePath ?? "/";
        string body;
        if (_ports.TryGetValue(port, out var service))
        {
            // kube-proxy answers every path of a health check node port the same way.
            bool healthy = Healthy;
            response.Headers["X-Load-Balancing-Endpoint-Weight"] = service.LocalEndpoints.ToString(CultureInfo.InvariantCulture);
            response.StatusCode = service.LocalEndpoints > 0 && healthy ? 200 : 503;
            body = ServiceBody(service, healthy);
        }
        else if (path is "/healthz" or "/livez")
        {
            bool healthy = Healthy;
            response.StatusCode = healthy ? 200 : 503;
            body = ProxyBody(healthz: path == "/healthz", healthy);
        }
        else
        {
            response.StatusCode = 404;
            body = "{}";
        }
        var bytes = Encoding.UTF8.GetBytes(body);
        response.ContentLength64 = bytes.Length;
        response.OutputStream.Write(bytes);
        response.Close();
    }

    /// <summary>kube-proxy's service health body: {"service": {"namespace", "name"}, "localEndpoints", "serviceProxyHealthy"}.</summary>
    internal static string ServiceBody(ServiceCompiler.HealthCheckPort service, bool proxyHealthy) => JsonSerializer.Serialize(new
    {
        service = new { @namespace = service.Namespace, name = service.Name },
        localEndpoints = service.LocalEndpoints,
        serviceProxyHealthy = proxyHealthy,
    });

    private string ProxyBody(bool healthz, bool healthy)
    {
        string last = _lastUpdated.ToString("O", CultureInfo.InvariantCulture), now = DateTimeOffset.UtcNow.ToString("O", CultureInfo.InvariantCulture);
        // nodeEligible: kube-proxy reports false while the Node is being deleted or drained by the cluster autoscaler;
        // FastPath serves only nodes it runs, so the node is eligible whenever the proxy is healthy.
        return healthz
            ? JsonSerializer.Serialize(new { lastUpdated = last, currentTime = now, nodeEligible = healthy })
            : JsonSerializer.Serialize(new { lastUpdated = last, currentTime = now });
    }

    public void Dispose()
    {
        lock (_gate)
            foreach (var port in _listeners.Keys.ToList()) Close(port);
    }
}
