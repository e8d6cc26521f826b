using System.Buffers.Binary;
using FastPath.DataPlane.Pipeline;
using FastPath.DataPlane.Policy;
using FastPath.DataPlane.Telemetry;
using FastPath.Tests.Support;
using static FastPath.Tests.Support.TestFrames;

namespace FastPath.Tests.Policy;

[Collection(AllocationCollection.Name)]
public class PolicyAllocationTests
{
    /// <summary>
    /// The policy path allocates nothing over ≥ 1M packets: new flows allowed (a plain conntrack entry each, the
    /// table churning by eviction), new flows denied and counted, and established flows in both directions.
    /// </summary>
    [Fact]
    public void OneMillionPolicyVerdictsAllocateNothing()
    {
        const string Policy = """
            apiVersion: networking.k8s.io/v1
            kind: NetworkPolicy
            metadata: {name: only-from-b, namespace: x}
            spec:
              podSelector: {matchLabels: {pod: a}}
              ingress: [{from: [{podSelector: {matchLabels: {pod: b}}}, {ipBlock: {cidr: 10.244.2.0/24, except: [10.244.2.12/32]}}], ports: [{port: 80, endPort: 90}]}]
            """;
        using var cluster = new PolicyCluster(Policy);
        Assert.Equal(DropReason.None, cluster.Flow("x/b", "x/a", false, "TCP", 80, 1000)); // the established flow
        var engine = cluster.EngineOf("node-a");
        short a = cluster.PortOf("x/a"), b = cluster.PortOf("x/b"), c = cluster.PortOf("x/c");
        byte[][] frames =
        [
            Ethernet(GatewayMac, Mac(PolicyCluster.MacOf("x/b")), 0x0800, Ipv4("10.244.1.11", "10.244.1.10", 6, Tcp(2000, 80))),     // new, allowed
            Ethernet(GatewayMac, Mac(PolicyCluster.MacOf("x/c")), 0x0800, Ipv4("10.244.1.12", "10.244.1.10", 6, Tcp(2000, 80))),     // new, denied
            Ethernet(GatewayMac, Mac(PolicyCluster.MacOf("x/b")), 0x0800, Ipv4("10.244.1.11", "10.244.1.10", 6, Tcp(1000, 80, 0x10))), // established
            Ethernet(GatewayMac, Mac(PolicyCluster.MacOf("x/a")), 0x0800, Ipv4("10.244.1.10", "10.244.1.11", 6, Tcp(80, 1000, 0x10))), // its reply
        ];
        short[] ports = [b, c, b, a];
        var batch = new PacketBatch(64);
        ushort sourcePort = 2000;
        long delivered = 0;

        void RunBatches(int batches)
        {
            for (int n = 0; n < batches; n++)
            {
                for (int i = 0; i < batch.Capacity; i++)
                {
                    var f = frames[i % frames.Length];
                    f.CopyTo(batch.ReceiveArea(i));
                    if (i % frames.Length == 0) BinaryPrimitives.WriteUInt16BigEndian(batch.ReceiveArea(i)[34..], sourcePort = (ushort)(sourcePort % 60000 + 1));
                    batch.SetReceived(i, f.Length, 1_000_000_000L * 60 + n, i + 1, ports[i % frames.Length]);
                }
                batch.Count = batch.Capacity;
                engine.Process(batch);
                for (int i = 0; i < batch.Count; i++)
                    if (batch.Meta[i].EgressPort >= 0) delivered++;
            }
        }

        RunBatches(1000);
        const int packets = 1_048_576;
        long allocated = Allocations.Measure(() => RunBatches(packets / batch.Capacity));

        Assert.Equal(0, allocated);
        Assert.True(delivered >= (packets + 64_000) * 3L / 4 - 64, $"{delivered} delivered");
        Assert.Equal((packets + 64_000) / 4, engine.Policy.Denied("x/only-from-b"));
        Assert.Equal((packets + 64_000) / 4, engine.Policy.Denied(a, PolicyDirection.Ingress));
        Assert.True(engine.Conntrack!.Count > 1000);
    }
}
