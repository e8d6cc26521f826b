using System.Diagnostics;
using FastPath.Tests.Support;

namespace FastPath.Tests.Conformance;

/// <summary>
/// Runs the black-box conformance suite (../shared/conformance/run.py) against the built `fastpath`, one case per
/// test: the shared cases and our own under tests/conformance/cases. Every emitted packet of every case is also
/// decoded by tshark.
/// </summary>
public class ConformanceTests
{
    private static string SharedRunner => Path.Combine(RepositoryFiles.Root, "..", "shared", "conformance", "run.py");

    public static TheoryData<string> Cases()
    {
        var data = new TheoryData<string>();
        foreach (var dir in CaseRoots().Where(Directory.Exists))
            foreach (var c in Directory.GetDirectories(dir).Order())
                if (File.Exists(Path.Combine(c, "case.json"))) data.Add(c);
        return data;
    }

    private static IEnumerable<string> CaseRoots()
    {
        yield return Path.Combine(RepositoryFiles.Root, "..", "shared", "conformance", "cases");
        yield return Path.Combine(RepositoryFiles.Root, "tests", "conformance", "cases");
    }

    [Theory]
    [MemberData(nameof(Cases))]
    public void Case(string caseDir)
    {
        if (!File.Exists(SharedRunner)) Assert.Skip($"no conformance runner at {SharedRunner} (CI lays ../shared beside the clone)");
        if (!ScapyAvailable()) Assert.Skip("/usr/bin/python3 has no scapy: apt-get install python3-scapy");
        string name = Path.GetFileName(caseDir);
        string engine = $"dotnet {Path.Combine(AppContext.BaseDirectory, "fastpath.dll")}";
        // The runner's -k also matches feature tags (-k masquerade would run icmp-error-revnat too), so it is given
        // a folder holding this one case.
        using var only = new TempFolder();
        Directory.CreateSymbolicLink(Path.Combine(only.Path, name), caseDir);
        var (exit, output) = Run("/usr/bin/python3", SharedRunner, "--cases", only.Path, "--engine", engine);
        Assert.True(exit == 0 && output.Contains($"PASS {name}"), output);
        AssertOutputsDecodeCleanly(caseDir);
    }

    private static void AssertOutputsDecodeCleanly(string caseDir)
    {
        if (!Tshark.Available) return;
        using var tmp = new TempFolder();
        var spec = System.Text.Json.JsonDocument.Parse(File.ReadAllText(Path.Combine(caseDir, "case.json"))).RootElement;
        var args = new List<string> { "replay" };
        foreach (var input in spec.GetProperty("inputs").EnumerateArray())
        {
            string s = input.GetString()!;
            int eq = s.LastIndexOf('=');
            args.Add(eq > 0 ? $"{s[..eq]}={Path.Combine(caseDir, s[(eq + 1)..])}" : Path.Combine(caseDir, s));
        }
        args.AddRange(["--cluster", Path.Combine(caseDir, "cluster"), "--node", spec.GetProperty("node").GetString()!, "--out", tmp.Path, "--quiet"]);
        int exit = FastPath.Program.Run(args.ToArray(), TextWriter.Null, TextWriter.Null);
        if (exit != 0) return; // cases that expect a refusal
        foreach (var pcap in Directory.GetFiles(tmp.Path, "*.pcap"))
        {
            var problems = Tshark.Problems(pcap);
            Assert.True(problems.Count == 0, $"{Path.GetFileName(pcap)}: {string.Join("; ", problems)}");
        }
    }

    private static bool ScapyAvailable() => File.Exists("/usr/bin/python3") && Run("/usr/bin/python3", "-c", "import scapy").Exit == 0;

    private static (int Exit, string Output) Run(string exe, params string[] args)
    {
        var psi = new ProcessStartInfo(exe) { RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (var a in args) psi.ArgumentList.Add(a);
        using var p = Process.Start(psi)!;
        var stderr = p.StandardError.ReadToEndAsync();
        string stdout = p.StandardOutput.ReadToEnd();
        if (!p.WaitForExit(TimeSpan.FromMinutes(2))) { p.Kill(true); return (-1, "timed out"); }
        return (p.ExitCode, stdout + stderr.Result);
    }
}
