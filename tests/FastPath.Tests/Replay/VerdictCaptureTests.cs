using System.Text.Json;
using FastPath.DataPlane.Ports;
using FastPath.Tests.Support;

namespace FastPath.Tests.Replay;

/// <summary>
/// `replay --pcapng FILE`: the demo capture through the demo cluster with a deny-all policy for namespace shop (so
/// there are forwarded, dropped, policy-denied, ICMP-answered and Service packets), checked against the replay's own
/// per-port pcaps and drops.jsonl, and decoded by tshark.
/// </summary>
public class VerdictCaptureTests
{
    private static string Demo(string name) => Path.Combine(RepositoryFiles.Root, "pcaps", "demo", name);

    private static string Replay(TempFolder tmp)
    {
        Directory.CreateDirectory(tmp.File("cluster"));
        File.Copy(Demo("cluster/cluster.yaml"), tmp.File("cluster/cluster.yaml"));
        File.Copy(Path.Combine(RepositoryFiles.Root, "tests", "FastPath.Tests", "Diff", "cases", "policy-tightening", "deny-all.yaml"), tmp.File("cluster/deny-all.yaml"));
        var stderr = new StringWriter();
        int exit = FastPath.Program.Run(["replay", Demo("demo.pcapng"), "--cluster", tmp.File("cluster"), "--node", "node-a",
            "--out", tmp.File("out"), "--pcapng", tmp.File("verdicts.pcapng"), "-q"], new StringWriter(), stderr);
        Assert.True(exit == 0, stderr.ToString());
        return tmp.File("verdicts.pcapng");
    }

    /// <summary>(interface name, frame bytes) of every record, through our own reader.</summary>
    private static List<(string Interface, byte[] Frame)> Read(string path)
    {
        using var reader = new CaptureReader(path);
        var buffer = new byte[65536];
        var records = new List<(string, byte[])>();
        while (reader.TryRead(buffer, out var r)) records.Add((reader.InterfaceName(r.InterfaceIndex) ?? "", buffer[..r.Length]));
        return records;
    }

    private static List<(long Packet, string Port, string Reason)> DropsJsonl(TempFolder tmp) =>
        File.ReadAllLines(tmp.File("out/drops.jsonl")).Select(l => JsonDocument.Parse(l).RootElement)
            .Select(d => (d.GetProperty("packet").GetInt64(), d.GetProperty("port").GetString()!, d.GetProperty("reason").GetString()!)).ToList();

    [Fact]
    public void HoldsEveryEmittedPacketOnItsPort_AndEveryDroppedInputOnDrop()
    {
        using var tmp = new TempFolder();
        var records = Read(Replay(tmp));
        using (var reader = new CaptureReader(tmp.File("verdicts.pcapng")))
        {
            Assert.Equal(["uplink", "host", "default/client", "shop/web-1", "shop/web-2", "drop"],
                Enumerable.Range(0, reader.InterfaceCount).Select(i => reader.InterfaceName(i)));
        }
        // Each port's interface holds exactly that port's pcap, byte for byte and in order.
        foreach (var pcap in Directory.EnumerateFiles(tmp.File("out"), "*.pcap"))
        {
            string port = Path.GetFileNameWithoutExtension(pcap).Replace('_', '/');
            Assert.Equal(Read(pcap).Select(r => r.Frame), records.Where(r => r.Interface == port).Select(r => r.Frame));
        }
        // The drop interface holds the input packets drops.jsonl names, as they arrived.
        var input = Read(Demo("demo.pcapng"));
        Assert.Equal(DropsJsonl(tmp).Select(d => input[(int)d.Packet - 1].Frame), records.Where(r => r.Interface == "drop").Select(r => r.Frame));
    }

    [Fact]
    public void TsharkReadsItWithoutWarnings_AndItsCommentsMatchDropsJsonl()
    {
        if (!Tshark.Available) Assert.Skip("tshark is not on PATH; install it (apt-get install tshark) to check the verdict capture");
        using var tmp = new TempFolder();
        string path = Replay(tmp);
        var (rows, stderr) = Tshark.Fields(path, "frame.number", "frame.interface_name", "frame.comment");
        Assert.Equal("", stderr);
        Assert.All(rows, r => Assert.StartsWith("packet=", r[2]));

        // Every packet on the drop interface is one line of drops.jsonl, in order: same input index, port and reason.
        var comments = rows.Where(r => r[1] == "drop").Select(r => Comment(r[2])).ToList();
        Assert.Equal(DropsJsonl(tmp), comments.Select(c => (long.Parse(c["packet"]), c["ingress"], c["reason"])));
        Assert.All(comments, c => Assert.Equal("dropped", c["verdict"]));
        // Policy and Service where they apply: packet 24 is the ClusterIP flow Maglev sends to web-1, which the policy denies.
        var clusterIp = comments.Single(c => c["packet"] == "24");
        Assert.Equal(("shop/web:http", "10.244.1.11:8080", "shop/deny-all"), (clusterIp["service"], clusterIp["backend"], clusterIp["policy"]));
        // An emitted packet says where it went; a drop answered with an ICMP error says so on both interfaces.
        Assert.All(rows.Where(r => r[1] != "drop"), r => Assert.Equal(r[1], Comment(r[2])["egress"]));

        // Decoded without a warning, but for the one input the demo cuts short on purpose (dropped as malformed).
        var malformed = rows.Where(r => Comment(r[2]).GetValueOrDefault("reason") == "malformed" && r[1] == "drop").Select(r => r[0]).ToList();
        Assert.Single(malformed);
        Assert.All(Tshark.Problems(path), p => Assert.StartsWith($"frame {malformed[0]}: ", p));
    }

    private static Dictionary<string, string> Comment(string comment) =>
        comment.Split(' ').Select(kv => kv.Split('=', 2)).ToDictionary(kv => kv[0], kv => kv[1]);

    [Fact]
    public void WithTheFlowLog_BothObserversSeeEveryPacket()
    {
        using var tmp = new TempFolder();
        var stderr = new StringWriter();
        int exit = FastPath.Program.Run(["replay", Demo("demo.pcapng"), "--cluster", Demo("cluster"), "--node", "node-a", "--out", tmp.File("out"),
            "--pcapng", tmp.File("v.pcapng"), "--flow-log", tmp.File("flows.jsonl"), "-q"], new StringWriter(), stderr);
        Assert.True(exit == 0, stderr.ToString());
        var records = Read(tmp.File("v.pcapng"));
        var drops = DropsJsonl(tmp);
        Assert.Equal(drops.Count, records.Count(r => r.Interface == "drop"));
        // The flow log's drop records are the same drops, one per dropped packet.
        var flowDrops = File.ReadAllLines(tmp.File("flows.jsonl")).Select(l => JsonDocument.Parse(l).RootElement)
            .Where(e => e.GetProperty("event").GetString() == "drop").ToList();
        Assert.Equal(drops.Count, flowDrops.Count);
    }

    [Fact]
    public void AnUnwritablePath_StopsBeforeForwarding_WithOneLine()
    {
        using var tmp = new TempFolder();
        var stderr = new StringWriter();
        int exit = FastPath.Program.Run(["replay", Demo("demo.pcapng"), "--cluster", Demo("cluster"), "--node", "node-a", "--out", tmp.File("out"),
            "--pcapng", tmp.File("no/such/dir/v.pcapng")], new StringWriter(), stderr);
        Assert.Equal(2, exit);
        Assert.Single(stderr.ToString().Trim().Split('\n'));
        Assert.StartsWith($"fastpath replay: --pcapng {tmp.File("no/such/dir/v.pcapng")}: cannot create file:", stderr.ToString());
        Assert.False(File.Exists(tmp.File("out/drops.jsonl")));
    }
}
