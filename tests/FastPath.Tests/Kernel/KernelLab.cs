using System.Buffers.Binary;
using System.Diagnostics;

namespace FastPath.Tests.Kernel;

/// <summary>What the differential tests against the Linux kernel share: tool checks, pcap reading, running commands.</summary>
internal static class KernelLab
{
    /// <summary>Skips the test unless namespaces can be built here: Linux, root, the tools, scapy for /usr/bin/python3.</summary>
    public static void SkipUnlessAvailable(params string[] tools)
    {
        if (!OperatingSystem.IsLinux()) Assert.Skip("network namespaces need Linux");
        if (!Environment.IsPrivilegedProcess) Assert.Skip("not root: creating network namespaces needs root");
        foreach (var tool in tools)
            if (!OnPath(tool)) Assert.Skip($"{tool} is not on PATH (scripts/install-deps.sh installs iproute2, nftables and tcpdump)");
        if (!File.Exists("/usr/bin/python3") || Run("/usr/bin/python3", ["-c", "import scapy.all"], TimeSpan.FromSeconds(20)).Exit != 0)
            Assert.Skip("/usr/bin/python3 has no scapy: apt-get install python3-scapy");
    }

    /// <summary>Frames of a classic pcap (tcpdump -w, scapy wrpcap, FastPath's writer), either byte order.</summary>
    public static List<byte[]> ReadPcap(string path)
    {
        Assert.True(File.Exists(path), $"{path} was not written");
        var data = File.ReadAllBytes(path);
        Assert.True(data.Length >= 24, $"{path}: no pcap header");
        uint magic = BinaryPrimitives.ReadUInt32LittleEndian(data);
        bool little = magic is 0xA1B2C3D4 or 0xA1B23C4D;
        Assert.True(little || magic is 0xD4C3B2A1 or 0x4D3CB2A1, $"{path}: not a pcap (magic {magic:x8})");
        uint U32(int at) => little ? BinaryPrimitives.ReadUInt32LittleEndian(data.AsSpan(at)) : BinaryPrimitives.ReadUInt32BigEndian(data.AsSpan(at));
        Assert.Equal(1u, U32(20)); // LINKTYPE_ETHERNET
        var frames = new List<byte[]>();
        for (int at = 24; at + 16 <= data.Length;)
        {
            int captured = (int)U32(at + 8);
            frames.Add(data.AsSpan(at + 16, captured).ToArray());
            at += 16 + captured;
        }
        return frames;
    }

    public static string Mac(ReadOnlySpan<byte> b) => string.Join(':', b[..6].ToArray().Select(x => x.ToString("x2")));

    public static bool OnPath(string name) =>
        (Environment.GetEnvironmentVariable("PATH") ?? "").Split(Path.PathSeparator)
            .Any(dir => dir.Length > 0 && File.Exists(Path.Combine(dir, name)));

    public static (int Exit, string Output) Run(string exe, string[] args, TimeSpan timeout,
        IReadOnlyDictionary<string, string>? environment = null)
    {
        var psi = new ProcessStartInfo(exe) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (var a in args) psi.ArgumentList.Add(a);
        foreach (var (name, value) in environment ?? new Dictionary<string, string>()) psi.Environment[name] = value;
        using var p = Process.Start(psi) ?? throw new InvalidOperationException($"could not start {exe}");
        var stderr = p.StandardError.ReadToEndAsync();
        var stdout = p.StandardOutput.ReadToEndAsync();
        if (!p.WaitForExit(timeout))
        {
            p.Kill(entireProcessTree: true);
            return (-1, $"{exe} timed out after {timeout.TotalSeconds} s");
        }
        return (p.ExitCode, stdout.GetAwaiter().GetResult() + stderr.GetAwaiter().GetResult());
    }
}
