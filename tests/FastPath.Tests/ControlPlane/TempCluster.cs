using System.Runtime.CompilerServices;

namespace FastPath.Tests.ControlPlane;

/// <summary>A cluster directory in a fresh temp folder, removed on dispose.</summary>
internal sealed class TempCluster : IDisposable
{
    public TempCluster() => Directory.CreateDirectory(Path);

    public string Path { get; } = System.IO.Path.Combine(System.IO.Path.GetTempPath(), "fastpath-cp-" + Guid.NewGuid().ToString("N"));

    public string Write(string relative, string text)
    {
        var file = System.IO.Path.Combine(Path, relative);
        Directory.CreateDirectory(System.IO.Path.GetDirectoryName(file)!);
        File.WriteAllText(file, text);
        return file;
    }

    /// <summary>How error lines name a file of this cluster: the cluster path joined with the relative path.</summary>
    public string F(string relative) => System.IO.Path.Combine(Path, relative);

    public void Dispose()
    {
        try { Directory.Delete(Path, recursive: true); } catch (IOException) { }
    }

    /// <summary>Test data shipped in the repository next to this source file (not in ../shared).</summary>
    public static string DataPath(string relative, [CallerFilePath] string source = "") =>
        System.IO.Path.Combine(System.IO.Path.GetDirectoryName(source)!, "Data", relative);
}
