using System.Net.Sockets;
using System.Text;
using FastPath.DataPlane.Conntrack;
using FastPath.DataPlane.Ports;
using FastPath.DataPlane.Services;
using FastPath.DataPlane.State;

namespace FastPath.Live;

/// <summary>
/// `run --state-dir DIR`: what one `fastpath run` leaves for the next on the node so a restart keeps its connections —
/// each worker's conntrack records in <c>conntrack-N.state</c> (a <see cref="StateFile"/> the worker's table works in
/// directly), and the persistent TAPs in <c>taps</c> (<see cref="PersistentTaps"/>). An exclusive lock
/// (<c>lock</c>, flock; the holder's pid in <c>pid</c>) keeps a second process on the same node from mapping the same records.
/// </summary>
/// <remarks>
/// <b>Takeover.</b> `run --takeover` starts a new process beside the running one: it reads the cluster and compiles its
/// snapshot first, then connects to the holder's <c>takeover.sock</c>. The holder stops its workers, marks its state
/// files clean, closes its TAP queues (the devices persist), releases its listeners and the lock, and answers
/// <c>released T</c> (T: when its workers stopped, wall clock ns); the new process takes the lock and maps the files.
/// The forwarding gap is the time from T to the new process's first batch: state files checked, TAPs attached, workers
/// started — no process start-up or compile in it.
/// </remarks>
public sealed class StateDirectory : IDisposable
{
    private FileStream? _lock;
    private ConntrackTable[] _tables = [];
    private AffinityTable[] _affinity = [];
    private Socket? _takeoverListener;
    private Socket? _takeoverRequest;

    private StateDirectory(string path, FileStream lockFile)
    {
        Path = path;
        _lock = lockFile;
    }

    public string Path { get; }

    /// <summary>After a takeover: when the previous holder's workers stopped (wall clock, ns), the start of the gap.</summary>
    public long? HandedOverAt { get; private set; }

    /// <summary>
    /// Creates <paramref name="path"/> if needed and takes its lock; with <paramref name="takeover"/>, first asks the
    /// process holding it to hand over (its workers stop, it saves and lets go) and says when it stopped forwarding.
    /// </summary>
    /// <exception cref="IOException">Another process holds it (and no takeover was asked for, or it did not answer), or it cannot be created.</exception>
    public static StateDirectory Open(string path, bool takeover = false, TextWriter? log = null)
    {
        Directory.CreateDirectory(path);
        string lockPath = System.IO.Path.Combine(path, "lock");
        if (TryLock(lockPath) is { } free) return Locked(path, free);
        // (.NET takes a shared flock to read a file, so the holder's pid is kept beside the lock, not in it.)
        string pidPath = System.IO.Path.Combine(path, "pid");
        string holder = File.Exists(pidPath) ? File.ReadAllText(pidPath).Trim() : "";
        string who = $"another fastpath run{(holder.Length > 0 ? $" (pid {holder})" : "")}";
        if (!takeover) throw new IOException($"--state-dir {path}: in use by {who}; stop it first, or start with --takeover");
        var (answer, predecessor) = AskToRelease(System.IO.Path.Combine(path, TakeoverSocket), who);
        var deadline = DateTime.UtcNow.AddSeconds(5);
        while (DateTime.UtcNow < deadline)
        {
            if (TryLock(lockPath) is { } taken)
            {
                log?.WriteLine($"takeover: {who} {answer} (wall clock, ns)");
                var state = Locked(path, taken);
                state._predecessor = predecessor;
                if (long.TryParse(answer[(answer.LastIndexOf(' ') + 1)..], out long stopped)) state.HandedOverAt = stopped;
                return state;
            }
            Thread.Sleep(1);
        }
        predecessor.Dispose();
        throw new IOException($"--state-dir {path}: {who} answered the takeover but kept the lock");
    }

    private const string TakeoverSocket = "takeover.sock";

    private static FileStream? TryLock(string lockPath)
    {
        try
        {
            // FileShare.None is flock(LOCK_EX | LOCK_NB) on Linux: released by the kernel when the process dies.
            return new FileStream(lockPath, FileMode.OpenOrCreate, FileAccess.ReadWrite, FileShare.None);
        }
        catch (IOException)
        {
            return null;
        }
    }

    private static StateDirectory Locked(string path, FileStream lockFile)
    {
        File.WriteAllText(System.IO.Path.Combine(path, "pid"), $"{Environment.ProcessId}\n");
        return new StateDirectory(path, lockFile);
    }

    /// <summary>Asks for the hand-over; returns the answer and the connection, kept open until <see cref="Forwarding"/>.</summary>
    private static (string Answer, Socket Connection) AskToRelease(string socketPath, string who)
    {
        var socket = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        try
        {
            socket.Connect(new UnixDomainSocketEndPoint(socketPath));
            socket.Send("takeover\n"u8);
            socket.ReceiveTimeout = 10_000;
            var reply = new List<byte>();
            var buffer = new byte[256];
            int n;
            while (!reply.Contains((byte)'\n') && (n = socket.Receive(buffer)) > 0) reply.AddRange(buffer.AsSpan(0, n));
            string text = Encoding.ASCII.GetString(reply.ToArray()).Trim();
            if (!text.StartsWith("released", StringComparison.Ordinal)) throw new IOException($"{socketPath}: {who} answered \"{text}\" to the takeover");
            return (text.Replace("released", "released the state; its workers stopped at", StringComparison.Ordinal), socket);
        }
        catch (Exception e) when (e is SocketException or IOException)
        {
            socket.Dispose();
            throw e as IOException ?? new IOException($"{socketPath}: cannot ask {who} to hand over: {e.Message}");
        }
    }

    private Socket? _predecessor;

    /// <summary>
    /// After a takeover, once this process's workers forward: lets the previous process go on with its exit (it waits
    /// for this, so tearing down its memory does not compete with the gap for the CPU).
    /// </summary>
    public void Forwarding()
    {
        Interlocked.Exchange(ref _predecessor, null)?.Dispose();
    }

    /// <summary>
    /// Listens on <c>takeover.sock</c> for a `run --takeover` of this node; <paramref name="requested"/> runs (on the
    /// listener's thread) when one asks. Answer with <see cref="Release"/>.
    /// </summary>
    public void ListenForTakeover(Action requested)
    {
        string socketPath = System.IO.Path.Combine(Path, TakeoverSocket);
        if (File.Exists(socketPath)) File.Delete(socketPath);
        var listener = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        listener.Bind(new UnixDomainSocketEndPoint(socketPath));
        listener.Listen(1);
        _takeoverListener = listener;
        new Thread(() =>
        {
            try
            {
                GapCode.Compile(); // this process's side of a hand-over, ready before one is asked for
                var client = listener.Accept();
                var buffer = new byte[64];
                int n = client.Receive(buffer);
                if (Encoding.ASCII.GetString(buffer, 0, n).Trim() != "takeover")
                {
                    client.Dispose();
                    return;
                }
                Volatile.Write(ref _takeoverRequest, client);
                requested();
            }
            catch (Exception e) when (e is SocketException or ObjectDisposedException)
            {
                // closed at shutdown
            }
        }) { Name = "fastpath-takeover", IsBackground = true }.Start();
    }

    /// <summary>Whether a `run --takeover` asked this process to hand over.</summary>
    public bool TakeoverRequested => Volatile.Read(ref _takeoverRequest) is not null;

    /// <summary>
    /// Lets go of the lock and tells the process that asked for a takeover, with the time the workers stopped. Call
    /// after <see cref="Save"/>, once the TAP queues and listeners are closed.
    /// </summary>
    public void Release(long stoppedAt)
    {
        _lock?.Dispose();
        _lock = null;
        if (Volatile.Read(ref _takeoverRequest) is not { } client) return;
        try
        {
            client.Send(Encoding.ASCII.GetBytes($"released {stoppedAt}\n"));
        }
        catch (SocketException)
        {
            // the new process gave up; it will say so
        }
    }

    /// <summary>
    /// After <see cref="Release"/>: waits (at most <paramref name="timeout"/>) until the process that took over forwards
    /// (it closes the connection then, or dies), so this one's exit does not take CPU from its gap.
    /// </summary>
    public void WaitForSuccessor(TimeSpan timeout)
    {
        if (Interlocked.Exchange(ref _takeoverRequest, null) is not { } client) return;
        try
        {
            client.ReceiveTimeout = (int)timeout.TotalMilliseconds;
            _ = client.Receive(new byte[16]);
        }
        catch (SocketException)
        {
            // timed out, or the connection broke: go on either way
        }
        client.Dispose();
    }

    /// <summary>
    /// One conntrack table per worker on its state file: the previous process's connections when its file passes every
    /// check, each restored record checked again on its own (<see cref="ConntrackTable.Restore"/>); one line per worker
    /// says what was restored or why the file was discarded. Files of workers this run does not have are removed.
    /// </summary>
    public ConntrackTable[] OpenConntrack(int capacity, int workers, FlowOwners? owners, TextWriter log)
    {
        long now = TapPort.WallClock();
        _tables = new ConntrackTable[workers];
        for (int w = 0; w < workers; w++)
        {
            string file = System.IO.Path.Combine(Path, $"conntrack-{w}.state");
            var state = StateFile.Open(file, ConntrackTable.StateLayout(capacity, w, workers), now);
            var table = _tables[w] = new ConntrackTable(state) { Owners = owners, WorkerId = w };
            if (state.Discarded is { } why) log.WriteLine($"state: {file}: discarded: {why}; worker {w} starts with an empty conntrack table");
            else if (state.Restored)
            {
                var r = table.Restore(now);
                log.WriteLine($"state: {file}: restored {r.Restored} connection(s) ({(state.WasClean ? "clean shutdown" : state.WasHandedOver ? "handed over by a takeover, checked record by record" : "after an unclean stop, checked record by record")}); "
                    + $"{r.Expired} expired meanwhile, {r.Invalid} failed a check{(Math.Abs(state.ClockShift) >= 1_000_000_000 ? $"; wall clock stepped {state.ClockShift / 1e9:F1} s against CLOCK_BOOTTIME meanwhile: times moved with it" : "")}");
            }
            else log.WriteLine($"state: {file}: new ({capacity} connections)");
        }
        foreach (string kind in new[] { "conntrack", "affinity" })
            for (int w = workers; File.Exists(System.IO.Path.Combine(Path, $"{kind}-{w}.state")); w++)
            {
                File.Delete(System.IO.Path.Combine(Path, $"{kind}-{w}.state"));
                log.WriteLine($"state: {kind}-{w}.state removed: this run has {workers} worker(s)");
            }
        return _tables;
    }

    /// <summary>One session-affinity table per worker on its state file (<c>affinity-N.state</c>), as <see cref="OpenConntrack"/>.</summary>
    public AffinityTable[] OpenAffinity(int workers, TextWriter log)
    {
        long now = TapPort.WallClock();
        _affinity = new AffinityTable[workers];
        for (int w = 0; w < workers; w++)
        {
            string file = System.IO.Path.Combine(Path, $"affinity-{w}.state");
            var state = StateFile.Open(file, AffinityTable.StateLayout(65536, w, workers), now);
            var table = _affinity[w] = new AffinityTable(state);
            if (state.Discarded is { } why) log.WriteLine($"state: {file}: discarded: {why}; worker {w} starts with no session-affinity memories");
            else if (state.Restored) log.WriteLine($"state: {file}: restored {table.Restore(now)} session-affinity memories");
        }
        return _affinity;
    }

    /// <summary>
    /// Runs the state-file steps of a takeover's gap once on small scratch files (created, handed over, opened again
    /// and restored, removed), so their code is compiled before `run --takeover` asks for the hand-over rather than in
    /// the forwarding gap.
    /// </summary>
    public static void WarmUp(int capacity, int workers)
    {
        string dir = System.IO.Path.Combine(System.IO.Path.GetTempPath(), $"fastpath-warmup-{Environment.ProcessId}");
        try
        {
            for (int pass = 0; pass < 2; pass++)
            {
                var scratch = Open(dir);
                scratch.OpenConntrack(Math.Min(capacity, 1024), workers, workers > 1 ? new FlowOwners(workers) : null, TextWriter.Null);
                scratch.OpenAffinity(workers, TextWriter.Null);
                long now = TapPort.WallClock();
                foreach (var file in scratch._tables.Select(t => t.File).Concat(scratch._affinity.Select(a => a.File))) file?.MarkHandedOver(now);
                scratch.Dispose();
            }
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    /// <summary>
    /// Marks every table's file cleanly closed, or handed over when a takeover asked (the workers have stopped), and says
    /// so; they stay mapped until <see cref="Dispose"/>.
    /// </summary>
    public void Save(TextWriter log)
    {
        long now = TapPort.WallClock();
        bool handOver = TakeoverRequested;
        foreach (var file in _tables.Select(t => t.File).Concat(_affinity.Select(a => a.File)))
            if (handOver) file?.MarkHandedOver(now);
            else file?.MarkClean(now);
        if (_tables.Length > 0) log.WriteLine($"state: saved {_tables.Sum(t => t.Count)} connection(s) in {Path} ({(handOver ? "handed over" : "clean shutdown")})");
    }

    public void Dispose()
    {
        _takeoverListener?.Dispose();
        _takeoverRequest?.Dispose();
        _predecessor?.Dispose();
        foreach (var table in _tables) table.File?.Dispose();
        foreach (var table in _affinity) table.File?.Dispose();
        _lock?.Dispose();
    }
}
