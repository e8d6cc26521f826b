using System.Buffers.Binary;
using System.Diagnostics;
using System.Text;
using System.Text.Json;
using FastPath.ControlPlane.Cluster;
using FastPath.ControlPlane.Compile;
using FastPath.DataPlane.Pipeline;
using FastPath.DataPlane.Ports;
using FastPath.Replay;

namespace FastPath.Fuzz;

/// <summary>What <see cref="LiveDiff.Run"/> runs: how many fuzz inputs (corpus first, then mutations), from where,
/// with which mutation seed, and the namespace prefix of this run.</summary>
public sealed record LiveDiffOptions(string Prefix, long Inputs, string Work, IReadOnlyList<string> CorpusDirs, int Seed = 21)
{
    /// <summary>Frames per round: each round is a fresh `fastpath run` and one replay of the same frames.</summary>
    public int FramesPerRound { get; init; } = 20_000;
    /// <summary>The cluster the pipeline/trace corpus was made for (the demo cluster), run as node-a.</summary>
    public string Cluster { get; init; } = Path.Combine(FuzzTargets.RepositoryRoot(), "pcaps", "demo", "cluster");
    public string Node { get; init; } = "node-a";
    /// <summary>`run --offloads`: on (virtio-net headers on the TAPs, the default) or off.</summary>
    public string Offloads { get; init; } = "on";
}

/// <summary>What a run found: counts, and one line per difference (an empty list: live and replay agreed).</summary>
public sealed class LiveDiffResult
{
    public long Inputs { get; set; }
    public long Frames { get; set; }
    /// <summary>Frames shorter than an Ethernet header: no link can carry them (AF_PACKET refuses them), so they
    /// enter neither run.</summary>
    public long Undeliverable { get; set; }
    /// <summary>Frames sent into the TAPs (and replayed), besides the probes.</summary>
    public long Sent { get; set; }
    /// <summary>Frames whose live time `run`'s flow log told (replayed at that time; the others at their send time).</summary>
    public long Clocked { get; set; }
    /// <summary>Frames that entered live with a partial checksum (and replay with it complete).</summary>
    public long Partial { get; set; }
    public long FramesOut { get; set; }
    public long Drops { get; set; }
    public int Rounds { get; set; }
    public int DifferingRounds { get; set; }
    public List<string> Differences { get; } = [];
    public override string ToString() =>
        $"{Inputs} inputs, {Frames} frames, {Sent} sent in {Rounds} rounds ({Undeliverable} shorter than an Ethernet header, not sent; {Partial} with a partial checksum live; {Clocked} replayed on run's clock), "
        + $"{FramesOut} frames out, {Drops} drops, {Differences.Count} differences";
}

/// <summary>
/// Differential, replay vs live: the same frames (the pipeline/trace corpus in <c>fuzz/corpus</c> as it is, then
/// <see cref="Mutator"/> mutations of it; each frame with its ingress port) go through `fastpath run --tap` — into its
/// TAPs from the namespace side, through the real <see cref="TapPort"/> (virtio-net header, checksum admission,
/// batching, transmit) — and through `fastpath replay` (one pcapng, an interface per port, as the replay contract
/// says), and what each emitted on every port (bytes, in order) and dropped (per port and reason: `run`'s metrics,
/// replay's summary.json) must be the same.
/// <para>
/// Order and time are made the same: after each frame a probe follows on the same port (an ARP request the engine
/// answers or passes on, with a marker of its own), and the next frame is sent only when the probe's answer came out
/// — so every frame is forwarded alone, in input order, and everything it caused was emitted. The probes are part of
/// the replayed input too. Replay runs with --batch 1, as live forwards here.
/// </para>
/// <para>
/// Time: the capture time is replay's clock, the wall clock at the read `run`'s. A frame is replayed at the time `run`
/// stamped it with where `run`'s flow log tells it (every drop, every connection's first and last packet: see
/// <see cref="LiveClock"/>), else at its send time (at most the send-to-answer window earlier; only a conntrack timeout
/// ending inside that window, 3 s at the shortest, could tell them apart). Without this the ICMP error rate limiter
/// (a token per second per destination) decided differently on a token that came back between the send and the read
/// (seen: one error live, not in replay, and one the other way round later).
/// </para>
/// <para>
/// What only live has, handled explicitly: the kernel's own frames on the TAP netdevs (none: IPv6 off before the TAPs
/// exist, no addresses, ARP off); frames shorter than an Ethernet header (no link carries them: AF_PACKET refuses them,
/// so they enter neither run, counted); the virtio-net header (frames enter with an all-zero one, and every other
/// TCP/UDP frame with a correct checksum that ends with its IP packet with the checksum partial, as a local stack
/// hands it over, while replay gets the complete frame; a frame that leaves with its checksum partial is compared
/// completed, as the receiver sees it); the VLAN tag the kernel's receive path takes out of a frame (put back by
/// <see cref="PacketTap.Receive"/>). ARP/ND resolution by `run` does not occur: the demo cluster names its uplink
/// gateway's MAC.
/// </para>
/// </summary>
public static class LiveDiff
{
    private const int ProbeNet = (198 << 24) | (18 << 16); // 198.18.0.0/15 (RFC 2544): answered by the engine's proxy ARP, never routed
    private static volatile bool _stopping;

    /// <summary>Ends the run early (SIGTERM/SIGINT, the time limit of scripts/fuzz.sh): the round under way stops
    /// sending, is compared on what it sent, and its namespace and `run` are removed.</summary>
    public static void Stop() => _stopping = true;

    public static LiveDiffResult Run(LiveDiffOptions o, TextWriter log)
    {
        var result = new LiveDiffResult();
        var load = ClusterDirectory.Load(o.Cluster);
        var snapshot = SnapshotCompiler.Compile(load.State, o.Node, 1).Snapshot ?? throw new InvalidOperationException($"{o.Cluster}: does not compile for {o.Node}");
        var corpus = o.CorpusDirs.Where(Directory.Exists).SelectMany(d => Directory.EnumerateFiles(d).Order()).Select(File.ReadAllBytes).ToList();
        if (corpus.Count == 0) throw new InvalidOperationException($"no corpus in {string.Join(", ", o.CorpusDirs)}");
        Directory.CreateDirectory(o.Work);
        var rng = new Random(o.Seed);
        var buffer = new byte[70_000];
        long next = 0;
        // One fuzz input's frames, in order: (port, bytes).
        IEnumerable<(int Port, byte[] Frame)> Frames(ReadOnlySpan<byte> input)
        {
            var frames = new List<(int, byte[])>();
            for (int count = 0; input.Length >= 3 && count < 32; count++)
            {
                int length = Math.Min(input[1] << 8 | input[2], Math.Min(input.Length - 3, PacketBatch.MaxFrameLength));
                frames.Add((input[0] % snapshot.PortCount, input[3..(3 + length)].ToArray()));
                input = input[(3 + length)..];
            }
            return frames;
        }
        while (next < o.Inputs && !_stopping)
        {
            var round = new List<(int Port, byte[] Frame)>();
            while (next < o.Inputs && round.Count < o.FramesPerRound)
            {
                int length;
                if (next < corpus.Count)
                {
                    length = corpus[(int)next].Length;
                    corpus[(int)next].CopyTo(buffer, 0);
                }
                else length = Mutator.Mutate(corpus[rng.Next(corpus.Count)], buffer, corpus[rng.Next(corpus.Count)], rng);
                next++;
                foreach (var f in Frames(buffer.AsSpan(0, length)))
                {
                    result.Frames++;
                    if (f.Frame.Length < 14) result.Undeliverable++;
                    else round.Add(f);
                }
            }
            result.Inputs = next;
            RunRound(o, snapshot, round, result, log);
            result.Rounds++;
            log.WriteLine($"live-diff: round {result.Rounds}: {round.Count} frames; so far {result}");
            // Rounds are independent (a fresh `run`, a fresh replay): go on to find more, up to 10 differing rounds.
            if (result.DifferingRounds >= 10 || result.Differences.Count >= 50) break;
        }
        return result;
    }

    private static void RunRound(LiveDiffOptions o, ForwardingSnapshot snapshot, List<(int Port, byte[] Frame)> frames, LiveDiffResult result, TextWriter log)
    {
        string ns = $"{o.Prefix}{Random.Shared.Next(0x1000, 0xFFFF):x4}";
        string dir = Path.Combine(o.Work, "round");
        if (Directory.Exists(dir)) Directory.Delete(dir, recursive: true);
        Directory.CreateDirectory(dir);
        string[] devices = new string[snapshot.PortCount];
        for (int p = 0; p < devices.Length; p++)
            devices[p] = snapshot.Ports[p].Kind switch { PortKind.Uplink => "ld-uplink", PortKind.Host => "ld-host", _ => LinkDevice.PortInterfaceName(snapshot.Ports[p].Name) };
        Process? run = null;
        PacketTap[] taps = [];
        int metricsPort = 19_000 + Random.Shared.Next(1000);
        try
        {
            Ip("netns", "add", ns);
            Ip("-n", ns, "link", "set", "lo", "up");
            Ip("netns", "exec", ns, "sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=1", "net.ipv6.conf.default.disable_ipv6=1");
            string fastpath = Path.Combine(AppContext.BaseDirectory, "fastpath.dll");
            var psi = new ProcessStartInfo("ip") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
            foreach (var a in new[] { "netns", "exec", ns, "dotnet", fastpath, "run", "--cluster", o.Cluster, "--node", o.Node, "--tap",
                         "--uplink-tap", devices[PortIndex.Uplink], "--host-tap", devices[PortIndex.Host], "--status-interval", "0",
                         "--healthz", "off", "--offloads", o.Offloads, "--metrics", $"127.0.0.1:{metricsPort}", "--flow-log", Path.Combine(dir, "flows.jsonl") })
                psi.ArgumentList.Add(a);
            run = Process.Start(psi)!;
            var runLog = new StringBuilder();
            run.OutputDataReceived += (_, e) => { lock (runLog) runLog.AppendLine(e.Data); };
            run.ErrorDataReceived += (_, e) => { lock (runLog) runLog.AppendLine(e.Data); };
            run.BeginOutputReadLine();
            run.BeginErrorReadLine();
            var deadline = DateTime.UtcNow.AddSeconds(90);
            while (!Logged(runLog, "forwarding: "))
            {
                if (run.HasExited || DateTime.UtcNow > deadline) throw new InvalidOperationException($"fastpath run did not start forwarding:\n{runLog}");
                Thread.Sleep(100);
            }
            // Up, as the pods' side of a TAP is; frames up to MaxFrameLength must get through the netdev (its MTU
            // bounds what a packet socket may send); NOARP: the kernel neither asks nor answers on it.
            foreach (var d in devices) Ip("-n", ns, "link", "set", d, "mtu", "65000", "arp", "off", "up");
            taps = PacketTap.OpenIn(ns, devices);

            var live = devices.Select(_ => new List<byte[]>()).ToArray();
            var inputs = new List<(int Port, byte[] Frame, int Window)>(frames.Count * 2);
            // Per frame sent: from just before its send to just after its probe's answer. `run` stamped it (its batch's
            // wall clock) inside this window, and the windows do not overlap.
            var windows = new List<(long From, long To)>(frames.Count);
            var receive = new byte[70_000];
            for (int k = 0; k < frames.Count && !_stopping; k++)
            {
                var (port, frame) = frames[k];
                var probe = Probe(snapshot, port, k, out int answerPort);
                long time = TapPort.WallClock();
                // Every other TCP/UDP frame with a correct checksum enters live as a local stack hands it to a TAP:
                // its checksum partial (the pseudo-header sum in the field, NEEDS_CSUM in the header), which `run`
                // must treat as the complete frame replay gets.
                var partial = k % 2 == 0 ? Partial(frame) : null;
                if (partial is not null) result.Partial++;
                if (!taps[port].Send(partial?.Frame ?? frame, out int errno, partial?.Start ?? 0, partial?.Offset ?? 0))
                {
                    result.Differences.Add($"frame {k} ({frame.Length} bytes) on {snapshot.Ports[port].Name}: the kernel refused to send it (errno {errno}): {Convert.ToHexString(frame)}");
                    return;
                }
                int window = windows.Count;
                inputs.Add((port, frame, window));
                result.Sent++;
                taps[port].Send(probe, out _);
                inputs.Add((port, probe, window));
                bool answered = false;
                var waitUntil = Stopwatch.GetTimestamp() + 10 * Stopwatch.Frequency;
                while (!answered)
                {
                    if (!PacketTap.WaitAny(taps, 1000) && (run.HasExited || Stopwatch.GetTimestamp() > waitUntil))
                    {
                        result.Differences.Add($"frame {k} on {snapshot.Ports[port].Name}: no answer to the probe after it within 10 s (run {(run.HasExited ? $"exited {run.ExitCode}" : "alive")}): {Convert.ToHexString(frame)}\n{runLog}");
                        return;
                    }
                    for (int p = 0; p < taps.Length; p++)
                        while (taps[p].Receive(receive, out byte gso) is { } got)
                        {
                            if (gso != 0) result.Differences.Add($"frame {k}: a GSO super-frame (type {gso}) came out on {snapshot.Ports[p].Name} for inputs without any");
                            live[p].Add(got);
                            if (p == answerPort && IsAnswer(got, probe, port == PortIndex.Uplink)) answered = true;
                        }
                }
                windows.Add((time, TapPort.WallClock()));
            }
            var (liveDrops, flowRecordsLost) = Metrics(ns, metricsPort);
            Stop(run);
            if (run.ExitCode != 0 || runLog.ToString().Contains("Exception", StringComparison.Ordinal))
                result.Differences.Add($"fastpath run exited {run.ExitCode}:\n{runLog}");
            if (flowRecordsLost > 0) result.Differences.Add($"run's flow log lost {flowRecordsLost} records: the live clock of some frames is unknown");
            var clock = LiveClock(Path.Combine(dir, "flows.jsonl"), windows);
            result.Clocked += clock.Count(t => t != 0);

            string capture = Path.Combine(dir, "input.pcapng");
            using (var writer = new PcapngWriter(capture))
            {
                for (int p = 0; p < snapshot.PortCount; p++) writer.AddInterface(snapshot.Ports[p].Name);
                foreach (var (port, frame, window) in inputs) writer.Write(port, frame, clock[window] != 0 ? clock[window] : windows[window].From);
            }
            string outDir = Path.Combine(dir, "replay");
            var replayOutput = new StringWriter();
            int exit = global::FastPath.Program.Run(["replay", capture, "--cluster", o.Cluster, "--node", o.Node, "--out", outDir, "--batch", "1", "--quiet"], replayOutput, replayOutput);
            if (exit != 0)
            {
                result.Differences.Add($"fastpath replay exited {exit}: {replayOutput}");
                return;
            }
            int before = result.Differences.Count;
            Compare(snapshot, live, outDir, liveDrops, result);
            if (result.Differences.Count > before)
            {
                // Keep the round's input and both outputs for a look (and a regression test).
                string kept = Path.Combine(o.Work, $"difference-{DateTime.UtcNow:HHmmss}-{result.Rounds + 1}");
                Directory.Move(dir, kept);
                for (int p = 0; p < live.Length; p++)
                    if (live[p].Count > 0)
                        using (var w = new PcapngWriter(Path.Combine(kept, "live-" + ReplayOutput.FileName(snapshot.Ports[p].Name) + "ng")))
                        {
                            w.AddInterface(snapshot.Ports[p].Name);
                            foreach (var f in live[p]) w.Write(0, f, 0);
                        }
                result.Differences.Add($"(round kept in {kept})");
                result.DifferingRounds++;
            }
        }
        finally
        {
            foreach (var t in taps) t.Dispose();
            if (run is { HasExited: false }) Stop(run);
            Ip("netns", "delete", ns);
        }
    }

    /// <summary>
    /// The barrier after frame <paramref name="k"/> on <paramref name="port"/>: on a pod or the host port an ARP
    /// request from the port's own IPv4 address for 198.18.x.y (k's low 17 bits), answered on the same port by the
    /// engine's proxy ARP; on the uplink an ARP request for the node's address, which the engine passes to the host
    /// port unchanged (its target hardware field, ignored in a request, carries k).
    /// </summary>
    private static byte[] Probe(ForwardingSnapshot snapshot, int port, int k, out int answerPort)
    {
        var frame = new byte[42];
        var mac = new byte[] { 0x02, 0x4C, 0x44, 0x00, 0x00, (byte)port };
        frame.AsSpan(0, 6).Fill(0xFF);
        mac.CopyTo(frame, 6);
        BinaryPrimitives.WriteUInt16BigEndian(frame.AsSpan(12), 0x0806);
        BinaryPrimitives.WriteUInt64BigEndian(frame.AsSpan(14), 0x0001_0800_0604_0001); // Ethernet, IPv4, request
        mac.CopyTo(frame, 22);
        var span = frame.AsSpan();
        if (port == PortIndex.Uplink)
        {
            BinaryPrimitives.WriteUInt32BigEndian(span[28..], 0xC000_0201); // 192.0.2.1, a neighbour on the underlay
            span[32] = 0x02; span[33] = 0x4C; span[34] = 0x44;
            span[35] = (byte)(k >> 16); span[36] = (byte)(k >> 8); span[37] = (byte)k;
            BinaryPrimitives.WriteUInt32BigEndian(span[38..], snapshot.Ports[PortIndex.Host].Addresses.First(a => a.IsV4).V4);
            answerPort = PortIndex.Host;
        }
        else
        {
            BinaryPrimitives.WriteUInt32BigEndian(span[28..], snapshot.Ports[port].Addresses.First(a => a.IsV4).V4);
            BinaryPrimitives.WriteUInt32BigEndian(span[38..], (uint)(ProbeNet | (k & 0x1FFFF)));
            answerPort = port;
        }
        return frame;
    }

    /// <summary>
    /// <paramref name="frame"/> with its TCP or UDP checksum made partial (the field holding the pseudo-header sum, as
    /// Linux leaves it for CHECKSUM_PARTIAL), where the frame is a whole, unfragmented segment whose checksum is right
    /// and nothing follows the IP packet; null otherwise. The IPv6 ones only without extension headers (the pseudo-header's next header is then the IPv6
    /// header's).
    /// </summary>
    private static (byte[] Frame, int Start, int Offset)? Partial(byte[] frame)
    {
        var m = new PacketMeta { Length = frame.Length };
        if (DataPlane.Packets.PacketParser.Parse(frame, ref m) != DataPlane.Telemetry.DropReason.None
            || (m.Flags & (PacketFlags.HasL4 | PacketFlags.Fragment)) != PacketFlags.HasL4
            || m.IpProtocol is not (DataPlane.Packets.IpProtocol.Tcp or DataPlane.Packets.IpProtocol.Udp)) return null;
        int l3 = m.L3Offset, l4 = m.L4Offset, end = l3 + m.L3Length;
        // Only a frame that ends where its IP packet does: a stack leaves a checksum partial before any padding, and
        // the kernel finishes one (before a TAP without offloads) over everything to the end of the frame.
        if (end != frame.Length || (m.L3 == L3Kind.Ipv6 && l4 - l3 != 40) || m.L3 is not (L3Kind.Ipv4 or L3Kind.Ipv6)) return null;
        byte protocol = (byte)m.IpProtocol;
        int offset = protocol == 6 ? 16 : 6;
        if (l4 + offset + 2 > end) return null;
        var f = frame.AsSpan();
        uint pseudo = m.L3 == L3Kind.Ipv4
            ? DataPlane.Packets.Checksum.PseudoHeaderV4(BinaryPrimitives.ReadUInt32BigEndian(f[(l3 + 12)..]), BinaryPrimitives.ReadUInt32BigEndian(f[(l3 + 16)..]), protocol, end - l4)
            : DataPlane.Packets.Checksum.PseudoHeaderV6(f[(l3 + 8)..], f[(l3 + 24)..], protocol, end - l4);
        if (BinaryPrimitives.ReadUInt16BigEndian(f[(l4 + offset)..]) == 0 || DataPlane.Packets.Checksum.Fold(DataPlane.Packets.Checksum.Sum(f[l4..end], pseudo)) != 0)
            return null; // no checksum (UDP over IPv4) or a wrong one: sent as it is
        var partial = (byte[])frame.Clone();
        BinaryPrimitives.WriteUInt16BigEndian(partial.AsSpan(l4 + offset), DataPlane.Packets.Checksum.FoldNoComplement(pseudo));
        return (partial, l4, offset);
    }

    private static bool IsAnswer(byte[] got, byte[] probe, bool passedOn) =>
        passedOn ? got.AsSpan().SequenceEqual(probe)
            : got.Length >= 42 && BinaryPrimitives.ReadUInt16BigEndian(got.AsSpan(12)) == 0x0806 && got[21] == 2
              && got.AsSpan(28, 4).SequenceEqual(probe.AsSpan(38, 4)) && got.AsSpan(38, 4).SequenceEqual(probe.AsSpan(28, 4));

    /// <summary>Per port: the frames in order, bytes equal; the drops per reason equal.</summary>
    private static void Compare(ForwardingSnapshot snapshot, List<byte[]>[] live, string replayDir,
        Dictionary<(string Port, string Reason), long> liveDrops, LiveDiffResult result)
    {
        for (int p = 0; p < snapshot.PortCount; p++)
        {
            string name = snapshot.Ports[p].Name;
            string file = Path.Combine(replayDir, ReplayOutput.FileName(name));
            var replayed = new List<byte[]>();
            if (File.Exists(file))
            {
                using var reader = new CaptureReader(file);
                var frame = new byte[70_000];
                while (reader.TryRead(frame, out var record)) replayed.Add(frame.AsSpan(0, record.CapturedLength).ToArray());
            }
            result.FramesOut += live[p].Count;
            for (int i = 0; i < Math.Max(live[p].Count, replayed.Count); i++)
            {
                byte[]? a = i < live[p].Count ? live[p][i] : null, b = i < replayed.Count ? replayed[i] : null;
                if (a is not null && b is not null && a.AsSpan().SequenceEqual(b)) continue;
                result.Differences.Add($"{name}: output frame {i + 1} of {live[p].Count} live / {replayed.Count} replayed differs:\n"
                    + $"  live   {(a is null ? "(none)" : Convert.ToHexString(a))}\n  replay {(b is null ? "(none)" : Convert.ToHexString(b))}");
                break;
            }
        }
        var replayDrops = new Dictionary<(string, string), long>();
        using (var summary = JsonDocument.Parse(File.ReadAllBytes(Path.Combine(replayDir, "summary.json"))))
            foreach (var port in summary.RootElement.GetProperty("ports").EnumerateObject())
                foreach (var drop in port.Value.GetProperty("drops").EnumerateObject())
                    replayDrops[(port.Name, drop.Name)] = drop.Value.GetInt64();
        foreach (var key in liveDrops.Keys.Union(replayDrops.Keys).Order())
        {
            long a = liveDrops.GetValueOrDefault(key), b = replayDrops.GetValueOrDefault(key);
            result.Drops += a;
            if (a != b) result.Differences.Add($"drops on {key.Item1}, {key.Item2}: live {a}, replay {b}");
        }
    }

    /// <summary>
    /// The wall clock `run` stamped frames with, where its flow log tells (0 elsewhere), per window: every record's
    /// times are packet timestamps (a drop's, a connection's first and last packet's), each inside the window of the
    /// frame it came from. Every drop is logged, so every packet that could take an ICMP error token is among them: the
    /// rate limiter (1 s per destination, 1 ms globally) then decides in replay on the times it decided on live.
    /// </summary>
    private static long[] LiveClock(string flowLog, List<(long From, long To)> windows)
    {
        var clock = new long[windows.Count];
        if (!File.Exists(flowLog)) return clock;
        foreach (var line in File.ReadLines(flowLog))
        {
            if (line.Length == 0) continue;
            using var record = JsonDocument.Parse(line);
            foreach (var field in new[] { "start_ns", "end_ns" })
            {
                if (!record.RootElement.TryGetProperty(field, out var value)) continue;
                long t = value.GetInt64();
                int lo = 0, hi = windows.Count - 1;
                while (lo <= hi)
                {
                    int mid = (lo + hi) / 2;
                    if (t < windows[mid].From) hi = mid - 1;
                    else if (t > windows[mid].To) lo = mid + 1;
                    else
                    {
                        clock[mid] = t;
                        break;
                    }
                }
            }
        }
        return clock;
    }

    /// <summary>`run`'s drop counters per port and reason and its flow-log records lost, from its Prometheus
    /// endpoint inside the namespace.</summary>
    private static (Dictionary<(string, string), long> Drops, long FlowRecordsLost) Metrics(string ns, int port)
    {
        var drops = new Dictionary<(string, string), long>();
        string text = Ip("netns", "exec", ns, "curl", "-sS", "-m", "10", $"http://127.0.0.1:{port}/metrics/");
        foreach (var line in text.Split('\n'))
        {
            if (!line.StartsWith("fastpath_drops_total{", StringComparison.Ordinal)) continue;
            int close = line.IndexOf('}');
            var labels = line[21..close].Split(',').Select(l => l.Split('=', 2)).ToDictionary(l => l[0], l => l[1].Trim('"'));
            drops[(labels["port"], labels["reason"])] = (long)double.Parse(line[(close + 1)..].Trim(), System.Globalization.CultureInfo.InvariantCulture);
        }
        if (!text.Contains("fastpath_port_rx_packets_total", StringComparison.Ordinal)) throw new InvalidOperationException($"no metrics from run: {text}");
        var lost = text.Split('\n').FirstOrDefault(l => l.StartsWith("fastpath_flow_log_records_lost_total ", StringComparison.Ordinal));
        return (drops, lost is null ? 0 : (long)double.Parse(lost[(lost.IndexOf(' ') + 1)..], System.Globalization.CultureInfo.InvariantCulture));
    }

    private static bool Logged(StringBuilder log, string text)
    {
        lock (log) return log.ToString().Contains(text, StringComparison.Ordinal);
    }

    private static void Stop(Process run)
    {
        Process.Start("kill", ["-TERM", run.Id.ToString()])?.WaitForExit();
        if (!run.WaitForExit(30_000)) run.Kill(entireProcessTree: true);
        run.WaitForExit();
    }

    private static string Ip(params string[] args)
    {
        var psi = new ProcessStartInfo("ip") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (var a in args) psi.ArgumentList.Add(a);
        using var p = Process.Start(psi)!;
        var error = p.StandardError.ReadToEndAsync();
        string output = p.StandardOutput.ReadToEnd();
        p.WaitForExit();
        return output + error.GetAwaiter().GetResult();
    }
}
