using System.Buffers.Binary;
using System.Runtime.CompilerServices;
using CsCheck;
using FastPath.DataPlane.Conntrack;
using FastPath.DataPlane.Nat;
using FastPath.DataPlane.Offload;
using FastPath.DataPlane.Packets;
using FastPath.DataPlane.Pipeline;
using static FastPath.Tests.Support.TestFrames;

namespace FastPath.Tests.Nat;

/// <summary>
/// The precomputed IPv4 TCP/UDP rewrite a connection carries (<see cref="NatRewrite4"/>) against the general
/// field-by-field path (<see cref="ConntrackNat.Rewrite"/>, itself checked against rebuilt packets in
/// <see cref="NatRewriterTests"/>): the same bytes and metadata for DNAT, SNAT and both at once, zero UDP checksums
/// and partial (offloaded) checksums included.
/// </summary>
public class NatRewrite4Tests
{
    private static readonly byte[] MacA = Mac("02:00:00:00:00:0a"), MacB = Mac("02:00:00:00:00:0b");

    private static byte[] Frame(bool udp, uint src, uint dst, ushort sport, ushort dport, byte[] body, bool zeroUdp)
    {
        var l4 = (byte[])body.Clone();
        BinaryPrimitives.WriteUInt16BigEndian(l4, sport);
        BinaryPrimitives.WriteUInt16BigEndian(l4.AsSpan(2), dport);
        if (udp) BinaryPrimitives.WriteUInt16BigEndian(l4.AsSpan(4), (ushort)l4.Length);
        else l4[12] = 0x50;
        byte[] ip = Ipv4(IpAddr.FromV4(src).ToString(), IpAddr.FromV4(dst).ToString(), udp ? (byte)17 : (byte)6, l4);
        if (udp && zeroUdp) { ip[26] = 0; ip[27] = 0; }
        return Ethernet(MacA, MacB, 0x0800, ip);
    }

    [Fact]
    public void PrecomputedRewriteEqualsGeneralPath()
    {
        var gen = from udp in Gen.Bool
                  from a in Gen.UInt.Array[4]
                  from p in Gen.UShort.Array[4]
                  from sides in Gen.Int[1, 3] // 1 = source, 2 = destination, 3 = both
                  from payload in Gen.Int[0, 200]
                  from body in Gen.Byte.Array[(udp ? 8 : 20) + payload]
                  from zero in Gen.Int[0, 3]
                  from partial in Gen.Int[0, 3]
                  select (udp, a, p, sides, body, zero: zero == 0, partial: partial == 0);
        gen.Sample(t =>
        {
            var (udp, a, p, sides, body, zero, partial) = t;
            byte proto = udp ? IpProtocol.Udp : IpProtocol.Tcp;
            uint s0 = a[0] | 1, d0 = a[1] | 1;
            var from = new FlowKey(IpAddr.FromV4(s0), IpAddr.FromV4(d0), p[0], p[1], proto);
            var to = new FlowKey((sides & 1) != 0 ? IpAddr.FromV4(a[2] | 1) : from.Source, (sides & 2) != 0 ? IpAddr.FromV4(a[3] | 1) : from.Destination,
                (sides & 1) != 0 ? p[2] : p[0], (sides & 2) != 0 ? p[3] : p[1], proto);
            byte[] general = Frame(udp, s0, d0, p[0], p[1], body, zero);
            byte[] fast = (byte[])general.Clone();
            var mg = new PacketMeta();
            Assert.Equal(FastPath.DataPlane.Telemetry.DropReason.None, PacketParser.Parse(general, ref mg));
            if (partial)
            {
                mg.Offload = OffloadFlags.ChecksumPartial;
                mg.ChecksumStart = mg.L4Offset;
            }
            var mf = mg;
            Assert.True(ConntrackNat.Rewrite(general, ref mg, from, to));
            var plan = NatRewrite4.Between(from, to);
            Assert.True(plan.IsSet);
            Assert.True(plan.TryApply(fast, ref mf));
            Assert.Equal(general, fast);
            Assert.Equal(mg.SourcePort, mf.SourcePort);
            Assert.Equal(mg.DestinationPort, mf.DestinationPort);
            if (!partial && !(udp && zero))
                Assert.Equal(0, SlowChecksum(fast.AsSpan(14, 20)));
        }, iter: 3000, print: t => $"{(t.udp ? "udp" : "tcp")} sides {t.sides} zero {t.zero} partial {t.partial}");
    }

    /// <summary>ConntrackTable.PrefetchEntry brings in bytes 0–127 of an entry: the lookup's fields and both
    /// rewrites must stay there.</summary>
    [Fact]
    public void RewritesSitInTheEntrysPrefetchedBytes()
    {
        var e = new ConntrackEntry();
        ref byte start = ref Unsafe.As<ConntrackEntry, byte>(ref e);
        long reply = Unsafe.ByteOffset(ref start, ref Unsafe.As<NatRewrite4, byte>(ref e.RewriteReply));
        long tag = Unsafe.ByteOffset(ref start, ref Unsafe.As<int, byte>(ref e.NatTag));
        Assert.True(reply + Unsafe.SizeOf<NatRewrite4>() <= 128);
        Assert.True(tag < 128);
        Assert.Equal(16, Unsafe.SizeOf<NatRewrite4>());
    }

    [Fact]
    public void NoPlanForIpv6IcmpOrSctp()
    {
        Assert.True(IpAddr.TryParse("fd00::1", out var a6));
        Assert.True(IpAddr.TryParse("fd00::2", out var b6));
        var v6 = new FlowKey(a6, b6, 1, 2, IpProtocol.Tcp);
        Assert.False(NatRewrite4.Between(v6, v6.Reverse()).IsSet);
        var sctp = new FlowKey(IpAddr.FromV4(0x0A000001), IpAddr.FromV4(0x0A000002), 1, 2, IpProtocol.Sctp);
        Assert.False(NatRewrite4.Between(sctp, sctp.Reverse()).IsSet);
        var echo = new FlowKey(IpAddr.FromV4(0x0A000001), IpAddr.FromV4(0x0A000002), 7, 7, IpProtocol.Icmp, EchoKind.Request);
        Assert.False(NatRewrite4.Between(echo, echo.Reverse()).IsSet);
    }

    [Fact]
    public void TranslatedConnectionCarriesBothDirectionsRewrites()
    {
        var table = new ConntrackTable(16, seed: 1);
        var client = new FlowKey(IpAddr.FromV4(0x0A000105), IpAddr.FromV4(0x0A600014), 40000, 80, IpProtocol.Tcp);
        var reply = new FlowKey(IpAddr.FromV4(0x0A00010B), IpAddr.FromV4(0x0A000105), 8080, 40000, IpProtocol.Tcp);
        int i = table.Insert(client, reply, 0);
        Assert.True(i >= 0);
        Assert.True(table[i].RewriteOriginal.IsSet);
        Assert.True(table[i].RewriteReply.IsSet);
        Assert.Equal(NatRewrite4.Between(client, reply.Reverse()), table[i].RewriteOriginal);
        Assert.Equal(NatRewrite4.Between(reply, client.Reverse()), table[i].RewriteReply);
        var other = new FlowKey(IpAddr.FromV4(0x0A000106), IpAddr.FromV4(0x0A00010C), 40001, 80, IpProtocol.Tcp);
        int plain = table.Insert(other, other.Reverse(), 0);
        Assert.True(plain >= 0);
        Assert.False(table[plain].RewriteOriginal.IsSet);
    }
}
