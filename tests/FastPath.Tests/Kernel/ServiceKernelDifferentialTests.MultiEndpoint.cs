using System.Security.Cryptography;
using System.Text;
using FastPath.Tests.Support;

namespace FastPath.Tests.Kernel;

/// <summary>
/// The Service with three endpoints (default/multi, ClusterIP 10.96.0.20: 80/TCP → 8080, 7000/UDP → 7007, endpoints
/// 10.244.1.11, .12, .13), programmed as kube-proxy's nftables mode does: `numgen random mod 3 vmap` to one DNAT chain
/// per endpoint (tests/kernel/kube-proxy-service.nft). Eight TCP handshakes (SYN, SYN-ACK, ACK) and four UDP exchanges
/// (query, reply, second query) with distinct client ports go through both. The kernel picks an endpoint at random,
/// FastPath by Maglev, so each reply is sent from whichever endpoint that side picked
/// (tests/kernel/service_multi_frames.py: `send` observes the kernel's choice as it goes; for FastPath a first replay
/// of the client's packets gives its choices, then `craft` builds the whole sequence from them and it is replayed
/// again). Compared, backend choice excepted:
/// <list type="bullet">
/// <item>every packet reaches exactly one endpoint, later packets of a connection the same one as its first;</item>
/// <item>the DNATed packet is the same on both sides except destination MAC, destination address and the two
/// checksums covering it (the chosen endpoint's), client address and port kept, both sides' checksums valid;</item>
/// <item>what reaches the client after reverse NAT (source back to 10.96.0.20:80 or :7000) is byte for byte the same,
/// whichever endpoint answered on either side;</item>
/// <item>both sides spread the twelve connections over more than one endpoint (the kernel puts all on one with
/// probability 3·3⁻¹², FastPath's Maglev choice is fixed and checked).</item>
/// </list>
/// </summary>
public partial class ServiceKernelDifferentialTests
{
    private const int MultiConnections = 12; // 8 TCP then 4 UDP, as service_multi_frames.py numbers them
    private static readonly string[] Endpoints = ["10.244.1.11", "10.244.1.12", "10.244.1.13"];
    private static readonly string[] EndpointMacs = ["02:42:0a:f4:01:0b", "02:42:0a:f4:01:0c", "02:42:0a:f4:01:0d"];
    private static readonly string[] EndpointPcaps = ["backend", "backend2", "backend3"];   // service_multi_frames.py senders
    private static readonly string[] EndpointPorts = ["default/backend", "default/backend-2", "default/backend-3"];

    private static string MultiFrames => Path.Combine(KernelDir, "service_multi_frames.py");

    // The pods of the second and third endpoint (default/backend is in ClusterYaml), as the namespaces wire them.
    private static string MoreEndpointPodsYaml => string.Concat(Enumerable.Range(1, Endpoints.Length - 1).Select(e => $$$"""

        ---
        apiVersion: v1
        kind: Pod
        metadata: {name: backend-{{{e + 1}}}, namespace: default, annotations: {fastpath.io/mac: "{{{EndpointMacs[e]}}}"}}
        spec: {nodeName: node-a, containers: [{name: web, image: nginx}]}
        status: {podIP: {{{Endpoints[e]}}}, podIPs: [{ip: {{{Endpoints[e]}}}}]}
        """));

    private static readonly Lazy<MultiOutcome> SharedMulti = new(RunBothMulti, LazyThreadSafetyMode.ExecutionAndPublication);

    /// <summary>Per side: the frames each endpoint received (index = endpoint) and the client's, in arrival order.</summary>
    private sealed record MultiDeliveries(List<byte[]>[] AtEndpoint, List<byte[]> AtClient);
    private sealed record MultiOutcome(MultiDeliveries Kernel, MultiDeliveries FastPath, int[] FastPathChoicesFirstPass, string Log);

    [Fact]
    public void ThreeEndpointDnatMatchesTheKernelExceptTheBackendChoice()
    {
        var o = GetMulti();
        var kernel = ByPacket(o.Kernel, "kernel");
        var fastpath = ByPacket(o.FastPath, "FastPath");
        Assert.Equal(kernel.Keys.Order(), fastpath.Keys.Order());
        Assert.Equal(2 * MultiConnections, kernel.Count);
        foreach (var (key, (ke, kf)) in kernel.OrderBy(p => p.Key))
        {
            var (fe, ff) = fastpath[key];
            string label = $"client port {key.Port} packet {key.Nth}";
            var k = Packet.Parse(kf);
            var f = Packet.Parse(ff);
            output.WriteLine($"{label}: kernel → {k.IpDst}:{k.Dport}, FastPath → {f.IpDst}:{f.Dport}");
            foreach (var (side, p, e, frame) in new[] { ("kernel", k, ke, kf), ("FastPath", f, fe, ff) })
            {
                Assert.True(p.IpDst == Endpoints[e] && p.Dst == EndpointMacs[e], $"{label}: {side} delivered to {p.IpDst} ({p.Dst}) at endpoint {Endpoints[e]}");
                Assert.True(p.IpSrc == Client && p.Sport == key.Port, $"{label}: {side} source {p.IpSrc}:{p.Sport}, expected {Client}:{key.Port} (kept)");
                Assert.True(p.Dport == (p.Protocol == Tcp ? 8080 : 7007), $"{label}: {side} destination port {p.Dport}");
                Assert.True(p.Ttl == 63, $"{label}: {side} TTL {p.Ttl}");
                Assert.True(p.IpHeaderChecksumValid && TestFrames.ChecksumsValid(frame), $"{label}: {side} checksums");
            }
            // Everything but the endpoint's MAC and address and the checksums covering them is the same frame.
            Assert.Equal(Convert.ToHexString(WithoutBackend(kf)), Convert.ToHexString(WithoutBackend(ff)));
        }
    }

    [Fact]
    public void ThreeEndpointConnectionsKeepTheirEndpointOnBothSides()
    {
        var o = GetMulti();
        foreach (var (side, d) in new[] { ("kernel", o.Kernel), ("FastPath", o.FastPath) })
        {
            var choice = Choices(d, side);
            foreach (var ((port, _), (endpoint, _)) in ByPacket(d, side))
                Assert.True(choice[port] == endpoint, $"{side}: a later packet of client port {port} went to {Endpoints[endpoint]}, its first to {Endpoints[choice[port]]}");
            Assert.True(choice.Values.Distinct().Count() > 1, $"{side} sent all {MultiConnections} connections to one endpoint");
        }
        // The replay is deterministic: the second FastPath run (with the replies) chose what the first one did.
        var second = Choices(o.FastPath, "FastPath");
        Assert.Equal(o.FastPathChoicesFirstPass, ClientPorts().Select(p => second[p]).ToArray());
    }

    [Fact]
    public void ThreeEndpointRepliesReachTheClientAsTheKernelsDo()
    {
        var o = GetMulti();
        Assert.True(o.Kernel.AtClient.Count == MultiConnections, $"the kernel delivered {o.Kernel.AtClient.Count} replies to the client, expected {MultiConnections}");
        Assert.True(o.FastPath.AtClient.Count == MultiConnections, $"FastPath delivered {o.FastPath.AtClient.Count} replies to the client, expected {MultiConnections}");
        for (int i = 0; i < MultiConnections; i++)
        {
            var k = Packet.Parse(o.Kernel.AtClient[i]);
            Assert.True(k.IpSrc == "10.96.0.20" && k.Sport == (k.Protocol == Tcp ? 80 : 7000), $"kernel reply {i}: from {k.IpSrc}:{k.Sport}");
            Assert.True(TestFrames.ChecksumsValid(o.FastPath.AtClient[i]), $"FastPath reply {i}: checksums");
            Assert.Equal(Convert.ToHexString(o.Kernel.AtClient[i]), Convert.ToHexString(o.FastPath.AtClient[i]));
        }
    }

    private MultiOutcome GetMulti()
    {
        KernelLab.SkipUnlessAvailable("ip", "nft", "tcpdump", "timeout");
        var o = SharedMulti.Value;
        output.WriteLine(o.Log);
        return o;
    }

    private static IEnumerable<int> ClientPorts() =>
        Enumerable.Range(45000, 8).Concat(Enumerable.Range(46000, MultiConnections - 8));

    // (client port, nth packet of that connection at an endpoint) → (endpoint, frame).
    private static Dictionary<(int Port, int Nth), (int Endpoint, byte[] Frame)> ByPacket(MultiDeliveries d, string side)
    {
        var result = new Dictionary<(int, int), (int, byte[])>();
        for (int e = 0; e < Endpoints.Length; e++)
            foreach (var frame in d.AtEndpoint[e])
            {
                int port = Packet.Parse(frame).Sport;
                int nth = 0;
                while (!result.TryAdd((port, nth), (e, frame))) nth++;
            }
        foreach (int port in ClientPorts())
            Assert.True(result.ContainsKey((port, 0)) && result.ContainsKey((port, 1)) && !result.ContainsKey((port, 2)),
                $"{side}: client port {port} should reach the endpoints with exactly 2 packets");
        return result;
    }

    private static Dictionary<int, int> Choices(MultiDeliveries d, string side) =>
        ByPacket(d, side).Where(p => p.Key.Nth == 0).ToDictionary(p => p.Key.Port, p => p.Value.Endpoint);

    // A copy with the destination MAC, IPv4 destination, header checksum and TCP/UDP checksum zeroed.
    private static byte[] WithoutBackend(byte[] frame)
    {
        var c = (byte[])frame.Clone();
        int ihl = (c[14] & 15) * 4;
        Array.Clear(c, 0, 6);
        Array.Clear(c, 14 + 10, 2);
        Array.Clear(c, 14 + 16, 4);
        Array.Clear(c, 14 + ihl + (c[14 + 9] == Tcp ? 16 : 6), 2);
        return c;
    }

    private static MultiOutcome RunBothMulti()
    {
        var log = new StringBuilder();
        using var tmp = new TempFolder();
        Script(log, "stale");
        string id = Convert.ToHexString(RandomNumberGenerator.GetBytes(3)).ToLowerInvariant();
        string kernelDir = tmp.File("kernel");
        Directory.CreateDirectory(kernelDir);
        try
        {
            Script(log, "up", id);
            Script(log, "run-multi", id, kernelDir);
        }
        finally
        {
            Script(log, "down", id);
        }
        var kernel = new MultiDeliveries(
            EndpointPcaps.Select(e => KernelLab.ReadPcap(Path.Combine(kernelDir, $"kernel-{e}.pcap"))).ToArray(),
            KernelLab.ReadPcap(Path.Combine(kernelDir, "kernel-client.pcap")));

        // First pass: the client's packets alone (they do not depend on the choice) tell which endpoint Maglev picks.
        string probeDir = Craft(log, tmp, "fastpath-probe", new int[MultiConnections]);
        var probe = MultiDeliveriesOf(ReplayInto(tmp, "fastpath-probe-out", ["default/client=" + Path.Combine(probeDir, "in-client.pcap")]));
        var chosen = Choices(probe, "FastPath (client packets only)");
        int[] choices = ClientPorts().Select(p => chosen[p]).ToArray();
        log.AppendLine($"FastPath endpoint per connection: {string.Join(',', choices)}");

        // Second pass: the whole sequence, each reply from the endpoint FastPath picked.
        string dir = Craft(log, tmp, "fastpath-in", choices);
        var captures = new List<string> { "default/client=" + Path.Combine(dir, "in-client.pcap") };
        for (int e = 0; e < Endpoints.Length; e++)
        {
            string pcap = Path.Combine(dir, $"in-{EndpointPcaps[e]}.pcap");
            if (File.Exists(pcap)) captures.Add($"{EndpointPorts[e]}={pcap}");
        }
        var fastpath = MultiDeliveriesOf(ReplayInto(tmp, "fastpath-multi-out", [.. captures]));
        return new MultiOutcome(kernel, fastpath, choices, log.ToString().TrimEnd());
    }

    private static MultiDeliveries MultiDeliveriesOf(string outDir) => new(
        EndpointPorts.Select(p => ReplayedPort(outDir, p.Replace('/', '_') + ".pcap")).ToArray(),
        ReplayedPort(outDir, "default_client.pcap"));

    private static string Craft(StringBuilder log, TempFolder tmp, string name, int[] choices)
    {
        string dir = tmp.File(name);
        Directory.CreateDirectory(dir);
        var (exit, text) = KernelLab.Run("/usr/bin/python3", [MultiFrames, "craft", dir, string.Join(',', choices)], TimeSpan.FromSeconds(60));
        if (text.Length > 0) log.AppendLine($"service_multi_frames.py craft: {text.Trim()}");
        Assert.True(exit == 0, $"service_multi_frames.py craft exited {exit}: {text}");
        return dir;
    }
}
