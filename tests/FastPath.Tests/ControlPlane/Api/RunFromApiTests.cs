using System.Collections.Concurrent;
using System.Diagnostics;
using FastPath.Live;
using FastPath.Tests.Support;

namespace FastPath.Tests.ControlPlane.Api;

/// <summary>
/// <c>fastpath run --kubeconfig</c> end to end: the demo cluster served by <see cref="FakeApiServer"/>, the real
/// fastpath process on TAP devices in an anonymous network namespace (<c>unshare -n</c>: no names another test could
/// share), following pods added and deleted and a 410 relist through its TAPs. The namespace reaches the server
/// through a Unix socket (file system paths cross network namespaces): a Python forwarder listens on the server's
/// port inside it, this test forwards the socket to the server.
/// </summary>
public sealed class RunFromApiTests
{
    [Fact]
    public async Task RunFromTheApi_OpensAndClosesTapsAsPodsComeAndGo_ThroughARelist()
    {
        if (!OperatingSystem.IsLinux() || !Environment.IsPrivilegedProcess || !File.Exists("/dev/net/tun"))
            Assert.Skip("needs Linux, root and /dev/net/tun");
        await using var server = await FakeApiServer.StartAsync();
        server.ApplyAll(ApiObjects.Demo());
        using var dir = new TempCluster();
        string kubeconfig = server.WriteKubeconfig(dir.F("kubeconfig"));
        string config = dir.Write("config.yaml", ApiObjects.Configuration);
        string socket = dir.F("api.sock");
        using var bridge = UnixBridge.Start(socket, new Uri(server.Url).Port);
        string forwarder = dir.Write("forward.py", Forwarder);
        var psi = new ProcessStartInfo("unshare") { RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (var a in new[] { "-n", "sh", "-c", "ip link set lo up && python3 \"$0\" \"$1\" \"$2\" & sleep 1; shift 3; exec \"$@\"",
                     forwarder, new Uri(server.Url).Port.ToString(), socket, "--",
                     "dotnet", Path.Combine(AppContext.BaseDirectory, "fastpath.dll"), "run", "--kubeconfig", kubeconfig,
                     "--config", config, "--node", "node-a", "--tap", "--duration", "60", "--status-interval", "0" })
            psi.ArgumentList.Add(a);
        using var run = Process.Start(psi)!;
        var lines = new BlockingCollection<string>();
        _ = Task.Run(() => { while (run.StandardOutput.ReadLine() is { } l) lines.Add(l); lines.CompleteAdding(); }, TestContext.Current.CancellationToken);
        var stderr = run.StandardError.ReadToEndAsync(TestContext.Current.CancellationToken);
        var seen = new List<string>();
        void WaitFor(string text)
        {
            var deadline = DateTime.UtcNow.AddSeconds(30);
            while (DateTime.UtcNow < deadline && !lines.IsCompleted)
            {
                if (!lines.TryTake(out var l, TimeSpan.FromMilliseconds(200))) continue;
                seen.Add(l);
                if (l.Contains(text, StringComparison.Ordinal)) return;
            }
            if (!run.HasExited) run.Kill(entireProcessTree: true);
            run.WaitForExit(5000);
            Assert.Fail($"no \"{text}\" in: {string.Join('\n', seen)}\n{stderr.Result}");
        }
        try
        {
            WaitFor("forwarding: node node-a, 5 ports");
            server.Apply(ApiObjects.Pod("web-9", "shop", "node-a", "10.244.1.19"));
            WaitFor($"tap {TapSet.PodTapName("shop/web-9")} = shop/web-9 (created)");
            server.Delete("Pod", "shop", "web-9");
            WaitFor("applied delete Pod shop/web-9");
            server.DeleteUnseen("Pod", "shop", "web-2");   // gone while "disconnected": only a relist can tell
            server.DropConnections();
            WaitFor("applied delete Pod shop/web-2");
        }
        finally
        {
            if (!run.HasExited) Process.Start("kill", ["-TERM", run.Id.ToString()])!.WaitForExit();
            run.WaitForExit(20_000);
        }
        Assert.True(run.HasExited);
        Assert.Equal(0, run.ExitCode);
    }

    /// <summary>Inside the namespace: 127.0.0.1:PORT → the Unix socket; exits with fastpath.</summary>
    private const string Forwarder = """
        import os, socket, sys, threading, time
        port, path = int(sys.argv[1]), sys.argv[2]
        parent = os.getppid()  # fastpath (the shell exec'd it): when it is gone, so is this forwarder and the namespace
        def watch():
            while os.getppid() == parent: time.sleep(0.2)
            os._exit(0)
        threading.Thread(target=watch, daemon=True).start()
        s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); s.bind(("127.0.0.1", port)); s.listen(64)
        def pipe(a, b):
            try:
                while (d := a.recv(65536)): b.sendall(d)
            except OSError: pass
            for x in (a, b):
                try: x.shutdown(socket.SHUT_RDWR)
                except OSError: pass
        while True:
            c, _ = s.accept(); u = socket.socket(socket.AF_UNIX); u.connect(path)
            threading.Thread(target=pipe, args=(c, u), daemon=True).start(); threading.Thread(target=pipe, args=(u, c), daemon=True).start()
        """;

    /// <summary>Outside: the Unix socket → the fake server on 127.0.0.1:PORT.</summary>
    private sealed class UnixBridge : IDisposable
    {
        private readonly System.Net.Sockets.Socket _listener = new(System.Net.Sockets.AddressFamily.Unix, System.Net.Sockets.SocketType.Stream, System.Net.Sockets.ProtocolType.Unspecified);

        public static UnixBridge Start(string path, int port)
        {
            var b = new UnixBridge();
            b._listener.Bind(new System.Net.Sockets.UnixDomainSocketEndPoint(path));
            b._listener.Listen(64);
            _ = Task.Run(async () =>
            {
                while (true)
                {
                    System.Net.Sockets.Socket client;
                    try { client = await b._listener.AcceptAsync(); }
                    catch (Exception e) when (e is System.Net.Sockets.SocketException or ObjectDisposedException) { return; }
                    _ = Task.Run(async () =>
                    {
                        using var tcp = new System.Net.Sockets.TcpClient();
                        try
                        {
                            await tcp.ConnectAsync(System.Net.IPAddress.Loopback, port);
                            using var a = new System.Net.Sockets.NetworkStream(client, ownsSocket: true);
                            var t = tcp.GetStream();
                            await Task.WhenAny(a.CopyToAsync(t), t.CopyToAsync(a));
                        }
                        catch (Exception e) when (e is IOException or System.Net.Sockets.SocketException or ObjectDisposedException) { }
                    });
                }
            });
            return b;
        }

        public void Dispose() => _listener.Dispose();
    }
}
