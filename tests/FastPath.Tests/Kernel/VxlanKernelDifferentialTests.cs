using System.Buffers.Binary;
using System.Diagnostics;
using System.Net;
using System.Security.Cryptography;
using System.Text;
using FastPath.Tests.Support;

namespace FastPath.Tests.Kernel;

/// <summary>
/// Differential test against the Linux kernel: node-a is built twice, once as a Linux box running Flannel's vxlan
/// backend inside network namespaces this test creates (tests/kernel/vxlan-topology.sh), once as `fastpath replay`
/// over a cluster directory with the same addresses, MACs and podCIDRs. The same crafted frames
/// (tests/kernel/vxlan_frames.py writes the exact bytes it sends) go through both, and what leaves each is compared
/// field by field: pod → remote pod (encapsulation, captured on the underlay) and remote pod → pod (decapsulation,
/// captured on the pod's veth). IPv4 only: Flannel carries IPv6 pods on a second device (flannel-v6.1) over an IPv6
/// underlay, which this topology does not build.
/// </summary>
/// <remarks>
/// Fields allowed to differ, and why (observed on Linux 6.18 with `ip link add ... type vxlan` defaults, which is what
/// Flannel gets: it sets neither df, ttl, tos nor udpcsum):
/// <code>
/// | field                     | kernel                                   | FastPath                    | why it may differ                                  |
/// |---------------------------|------------------------------------------|-----------------------------|----------------------------------------------------|
/// | outer UDP source port     | udp_flow_src_port hash in 49152–65534    | FNV-1a hash in 49152–65535  | different hash functions; only the range and one   |
/// |                           | (srcport 49152 65535 set on the device;  |                             | port per flow matter (RFC 7348 §5). The kernel's   |
/// |                           | the default would be 32768–60999)        |                             | max is exclusive, hence 65534.                     |
/// | outer IPv4 identification | ip_select_ident (per-destination hash)   | per-engine counter          | any value is valid; DF is clear so it must vary    |
/// | outer IPv4 header checksum| follows the ID                           | follows the ID              | consequence of the ID; both must verify            |
/// | outer UDP checksum        | computed (device shows "udpcsum"); over  | computed, complete          | both present; the kernel's is captured as the      |
/// |                           | veth it is captured as the CHECKSUM_     |                             | CHECKSUM_PARTIAL seed, so only FastPath's is       |
/// |                           | PARTIAL seed (pseudo-header sum only)    |                             | verified in full.                                  |
/// </code>
/// Everything else is asserted equal: outer MACs (node-a → node-b, as the kernel resolves them through the uplink
/// neighbour), EtherType, IPv4 version/IHL/TOS/total length, outer TTL (64 on both: `ttl auto` is the netns's
/// ip_default_ttl), outer DF (clear on both: `df unset`), fragment offset, protocol, addresses, UDP destination port and
/// length, the VXLAN flags word (only I set) and VNI, and the whole inner frame byte for byte (inner MACs = the two
/// VTEP MACs, TTL 63, inner IP ID and checksum, ports, payload). The delivered frame of the decapsulation direction is
/// compared byte for byte as well.
/// </remarks>
public class VxlanKernelDifferentialTests(ITestOutputHelper output)
{
    private const string NodeAMac = "02:00:00:00:01:01", NodeBMac = "02:00:00:00:02:01";
    private const string PodMac = "02:42:0a:f4:01:0a", GatewayMac = "ee:ee:ee:ee:ee:ee";
    private const ushort VxlanPort = 8472;

    private static string KernelDir => Path.Combine(RepositoryFiles.Root, "tests", "kernel");
    private static string Topology => Path.Combine(KernelDir, "vxlan-topology.sh");

    // The same node-a, node-b and client pod as the namespaces: FastPath must see what the kernel was configured with.
    private const string ClusterYaml = """
        apiVersion: v1
        kind: Node
        metadata:
          name: node-a
          annotations: {fastpath.io/mac: "02:00:00:00:01:01"}
        spec: {podCIDR: 10.244.1.0/24, podCIDRs: [10.244.1.0/24]}
        status: {addresses: [{type: InternalIP, address: 192.168.56.11}]}
        ---
        apiVersion: v1
        kind: Node
        metadata:
          name: node-b
          annotations: {fastpath.io/mac: "02:00:00:00:02:01"}
        spec: {podCIDR: 10.244.2.0/24, podCIDRs: [10.244.2.0/24]}
        status: {addresses: [{type: InternalIP, address: 192.168.56.12}]}
        ---
        apiVersion: v1
        kind: Pod
        metadata:
          name: client
          namespace: default
          annotations: {fastpath.io/mac: "02:42:0a:f4:01:0a"}
        spec: {nodeName: node-a, containers: [{name: c, image: busybox}]}
        status: {podIP: 10.244.1.10, podIPs: [{ip: 10.244.1.10}]}
        """;

    [Fact]
    public void EncapsulationMatchesTheKernel()
    {
        KernelLab.SkipUnlessAvailable("ip", "bridge", "tcpdump", "timeout");
        using var tmp = new TempFolder();
        RunKernel("encap", tmp.Path);

        var sent = KernelLab.ReadPcap(tmp.File("encap-in.pcap"));
        var kernel = KernelLab.ReadPcap(tmp.File("kernel-encap.pcap"));
        var fastpath = Replay(tmp, "default/client=" + tmp.File("encap-in.pcap"), "uplink.pcap");

        Assert.Equal(3, sent.Count);
        Assert.True(kernel.Count == sent.Count, $"the kernel emitted {kernel.Count} VXLAN packets for {sent.Count} sent");
        Assert.True(fastpath.Count == sent.Count, $"FastPath emitted {fastpath.Count} VXLAN packets for {sent.Count} sent");

        // udp, tcp syn, icmp echo: what the client sent, in order; both sides keep that order.
        (byte Proto, ushort Sport, ushort Dport, string Payload)[] expected =
            [(17, 40000, 8080, "fastpath-kd-udp-payload"), (6, 40001, 8080, ""), (1, 0, 0, "fastpath-kd-icmp")];
        for (int i = 0; i < sent.Count; i++)
        {
            var k = OuterFrame.Parse(kernel[i]);
            var f = OuterFrame.Parse(fastpath[i]);
            output.WriteLine($"packet {i + 1}: field            kernel / fastpath");
            output.WriteLine($"  outer MACs        {k.Dst}<-{k.Src} / {f.Dst}<-{f.Src}");
            output.WriteLine($"  outer IP          {k.IpSrc}->{k.IpDst} ttl {k.Ttl} df {k.DontFragment} id {k.Id:x4} / {f.IpSrc}->{f.IpDst} ttl {f.Ttl} df {f.DontFragment} id {f.Id:x4}");
            output.WriteLine($"  outer UDP         {k.UdpSport}->{k.UdpDport} csum {k.UdpChecksum:x4} / {f.UdpSport}->{f.UdpDport} csum {f.UdpChecksum:x4}");
            output.WriteLine($"  VXLAN             flags {k.VxlanFlags:x8} vni {k.Vni} / flags {f.VxlanFlags:x8} vni {f.Vni}");

            // Fields that must match the kernel.
            Assert.Equal(NodeBMac, k.Dst);
            Assert.Equal(NodeAMac, k.Src);
            Assert.Equal(k.Dst, f.Dst);
            Assert.Equal(k.Src, f.Src);
            Assert.Equal(k.EtherType, f.EtherType);
            Assert.Equal(0x45, k.VersionIhl);
            Assert.Equal(k.VersionIhl, f.VersionIhl);
            Assert.Equal(k.Tos, f.Tos);
            Assert.Equal(k.TotalLength, f.TotalLength);
            Assert.Equal(k.DontFragment, f.DontFragment);
            Assert.False(k.DontFragment, "kernel default df unset: outer DF clear");
            Assert.Equal(0, k.FragmentOffset);
            Assert.Equal(k.FragmentOffset, f.FragmentOffset);
            Assert.Equal(64, k.Ttl);
            Assert.Equal(k.Ttl, f.Ttl);
            Assert.Equal(17, k.Protocol);
            Assert.Equal(k.Protocol, f.Protocol);
            Assert.Equal("192.168.56.11", k.IpSrc);
            Assert.Equal("192.168.56.12", k.IpDst);
            Assert.Equal(k.IpSrc, f.IpSrc);
            Assert.Equal(k.IpDst, f.IpDst);
            Assert.Equal(VxlanPort, k.UdpDport);
            Assert.Equal(k.UdpDport, f.UdpDport);
            Assert.Equal(k.UdpLength, f.UdpLength);
            Assert.Equal(0x0800_0000u, k.VxlanFlags);
            Assert.Equal(k.VxlanFlags, f.VxlanFlags);
            Assert.Equal(1u, k.Vni);
            Assert.Equal(k.Vni, f.Vni);

            // Allowed to differ (see the table above), but each must be valid on its own.
            Assert.True(k.IpHeaderChecksumValid, $"packet {i + 1}: kernel outer IPv4 checksum");
            Assert.True(f.IpHeaderChecksumValid, $"packet {i + 1}: FastPath outer IPv4 checksum");
            Assert.InRange(k.UdpSport, 49152, 65535);
            Assert.InRange(f.UdpSport, 49152, 65535);
            Assert.True(k.UdpChecksum == 0 || k.UdpChecksumValid || k.UdpChecksumIsPartialSeed,
                $"packet {i + 1}: kernel outer UDP checksum {k.UdpChecksum:x4} is neither 0, valid nor the CHECKSUM_PARTIAL seed");
            // Outer UDP checksum: the kernel computes one (Flannel's defaults, the device shows "udpcsum"; captured on a
            // veth as the offload seed), and so does FastPath: it must be present and verify.
            Assert.True(f.UdpChecksum != 0 && f.UdpChecksumValid, $"packet {i + 1}: FastPath outer UDP checksum {f.UdpChecksum:x4}");

            // The inner frame: the kernel's and FastPath's must be identical, and carry the pod's packet with TTL - 1.
            var inner = InnerPacket.Parse(k.Inner);
            Assert.Equal(Convert.ToHexString(k.Inner), Convert.ToHexString(f.Inner));
            Assert.Equal(NodeBMac, inner.Dst); // the neighbour Flannel installs for 10.244.2.0: node-b's VTEP MAC
            Assert.Equal(NodeAMac, inner.Src); // flannel.1's own MAC: node-a's
            Assert.Equal("10.244.1.10", inner.IpSrc);
            Assert.Equal("10.244.2.11", inner.IpDst);
            Assert.Equal(expected[i].Proto, inner.Protocol);
            Assert.Equal(63, inner.Ttl);
            Assert.Equal(expected[i].Sport, inner.Sport);
            Assert.Equal(expected[i].Dport, inner.Dport);
            Assert.Equal(expected[i].Payload, Encoding.ASCII.GetString(inner.Payload));
            Assert.True(TestFrames.ChecksumsValid(k.Inner), $"packet {i + 1}: kernel inner checksums");
            Assert.True(TestFrames.ChecksumsValid(f.Inner), $"packet {i + 1}: FastPath inner checksums");
            // Nothing but TTL and the header checksum changed against what the pod sent.
            var original = InnerPacket.Parse(sent[i]);
            Assert.Equal(64, original.Ttl);
            Assert.Equal(Convert.ToHexString(original.Transport), Convert.ToHexString(inner.Transport));
        }
    }

    [Fact]
    public void DecapsulationMatchesTheKernel()
    {
        KernelLab.SkipUnlessAvailable("ip", "bridge", "tcpdump", "timeout");
        using var tmp = new TempFolder();
        RunKernel("decap", tmp.Path);

        var sent = KernelLab.ReadPcap(tmp.File("decap-in.pcap"));
        var kernel = KernelLab.ReadPcap(tmp.File("kernel-decap.pcap"));
        var fastpath = Replay(tmp, "uplink=" + tmp.File("decap-in.pcap"), "default_client.pcap");

        Assert.Single(sent);
        Assert.True(kernel.Count == 1, $"the kernel delivered {kernel.Count} packets to the pod for 1 VXLAN packet");
        Assert.True(fastpath.Count == 1, $"FastPath delivered {fastpath.Count} packets to the pod for 1 VXLAN packet");

        var k = InnerPacket.Parse(kernel[0]);
        var f = InnerPacket.Parse(fastpath[0]);
        output.WriteLine($"delivered: kernel {k.Src}->{k.Dst} {k.IpSrc}->{k.IpDst} ttl {k.Ttl} / FastPath {f.Src}->{f.Dst} {f.IpSrc}->{f.IpDst} ttl {f.Ttl}");

        Assert.Equal(PodMac, k.Dst);
        Assert.Equal(GatewayMac, k.Src); // the host side of the pod veth, Calico's ee:ee:ee:ee:ee:ee
        Assert.Equal(k.Dst, f.Dst);
        Assert.Equal(k.Src, f.Src);
        Assert.Equal("10.244.2.11", k.IpSrc);
        Assert.Equal("10.244.1.10", k.IpDst);
        Assert.Equal(k.IpSrc, f.IpSrc);
        Assert.Equal(k.IpDst, f.IpDst);
        Assert.Equal(17, k.Protocol);
        Assert.Equal(k.Protocol, f.Protocol);
        Assert.Equal(63, k.Ttl); // node-b's forwarding is not modelled: the inner packet was sent with 64
        Assert.Equal(k.Ttl, f.Ttl);
        Assert.Equal((ushort)8080, k.Sport);
        Assert.Equal((ushort)40000, k.Dport);
        Assert.Equal(k.Sport, f.Sport);
        Assert.Equal(k.Dport, f.Dport);
        Assert.Equal("fastpath-kd-reply", Encoding.ASCII.GetString(k.Payload));
        Assert.Equal(Convert.ToHexString(k.Payload), Convert.ToHexString(f.Payload));
        Assert.True(TestFrames.ChecksumsValid(kernel[0]), "kernel-delivered checksums");
        Assert.True(TestFrames.ChecksumsValid(fastpath[0]), "FastPath-delivered checksums");
        Assert.Equal(Convert.ToHexString(kernel[0]), Convert.ToHexString(fastpath[0]));
    }


    /// <summary>Builds the namespaces, runs one direction through the kernel, and always deletes the namespaces.</summary>
    private void RunKernel(string direction, string dir)
    {
        // A crashed earlier run (killed test host) leaves its namespaces behind; they are ours by prefix.
        Script("stale");
        // The script names the namespaces fpkd-<id>-client/-node/-underlay.
        string id = Convert.ToHexString(RandomNumberGenerator.GetBytes(3)).ToLowerInvariant();
        try
        {
            Script("up", id);
            Script(direction, id, dir);
        }
        finally
        {
            Script("down", id);
        }
    }

    private void Script(params string[] args)
    {
        var (exit, text) = KernelLab.Run("/bin/bash", [Topology, .. args], TimeSpan.FromSeconds(60));
        if (text.Length > 0) output.WriteLine($"vxlan-topology.sh {string.Join(' ', args)}: {text.Trim()}");
        Assert.True(exit == 0, $"vxlan-topology.sh {string.Join(' ', args)} exited {exit}: {text}");
    }

    private static List<byte[]> Replay(TempFolder tmp, string capture, string portFile)
    {
        string cluster = tmp.File("cluster");
        Directory.CreateDirectory(cluster);
        File.WriteAllText(Path.Combine(cluster, "cluster.yaml"), ClusterYaml);
        string outDir = tmp.File("fastpath-out");
        var stderr = new StringWriter();
        int exit = FastPath.Program.Run(["replay", capture, "--cluster", cluster, "--node", "node-a", "--out", outDir, "--quiet"], TextWriter.Null, stderr);
        Assert.True(exit == 0, stderr.ToString());
        string drops = File.ReadAllText(Path.Combine(outDir, "drops.jsonl"));
        Assert.True(drops.Trim().Length == 0, $"FastPath dropped: {drops}");
        string path = Path.Combine(outDir, portFile);
        Assert.True(File.Exists(path), $"FastPath wrote no {portFile}");
        return KernelLab.ReadPcap(path);
    }


    /// <summary>Outer Ethernet/IPv4/UDP/VXLAN of an encapsulated frame (no options: both sides write IHL 5).</summary>
    private sealed record OuterFrame(string Dst, string Src, ushort EtherType, byte VersionIhl, byte Tos, ushort TotalLength,
        ushort Id, bool DontFragment, int FragmentOffset, byte Ttl, byte Protocol, bool IpHeaderChecksumValid, string IpSrc, string IpDst,
        ushort UdpSport, ushort UdpDport, ushort UdpLength, ushort UdpChecksum, bool UdpChecksumValid, bool UdpChecksumIsPartialSeed,
        uint VxlanFlags, uint Vni, byte[] Inner)
    {
        public static OuterFrame Parse(byte[] frame)
        {
            var s = frame.AsSpan();
            Assert.True(frame.Length >= 14 + 20 + 8 + 8 + 14, $"frame of {frame.Length} bytes is too short for VXLAN");
            var ip = s[14..];
            Assert.Equal(0x45, ip[0]);
            ushort total = BinaryPrimitives.ReadUInt16BigEndian(ip[2..]);
            ushort flagsFrag = BinaryPrimitives.ReadUInt16BigEndian(ip[6..]);
            var udp = ip[20..total];
            ushort udpLength = BinaryPrimitives.ReadUInt16BigEndian(udp[4..]);
            ushort udpChecksum = BinaryPrimitives.ReadUInt16BigEndian(udp[6..]);
            uint pseudo = TestFrames.PseudoSum(ip.Slice(12, 4).ToArray(), ip.Slice(16, 4).ToArray(), 17, udp.Length);
            // With CHECKSUM_PARTIAL (veth offload) the captured field holds the folded pseudo-header sum, not yet
            // complemented; the device, or here the receiving stack, completes it over the UDP bytes.
            uint folded = pseudo;
            while (folded > 0xFFFF) folded = (folded & 0xFFFF) + (folded >> 16);
            return new OuterFrame(
                KernelLab.Mac(s), KernelLab.Mac(s[6..]), BinaryPrimitives.ReadUInt16BigEndian(s[12..]), ip[0], ip[1], total,
                BinaryPrimitives.ReadUInt16BigEndian(ip[4..]), (flagsFrag & 0x4000) != 0, flagsFrag & 0x1FFF, ip[8], ip[9],
                TestFrames.SlowChecksum(ip[..20]) == 0,
                new IPAddress(ip.Slice(12, 4)).ToString(), new IPAddress(ip.Slice(16, 4)).ToString(),
                BinaryPrimitives.ReadUInt16BigEndian(udp), BinaryPrimitives.ReadUInt16BigEndian(udp[2..]), udpLength, udpChecksum,
                udpChecksum != 0 && TestFrames.SlowChecksum(udp, pseudo) == 0,
                udpChecksum == folded,
                BinaryPrimitives.ReadUInt32BigEndian(udp[8..]), BinaryPrimitives.ReadUInt32BigEndian(udp[12..]) >> 8,
                udp[16..].ToArray());
        }
    }

    /// <summary>An Ethernet/IPv4 frame carrying UDP, TCP or ICMP (no IP options in this test's traffic).</summary>
    private sealed record InnerPacket(string Dst, string Src, string IpSrc, string IpDst, byte Protocol, byte Ttl,
        ushort Sport, ushort Dport, byte[] Transport, byte[] Payload)
    {
        public static InnerPacket Parse(byte[] frame)
        {
            var s = frame.AsSpan();
            Assert.Equal(0x0800, BinaryPrimitives.ReadUInt16BigEndian(s[12..]));
            var ip = s[14..];
            int ihl = (ip[0] & 15) * 4;
            var l4 = ip[ihl..BinaryPrimitives.ReadUInt16BigEndian(ip[2..])];
            byte proto = ip[9];
            (ushort sport, ushort dport, int header) = proto switch
            {
                6 => (BinaryPrimitives.ReadUInt16BigEndian(l4), BinaryPrimitives.ReadUInt16BigEndian(l4[2..]), (l4[12] >> 4) * 4),
                17 => (BinaryPrimitives.ReadUInt16BigEndian(l4), BinaryPrimitives.ReadUInt16BigEndian(l4[2..]), 8),
                _ => ((ushort)0, (ushort)0, 8), // ICMP echo: type, code, checksum, id, sequence
            };
            return new InnerPacket(KernelLab.Mac(s), KernelLab.Mac(s[6..]), new IPAddress(ip.Slice(12, 4)).ToString(), new IPAddress(ip.Slice(16, 4)).ToString(),
                proto, ip[8], sport, dport, l4.ToArray(), l4[header..].ToArray());
        }
    }
}
