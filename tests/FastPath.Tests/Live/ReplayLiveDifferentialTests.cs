using FastPath.Fuzz;
using FastPath.Tests.Kernel;
using FastPath.Tests.Support;

namespace FastPath.Tests.Live;

/// <summary>
/// The replay-vs-live differential (fuzz/FastPath.Fuzz/LiveDiff.cs, `scripts/fuzz.sh --live-diff N` at volume),
/// bounded: the whole pipeline/trace fuzz corpus and mutations of it, 1,000 fuzz inputs (~3,000 frames, a third of
/// them with a partial checksum), through `fastpath run` on TAPs in a namespace of its own — the real TapPort:
/// virtio-net headers, checksum admission, batching, transmit — and through `fastpath replay`: every frame out of
/// every port the same bytes in the same order, every drop counter per port and reason the same.
/// </summary>
public class ReplayLiveDifferentialTests(ITestOutputHelper output)
{
    [Fact]
    public void CorpusAndMutationsLeaveEveryPortLiveAsInReplay()
    {
        if (!OperatingSystem.IsLinux()) Assert.Skip("TAP devices and network namespaces need Linux");
        if (!Environment.IsPrivilegedProcess) Assert.Skip("not root: TAP devices and network namespaces need root");
        if (!File.Exists("/dev/net/tun")) Assert.Skip("/dev/net/tun is missing (modprobe tun)");
        foreach (var tool in new[] { "ip", "curl", "sysctl" })
            if (!KernelLab.OnPath(tool)) Assert.Fail($"{tool} is not on PATH: run scripts/install-deps.sh");
        using var work = new TempFolder();
        string corpus = Path.Combine(RepositoryFiles.Root, "fuzz", "corpus");
        var log = new StringWriter();
        // FP_LIVE_PREFIX keeps concurrent runs apart, as for the demo cluster's tests ("fpe" by default).
        var result = LiveDiff.Run(new LiveDiffOptions((Environment.GetEnvironmentVariable("FP_LIVE_PREFIX") ?? "fpe") + "d", 1000, work.Path,
            [Path.Combine(corpus, "pipeline"), Path.Combine(corpus, "trace")]), log);
        output.WriteLine(log.ToString());
        Assert.True(result.Differences.Count == 0, string.Join("\n", result.Differences));
        Assert.Equal(1000, result.Inputs);
        // Not vacuous: thousands of frames went through, partial checksums among them; besides the probes' answers
        // (one per frame) hundreds of frames were forwarded, and thousands dropped, the same way in both.
        Assert.True(result.Sent > 2000, result.ToString());
        Assert.True(result.Partial > 200, result.ToString());
        Assert.True(result.FramesOut > result.Sent + 300, result.ToString());
        Assert.True(result.Drops > 1000, result.ToString());
    }
}
