using System.Net;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace FastPath.Tests.Support;

/// <summary>
/// A Kubernetes API server's list/watch protocol over real HTTP/1.1 (the BCL's HttpListener on 127.0.0.1; Kestrel would
/// need the ASP.NET shared framework, which the fastpath.dll the tests start from their own folder does not load), for the six kinds FastPath
/// reads, as kube-apiserver answers it:
/// <list type="bullet">
/// <item>GET a collection: a <c>{kind}List</c> with <c>metadata.resourceVersion</c>; with <c>limit</c>, pages and an
/// opaque <c>continue</c> token (consistent with the first page's version; 410 Expired once that version is
/// compacted). Items carry no apiVersion/kind, as in real list responses.</item>
/// <item><c>?watch=1&amp;resourceVersion=N</c>: a chunked stream of one JSON event per line (ADDED, MODIFIED, DELETED,
/// BOOKMARK when <c>allowWatchBookmarks</c>) for every change after N, then new changes as they happen; an N older
/// than the compaction point gets an ERROR event with a 410 Status and the stream ends (the watch cache's answer).
/// <c>timeoutSeconds</c> ends the stream.</item>
/// </list>
/// Tests change objects, compact history, send bookmarks or raw lines, drop every open connection, and stall.
/// </summary>
internal sealed class FakeApiServer : IAsyncDisposable
{
    public sealed record Resource(string Path, string Kind, string ApiVersion, bool Namespaced);

    public static readonly Resource Namespaces = new("/api/v1/namespaces", "Namespace", "v1", false);
    public static readonly Resource Nodes = new("/api/v1/nodes", "Node", "v1", false);
    public static readonly Resource Pods = new("/api/v1/pods", "Pod", "v1", true);
    public static readonly Resource Services = new("/api/v1/services", "Service", "v1", true);
    public static readonly Resource EndpointSlices = new("/apis/discovery.k8s.io/v1/endpointslices", "EndpointSlice", "discovery.k8s.io/v1", true);
    public static readonly Resource NetworkPolicies = new("/apis/networking.k8s.io/v1/networkpolicies", "NetworkPolicy", "networking.k8s.io/v1", true);
    public static readonly Resource[] All = [Namespaces, Nodes, Pods, Services, EndpointSlices, NetworkPolicies];

    private sealed record Event(long Version, Resource Resource, string Type, string Json);

    private readonly object _gate = new();
    private readonly Dictionary<Resource, SortedDictionary<string, (long Version, string Json)>> _objects = All.ToDictionary(r => r, _ => new SortedDictionary<string, (long, string)>(StringComparer.Ordinal));
    private readonly List<Event> _log = [];
    private readonly List<HttpListenerContext> _watches = [];
    private long _version = 100;
    private long _compacted;
    private TaskCompletionSource _changed = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly HttpListener _listener = new();
    private readonly CancellationTokenSource _stop = new();
    private Task? _accept;

    /// <summary>While set, every request waits (sends no headers, no bytes) until it is cleared or the client gives up.</summary>
    public volatile bool Stalled;

    /// <summary>Requests seen, by kind: "list", "watch".</summary>
    public int Lists, WatchRequests;

    /// <summary>Pages served (list requests including continuations).</summary>
    public int ListPages => Lists;

    public string Url { get; private set; } = "";

    /// <summary>The bearer token the kubeconfig carries; other requests get 401, as without credentials.</summary>
    public const string Token = "fastpath-test-token";

    public static async Task<FakeApiServer> StartAsync()
    {
        var server = new FakeApiServer();
        for (int attempt = 0; ; attempt++)
        {
            // HttpListener takes no port 0: take a free one from the kernel, then bind it (retry if someone was faster).
            var probe = new System.Net.Sockets.TcpListener(IPAddress.Loopback, 0);
            probe.Start();
            int port = ((IPEndPoint)probe.LocalEndpoint).Port;
            probe.Stop();
            server._listener.Prefixes.Clear();
            server._listener.Prefixes.Add($"http://127.0.0.1:{port}/");
            try
            {
                server._listener.Start();
                server.Url = $"http://127.0.0.1:{port}";
                break;
            }
            catch (HttpListenerException) when (attempt < 5) { }
        }
        server._accept = Task.Run(server.AcceptLoopAsync);
        await Task.CompletedTask;
        return server;
    }

    /// <summary>A kubeconfig naming this server (plain HTTP, no credentials), written to <paramref name="path"/>.</summary>
    public string WriteKubeconfig(string path)
    {
        File.WriteAllText(path, $"""
            apiVersion: v1
            kind: Config
            clusters:
            - name: fake
              cluster: {"{"}server: "{Url}"{"}"}
            users:
            - name: fake
              user: {"{"}token: {Token}{"}"}
            contexts:
            - name: fake
              context: {"{"}cluster: fake, user: fake{"}"}
            current-context: fake
            """);
        return path;
    }

    public long ResourceVersion { get { lock (_gate) return _version; } }

    public static Resource ResourceOf(string kind) => All.Single(r => r.Kind == kind);

    /// <summary>Creates or replaces an object (JSON with apiVersion, kind, metadata); returns its new resourceVersion.</summary>
    public long Apply(JsonObject o)
    {
        var r = ResourceOf((string)o["kind"]!);
        lock (_gate)
        {
            long v = ++_version;
            var meta = (JsonObject)o["metadata"]!;
            meta["resourceVersion"] = v.ToString();
            if (r.Namespaced) meta["namespace"] ??= "default";
            string key = Key(r, meta);
            bool existed = _objects[r].ContainsKey(key);
            string json = o.ToJsonString();
            _objects[r][key] = (v, json);
            Record(new Event(v, r, existed ? "MODIFIED" : "ADDED", json));
            return v;
        }
    }

    public void ApplyAll(IEnumerable<JsonObject> objects)
    {
        foreach (var o in objects) Apply(o);
    }

    /// <summary>Deletes an object; false when it does not exist.</summary>
    public bool Delete(string kind, string? ns, string name)
    {
        var r = ResourceOf(kind);
        lock (_gate)
        {
            string key = r.Namespaced ? $"{ns}/{name}" : name;
            if (!_objects[r].Remove(key, out var old)) return false;
            long v = ++_version;
            var o = JsonNode.Parse(old.Json)!.AsObject();
            o["metadata"]!["resourceVersion"] = v.ToString();
            Record(new Event(v, r, "DELETED", o.ToJsonString()));
            return true;
        }
    }

    /// <summary>
    /// Forgets the history up to now, as etcd compaction does: watches and continue tokens from older versions get
    /// 410 Gone. Open watches behind it are ended with an ERROR event.
    /// </summary>
    public void Compact()
    {
        lock (_gate)
        {
            _compacted = _version;
            _log.Clear();
            Wake();
        }
    }

    /// <summary>Removes an object without an event any watcher could see (it happens "while disconnected").</summary>
    public void DeleteUnseen(string kind, string? ns, string name)
    {
        var r = ResourceOf(kind);
        lock (_gate)
        {
            _objects[r].Remove(r.Namespaced ? $"{ns}/{name}" : name);
            _version++;
            _compacted = _version;
            _log.Clear();
        }
    }

    /// <summary>Sends a BOOKMARK at the current version on every open watch that asked for bookmarks.</summary>
    public void Bookmark()
    {
        lock (_gate)
        {
            foreach (var r in All) Record(new Event(_version, r, "BOOKMARK", ""));
        }
    }

    /// <summary>Sends one raw line (e.g. an object that does not read) on the watches of a resource.</summary>
    public void SendRaw(Resource r, string line)
    {
        lock (_gate) Record(new Event(_version, r, "RAW", line));
    }

    /// <summary>Aborts every open watch connection (TCP reset), as a restarting API server or a load balancer does.</summary>
    public void DropConnections()
    {
        lock (_gate)
        {
            foreach (var context in _watches) context.Response.Abort();
            _watches.Clear();
        }
    }

    public int OpenWatches { get { lock (_gate) return _watches.Count; } }

    private void Record(Event e)
    {
        _log.Add(e);
        Wake();
    }

    private void Wake()
    {
        var old = _changed;
        _changed = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        old.TrySetResult();
    }

    private static string Key(Resource r, JsonNode meta) =>
        r.Namespaced ? $"{(string?)meta["namespace"]}/{(string)meta["name"]!}" : (string)meta["name"]!;

    private async Task AcceptLoopAsync()
    {
        while (!_stop.IsCancellationRequested)
        {
            HttpListenerContext context;
            try { context = await _listener.GetContextAsync(); }
            catch (Exception e) when (e is HttpListenerException or ObjectDisposedException or InvalidOperationException) { return; }
            _ = Task.Run(async () =>
            {
                try { await HandleAsync(context); }
                catch (Exception e) when (e is HttpListenerException or IOException or ObjectDisposedException or InvalidOperationException) { }
                finally { try { context.Response.Close(); } catch (Exception e) when (e is HttpListenerException or ObjectDisposedException or InvalidOperationException) { } }
            });
        }
    }

    private async Task HandleAsync(HttpListenerContext context)
    {
        var ct = _stop.Token;
        while (Stalled && !ct.IsCancellationRequested) await Task.Delay(20, CancellationToken.None);
        if (ct.IsCancellationRequested) return;
        if (context.Request.Headers["Authorization"] != $"Bearer {Token}")
        {
            await WriteStatus(context, 401, "Unauthorized", "Unauthorized");
            return;
        }
        var r = All.FirstOrDefault(x => x.Path == context.Request.Url!.AbsolutePath);
        if (r is null || context.Request.HttpMethod != "GET")
        {
            await WriteStatus(context, 404, "NotFound", $"the server could not find the requested resource ({context.Request.Url!.AbsolutePath})");
            return;
        }
        var q = context.Request.QueryString;
        if (q["watch"] is "1" or "true") await WatchAsync(context, r, ct);
        else await ListAsync(context, r);
    }

    private async Task ListAsync(HttpListenerContext context, Resource r)
    {
        Interlocked.Increment(ref Lists);
        var q = context.Request.QueryString;
        int limit = int.TryParse(q["limit"], out var l) && l > 0 ? l : int.MaxValue;
        string? cont = q["continue"];
        long version;
        string? after = null;
        List<string> items;
        string? next = null;
        bool expired = false;
        lock (_gate)
        {
            version = _version;
            if (!string.IsNullOrEmpty(cont))
            {
                var token = JsonNode.Parse(Convert.FromBase64String(cont))!;
                version = (long)token["rv"]!;
                after = (string)token["start"]!;
                expired = version < _compacted;
            }
            // A consistent snapshot at `version`: objects changed since are shown as they were (kept in the log).
            if (expired) items = [];
            else
            {
            var view = _objects[r].Where(kv => after is null || string.CompareOrdinal(kv.Key, after) > 0).ToList();
            items = [];
            foreach (var (key, (v, json)) in view)
            {
                if (v > version) continue; // created or changed after the first page: not part of this list
                items.Add(json);
                if (items.Count == limit) { next = key; break; }
            }
            if (next is not null && !view.SkipWhile(kv => kv.Key != next).Skip(1).Any(kv => kv.Value.Version <= version)) next = null;
            }
        }
        if (expired)
        {
            await WriteStatus(context, 410, "Expired", "The provided continue parameter is too old to display a consistent list result. You can start a new list without the continue parameter.");
            return;
        }
        var body = new StringBuilder();
        body.Append($"{{\"kind\":\"{r.Kind}List\",\"apiVersion\":\"{r.ApiVersion}\",\"metadata\":{{\"resourceVersion\":\"{version}\"");
        if (next is not null)
            body.Append(",\"continue\":\"").Append(Convert.ToBase64String(Encoding.UTF8.GetBytes($"{{\"rv\":{version},\"start\":\"{next}\"}}"))).Append('"');
        body.Append("},\"items\":[");
        for (int i = 0; i < items.Count; i++)
        {
            if (i > 0) body.Append(',');
            var item = JsonNode.Parse(items[i])!.AsObject();
            item.Remove("apiVersion");
            item.Remove("kind");
            body.Append(item.ToJsonString());
        }
        body.Append("]}");
        await Write(context.Response, body.ToString(), CancellationToken.None);
    }

    private static async Task Write(HttpListenerResponse response, string text, CancellationToken ct)
    {
        response.ContentType = "application/json";
        var bytes = Encoding.UTF8.GetBytes(text);
        await response.OutputStream.WriteAsync(bytes, ct);
    }

    private async Task WatchAsync(HttpListenerContext context, Resource r, CancellationToken ct)
    {
        Interlocked.Increment(ref WatchRequests);
        var q = context.Request.QueryString;
        long from = long.TryParse(q["resourceVersion"], out var v) ? v : 0;
        bool bookmarks = q["allowWatchBookmarks"] is "true" or "1";
        int timeout = int.TryParse(q["timeoutSeconds"], out var t) ? t : 1800;
        lock (_gate) _watches.Add(context);
        context.Response.ContentType = "application/json";
        context.Response.SendChunked = true; // Transfer-Encoding: chunked, one flush per burst of events, as kube-apiserver
        var output = context.Response.OutputStream;
        using var end = CancellationTokenSource.CreateLinkedTokenSource(ct);
        end.CancelAfter(TimeSpan.FromSeconds(timeout));
        int sent = 0;
        try
        {
            if (from == 0) lock (_gate) from = _version; // "any version": start now (the list before said the rest)
            while (!end.IsCancellationRequested)
            {
                Task changed;
                var lines = new List<string>();
                bool gone = false;
                lock (_gate)
                {
                    changed = _changed.Task;
                    if (from < _compacted)
                    {
                        gone = true;
                    }
                    else
                    {
                        for (int i = sent; i < _log.Count; i++)
                        {
                            var e = _log[i];
                            if (e.Resource != r || e.Version < from || (e.Version == from && e.Type != "BOOKMARK")) continue;
                            if (e.Type == "RAW") lines.Add(e.Json);
                            else if (e.Type == "BOOKMARK")
                            {
                                if (bookmarks)
                                    lines.Add($"{{\"type\":\"BOOKMARK\",\"object\":{{\"kind\":\"{r.Kind}\",\"apiVersion\":\"{r.ApiVersion}\",\"metadata\":{{\"resourceVersion\":\"{e.Version}\",\"annotations\":{{\"k8s.io/initial-events-end\":\"true\"}}}}}}}}");
                            }
                            else lines.Add($"{{\"type\":\"{e.Type}\",\"object\":{e.Json}}}");
                        }
                        sent = _log.Count;
                    }
                }
                if (gone)
                {
                    var status = $"{{\"kind\":\"Status\",\"apiVersion\":\"v1\",\"metadata\":{{}},\"status\":\"Failure\",\"message\":\"too old resource version: {from} ({_compacted})\",\"reason\":\"Expired\",\"code\":410}}";
                    await output.WriteAsync(Encoding.UTF8.GetBytes($"{{\"type\":\"ERROR\",\"object\":{status}}}\n"), end.Token);
                    await output.FlushAsync(end.Token);
                    return;
                }
                if (lines.Count > 0)
                {
                    await output.WriteAsync(Encoding.UTF8.GetBytes(string.Concat(lines.Select(l => l + "\n"))), end.Token);
                    await output.FlushAsync(end.Token);
                }
                await changed.WaitAsync(end.Token);
            }
        }
        catch (OperationCanceledException) { }
        catch (Exception e) when (e is IOException or HttpListenerException or ObjectDisposedException) { }
        finally
        {
            lock (_gate) _watches.Remove(context);
        }
    }

    private static async Task WriteStatus(HttpListenerContext context, int code, string reason, string message)
    {
        context.Response.StatusCode = code;
        await Write(context.Response, JsonSerializer.Serialize(new
        {
            kind = "Status", apiVersion = "v1", metadata = new { }, status = "Failure", message, reason, code,
        }), CancellationToken.None);
    }

    public async ValueTask DisposeAsync()
    {
        Stalled = false;
        _stop.Cancel();
        DropConnections();
        _listener.Close();
        if (_accept is not null) await _accept;
    }
}
