using FastPath.DataPlane.Ports;

namespace FastPath.Live;

/// <summary>
/// The TAPs `run --state-dir` made persistent, and where each is now: the file <c>taps</c> in the state directory, one
/// line per device — its name as created, its network namespace's device and inode numbers, its name there. A pod's
/// TAP is moved into the pod's namespace and renamed after `run` creates it, and TUNSETIFF finds a device only by name
/// in the caller's namespace, so the next `run` needs both to attach to it again (<see cref="Locate"/>). The
/// coordinator refreshes the file every second (<see cref="Record"/>: two ioctls per TAP, written only on a change).
/// </summary>
public sealed class PersistentTaps
{
    private readonly string _path;
    private readonly Dictionary<string, (ulong Device, ulong Inode, string IfName)> _known = new(StringComparer.Ordinal);

    public PersistentTaps(string stateDirectory)
    {
        _path = Path.Combine(stateDirectory, "taps");
        Reload();
    }

    /// <summary>
    /// Reads the file again: `run --takeover` reads it before the hand-over (to open the TAPs' descriptors early) and
    /// again once it holds the state directory, when the previous process has written its last word.
    /// </summary>
    public void Reload()
    {
        _known.Clear();
        if (!File.Exists(_path)) return;
        foreach (var line in File.ReadAllLines(_path))
        {
            var f = line.Split(' ', StringSplitOptions.RemoveEmptyEntries);
            if (f.Length == 4 && ulong.TryParse(f[1], out ulong dev) && ulong.TryParse(f[2], out ulong ino) && LinkDevice.IsValidName(f[0])
                && LinkDevice.IsValidName(f[3]))
                _known[f[0]] = (dev, ino, f[3]);
        }
    }

    /// <summary>Where the TAP created as <paramref name="name"/> was last seen (namespace device and inode, name there), or null.</summary>
    public (ulong Device, ulong Inode, string IfName)? Seen(string name) => _known.TryGetValue(name, out var seen) ? seen : null;

    /// <summary>Whether a previous `run` (or this one) created the TAP <paramref name="name"/> persistent.</summary>
    public bool Owns(string name) => _known.ContainsKey(name);

    /// <summary>
    /// The namespace (a path naming it: /run/netns/*, else some process's /proc/PID/ns/net) and name the TAP created as
    /// <paramref name="name"/> was last seen with, when that is not this process's namespace; null otherwise.
    /// </summary>
    public (string Netns, string IfName)? Locate(string name)
    {
        if (!_known.TryGetValue(name, out var seen)) return null;
        if (TapDevice.FileId("/proc/self/ns/net", out ulong dev, out ulong ino) && (dev, ino) == (seen.Device, seen.Inode)) return null;
        foreach (var dir in new[] { "/run/netns", "/var/run/netns" })
            if (Directory.Exists(dir))
                foreach (var file in Directory.EnumerateFiles(dir))
                    if (TapDevice.FileId(file, out dev, out ino) && (dev, ino) == (seen.Device, seen.Inode)) return (file, seen.IfName);
        foreach (var proc in Directory.EnumerateDirectories("/proc"))
        {
            string ns = Path.Combine(proc, "ns", "net");
            if (char.IsAsciiDigit(Path.GetFileName(proc)[0]) && TapDevice.FileId(ns, out dev, out ino) && (dev, ino) == (seen.Device, seen.Inode))
                return (ns, seen.IfName);
        }
        return null;
    }

    /// <summary>Notes where every persistent TAP of <paramref name="devices"/> is now and rewrites the file if anything moved.</summary>
    public void Record(IEnumerable<LinkDevice> devices)
    {
        bool changed = false;
        foreach (var device in devices)
        {
            if (device is not TapDevice { Persistent: true } tap || !tap.Whereabouts(out ulong dev, out ulong ino, out string ifName)) continue;
            if (_known.TryGetValue(tap.Name, out var seen) && seen == (dev, ino, ifName)) continue;
            _known[tap.Name] = (dev, ino, ifName);
            changed = true;
        }
        if (changed) Save();
    }

    /// <summary>Forgets a TAP whose port is gone (it is removed, not kept).</summary>
    public void Forget(string name)
    {
        if (_known.Remove(name)) Save();
    }

    private void Save()
    {
        string temp = _path + ".tmp";
        File.WriteAllLines(temp, _known.Select(k => $"{k.Key} {k.Value.Device} {k.Value.Inode} {k.Value.IfName}"));
        File.Move(temp, _path, overwrite: true);
    }
}
