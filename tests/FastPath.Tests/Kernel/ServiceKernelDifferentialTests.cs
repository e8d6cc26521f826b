using System.Buffers.Binary;
using System.Diagnostics;
using System.Net;
using System.Security.Cryptography;
using System.Text;
using FastPath.Tests.Support;

namespace FastPath.Tests.Kernel;

/// <summary>
/// Differential test against the Linux kernel for Services and masquerade: node-a is built twice, once as a Linux box
/// whose ClusterIP Service is programmed the way kube-proxy's nftables mode does it (a `table ip kube-proxy` whose
/// `services` chain looks the packet up in the `service-ips` verdict map, which jumps to a per-service chain that picks
/// the one endpoint and DNATs; plus Flannel-style masquerade of pod traffic leaving the cluster CIDR:
/// tests/kernel/kube-proxy-service.nft), inside network namespaces this test creates (tests/kernel/service-topology.sh:
/// client and backend pods, the node, and an outside namespace that is both the uplink router and the external host
/// 203.0.113.5); once as `fastpath replay` over a cluster directory with the same addresses, MACs, podCIDR, Service,
/// EndpointSlice and uplink gateway. The same crafted frames (tests/kernel/service_frames.py writes the exact bytes and
/// order it sends) go through both, and what each delivers is compared field by field, then byte for byte:
/// <list type="number">
/// <item>client → ClusterIP 10.96.0.10:80 TCP SYN, and the client's ACK after the handshake: what the backend receives
/// (destination DNATed to 10.244.1.11:8080, source kept, TTL 63);</item>
/// <item>the backend's SYN-ACK: what the client receives (source reverse-NATed to 10.96.0.10:80);</item>
/// <item>a UDP datagram to the ClusterIP's port 53 (→ 5353) and the backend's reply;</item>
/// <item>client → 203.0.113.5:443 TCP SYN: what leaves the uplink (source masqueraded to 192.168.56.11, source port kept
/// because it is free), and the external host's SYN-ACK back to the client.</item>
/// </list>
/// One endpoint only, so kube-proxy's `numgen random mod 1` and FastPath's Maglev both have one choice and the
/// comparison is exact; a Service with three endpoints is compared with the backend choice excepted
/// (ServiceKernelDifferentialTests.MultiEndpoint.cs). IPv4 only: kube-proxy programs IPv6 Services in a separate `table ip6 kube-proxy` over an IPv6
/// topology this test does not build.
/// </summary>
/// <remarks>
/// Fields allowed to differ, and why (observed on Linux 6.18, nftables 1.0.6):
/// <code>
/// | field              | kernel                         | FastPath                        | why it may differ                       |
/// |--------------------|--------------------------------|---------------------------------|-----------------------------------------|
/// | pcap timestamp     | wall clock of the capture      | the input capture's timestamp   | different clocks; not part of the frame |
/// </code>
/// Nothing inside the frame is allowed to differ, and nothing did: Ethernet MACs (the kernel's host-side veths are
/// ee:ee:ee:ee:ee:ee, which is FastPath's gatewayMAC; on the uplink node-a's MAC → the router's, FastPath's node MAC
/// annotation and uplinkGatewayMAC), IPv4 identification (neither a forwarding router nor NAT rewrites it), DF, TTL
/// (63: one forwarding hop), total length, addresses, ports (the masqueraded source port is kept by both: plain
/// `masquerade` keeps a free port, FastPath likewise; Flannel's and kube-proxy's `fully-random` would not, see the .nft
/// file), TCP sequence/acknowledgement numbers, flags, window and options, payload, and both checksums (each side's
/// are also verified on their own, so a shared wrong checksum would still fail).
/// </remarks>
public partial class ServiceKernelDifferentialTests(ITestOutputHelper output)
{
    private const string ClientMac = "02:42:0a:f4:01:0a", BackendMac = "02:42:0a:f4:01:0b", GatewayMac = "ee:ee:ee:ee:ee:ee";
    private const string NodeMac = "02:00:00:00:01:01", OutsideMac = "02:00:00:00:00:fe";
    private const string Client = "10.244.1.10", Backend = "10.244.1.11", ClusterIp = "10.96.0.10";
    private const string NodeIp = "192.168.56.11", External = "203.0.113.5";
    private const byte Tcp = 6, Udp = 17;
    private const byte Syn = 0x02, Ack = 0x10, SynAck = 0x12;

    private static string KernelDir => Path.Combine(RepositoryFiles.Root, "tests", "kernel");
    private static string Topology => Path.Combine(KernelDir, "service-topology.sh");

    // The same node, pods, Service and endpoint as the namespaces and the nft rules: FastPath must see what the kernel
    // was configured with.
    private const string ClusterYaml = """
        apiVersion: fastpath.io/v1alpha1
        kind: FastPathConfiguration
        clusterCIDRs: [10.244.0.0/16]
        serviceCIDRs: [10.96.0.0/12]
        gatewayMAC: "ee:ee:ee:ee:ee:ee"
        uplinkGatewayMAC: "02:00:00:00:00:fe"
        ---
        apiVersion: v1
        kind: Node
        metadata:
          name: node-a
          annotations: {fastpath.io/mac: "02:00:00:00:01:01"}
        spec: {podCIDR: 10.244.1.0/24, podCIDRs: [10.244.1.0/24]}
        status: {addresses: [{type: InternalIP, address: 192.168.56.11}]}
        ---
        apiVersion: v1
        kind: Pod
        metadata:
          name: client
          namespace: default
          annotations: {fastpath.io/mac: "02:42:0a:f4:01:0a"}
        spec: {nodeName: node-a, containers: [{name: c, image: busybox}]}
        status: {podIP: 10.244.1.10, podIPs: [{ip: 10.244.1.10}]}
        ---
        apiVersion: v1
        kind: Pod
        metadata:
          name: backend
          namespace: default
          annotations: {fastpath.io/mac: "02:42:0a:f4:01:0b"}
        spec: {nodeName: node-a, containers: [{name: web, image: nginx}]}
        status: {podIP: 10.244.1.11, podIPs: [{ip: 10.244.1.11}]}
        ---
        apiVersion: v1
        kind: Service
        metadata: {name: multi, namespace: default}
        spec: {clusterIP: 10.96.0.20, ports: [{name: http, port: 80, targetPort: 8080, protocol: TCP}, {name: echo, port: 7000, targetPort: 7007, protocol: UDP}]}
        ---
        apiVersion: discovery.k8s.io/v1
        kind: EndpointSlice
        metadata: {name: multi-abcde, namespace: default, labels: {kubernetes.io/service-name: multi}}
        addressType: IPv4
        ports: [{name: http, port: 8080, protocol: TCP}, {name: echo, port: 7007, protocol: UDP}]
        endpoints:
          - {addresses: [10.244.1.11], conditions: {ready: true}, nodeName: node-a}
          - {addresses: [10.244.1.12], conditions: {ready: true}, nodeName: node-a}
          - {addresses: [10.244.1.13], conditions: {ready: true}, nodeName: node-a}
        ---
        apiVersion: v1
        kind: Service
        metadata: {name: web, namespace: default}
        spec:
          clusterIP: 10.96.0.10
          clusterIPs: [10.96.0.10]
          ipFamilies: [IPv4]
          ports: [{name: http, port: 80, targetPort: 8080, protocol: TCP}, {name: dns, port: 53, targetPort: 5353, protocol: UDP}]
        ---
        apiVersion: discovery.k8s.io/v1
        kind: EndpointSlice
        metadata: {name: web-abcde, namespace: default, labels: {kubernetes.io/service-name: web}}
        addressType: IPv4
        ports: [{name: http, port: 8080, protocol: TCP}, {name: dns, port: 5353, protocol: UDP}]
        endpoints:
          - addresses: [10.244.1.11]
            conditions: {ready: true}
            nodeName: node-a
            targetRef: {kind: Pod, namespace: default, name: backend}
        """;

    /// <summary>Both runs happen once for the class: the four facts look at different packets of the same sequence.</summary>
    private static readonly Lazy<Outcome> Shared = new(RunBoth, LazyThreadSafetyMode.ExecutionAndPublication);

    // What each side delivered, per receiver, in arrival order. Sent: 1 SYN, 2 SYN-ACK, 3 ACK (service TCP), 4 UDP query,
    // 5 UDP reply (service UDP), 6 SYN, 7 SYN-ACK (off-cluster). Backend gets 1, 3, 4; client 2, 5, 7; outside 6.
    private sealed record Outcome(List<byte[]> Sent, Deliveries Kernel, Deliveries FastPath, string Log);
    private sealed record Deliveries(List<byte[]> Backend, List<byte[]> Client, List<byte[]> Outside);

    [Fact]
    public void ClusterIpTcpToTheBackendMatchesTheKernel()
    {
        var o = Get();
        AssertCounts(o, o => o.Backend, 3, "backend");
        Compare("1 SYN client→ClusterIP, at the backend", o.Kernel.Backend[0], o.FastPath.Backend[0],
            new(GatewayMac, BackendMac, Client, Backend, Tcp, 40000, 8080, Syn, ""));
        Compare("3 ACK client→ClusterIP, at the backend", o.Kernel.Backend[1], o.FastPath.Backend[1],
            new(GatewayMac, BackendMac, Client, Backend, Tcp, 40000, 8080, Ack, ""));
    }

    [Fact]
    public void ClusterIpTcpReplyToTheClientMatchesTheKernel()
    {
        var o = Get();
        AssertCounts(o, o => o.Client, 3, "client");
        Compare("2 SYN-ACK backend→client, at the client", o.Kernel.Client[0], o.FastPath.Client[0],
            new(GatewayMac, ClientMac, ClusterIp, Client, Tcp, 80, 40000, SynAck, ""));
    }

    [Fact]
    public void ClusterIpUdpAndItsReplyMatchTheKernel()
    {
        var o = Get();
        AssertCounts(o, o => o.Backend, 3, "backend");
        AssertCounts(o, o => o.Client, 3, "client");
        Compare("4 UDP client→ClusterIP:53, at the backend", o.Kernel.Backend[2], o.FastPath.Backend[2],
            new(GatewayMac, BackendMac, Client, Backend, Udp, 40001, 5353, null, "fastpath-sk-udp-query"));
        Compare("5 UDP backend→client, at the client", o.Kernel.Client[1], o.FastPath.Client[1],
            new(GatewayMac, ClientMac, ClusterIp, Client, Udp, 53, 40001, null, "fastpath-sk-udp-reply"));
    }

    [Fact]
    public void OffClusterMasqueradeAndItsReplyMatchTheKernel()
    {
        var o = Get();
        AssertCounts(o, o => o.Outside, 1, "uplink");
        AssertCounts(o, o => o.Client, 3, "client");
        // Source port 40002 on both: free, so kept (plain `masquerade`; FastPath keeps a free port too).
        Compare("6 SYN client→203.0.113.5, leaving the uplink", o.Kernel.Outside[0], o.FastPath.Outside[0],
            new(NodeMac, OutsideMac, NodeIp, External, Tcp, 40002, 443, Syn, ""));
        Compare("7 SYN-ACK 203.0.113.5→node, at the client", o.Kernel.Client[2], o.FastPath.Client[2],
            new(GatewayMac, ClientMac, External, Client, Tcp, 443, 40002, SynAck, ""));
    }

    private Outcome Get()
    {
        KernelLab.SkipUnlessAvailable("ip", "nft", "tcpdump", "timeout");
        var o = Shared.Value;
        output.WriteLine(o.Log);
        return o;
    }

    private static void AssertCounts(Outcome o, Func<Deliveries, List<byte[]>> at, int expected, string receiver)
    {
        Assert.Equal(7, o.Sent.Count);
        Assert.True(at(o.Kernel).Count == expected, $"the kernel delivered {at(o.Kernel).Count} packets at the {receiver}, expected {expected}");
        Assert.True(at(o.FastPath).Count == expected, $"FastPath delivered {at(o.FastPath).Count} packets at the {receiver}, expected {expected}");
    }

    private sealed record Expected(string SrcMac, string DstMac, string IpSrc, string IpDst, byte Protocol,
        ushort Sport, ushort Dport, byte? TcpFlags, string Payload);

    private void Compare(string label, byte[] kernelFrame, byte[] fastpathFrame, Expected e)
    {
        var k = Packet.Parse(kernelFrame);
        var f = Packet.Parse(fastpathFrame);
        output.WriteLine($"{label}: field            kernel / fastpath");
        output.WriteLine($"  MACs          {k.Src}->{k.Dst} / {f.Src}->{f.Dst}");
        output.WriteLine($"  IPv4          {k.IpSrc}->{k.IpDst} ttl {k.Ttl} id {k.Id:x4} df {k.DontFragment} len {k.TotalLength} / {f.IpSrc}->{f.IpDst} ttl {f.Ttl} id {f.Id:x4} df {f.DontFragment} len {f.TotalLength}");
        output.WriteLine($"  L4            {k.Protocol} {k.Sport}->{k.Dport} flags {k.TcpFlags:x2} seq {k.Seq} ack {k.AckNumber} / {f.Protocol} {f.Sport}->{f.Dport} flags {f.TcpFlags:x2} seq {f.Seq} ack {f.AckNumber}");

        // What both must deliver (the kernel's values are pinned too, so a changed topology cannot make both agree on
        // something else).
        foreach (var (side, p) in new[] { ("kernel", k), ("FastPath", f) })
        {
            Assert.True(e.SrcMac == p.Src, $"{label}: {side} source MAC {p.Src}, expected {e.SrcMac}");
            Assert.True(e.DstMac == p.Dst, $"{label}: {side} destination MAC {p.Dst}, expected {e.DstMac}");
            Assert.True(e.IpSrc == p.IpSrc, $"{label}: {side} source {p.IpSrc}, expected {e.IpSrc}");
            Assert.True(e.IpDst == p.IpDst, $"{label}: {side} destination {p.IpDst}, expected {e.IpDst}");
            Assert.True(e.Protocol == p.Protocol, $"{label}: {side} protocol {p.Protocol}, expected {e.Protocol}");
            Assert.True(e.Sport == p.Sport, $"{label}: {side} source port {p.Sport}, expected {e.Sport}");
            Assert.True(e.Dport == p.Dport, $"{label}: {side} destination port {p.Dport}, expected {e.Dport}");
            Assert.True(p.Ttl == 63, $"{label}: {side} TTL {p.Ttl}, expected 63 (sent with 64, one forwarding hop)");
            if (e.TcpFlags is { } flags) Assert.True(flags == p.TcpFlags, $"{label}: {side} TCP flags {p.TcpFlags:x2}, expected {flags:x2}");
            Assert.True(e.Payload == Encoding.ASCII.GetString(p.Payload), $"{label}: {side} payload '{Encoding.ASCII.GetString(p.Payload)}'");
            Assert.True(p.IpHeaderChecksumValid, $"{label}: {side} IPv4 header checksum");
            Assert.True(TestFrames.ChecksumsValid(side == "kernel" ? kernelFrame : fastpathFrame), $"{label}: {side} checksums");
        }

        // Field by field, kernel against FastPath (the table in the remarks: nothing in the frame may differ).
        Assert.Equal(k.Dst, f.Dst);
        Assert.Equal(k.Src, f.Src);
        Assert.Equal(k.EtherType, f.EtherType);
        Assert.Equal(k.VersionIhl, f.VersionIhl);
        Assert.Equal(k.Tos, f.Tos);
        Assert.Equal(k.TotalLength, f.TotalLength);
        Assert.Equal(k.Id, f.Id);
        Assert.Equal(k.DontFragment, f.DontFragment);
        Assert.Equal(k.FragmentOffset, f.FragmentOffset);
        Assert.Equal(k.Ttl, f.Ttl);
        Assert.Equal(k.Protocol, f.Protocol);
        Assert.Equal(k.IpSrc, f.IpSrc);
        Assert.Equal(k.IpDst, f.IpDst);
        Assert.Equal(k.IpChecksum, f.IpChecksum);
        Assert.Equal(k.Sport, f.Sport);
        Assert.Equal(k.Dport, f.Dport);
        Assert.Equal(k.Seq, f.Seq);
        Assert.Equal(k.AckNumber, f.AckNumber);
        Assert.Equal(k.TcpFlags, f.TcpFlags);
        Assert.Equal(k.Window, f.Window);
        Assert.Equal(Convert.ToHexString(k.TcpOptions), Convert.ToHexString(f.TcpOptions));
        Assert.Equal(k.L4Checksum, f.L4Checksum);
        Assert.Equal(Convert.ToHexString(k.Payload), Convert.ToHexString(f.Payload));
        // And whatever the parser above does not name: the whole frame.
        Assert.Equal(Convert.ToHexString(kernelFrame), Convert.ToHexString(fastpathFrame));
    }


    private static Outcome RunBoth()
    {
        var log = new StringBuilder();
        using var tmp = new TempFolder();
        // A crashed earlier run (killed test host) leaves its namespaces behind; they are ours by prefix.
        Script(log, "stale");
        // The script names the namespaces fpsk-<id>-client/-backend/-node/-outside.
        string id = Convert.ToHexString(RandomNumberGenerator.GetBytes(3)).ToLowerInvariant();
        try
        {
            Script(log, "up", id);
            Script(log, "run", id, tmp.Path);
        }
        finally
        {
            Script(log, "down", id);
        }

        var kernel = new Deliveries(KernelLab.ReadPcap(tmp.File("kernel-backend.pcap")), KernelLab.ReadPcap(tmp.File("kernel-client.pcap")),
            KernelLab.ReadPcap(tmp.File("kernel-outside.pcap")));
        var fastpath = Replay(tmp,
            ["default/client=" + tmp.File("in-client.pcap"), "default/backend=" + tmp.File("in-backend.pcap"), "uplink=" + tmp.File("in-outside.pcap")]);
        var sent = KernelLab.ReadPcap(tmp.File("in-client.pcap")).Concat(KernelLab.ReadPcap(tmp.File("in-backend.pcap"))).Concat(KernelLab.ReadPcap(tmp.File("in-outside.pcap"))).ToList();
        return new Outcome(sent, kernel, fastpath, log.ToString().TrimEnd());
    }

    private static void Script(StringBuilder log, params string[] args)
    {
        var (exit, text) = KernelLab.Run("/bin/bash", [Topology, .. args], TimeSpan.FromSeconds(60));
        if (text.Length > 0) log.AppendLine($"service-topology.sh {string.Join(' ', args)}: {text.Trim()}");
        Assert.True(exit == 0, $"service-topology.sh {string.Join(' ', args)} exited {exit}: {text}");
    }

    private static Deliveries Replay(TempFolder tmp, string[] captures)
    {
        string outDir = ReplayInto(tmp, "fastpath-out", captures);
        List<byte[]> Port(string file) => ReplayedPort(outDir, file);
        return new Deliveries(Port("default_backend.pcap"), Port("default_client.pcap"), Port("uplink.pcap"));
    }

    /// <summary>Replays <paramref name="captures"/> through `fastpath replay` over <see cref="ClusterYaml"/> into tmp/<paramref name="name"/>; no drops allowed.</summary>
    private static string ReplayInto(TempFolder tmp, string name, string[] captures)
    {
        string cluster = tmp.File("cluster");
        Directory.CreateDirectory(cluster);
        File.WriteAllText(Path.Combine(cluster, "cluster.yaml"), ClusterYaml + MoreEndpointPodsYaml);
        string outDir = tmp.File(name);
        var stderr = new StringWriter();
        int exit = FastPath.Program.Run(["replay", .. captures, "--cluster", cluster, "--node", "node-a", "--out", outDir, "--quiet"], TextWriter.Null, stderr);
        Assert.True(exit == 0, stderr.ToString());
        string drops = File.ReadAllText(Path.Combine(outDir, "drops.jsonl"));
        Assert.True(drops.Trim().Length == 0, $"FastPath dropped: {drops}");
        return outDir;
    }

    private static List<byte[]> ReplayedPort(string outDir, string file) =>
        File.Exists(Path.Combine(outDir, file)) ? KernelLab.ReadPcap(Path.Combine(outDir, file)) : [];


    /// <summary>An Ethernet/IPv4 frame carrying TCP or UDP, every header field named.</summary>
    private sealed record Packet(string Dst, string Src, ushort EtherType, byte VersionIhl, byte Tos, ushort TotalLength,
        ushort Id, bool DontFragment, int FragmentOffset, byte Ttl, byte Protocol, ushort IpChecksum, bool IpHeaderChecksumValid,
        string IpSrc, string IpDst, ushort Sport, ushort Dport, uint Seq, uint AckNumber, byte TcpFlags, ushort Window,
        byte[] TcpOptions, ushort L4Checksum, byte[] Payload)
    {
        public static Packet Parse(byte[] frame)
        {
            var s = frame.AsSpan();
            Assert.True(frame.Length >= 14 + 20 + 8, $"frame of {frame.Length} bytes is too short");
            Assert.Equal(0x0800, BinaryPrimitives.ReadUInt16BigEndian(s[12..]));
            var ip = s[14..];
            int ihl = (ip[0] & 15) * 4;
            ushort total = BinaryPrimitives.ReadUInt16BigEndian(ip[2..]);
            ushort flagsFrag = BinaryPrimitives.ReadUInt16BigEndian(ip[6..]);
            var l4 = ip[ihl..total];
            byte proto = ip[9];
            Assert.True(proto is 6 or 17, $"unexpected protocol {proto}");
            bool tcp = proto == 6;
            int header = tcp ? (l4[12] >> 4) * 4 : 8;
            return new Packet(KernelLab.Mac(s), KernelLab.Mac(s[6..]), BinaryPrimitives.ReadUInt16BigEndian(s[12..]), ip[0], ip[1], total,
                BinaryPrimitives.ReadUInt16BigEndian(ip[4..]), (flagsFrag & 0x4000) != 0, flagsFrag & 0x1FFF, ip[8], proto,
                BinaryPrimitives.ReadUInt16BigEndian(ip[10..]), TestFrames.SlowChecksum(ip[..ihl]) == 0,
                new IPAddress(ip.Slice(12, 4)).ToString(), new IPAddress(ip.Slice(16, 4)).ToString(),
                BinaryPrimitives.ReadUInt16BigEndian(l4), BinaryPrimitives.ReadUInt16BigEndian(l4[2..]),
                tcp ? BinaryPrimitives.ReadUInt32BigEndian(l4[4..]) : 0, tcp ? BinaryPrimitives.ReadUInt32BigEndian(l4[8..]) : 0,
                tcp ? l4[13] : (byte)0, tcp ? BinaryPrimitives.ReadUInt16BigEndian(l4[14..]) : (ushort)0,
                tcp ? l4[20..header].ToArray() : [],
                BinaryPrimitives.ReadUInt16BigEndian(l4[(tcp ? 16 : 6)..]), l4[header..].ToArray());
        }
    }
}
