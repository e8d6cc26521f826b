using System.Collections.Concurrent;
using System.Net.Sockets;
using System.Text;

namespace FastPath.Live;

/// <summary>
/// The local socket `fastpath-cni` tells the running node about pods on (`run --cni-socket PATH`, a Unix stream
/// socket): one request line per connection, `ADD|CHECK|DEL NAMESPACE/POD IFNAME`, answered with one line, `ok ...` or
/// `error ...`. Requests are queued for the coordinator thread, which owns the devices: it re-reads them (attaching
/// the pod's new veth at once instead of at the next periodic look) and answers whether the pod's port is attached.
/// </summary>
public sealed class CniEndpoint : IDisposable
{
    private readonly Socket _listener;
    private readonly Thread _thread;
    private readonly string _path;
    private volatile bool _stopped;

    /// <summary>A request waiting for the coordinator; complete <see cref="Answer"/> with the reply line.</summary>
    public sealed record Request(string Command, string Pod, string Interface)
    {
        public TaskCompletionSource<string> Answer { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);
    }

    public ConcurrentQueue<Request> Requests { get; } = new();

    private CniEndpoint(string path, Socket listener)
    {
        _path = path;
        _listener = listener;
        _thread = new Thread(Serve) { Name = "fastpath-cni-endpoint", IsBackground = true };
        _thread.Start();
    }

    /// <summary>Listens on <paramref name="path"/> (a stale socket file left by a previous run is replaced).</summary>
    /// <exception cref="IOException">The path cannot be bound.</exception>
    public static CniEndpoint Start(string path)
    {
        string? dir = Path.GetDirectoryName(Path.GetFullPath(path));
        if (dir is not null) Directory.CreateDirectory(dir);
        if (File.Exists(path)) File.Delete(path);
        var socket = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        try
        {
            socket.Bind(new UnixDomainSocketEndPoint(path));
            socket.Listen(16);
        }
        catch (SocketException e)
        {
            socket.Dispose();
            throw new IOException($"--cni-socket {path}: {e.Message}");
        }
        return new CniEndpoint(path, socket);
    }

    private void Serve()
    {
        while (!_stopped)
        {
            Socket client;
            try
            {
                client = _listener.Accept();
            }
            catch (Exception e) when (e is SocketException or ObjectDisposedException)
            {
                return;
            }
            ThreadPool.QueueUserWorkItem(_ => Handle(client));
        }
    }

    private void Handle(Socket client)
    {
        using (client)
        using (var stream = new NetworkStream(client))
        using (var reader = new StreamReader(stream, Encoding.UTF8))
        using (var writer = new StreamWriter(stream, new UTF8Encoding(false)) { AutoFlush = true })
        {
            try
            {
                client.ReceiveTimeout = 5000;
                string? line = reader.ReadLine();
                var parts = line?.Split(' ', StringSplitOptions.RemoveEmptyEntries) ?? [];
                if (parts.Length != 3 || parts[0] is not ("ADD" or "CHECK" or "DEL") || !parts[1].Contains('/'))
                {
                    writer.WriteLine("error expected: ADD|CHECK|DEL NAMESPACE/POD IFNAME");
                    return;
                }
                var request = new Request(parts[0], parts[1], parts[2]);
                Requests.Enqueue(request);
                writer.WriteLine(request.Answer.Task.Wait(TimeSpan.FromSeconds(10))
                    ? request.Answer.Task.Result
                    : "error the node did not answer within 10 s");
            }
            catch (IOException)
            {
                // The plugin went away; nothing to answer.
            }
        }
    }

    public void Dispose()
    {
        _stopped = true;
        _listener.Dispose();
        try { File.Delete(_path); } catch (IOException) { }
    }
}
