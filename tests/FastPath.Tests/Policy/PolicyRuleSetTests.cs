using FastPath.DataPlane.Packets;
using FastPath.DataPlane.Policy;
using FastPath.Tests.Support;

namespace FastPath.Tests.Policy;

/// <summary>The compiled structure on its own: overlapping ranges unite their ports, edges of the address space hold.</summary>
public class PolicyRuleSetTests
{
    private static UInt128 A(string s) => EngineHarness.Addr(s).Value;

    [Fact]
    public void OverlappingRangesUniteTheirPorts_AndGapsAllowNothing()
    {
        var set = new PolicyRuleSet(
        [
            new PeerRule(A("10.0.0.0"), A("10.0.0.255"), [ProtocolPortRange.Of(IpProtocol.Tcp, 80, 80)]),
            new PeerRule(A("10.0.0.128"), A("10.0.1.255"), [ProtocolPortRange.Of(IpProtocol.Tcp, 81, 90), ProtocolPortRange.AnyPort(IpProtocol.Udp)]),
            new PeerRule(A("10.0.0.7"), A("10.0.0.7"), []), // matches, allows nothing more
        ], [3]);
        bool Allows(string peer, byte protocol, ushort port) => set.Allows(EngineHarness.Addr(peer), PolicyRuleSet.Key(protocol, port));

        Assert.True(Allows("10.0.0.1", IpProtocol.Tcp, 80));
        Assert.False(Allows("10.0.0.1", IpProtocol.Tcp, 81));
        Assert.True(Allows("10.0.0.7", IpProtocol.Tcp, 80));
        Assert.True(Allows("10.0.0.200", IpProtocol.Tcp, 80));  // both rules: 80 and 81-90 and UDP
        Assert.True(Allows("10.0.0.200", IpProtocol.Tcp, 90));
        Assert.True(Allows("10.0.0.200", IpProtocol.Udp, 5));
        Assert.False(Allows("10.0.0.200", IpProtocol.Tcp, 91));
        Assert.False(Allows("10.0.1.1", IpProtocol.Tcp, 80));
        Assert.True(Allows("10.0.1.255", IpProtocol.Udp, 65535));
        Assert.False(Allows("10.0.2.0", IpProtocol.Udp, 53));
        Assert.False(Allows("9.255.255.255", IpProtocol.Tcp, 80));
        Assert.False(Allows("fd00::1", IpProtocol.Tcp, 80));
        Assert.Equal([3], set.Policies);
    }

    [Fact]
    public void TheWholeAddressSpaceAndNothing()
    {
        var all = new PolicyRuleSet([new PeerRule(UInt128.Zero, UInt128.MaxValue, [ProtocolPortRange.All])], [0]);
        foreach (var peer in (string[])["0.0.0.0", "255.255.255.255", "::", "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"])
            Assert.True(all.Allows(EngineHarness.Addr(peer), PolicyRuleSet.Key(IpProtocol.Icmp, 0)));
        Assert.Equal(1, all.SegmentCount);

        var none = new PolicyRuleSet([], [0]);
        Assert.False(none.Allows(EngineHarness.Addr("10.0.0.1"), PolicyRuleSet.Key(IpProtocol.Tcp, 80)));
    }
}
