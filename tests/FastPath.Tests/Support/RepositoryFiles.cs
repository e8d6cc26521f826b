namespace FastPath.Tests.Support;

/// <summary>Paths of files checked into the repository, found from the test binary's folder.</summary>
internal static class RepositoryFiles
{
    private static readonly Lazy<string> RootPath = new(() =>
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            if (File.Exists(Path.Combine(dir.FullName, "FastPath.sln")))
                return dir.FullName;
        }
        throw new InvalidOperationException($"no FastPath.sln above {AppContext.BaseDirectory}");
    });

    public static string Root => RootPath.Value;

    public static string ExternalCapture(string name) => Path.Combine(Root, "pcaps", "external", name);
}

/// <summary>A temporary folder deleted with the test.</summary>
internal sealed class TempFolder : IDisposable
{
    public TempFolder()
    {
        Path = Directory.CreateTempSubdirectory("fastpath-ports-").FullName;
    }

    public string Path { get; }

    public string File(string name) => System.IO.Path.Combine(Path, name);

    public void Dispose()
    {
        try
        {
            Directory.Delete(Path, recursive: true);
        }
        catch (IOException)
        {
            // A reader still open on Windows; the OS temp cleaner gets it.
        }
    }
}
