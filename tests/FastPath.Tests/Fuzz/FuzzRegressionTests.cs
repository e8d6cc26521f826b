using FastPath.Fuzz;
using FastPath.Tests.Support;

namespace FastPath.Tests.Fuzz;

/// <summary>
/// Every input the fuzzer (scripts/fuzz.sh) ever crashed on, kept under Fuzz/regressions/&lt;target&gt;/ and replayed
/// through the same target on every test run, plus the fuzz targets on their own seed corpus (the real captures of
/// pcaps/external) so the harness itself stays working.
/// </summary>
public class FuzzRegressionTests
{
    private static string Regressions => Path.Combine(RepositoryFiles.Root, "tests", "FastPath.Tests", "Fuzz", "regressions");

    public static TheoryData<string, string> KeptInputs()
    {
        var data = new TheoryData<string, string>();
        foreach (var target in FuzzTargets.Names)
        {
            string dir = Path.Combine(Regressions, target);
            if (!Directory.Exists(dir)) continue;
            foreach (var file in Directory.EnumerateFiles(dir).Order()) data.Add(target, Path.GetFileName(file));
        }
        if (data.Count == 0) data.Add("parser", ""); // nothing found yet: the empty input
        return data;
    }

    [Theory]
    [MemberData(nameof(KeptInputs))]
    public void KeptCrashInputNoLongerCrashes(string target, string file)
    {
        byte[] input = file.Length == 0 ? [] : File.ReadAllBytes(Path.Combine(Regressions, target, file));
        FuzzTargets.Run(target, input);
    }

    public static TheoryData<string> Targets() => new(FuzzTargets.Names);

    /// <summary>The committed corpus (fuzz/corpus/&lt;target&gt;, minimized by coverage) still runs clean: each input
    /// reaches code no other one does, so this is the fuzzers' coverage replayed on every test run.</summary>
    [Theory]
    [MemberData(nameof(Targets))]
    public void CorpusInputsRunClean(string target)
    {
        var files = Directory.GetFiles(Path.Combine(RepositoryFiles.Root, "fuzz", "corpus", target)).Order().ToList();
        Assert.NotEmpty(files);
        foreach (var file in files) FuzzTargets.Run(target, File.ReadAllBytes(file));
    }

    /// <summary>The manifest crashes AFL found (YamlDotNet's scanner throwing InvalidOperationException) are now reported as YAML syntax errors naming the file.</summary>
    [Fact]
    public void ManifestCrashesAreReportedAsSyntaxErrors()
    {
        var files = Directory.EnumerateFiles(Path.Combine(Regressions, "manifest")).ToList();
        Assert.NotEmpty(files);
        foreach (var file in files)
        {
            var load = FastPath.ControlPlane.Cluster.ClusterDirectory.Load(file);
            Assert.False(load.IsValid);
            Assert.Contains(load.Errors, e => e.ToString().StartsWith(file) && e.ToString().Contains("YAML"));
        }
    }

    [Fact]
    public void TargetsAcceptTheirSeedCorpus()
    {
        var batch = new FastPath.DataPlane.Pipeline.PacketBatch(8);
        int frames = 0;
        foreach (var capture in Directory.EnumerateFiles(Path.Combine(RepositoryFiles.Root, "pcaps", "external"), "*.pcap*"))
        {
            using var source = new FastPath.DataPlane.Ports.CaptureSource([new FastPath.DataPlane.Ports.CaptureInput(capture)]);
            while (source.Receive(batch) > 0)
                for (int i = 0; i < batch.Count; i++, frames++)
                {
                    var frame = batch.Frame(i).ToArray();
                    FuzzTargets.Parser(frame);
                    FuzzTargets.Pipeline([(byte)i, (byte)(frame.Length >> 8), (byte)frame.Length, .. frame]);
                }
        }
        Assert.True(frames > 50, $"{frames} frames");
        FuzzTargets.Manifest(File.ReadAllBytes(Path.Combine(RepositoryFiles.Root, "pcaps", "demo", "cluster", "cluster.yaml")));
        FuzzTargets.Manifest("apiVersion: v1\nkind: Pod\nmetadata: {name: ["u8);
    }

    /// <summary>
    /// The issue-21 targets on their seeds: the demo capture's TCP/UDP frames behind virtio-net headers (none, partial
    /// checksum, GSO super-frames, which software GSO then cuts and checks), the demo capture through the differential
    /// trace target, and the demo cluster as watch streams of every kind and event type; plus a few hand-made edge
    /// inputs (a truncated stream, a line that is not JSON, an object of the wrong kind).
    /// </summary>
    [Fact]
    public void NewTargetsAcceptTheirSeeds()
    {
        var batch = new FastPath.DataPlane.Pipeline.PacketBatch(8);
        int virtio = 0, super = 0;
        using (var source = new FastPath.DataPlane.Ports.CaptureSource([new FastPath.DataPlane.Ports.CaptureInput(
            Path.Combine(RepositoryFiles.Root, "pcaps", "demo", "demo.pcapng"))]))
            while (source.Receive(batch) > 0)
                for (int i = 0; i < batch.Count; i++)
                {
                    var frame = batch.Frame(i).ToArray();
                    foreach (var input in FastPath.Fuzz.Program.VirtioSeeds(frame))
                    {
                        FuzzTargets.Run("virtio", input);
                        virtio++;
                        if (input.Length > 3000) super++;
                    }
                    FuzzTargets.Run("trace", [(byte)i, (byte)(frame.Length >> 8), (byte)frame.Length, .. frame]);
                }
        Assert.True(super > 5 && virtio >= 3 * super, $"{virtio} virtio inputs, {super} super-frames");
        var streams = FastPath.Fuzz.Program.WatchSeeds(RepositoryFiles.Root);
        Assert.Equal(FuzzTargets.WatchKinds.Length - 1, streams.Select(s => s[0]).Distinct().Count()); // the demo has no NetworkPolicy
        foreach (var stream in streams) FuzzTargets.Run("watch", stream);
        FuzzTargets.Run("watch", [3, .. "{\"type\":\"ADDED\",\"object\":{\"kind\":\"Pod\",\"metadata\":{\"name\":"u8]);
        FuzzTargets.Run("watch", [2, .. "not json\n{\"type\":\"MODIFIED\",\"object\":{\"kind\":\"Node\",\"metadata\":{\"name\":\"x\"}}}\n"u8]);
        FuzzTargets.Run("watch", [5, .. "{\"type\":\"ADDED\",\"object\":{\"metadata\":{\"name\":\"p\",\"namespace\":\"shop\"},\"spec\":{\"podSelector\":{},\"ingress\":[{\"from\":[{\"ipBlock\":{\"cidr\":\"10.0.0.0/99\"}}]}]}}}\n"u8]);
    }
}
