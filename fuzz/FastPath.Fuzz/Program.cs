using System.Buffers.Binary;
using FastPath.ControlPlane.Cluster;
using FastPath.DataPlane.Packets;
using FastPath.DataPlane.Pipeline;
using FastPath.DataPlane.Ports;
using SharpFuzz;

namespace FastPath.Fuzz;

/// <summary>
/// `FastPath.Fuzz TARGET` runs under afl-fuzz (SharpFuzz's out-of-process fork server), or under libFuzzer when
/// libfuzzer-dotnet started it (its shared-memory variable is set; see scripts/fuzz.sh --libfuzzer);
/// `FastPath.Fuzz seeds DIR CAPTURE...` writes a starting corpus per target from real captures and manifests;
/// `FastPath.Fuzz run TARGET FILE...` replays inputs once (to check a crash outside AFL);
/// `FastPath.Fuzz mutate TARGET RUNS OUT DIR...` mutates the corpus in DIR in process (see <see cref="Mutator"/>);
/// `FastPath.Fuzz live-diff PREFIX INPUTS WORK DIR...` runs the corpus in DIR and its mutations through `fastpath run`
/// on TAPs and through `fastpath replay` and compares them (see <see cref="LiveDiff"/>; root, namespaces PREFIXxxxx).
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
        if (args.Length >= 5 && args[0] == "mutate" && long.TryParse(args[2], out long runs))
            return Mutator.Run(args[1], runs, args[3], args[4..]);
        if (args.Length >= 5 && args[0] == "live-diff" && long.TryParse(args[2], out long inputs))
        {
            // live-diff PREFIX INPUTS WORK CORPUS-DIR...: see LiveDiff; FUZZ_SEED picks the mutations, as for mutate.
            int seed = int.TryParse(Environment.GetEnvironmentVariable("FUZZ_SEED"), out int s) ? s : 21;
            using var term = System.Runtime.InteropServices.PosixSignalRegistration.Create(System.Runtime.InteropServices.PosixSignal.SIGTERM, Stop);
            using var interrupt = System.Runtime.InteropServices.PosixSignalRegistration.Create(System.Runtime.InteropServices.PosixSignal.SIGINT, Stop);
            // FUZZ_OFFLOADS=off: `run --offloads off` (plain TAPs; the kernel finishes partial checksums before them).
            var result = LiveDiff.Run(new LiveDiffOptions(args[1], inputs, args[3], args[4..], seed)
                { Offloads = Environment.GetEnvironmentVariable("FUZZ_OFFLOADS") ?? "on" }, Console.Out);
            Console.WriteLine($"live-diff: {result}");
            foreach (var d in result.Differences) Console.WriteLine($"live-diff: DIFFERENCE {d}");
            return result.Differences.Count == 0 ? 0 : 1;

            static void Stop(System.Runtime.InteropServices.PosixSignalContext c)
            {
                c.Cancel = true;
                LiveDiff.Stop();
            }
        }
        if (args.Length != 1 || !FuzzTargets.Names.Contains(args[0]))
        {
            Console.Error.WriteLine($"usage: FastPath.Fuzz {string.Join("|", FuzzTargets.Names)} | seeds DIR CAPTURE... | run TARGET FILE...");
            return 2;
        }
        string target = args[0];
        if (Environment.GetEnvironmentVariable("__LIBFUZZER_SHM_ID") is not null)
        {
            // In-process loop behind libfuzzer-dotnet: one pipe round trip per input instead of AFL's per-input
            // bookkeeping; the rates of both are in docs/BENCHMARKS.md "Fuzzing".
            Fuzzer.LibFuzzer.Run(input => FuzzTargets.Run(target, input));
            return 0;
        }
        Fuzzer.OutOfProcess.Run(stream =>
        {
            using var memory = new MemoryStream();
            stream.CopyTo(memory);
            FuzzTargets.Run(target, memory.GetBuffer().AsSpan(0, (int)memory.Length));
        });
        return 0;
    }

    /// <summary>
    /// parser/: one frame per file; pipeline/ and trace/: a few frames of one capture per file; virtio/: TCP and UDP
    /// frames behind virtio-net headers (none, partial checksum, GSO) and as padded super-frames; watch/: the demo
    /// cluster's objects as watch streams per kind; manifest/: the demo cluster and the test manifests, whole and per document.
    /// </summary>
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
                if (pipeline.Length > 0)
                {
                    File.WriteAllBytes(Path.Combine(dir, "pipeline", $"{n++:D4}"), pipeline.ToArray());
                    File.WriteAllBytes(Path.Combine(dir, "trace", $"{n++:D4}"), pipeline.ToArray());
                }
                for (int i = 0; i < batch.Count; i++)
                    foreach (var input in VirtioSeeds(batch.Frame(i)))
                        File.WriteAllBytes(Path.Combine(dir, "virtio", $"{n++:D4}"), input);
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
        foreach (var input in WatchSeeds(root)) File.WriteAllBytes(Path.Combine(dir, "watch", $"{n++:D4}"), input);
        Console.WriteLine($"{n} seed files in {dir}");
        return 0;
    }

    /// <summary>The demo cluster's objects as one watch stream per object (kind selector first): ADDED, MODIFIED, a BOOKMARK, DELETED and a 410 ERROR, every event type the source handles.</summary>
    public static List<byte[]> WatchSeeds(string root)
    {
        var seeds = new List<byte[]>();
        var demo = ClusterDirectory.Load(Path.Combine(root, "pcaps", "demo", "cluster")).State;
        IEnumerable<IClusterObject>[] byKind = [demo.Namespaces, demo.Nodes, demo.Services, demo.Pods, demo.EndpointSlices, demo.NetworkPolicies];
        for (int k = 0; k < byKind.Length; k++)
            foreach (var o in byKind[k])
            {
                string json = k8s.KubernetesJson.Serialize(o.Value);
                string bookmark = $"{{\"kind\":\"{o.Key.Kind}\",\"metadata\":{{\"resourceVersion\":\"1234\"}}}}";
                const string gone = """{"kind":"Status","apiVersion":"v1","status":"Failure","message":"too old resource version","reason":"Expired","code":410}""";
                string events = string.Concat(
                    $"{{\"type\":\"ADDED\",\"object\":{json}}}\n", $"{{\"type\":\"MODIFIED\",\"object\":{json}}}\n",
                    $"{{\"type\":\"BOOKMARK\",\"object\":{bookmark}}}\n", $"{{\"type\":\"DELETED\",\"object\":{json}}}\n",
                    $"{{\"type\":\"ERROR\",\"object\":{gone}}}\n");
                seeds.Add([(byte)k, .. System.Text.Encoding.UTF8.GetBytes(events)]);
            }
        return seeds;
    }

    /// <summary>
    /// A TCP or UDP frame behind the headers a TAP with offloads gives: none, a partial transport checksum, and GSO
    /// (TCPv4/TCPv6/USO, gso_size 1400) over the frame with its payload padded to 3,000 bytes (a small super-frame).
    /// </summary>
    public static List<byte[]> VirtioSeeds(ReadOnlySpan<byte> frame)
    {
        var seeds = new List<byte[]>();
        var m = new PacketMeta { Length = frame.Length };
        if (PacketParser.Parse(frame, ref m) != DataPlane.Telemetry.DropReason.None || (m.Flags & PacketFlags.HasL4) == 0
            || m.IpProtocol is not (IpProtocol.Tcp or IpProtocol.Udp) || frame.Length > 2048) return seeds;
        bool tcp = m.IpProtocol == IpProtocol.Tcp;
        ushort offset = (ushort)(tcp ? 16 : 6);
        byte gso = (byte)(!tcp ? GsoKind.UdpL4 : m.L3 == L3Kind.Ipv4 ? GsoKind.TcpV4 : GsoKind.TcpV6);
        var plain = new byte[1 + VirtioNetHeader.TunnelLength + frame.Length];
        frame.CopyTo(plain.AsSpan(1 + VirtioNetHeader.TunnelLength));
        seeds.Add(plain);
        var partial = (byte[])plain.Clone();
        partial[1] = VirtioNetHeader.FlagNeedsChecksum;
        BinaryPrimitives.WriteUInt16LittleEndian(partial.AsSpan(1 + 6), m.L4Offset);
        BinaryPrimitives.WriteUInt16LittleEndian(partial.AsSpan(1 + 8), offset);
        seeds.Add(partial);

        int end = m.L3Offset + m.L3Length, grown = 3000 - (end - m.L4Offset);
        if (grown <= 0) return seeds;
        var super = new byte[partial.Length + grown];
        partial.AsSpan(0, 1 + VirtioNetHeader.TunnelLength + end).CopyTo(super);
        super[2] = gso;
        BinaryPrimitives.WriteUInt16LittleEndian(super.AsSpan(1 + 4), 1400);
        var f = super.AsSpan(1 + VirtioNetHeader.TunnelLength);
        for (int i = end; i < end + grown; i++) f[i] = (byte)i;
        if (m.L3 == L3Kind.Ipv4)
        {
            var ip = f[m.L3Offset..];
            BinaryPrimitives.WriteUInt16BigEndian(ip[2..], (ushort)(m.L3Length + grown));
            BinaryPrimitives.WriteUInt16BigEndian(ip[10..], 0);
            BinaryPrimitives.WriteUInt16BigEndian(ip[10..], Checksum.Ipv4Header(ip[..((ip[0] & 0x0F) * 4)]));
        }
        else BinaryPrimitives.WriteUInt16BigEndian(f[(m.L3Offset + 4)..], (ushort)(m.L3Length - 40 + grown));
        if (!tcp) BinaryPrimitives.WriteUInt16BigEndian(f[(m.L4Offset + 4)..], (ushort)(end + grown - m.L4Offset));
        seeds.Add(super);
        return seeds;
    }
}
