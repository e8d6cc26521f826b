using System.CommandLine;
using FastPath.DataPlane.Packets;
using FastPath.DataPlane.Pipeline;
using FastPath.DataPlane.Ports;
using FastPath.DataPlane.Telemetry;
using FastPath.Trace;

namespace FastPath.Commands;

/// <summary>
/// `fastpath trace --cluster PATH --node NAME [--from PORT] 'tcp 10.244.1.5:40000 > 10.96.0.10:53' [--json]`, or
/// `--capture FILE --packet N`: runs one packet through the engine's own <see cref="Engine.Process{TObserver}"/>
/// with a <see cref="TraceObserver"/> and prints each stage's decision. For a capture, packets 1..N-1 are replayed
/// first (untraced, exactly as `replay` would), so packet N meets the connections and learned MACs they left.
/// </summary>
public static class TraceCommand
{
    /// <summary>The source MAC of a described packet from a pod whose MAC is not configured (learned by the engine from this frame).</summary>
    private static readonly MacAddress LearnedPodMac = new(0x02_00_00_00_00_01UL);
    /// <summary>The source MAC of a described packet entering on the uplink or from the host (the engine does not check it).</summary>
    private static readonly MacAddress UnderlayPeerMac = new(0x02_00_00_00_00_feUL);

    public static Command Create(TextWriter stdout, TextWriter stderr)
    {
        var packet = new Argument<string?>("PACKET")
        {
            Description = "PROTO SRC[:PORT] > DST[:PORT] [ttl N] [size N] [df] [syn|ack|fin|rst|psh], e.g. 'tcp 10.244.1.5:40000 > 10.96.0.10:53'",
            Arity = ArgumentArity.ZeroOrOne,
        };
        var cluster = new ClusterInput.Options();
        var node = new Option<string>("--node") { Description = "The node whose data plane to run", Required = true };
        var from = new Option<string?>("--from") { Description = "Ingress port (default: the pod owning the source address, else uplink)" };
        var capture = new Option<string?>("--capture") { Description = "Trace a packet of this pcap/pcapng capture instead of a described one" };
        var index = new Option<long>("--packet") { Description = "1-based index of the packet of --capture to trace" };
        var json = new Option<bool>("--json") { Description = "Print the trace as JSON" };
        var cmd = new Command("trace", "Show every stage's decision for one packet") { packet, node, from, capture, index, json };
        cluster.AddTo(cmd);
        cmd.SetAction(r => Run(new TraceOptions(r.GetValue(packet), cluster.Get(r), r.GetValue(node)!, r.GetValue(from),
            r.GetValue(capture), r.GetValue(index), r.GetValue(json)), stdout, stderr));
        return cmd;
    }

    public sealed record TraceOptions(string? Packet, ClusterInput Cluster, string Node, string? From, string? Capture, long PacketIndex, bool Json);

    public static int Run(TraceOptions o, TextWriter stdout, TextWriter stderr)
    {
        if ((o.Packet is null) == (o.Capture is null))
            return Fail(stderr, "give either a packet description or --capture FILE --packet N");
        if (o.Capture is not null && o.PacketIndex < 1) return Fail(stderr, "--capture needs --packet N (1-based)");
        PacketSpec? spec = null;
        if (o.Packet is not null && !PacketSpec.TryParse(o.Packet, out spec, out var problem)) return Fail(stderr, problem);
        if (NodeSnapshot.Load(o.Cluster, o.Node, "trace", stderr, out _) is not { } snapshot) return Program.ExitBadInput;
        short from = PortIndex.Auto;
        if (o.From is not null && (from = (short)snapshot.FindPort(o.From)) < 0)
            return Fail(stderr, $"--from {o.From}: no port named \"{o.From}\" on node {o.Node} (ports: {string.Join(", ", snapshot.Ports.Select(p => p.Name))})");

        var engine = new Engine(new SnapshotHolder(snapshot), conntrackSeed: ReplayCommand.ConntrackSeed);
        var batch = new PacketBatch(1);
        string description;
        if (spec is not null)
        {
            var frame = BuildFrame(spec, snapshot, from);
            frame.CopyTo(batch.ReceiveArea(0));
            batch.SetReceived(0, frame.Length, DateTimeOffset.UtcNow.ToUnixTimeMilliseconds() * 1_000_000, 1, from);
            batch.Count = 1;
            description = o.Packet!;
        }
        else
        {
            var failure = ReplayUpTo(o, snapshot, engine, batch, from, stderr);
            if (failure != 0) return failure;
            description = $"packet {o.PacketIndex} of {o.Capture}";
        }

        var input = batch.Frame(0).ToArray();
        var trace = new PacketTrace();
        var observer = new TraceObserver(trace);
        engine.Process(batch, ref observer);
        var report = new TraceReport(o.Node, description, snapshot, trace, input, batch.Frame(0).ToArray(), engine.Neighbors);
        if (o.Json)
        {
            using var buffer = new MemoryStream();
            report.WriteJson(buffer);
            stdout.WriteLine(System.Text.Encoding.UTF8.GetString(buffer.ToArray()));
        }
        else report.WriteText(stdout);
        return 0;
    }

    /// <summary>
    /// Pod ingress: the pod's MAC (or one the engine will learn) to the gateway MAC; uplink or host: a peer's MAC
    /// to the node's. The ingress itself stays <see cref="PortIndex.Auto"/> unless --from names it, so the engine
    /// resolves it as it would for a captured packet.
    /// </summary>
    private static byte[] BuildFrame(PacketSpec spec, ForwardingSnapshot snapshot, short from)
    {
        int port = from;
        if (port == PortIndex.Auto)
        {
            int owner = snapshot.LocalAddresses.Lookup(spec.Source);
            port = owner >= PortIndex.FirstPod ? owner : PortIndex.Uplink;
        }
        if (port >= PortIndex.FirstPod)
        {
            var mac = snapshot.Ports[port].Mac;
            return spec.BuildFrame(snapshot.Node.GatewayMac, mac == MacAddress.Zero ? LearnedPodMac : mac);
        }
        return spec.BuildFrame(snapshot.Node.UplinkMac, UnderlayPeerMac);
    }

    /// <summary>Replays packets 1..N-1 of the capture untraced and leaves packet N received in <paramref name="batch"/>.</summary>
    private static int ReplayUpTo(TraceOptions o, ForwardingSnapshot snapshot, Engine engine, PacketBatch batch, short from, TextWriter stderr)
    {
        string arg = o.Capture!;
        if (!ReplayCommand.TryParseCapture(arg, snapshot, out var input, out var problem)) return Fail(stderr, problem);
        if (from != PortIndex.Auto) input = input with { Port = from };
        try
        {
            CaptureReader.Validate(input.Path);
            using var source = new CaptureSource([input], name => (short)snapshot.FindPort(name));
            while (source.Receive(batch) > 0)
            {
                if (source.Delivered == o.PacketIndex) return 0;
                engine.Process(batch);
            }
            return Fail(stderr, $"{input.Path}: has {source.Delivered} packet(s), no packet {o.PacketIndex}");
        }
        catch (CaptureFormatException e) { return Fail(stderr, e.Message); }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return Fail(stderr, $"{input.Path}: cannot read capture: {e.Message}");
        }
    }

    private static int Fail(TextWriter stderr, string message)
    {
        stderr.WriteLine($"fastpath trace: {message}");
        return Program.ExitBadInput;
    }
}
