using System.Buffers.Binary;
using System.Net;
using System.Text.Json;
using FastPath.DataPlane.Ports;
using FastPath.Tests.ControlPlane.Live;
using FastPath.Tests.Support;

namespace FastPath.Tests.Replay;

/// <summary>
/// `fastpath replay --changes DIR`: cluster changes applied at capture timestamps, checked packet by packet before
/// and after each change (golden: which port, which rewritten destination, which drop).
/// </summary>
public class ReplayChangesTests
{
    private const long T0 = 1_700_000_000_000_000_000;

    [Fact]
    public void ChangesApplyAtTheirCaptureTimes()
    {
        using var tmp = new TempFolder();
        Directory.CreateDirectory(tmp.File("cluster"));
        File.WriteAllText(tmp.File("cluster/base.yaml"), ControllerHarness.Base + "\n---\n" + ControllerHarness.Slice("web-abc", "web", ControllerHarness.Ready("10.244.1.11")));
        Directory.CreateDirectory(tmp.File("changes"));
        File.WriteAllText(tmp.File("changes/1.5-move.yaml"), ControllerHarness.Slice("web-abc", "web", ControllerHarness.Ready("10.244.1.12")));
        File.WriteAllText(tmp.File("changes/2.5-web.delete.yaml"), "apiVersion: v1\nkind: Service\nmetadata: {name: web}\n");
        File.WriteAllText(tmp.File("changes/3.5-bad.yaml"), "apiVersion: v1\nkind: Service\nmetadata: {name: web}\nspec: {clusterIP: 10.96.0.300, ports: [{port: 53, protocol: UDP}]}\n");
        File.WriteAllText(tmp.File("changes/4.5-web-1.delete.yaml"), "apiVersion: v1\nkind: Pod\nmetadata: {name: web-1}\n");

        // One UDP flow to the Service, a packet a second, then one to web-1's own address.
        var dns = ControllerHarness.ClientFrame(17, "10.96.0.10", TestFrames.Udp(5000, 53));
        using (var w = new PcapWriter(tmp.File("in.pcap"), nanosecond: true))
        {
            for (int t = 0; t < 5; t++) w.Write(dns, T0 + t * 1_000_000_000L);
            w.Write(ControllerHarness.ClientFrame(17, "10.244.1.11", TestFrames.Udp(5000, 7)), T0 + 5_000_000_000L);
        }

        var stdout = new StringWriter();
        var stderr = new StringWriter();
        int exit = FastPath.Program.Run(["replay", tmp.File("in.pcap"), "--cluster", tmp.File("cluster"), "--node", "node-a",
            "--out", tmp.File("out"), "--changes", tmp.File("changes")], stdout, stderr);
        Assert.True(exit == 0, stderr.ToString());

        // t=0, 1: web-1. 1.5 s: the slice moves to web-2 and the UDP flow follows at once (t=2).
        Assert.Equal([(T0, "10.244.1.11", 5353), (T0 + 1_000_000_000, "10.244.1.11", 5353)], Packets(tmp.File("out/default_web-1.pcap")));
        Assert.Equal([(T0 + 2_000_000_000, "10.244.1.12", 5353)], Packets(tmp.File("out/default_web-2.pcap")));
        // 2.5 s: Service deleted → t=3 and t=4 hit an unreachable service-CIDR address (the bad re-add at 3.5 s is
        // rejected); 4.5 s: web-1 deleted → its address is unused (t=5).
        var drops = File.ReadAllLines(tmp.File("out/drops.jsonl")).Select(l => JsonDocument.Parse(l).RootElement)
            .Select(d => (d.GetProperty("packet").GetInt32(), d.GetProperty("reason").GetString())).ToList();
        Assert.Equal([(4, "no-route"), (5, "no-route"), (6, "no-route")], drops);
        Assert.Contains("Service default/web: spec.clusterIP: \"10.96.0.300\" is not an IP address", stderr.ToString());
        Assert.Contains("at packet 3: " + tmp.File("changes/1.5-move.yaml"), stderr.ToString());

        using var summary = JsonDocument.Parse(File.ReadAllText(tmp.File("out/summary.json")));
        var web1 = summary.RootElement.GetProperty("ports").GetProperty("default/web-1");
        Assert.Equal((2, true), (web1.GetProperty("tx_packets").GetInt64(), web1.GetProperty("removed").GetBoolean())); // counters outlive the pod
        // The initial state and the three applied changes were compiled and published (the rejected one never was).
        var controlPlane = summary.RootElement.GetProperty("control_plane");
        Assert.Equal(4, controlPlane.GetProperty("compile_seconds").GetProperty("count").GetInt64());
        Assert.Equal(4, controlPlane.GetProperty("publish_seconds").GetProperty("count").GetInt64());
    }

    [Fact]
    public void ABadlyNamedChangeFile_StopsBeforeForwarding()
    {
        using var tmp = new TempFolder();
        Directory.CreateDirectory(tmp.File("changes"));
        File.WriteAllText(tmp.File("changes/later.yaml"), "apiVersion: v1\nkind: Namespace\nmetadata: {name: x}\n");
        var stderr = new StringWriter();
        int exit = FastPath.Program.Run(["replay", Path.Combine(RepositoryFiles.Root, "pcaps", "demo", "demo.pcapng"), "--cluster",
            Path.Combine(RepositoryFiles.Root, "pcaps", "demo", "cluster"), "--node", "node-a", "--out", tmp.File("out"), "--changes", tmp.File("changes")],
            new StringWriter(), stderr);
        Assert.Equal(2, exit);
        Assert.Equal($"fastpath replay: {tmp.File("changes/later.yaml")}: a change file is named <seconds>-<name>.yaml (e.g. 2.5-scale-down.yaml)", stderr.ToString().Trim());
    }

    /// <summary>(timestamp, IPv4 destination, destination port) of every packet of a nanosecond pcap the replay wrote.</summary>
    private static List<(long, string, int)> Packets(string pcap)
    {
        var bytes = File.ReadAllBytes(pcap);
        var packets = new List<(long, string, int)>();
        for (int at = 24; at < bytes.Length;)
        {
            long ts = BinaryPrimitives.ReadUInt32LittleEndian(bytes.AsSpan(at)) * 1_000_000_000L + BinaryPrimitives.ReadUInt32LittleEndian(bytes.AsSpan(at + 4));
            int length = (int)BinaryPrimitives.ReadUInt32LittleEndian(bytes.AsSpan(at + 8));
            var frame = bytes.AsSpan(at + 16, length);
            packets.Add((ts, new IPAddress(frame.Slice(30, 4)).ToString(), BinaryPrimitives.ReadUInt16BigEndian(frame[36..])));
            at += 16 + length;
        }
        return packets;
    }
}
