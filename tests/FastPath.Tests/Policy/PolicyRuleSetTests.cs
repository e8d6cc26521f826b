using CsCheck;
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

    /// <summary>
    /// Random overlapping rules against a linear scan of them, in IPv4 (the sweep's events sort packed into ulongs, a
    /// range may end at 255.255.255.255) and in IPv6 (they sort as UInt128 with their changes).
    /// </summary>
    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public void RandomRules_AllowWhatALinearScanAllows(bool v4) =>
        Gen.Int.Sample(seed =>
        {
            var r = new Random(seed);
            UInt128 origin = v4 ? IpAddr.FromV4(0xFFFF_FF00u).Value : A("fd00::ff00");
            ProtocolPortRange[][] lists = [.. Enumerable.Range(0, r.Next(1, 6)).Select(_ => Enumerable.Range(0, r.Next(0, 3))
                .Select(_ => r.Next(3) switch
                {
                    0 => ProtocolPortRange.AnyPort(IpProtocol.Udp),
                    _ => ProtocolPortRange.Of(IpProtocol.Tcp, (ushort)r.Next(78, 82), (ushort)r.Next(82, 85)),
                }).ToArray())];
            var rules = new List<PeerRule>();
            for (int k = r.Next(0, 40); k > 0; k--)
            {
                int first = r.Next(256), last = r.Next(4) == 0 ? 255 : Math.Min(255, first + r.Next(3) * r.Next(20));
                rules.Add(new PeerRule(origin + (UInt128)first, origin + (UInt128)last, lists[r.Next(lists.Length)]));
            }
            var set = new PolicyRuleSet(rules, [0]);
            for (int offset = -2; offset < 258; offset++)
            {
                var peer = new IpAddr(offset < 0 ? origin - (UInt128)(-offset) : origin + (UInt128)offset);
                foreach (uint key in (uint[])[PolicyRuleSet.Key(IpProtocol.Tcp, 80), PolicyRuleSet.Key(IpProtocol.Tcp, 83), PolicyRuleSet.Key(IpProtocol.Udp, 53)])
                {
                    bool want = rules.Any(rule => rule.First <= peer.Value && peer.Value <= rule.Last && rule.Ports.Any(p => p.First <= key && key <= p.Last));
                    Assert.True(want == set.Allows(peer, key), $"seed {seed}: {peer} key {key}: scan {want}");
                }
            }
        }, iter: 200);
}
