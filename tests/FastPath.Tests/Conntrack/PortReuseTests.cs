using System.Buffers.Binary;
using FastPath.DataPlane.Conntrack;
using FastPath.DataPlane.Telemetry;
using FastPath.Tests.Robustness;

namespace FastPath.Tests.Conntrack;

/// <summary>
/// A client reusing its source port for a new connection to a ClusterIP while the old one is in TIME_WAIT (RFC 6191):
/// the tracked connection starts over and its packets must still be DNATed (the soak of issue 21 saw such SYNs routed
/// untranslated and dropped as no-route).
/// </summary>
public sealed class PortReuseTests
{
    [Theory]
    [InlineData(true)]  // closed with FINs: TIME_WAIT
    [InlineData(false)] // reset: CLOSE
    public void ANewSynOnAClosedServiceConnectionIsTranslatedAgain(bool fin)
    {
        var node = new FloodTests.ServiceNode(conntrackCapacity: 64);
        long now = 1000 * FloodTests.Second;
        node.Establish(40000, now);
        if (fin)
        {
            node.Run(node.H.Client, FloodTests.ServiceNode.FromClient(40000, 0x11), now += 1_000_000); // FIN-ACK
            node.Run(node.H.Web1, FloodTests.ServiceNode.FromBackend(40000, 0x11), now += 1_000_000);   // FIN-ACK
            node.Run(node.H.Client, FloodTests.ServiceNode.FromClient(40000, 0x10), now += 1_000_000); // ACK
        }
        else node.Run(node.H.Client, FloodTests.ServiceNode.FromClient(40000, 0x04), now += 1_000_000); // RST
        var table = node.Engine.Conntrack!;
        Assert.Equal(fin ? ConntrackState.TcpTimeWait : ConntrackState.TcpClose, table[0].State);

        var (drop, egress, frame) = node.Run(node.H.Client, FloodTests.ServiceNode.FromClient(40000, 0x02), now += FloodTests.Second);
        Assert.Equal((DropReason.None, node.H.Web1), (drop, egress));
        Assert.Equal(8080, BinaryPrimitives.ReadUInt16BigEndian(frame.AsSpan(36)));
        Assert.Equal(ConntrackState.TcpSynSent, table[0].State);
        node.AssertStillWorks(40000, now += FloodTests.Second); // the reply is translated back from the ClusterIP too
    }
}
