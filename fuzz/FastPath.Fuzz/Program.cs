using FastPath.DataPlane.Pipeline;
using FastPath.DataPlane.Ports;
using SharpFuzz;

namespace FastPath.Fuzz;

/// <summary>
/// `FastPath.Fuzz TARGET` runs under afl-fuzz (SharpFuzz's out-of-process fork server; see scripts/fuzz.sh);
/// `FastPath.Fuzz seeds DIR CAPTURE...` writes a starting corpus per target from real captures and manifests;
/// `FastPath.Fuzz run TARGET FILE...` replays inputs once (to check a crash outside AFL).
/// </summary>
public static class Program
{
    public static int Main(string[] args)
    {
        if (args.Length >= 2 && args[0] == "seeds") return Seeds(args[1], args[2..]);
        if (args.Length >= 3 && args[0] == "run")
        {
            foreach (var file in args[2..]) FuzzTargets.Run(args[1], File.ReadAllBytes(file));
            return 0;
        }
        if (args.Length != 1 || !FuzzTargets.Names.Contains(args[0]))
        {
            Console.Error.WriteLine($"usage: FastPath.Fuzz {string.Join("|", FuzzTargets.Names)} | seeds DIR CAPTURE... | run TARGET FILE...");
            return 2;
        }
        string target = args[0];
        Fuzzer.OutOfProcess.Run(stream =>
        {
            using var memory = new MemoryStream();
            stream.CopyTo(memory);
            FuzzTargets.Run(target, memory.GetBuffer().AsSpan(0, (int)memory.Length));
        });
        return 0;
    }

    /// <summary>parser/: one frame per file; pipeline/: a few frames of one capture per file; manifest/: the demo cluster and the test manifests, whole and per document.</summary>
    private static int Seeds(string dir, string[] captures)
    {
        foreach (var t in FuzzTargets.Names) Directory.CreateDirectory(Path.Combine(dir, t));
        int n = 0;
        var batch = new PacketBatch(8);
        foreach (var capture in captures)
        {
            using var source = new CaptureSource([new CaptureInput(capture)]);
            int perCapture = 0;
            while (source.Receive(batch) > 0 && perCapture < 16)
            {
                using var pipeline = new MemoryStream();
                for (int i = 0; i < batch.Count; i++)
                {
                    var frame = batch.Frame(i);
                    if (frame.Length > 2048) continue; // AFL prefers small inputs
                    File.WriteAllBytes(Path.Combine(dir, "parser", $"{n++:D4}"), frame.ToArray());
                    pipeline.WriteByte((byte)i);
                    pipeline.WriteByte((byte)(frame.Length >> 8));
                    pipeline.WriteByte((byte)frame.Length);
                    pipeline.Write(frame);
                }
                if (pipeline.Length > 0) File.WriteAllBytes(Path.Combine(dir, "pipeline", $"{n++:D4}"), pipeline.ToArray());
                perCapture++;
            }
        }
        string root = FuzzTargets.RepositoryRoot();
        var manifests = Directory.EnumerateFiles(Path.Combine(root, "pcaps", "demo", "cluster"), "*.yaml")
            .Concat(Directory.EnumerateFiles(Path.Combine(root, "tests", "FastPath.Tests", "ControlPlane", "Data"), "*.yaml", SearchOption.AllDirectories));
        // Small inputs fuzz faster: besides whole files, every document of a multi-document file on its own.
        foreach (var m in manifests.Where(f => new FileInfo(f).Length < 8192))
        {
            File.Copy(m, Path.Combine(dir, "manifest", $"{n++:D4}.yaml"));
            foreach (var doc in File.ReadAllText(m).Split("\n---"))
                File.WriteAllText(Path.Combine(dir, "manifest", $"{n++:D4}.yaml"), doc.TrimStart('-', '\n'));
        }
        Console.WriteLine($"{n} seed files in {dir}");
        return 0;
    }
}
