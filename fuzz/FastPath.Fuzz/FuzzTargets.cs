using FastPath.ControlPlane.Cluster;
using FastPath.ControlPlane.Compile;
using FastPath.DataPlane.Packets;
using FastPath.DataPlane.Pipeline;
using FastPath.DataPlane.Routing;
using FastPath.DataPlane.Telemetry;

namespace FastPath.Fuzz;

/// <summary>
/// What the fuzzer drives, one method per target. Each returns normally for every input; anything thrown is a finding
/// (the data plane must never throw on bytes, the manifest loader must turn every bad document into an error line).
/// The regression tests run every kept crash input through the same methods.
/// </summary>
public static partial class FuzzTargets
{
    public static readonly string[] Names = ["parser", "pipeline", "manifest", "virtio", "watch", "trace"];

    public static void Run(string target, ReadOnlySpan<byte> input)
    {
        switch (target)
        {
            case "parser": Parser(input); break;
            case "pipeline": Pipeline(input); break;
            case "manifest": Manifest(input); break;
            case "virtio": Virtio(input); break;
            case "watch": Watch(input); break;
            case "trace": TraceDifferential(input); break;
            default: throw new ArgumentException($"unknown target {target} (targets: {string.Join(", ", Names)})");
        }
    }

    /// <summary>The packet parser on one frame: it must return a verdict and keep its offsets inside the frame.</summary>
    public static void Parser(ReadOnlySpan<byte> frame)
    {
        var m = new PacketMeta { Length = frame.Length };
        if (PacketParser.Parse(frame, ref m) != DropReason.None) return;
        if (m.L3 != L3Kind.None && m.L3Offset >= frame.Length) throw new InvalidOperationException($"L3 offset {m.L3Offset} outside a {frame.Length}-byte frame");
        if ((m.Flags & PacketFlags.HasL4) != 0 && m.L4Offset >= frame.Length) throw new InvalidOperationException($"L4 offset {m.L4Offset} outside a {frame.Length}-byte frame");
    }

    private static Engine? _engine;
    private static PacketBatch? _batch;

    /// <summary>
    /// The whole pipeline from raw frames: the input is a sequence of frames, each a 1-byte ingress selector and a
    /// 2-byte big-endian length before its bytes, run as one batch through a node with Services, masquerade and VXLAN.
    /// Every frame must end with a drop reason or an egress port that exists, and an emitted frame inside its slot.
    /// </summary>
    public static void Pipeline(ReadOnlySpan<byte> input)
    {
        _engine ??= new Engine(new SnapshotHolder(DemoSnapshot()), conntrackSeed: 1);
        _batch ??= new PacketBatch(32);
        var batch = _batch;
        int count = 0;
        while (input.Length >= 3 && count < batch.Capacity)
        {
            int length = Math.Min(input[1] << 8 | input[2], Math.Min(input.Length - 3, PacketBatch.MaxFrameLength));
            input[3..(3 + length)].CopyTo(batch.ReceiveArea(count));
            short port = (short)((input[0] % (_engine.Snapshot.PortCount + 2)) - 2); // Auto, None and every port
            batch.SetReceived(count, length, count * 1_000_000L, count + 1, port == PortIndex.None ? PortIndex.Auto : port);
            input = input[(3 + length)..];
            count++;
        }
        batch.Count = count;
        _engine.Process(batch);
        for (int i = 0; i < count; i++)
        {
            var m = batch.Meta[i];
            if (m.Drop == DropReason.None && m.EgressPort < 0) throw new InvalidOperationException($"frame {i}: neither forwarded nor dropped");
            if (m.EgressPort >= _engine.Snapshot.PortCount) throw new InvalidOperationException($"frame {i}: egress port {m.EgressPort} does not exist");
            int slot = batch.SlotStart(i);
            if (m.EgressPort >= 0 && (m.Offset < slot || m.Offset + m.Length > slot + PacketBatch.SlotSize))
                throw new InvalidOperationException($"frame {i}: emitted bytes outside its slot");
        }
    }

    private static RouteTable.Builder? _routes;
    private static int _compiles;

    /// <summary>
    /// The manifest loader and compiler on one YAML/JSON file, read from memory (no file, no process per input):
    /// errors are fine, exceptions are not. Every valid cluster is compiled for its first node with a route builder
    /// kept across inputs, the incremental path <c>run</c> takes on every change: only the prefixes that differ from
    /// the previous input's are rewritten, where a fresh builder would fill (and the kernel zero) a 64 MiB tbl24 per
    /// compile, which held this target to ~80 inputs/s (nor are the published tables flattened, another 64 MiB copy
    /// each, as <c>run</c> does off the change path). The builder is renewed every <see cref="RoutesRenewal"/>
    /// compiles so its next-hop list (append-only for its lifetime, by design) stays small, and a fresh builder's
    /// first compile is fuzzed too.
    /// </summary>
    public static void Manifest(ReadOnlySpan<byte> input)
    {
        // Decoded as File.ReadAllText decodes a manifest file: UTF-8 unless a byte-order mark says otherwise.
        using var reader = new StreamReader(new MemoryStream(input.ToArray()), System.Text.Encoding.UTF8, detectEncodingFromByteOrderMarks: true);
        var load = ClusterDirectory.LoadText("cluster.yaml", reader.ReadToEnd());
        if (!load.IsValid || load.State.Nodes.Length == 0) return;
        if (_routes is null || ++_compiles % RoutesRenewal == 0)
            _routes = new RouteTable.Builder(flatten: false); // nothing looks these tables up; see LpmTable4.Builder.FlattenPublished
        // One node is enough to run every compiler (routes cover all nodes).
        SnapshotCompiler.Compile(load.State, load.State.Nodes[0].Name, 1, _routes);
    }

    private const int RoutesRenewal = 4096;

    private static ForwardingSnapshot DemoSnapshot()
    {
        var load = ClusterDirectory.Load(Path.Combine(RepositoryRoot(), "pcaps", "demo", "cluster"));
        return SnapshotCompiler.Compile(load.State, "node-a", 1).Snapshot ?? throw new InvalidOperationException("the demo cluster does not compile");
    }

    /// <summary>The repository root (found from FASTPATH_ROOT or above the binary), for the demo cluster.</summary>
    public static string RepositoryRoot()
    {
        if (Environment.GetEnvironmentVariable("FASTPATH_ROOT") is { Length: > 0 } root) return root;
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
            if (File.Exists(Path.Combine(dir.FullName, "FastPath.sln"))) return dir.FullName;
        throw new InvalidOperationException("set FASTPATH_ROOT to the repository");
    }
}
