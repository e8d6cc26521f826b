using FastPath.DataPlane.Conntrack;
using FastPath.DataPlane.Ports;
using FastPath.DataPlane.State;

namespace FastPath.Live;

/// <summary>
/// `run --state-dir DIR`: what one `fastpath run` leaves for the next on the node so a restart keeps its connections —
/// each worker's conntrack records in <c>conntrack-N.state</c> (a <see cref="StateFile"/> the worker's table works in
/// directly), and the persistent TAPs in <c>taps</c> (<see cref="PersistentTaps"/>). An exclusive lock
/// (<c>lock</c>, flock) keeps a second process on the same node from mapping the same records.
/// </summary>
public sealed class StateDirectory : IDisposable
{
    private readonly FileStream _lock;
    private ConntrackTable[] _tables = [];

    private StateDirectory(string path, FileStream lockFile)
    {
        Path = path;
        _lock = lockFile;
        Taps = new PersistentTaps(path);
    }

    public string Path { get; }
    public PersistentTaps Taps { get; }

    /// <summary>Creates <paramref name="path"/> if needed and takes its lock.</summary>
    /// <exception cref="IOException">Another process holds it, or it cannot be created.</exception>
    public static StateDirectory Open(string path)
    {
        Directory.CreateDirectory(path);
        string lockPath = System.IO.Path.Combine(path, "lock");
        FileStream lockFile;
        try
        {
            // FileShare.None is flock(LOCK_EX | LOCK_NB) on Linux: released by the kernel when the process dies.
            lockFile = new FileStream(lockPath, FileMode.OpenOrCreate, FileAccess.ReadWrite, FileShare.None);
        }
        catch (IOException)
        {
            string holder = File.Exists(lockPath) ? File.ReadAllText(lockPath).Trim() : "";
            throw new IOException($"--state-dir {path}: in use by another fastpath run{(holder.Length > 0 ? $" (pid {holder})" : "")}");
        }
        lockFile.SetLength(0);
        using (var w = new StreamWriter(lockFile, leaveOpen: true)) w.WriteLine(Environment.ProcessId);
        return new StateDirectory(path, lockFile);
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
                log.WriteLine($"state: {file}: restored {r.Restored} connection(s) ({(state.WasClean ? "clean shutdown" : "after an unclean stop, checked record by record")}); "
                    + $"{r.Expired} expired meanwhile, {r.Invalid} failed a check{(state.ClockShift != 0 ? $"; wall clock moved {state.ClockShift / 1e6:F0} ms against CLOCK_BOOTTIME" : "")}");
            }
            else log.WriteLine($"state: {file}: new ({capacity} connections)");
        }
        for (int w = workers; File.Exists(System.IO.Path.Combine(Path, $"conntrack-{w}.state")); w++)
        {
            File.Delete(System.IO.Path.Combine(Path, $"conntrack-{w}.state"));
            log.WriteLine($"state: conntrack-{w}.state removed: this run has {workers} worker(s)");
        }
        return _tables;
    }

    /// <summary>Marks every table's file cleanly closed (the workers have stopped) and says so; they stay mapped until <see cref="Dispose"/>.</summary>
    public void Save(TextWriter log)
    {
        long now = TapPort.WallClock();
        foreach (var table in _tables) table.File?.MarkClean(now);
        if (_tables.Length > 0) log.WriteLine($"state: saved {_tables.Sum(t => t.Count)} connection(s) in {Path} (clean shutdown)");
    }

    public void Dispose()
    {
        foreach (var table in _tables) table.File?.Dispose();
        _lock.Dispose();
    }
}
