using System.Globalization;
using System.Text.RegularExpressions;
using FastPath.ControlPlane.Cluster;
using FastPath.ControlPlane.Cluster.Sources;

namespace FastPath.Replay;

/// <summary>One file of a <c>--changes</c> directory: what to apply and when.</summary>
/// <param name="Offset">Nanoseconds after the first packet of the replay.</param>
public sealed record ScheduledChange(long Offset, string File, ClusterChangeBatch Batch);

/// <summary>
/// Reads <c>fastpath replay --changes DIR</c>: files named <c>&lt;seconds&gt;-&lt;name&gt;.yaml</c> (or .yml, .json),
/// applied once the capture clock reaches <c>seconds</c> after the first packet (decimals allowed: <c>2.5-scale.yaml</c>).
/// A file's objects are added or replaced; a file named <c>&lt;seconds&gt;-&lt;name&gt;.delete.yaml</c> deletes the objects it
/// names (kind, metadata.name and metadata.namespace are enough). Files are applied in time order, then by name.
/// </summary>
public static partial class ChangeSchedule
{
    [GeneratedRegex(@"^(?<s>\d+(\.\d+)?)-.+\.(yaml|yml|json)$", RegexOptions.CultureInvariant | RegexOptions.IgnoreCase)]
    private static partial Regex Name();

    /// <summary>Reads every change file; every problem (a bad name, a file that does not parse) goes to <paramref name="problems"/>.</summary>
    public static List<ScheduledChange> Read(string directory, List<string> problems)
    {
        var changes = new List<ScheduledChange>();
        if (!Directory.Exists(directory))
        {
            problems.Add($"--changes {directory}: no such directory");
            return changes;
        }
        foreach (var file in Directory.EnumerateFiles(directory).Where(ClusterDirectory.IsManifestFile).Order(StringComparer.Ordinal))
        {
            var m = Name().Match(Path.GetFileName(file));
            if (!m.Success)
            {
                problems.Add($"{file}: a change file is named <seconds>-<name>.yaml (e.g. 2.5-scale-down.yaml)");
                continue;
            }
            var read = ClusterDirectory.ReadFile(file);
            if (read.Errors.Count > 0)
            {
                problems.AddRange(read.Errors.Select(e => e.ToString()));
                continue;
            }
            bool delete = Path.GetFileNameWithoutExtension(file).EndsWith(".delete", StringComparison.OrdinalIgnoreCase);
            var batch = new ClusterChangeBatch(
                read.Objects.Select(o => delete ? ClusterChange.Delete(o) : ClusterChange.Upsert(o)).ToList(), [], read.Warnings);
            long offset = (long)Math.Round(double.Parse(m.Groups["s"].Value, CultureInfo.InvariantCulture) * 1e9);
            changes.Add(new ScheduledChange(offset, file, batch));
        }
        changes.Sort((a, b) => a.Offset != b.Offset ? a.Offset.CompareTo(b.Offset) : string.CompareOrdinal(a.File, b.File));
        return changes;
    }
}
