using System.CommandLine;
using FastPath.Commands;

namespace FastPath;

/// <summary>The `fastpath` command: wires the control plane (cluster objects → snapshot) to the data plane (ports → engine).</summary>
public static class Program
{
    /// <summary>Exit code for bad input (unreadable capture, invalid cluster object, bad arguments), as the contract says.</summary>
    public const int ExitBadInput = 2;

    public static int Main(string[] args) => Run(args, Console.Out, Console.Error);

    public static int Run(string[] args, TextWriter stdout, TextWriter stderr)
    {
        var root = new RootCommand("FastPath: a Kubernetes node data plane you can replay captures through.")
        {
            ReplayCommand.Create(stdout, stderr),
            DiffCommand.Create(stdout, stderr),
            CheckCommand.Create(stdout, stderr),
            RunCommand.Create(stdout, stderr),
            TraceCommand.Create(stdout, stderr),
            BenchCommand.Create(stdout, stderr),
        };
        var parsed = root.Parse(args);
        if (parsed.Errors.Count > 0)
        {
            foreach (var e in parsed.Errors) stderr.WriteLine($"fastpath: {e.Message}");
            stderr.WriteLine("fastpath: see 'fastpath --help'");
            return ExitBadInput;
        }
        return parsed.Invoke(new InvocationConfiguration { Output = stdout, Error = stderr });
    }
}
