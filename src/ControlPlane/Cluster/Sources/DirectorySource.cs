namespace FastPath.ControlPlane.Cluster.Sources;

/// <summary>
/// Follows a directory of manifests (any layout, multi-document YAML or JSON, as <c>kubectl apply -R -f DIR</c> takes
/// it), or one manifest file, and reports object-level changes.
/// <list type="bullet">
/// <item>A <see cref="FileSystemWatcher"/> makes changes visible quickly; a periodic rescan compares every file's size
/// and time and catches what the watcher misses (overflowed buffers, network file systems, editors' tricks).</item>
/// <item>Bursts are coalesced: the first event arms a short debounce and everything seen until it fires is read as one
/// batch, so a <c>git checkout</c> of 1,000 files is one batch, and a file written in several steps is read once.</item>
/// <item>Temp file + rename, renames and deletes need no special case: after the debounce the directory is listed and
/// each file is compared with what was last read from it; an object that moved between files is an upsert, not a
/// delete and an add.</item>
/// <item>A file that does not parse keeps its last good objects (none are deleted) and yields its error once.</item>
/// </list>
/// </summary>
public sealed class DirectorySource : IClusterSource
{
    private readonly string _path;
    private readonly string _root;
    private readonly bool _singleFile;
    private readonly TimeSpan _debounce;
    private readonly TimeSpan _rescan;
    private readonly object _gate = new();
    private readonly Dictionary<string, FileState> _files = new(StringComparer.Ordinal);
    private FileSystemWatcher? _watcher;
    private Timer? _debounceTimer;
    private Timer? _rescanTimer;
    private Action<ClusterChangeBatch>? _onChanges;
    private bool _disposed;

    private sealed record FileState(DateTime LastWrite, long Length, string Text, IReadOnlyList<IClusterObject> Objects);

    /// <param name="debounce">How long a burst of events may last before it is read (default 100 ms).</param>
    /// <param name="rescan">How often every file is compared even without events (default 2 s).</param>
    public DirectorySource(string path, TimeSpan? debounce = null, TimeSpan? rescan = null)
    {
        _path = path;
        _singleFile = File.Exists(path);
        _root = _singleFile ? Path.GetDirectoryName(Path.GetFullPath(path))! : path;
        _debounce = debounce ?? TimeSpan.FromMilliseconds(100);
        _rescan = rescan ?? TimeSpan.FromSeconds(2);
    }

    public string Description => $"{(_singleFile ? "file" : "directory")} {_path}";

    /// <summary>Batches delivered after <see cref="Start"/> (tests wait on it).</summary>
    public long BatchesDelivered { get; private set; }

    public ClusterChangeBatch Start(Action<ClusterChangeBatch> onChanges)
    {
        lock (_gate)
        {
            if (_onChanges is not null) throw new InvalidOperationException("DirectorySource.Start was already called");
            if (!_singleFile && !Directory.Exists(_path))
                return new ClusterChangeBatch([], [new ClusterError(_path, null, null, null, "no such file or directory")], []);
            _onChanges = onChanges;
            var initial = Scan();
            _debounceTimer = new Timer(_ => Flush());
            _rescanTimer = new Timer(_ => Flush(), null, _rescan, _rescan);
            _watcher = new FileSystemWatcher(_root)
            {
                IncludeSubdirectories = !_singleFile,
                NotifyFilter = NotifyFilters.FileName | NotifyFilters.DirectoryName | NotifyFilters.LastWrite | NotifyFilters.Size,
                InternalBufferSize = 64 * 1024,
            };
            if (_singleFile) _watcher.Filter = Path.GetFileName(_path);
            FileSystemEventHandler changed = (_, _) => Arm();
            _watcher.Changed += changed;
            _watcher.Created += changed;
            _watcher.Deleted += changed;
            _watcher.Renamed += (_, _) => Arm();
            _watcher.Error += (_, _) => Arm(); // buffer overflow: the rescan after the debounce sees everything
            _watcher.EnableRaisingEvents = true;
            return initial;
        }
    }

    private void Arm()
    {
        lock (_gate)
        {
            if (!_disposed) _debounceTimer?.Change(_debounce, Timeout.InfiniteTimeSpan);
        }
    }

    private void Flush()
    {
        lock (_gate)
        {
            if (_disposed || _onChanges is null) return;
            var batch = Scan();
            if (batch.Changes.Count == 0 && batch.Errors.Count == 0 && batch.Warnings.Count == 0) return;
            BatchesDelivered++;
            _onChanges(batch);
        }
    }

    /// <summary>Lists the files, reads the new and changed ones, forgets the removed ones; returns what changed.</summary>
    private ClusterChangeBatch Scan()
    {
        var errors = new List<ClusterError>();
        var warnings = new List<ClusterError>();
        var upserts = new Dictionary<ObjectKey, IClusterObject>();
        var removed = new Dictionary<ObjectKey, IClusterObject>();

        var present = _singleFile ? (File.Exists(_path) ? [_path] : []) : ClusterDirectory.ManifestFiles(_path);
        var seen = new HashSet<string>(present, StringComparer.Ordinal);
        foreach (var file in _files.Keys.Where(f => !seen.Contains(f)).ToList())
        {
            foreach (var o in _files[file].Objects) removed[o.Key] = o;
            _files.Remove(file);
        }
        foreach (var file in present)
        {
            FileInfo info;
            string text;
            try
            {
                info = new FileInfo(file);
                if (_files.TryGetValue(file, out var known) && known.LastWrite == info.LastWriteTimeUtc && known.Length == info.Length) continue;
                text = File.ReadAllText(file);
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                continue; // vanished or locked between listing and reading: the next scan sees its final state
            }
            var previous = _files.GetValueOrDefault(file);
            if (previous is not null && previous.Text == text)
            {
                _files[file] = previous with { LastWrite = info.LastWriteTimeUtc, Length = info.Length };
                continue;
            }
            var read = ClusterDirectory.ReadFile(file);
            errors.AddRange(read.Errors);
            warnings.AddRange(read.Warnings);
            var before = (previous?.Objects ?? []).ToDictionary(o => o.Key);
            var objects = new List<IClusterObject>(read.Objects.Count);
            foreach (var o in read.Objects)
            {
                // Unchanged objects of a changed file are not reported: the controller recompiles only what moved.
                if (before.Remove(o.Key, out var old) && SameContent(old, o)) { objects.Add(old); continue; }
                objects.Add(o);
                upserts[o.Key] = o;
            }
            foreach (var old in before.Values)
            {
                // A file with errors keeps its last good objects: a half-written file must not delete anything.
                if (read.Errors.Count > 0) objects.Add(old);
                else removed[old.Key] = old;
            }
            _files[file] = new FileState(info.LastWriteTimeUtc, info.Length, text, objects);
        }

        var changes = new List<ClusterChange>(upserts.Count + removed.Count);
        foreach (var (key, o) in removed)
        {
            if (upserts.ContainsKey(key)) continue; // moved to another file
            // Still defined by a file that did not change (a duplicate): that version stays in force.
            var other = _files.Values.SelectMany(f => f.Objects).FirstOrDefault(x => x.Key == key);
            changes.Add(other is null ? ClusterChange.Delete(o) : ClusterChange.Upsert(other));
        }
        foreach (var o in upserts.Values) changes.Add(ClusterChange.Upsert(o));
        return new ClusterChangeBatch(changes, errors, warnings);
    }

    private static bool SameContent(IClusterObject a, IClusterObject b) =>
        a.File == b.File && a.Line == b.Line && a.Value is not FastPathConfiguration
        && k8s.KubernetesJson.Serialize(a.Value) == k8s.KubernetesJson.Serialize(b.Value);

    public void Dispose()
    {
        lock (_gate)
        {
            if (_disposed) return;
            _disposed = true;
            _watcher?.Dispose();
            _debounceTimer?.Dispose();
            _rescanTimer?.Dispose();
        }
    }
}
