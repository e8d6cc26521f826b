using FastPath.DataPlane.Conntrack;
using FastPath.DataPlane.Nat;
using FastPath.DataPlane.Packets;
using FastPath.DataPlane.Pipeline;
using static FastPath.DataPlane.Conntrack.ConntrackState;
using Chunk = FastPath.DataPlane.Packets.SctpPacket.ChunkSet;

namespace FastPath.Tests.Conntrack;

/// <summary>
/// SCTP: CRC32c against published vectors and scapy's bytes, chunk walking, the conntrack state machine against
/// Linux's sctp_conntracks table (nf_conntrack_proto_sctp.c) with its timeouts, and NAT recomputing the CRC.
/// </summary>
public class SctpTests
{
    private static IpAddr Ip(string s) => IpAddr.TryParse(s, out var ip) ? ip : throw new ArgumentException(s);

    // scapy: IP()/SCTP(sport=5000, dport=3868, tag=0)/SCTPChunkInit(init_tag=0x1234, a_rwnd=65535, n_out_streams=10,
    // n_in_streams=10, init_tsn=1), bytes after the IPv4 header (checksum d90cff99 computed by scapy).
    private static readonly byte[] Init = Convert.FromHexString("13880f1c00000000d90cff9901000014000012340000ffff000a000a00000001");
    // scapy: IPv6()/SCTP(sport=1, dport=2, tag=7)/SCTPChunkData(data=b"hello fastpath sctp")
    private static readonly byte[] Data = Convert.FromHexString("0001000200000007f2b6061b0000002300000000000000000000000068656c6c6f206661737470617468207363747000");

    [Fact]
    public void Crc32cMatchesRfc3720Vectors()
    {
        // RFC 3720 §B.4: 32 bytes of zeros → 0x8A9136AA; of 0xFF → 0x62A8AB43; 0..31 → 0x46DD794E.
        Assert.Equal(0x8A9136AAu, ~SctpPacket.Crc32c(~0u, new byte[32]));
        Assert.Equal(0x62A8AB43u, ~SctpPacket.Crc32c(~0u, Enumerable.Repeat((byte)0xFF, 32).ToArray()));
        Assert.Equal(0x46DD794Eu, ~SctpPacket.Crc32c(~0u, Enumerable.Range(0, 32).Select(i => (byte)i).ToArray()));
    }

    [Theory]
    [MemberData(nameof(ScapyPackets))]
    public void ChecksumEqualsScapys(byte[] packet)
    {
        Assert.True(SctpPacket.ChecksumValid(packet));
        var copy = (byte[])packet.Clone();
        copy[8] ^= 1;
        Assert.False(SctpPacket.ChecksumValid(copy));
        SctpPacket.WriteChecksum(copy);
        Assert.Equal(packet, copy);
    }

    public static TheoryData<byte[]> ScapyPackets => new() { Init, Data };

    [Fact]
    public void ChunksAreWalkedUntilTheEndOrABadLength()
    {
        Assert.Equal(Chunk.Init, SctpPacket.Chunks(Init));
        Assert.Equal(Chunk.None, SctpPacket.Chunks(Data));
        // COOKIE ECHO (len 8) bundled with DATA (len 17 → padded 20), then ABORT
        byte[] bundle = [.. new byte[12], 10, 0, 0, 8, 1, 2, 3, 4, 0, 3, 0, 17, .. new byte[13], 0, 0, 0, 6, 0, 0, 4];
        Assert.Equal(Chunk.CookieEcho | Chunk.Abort, SctpPacket.Chunks(bundle));
        // a chunk claiming more than is there stops the walk
        byte[] cut = [.. new byte[12], 1, 0, 0, 40, 0, 0, 0, 0];
        Assert.Equal(Chunk.None, SctpPacket.Chunks(cut));
    }

    private static (ConntrackTable Table, int Index) Association()
    {
        var t = new ConntrackTable(8, seed: 1);
        var k = new FlowKey(IpAddr.FromV4(0x0A000001), IpAddr.FromV4(0x0A000002), 5000, 3868, IpProtocol.Sctp);
        return (t, t.Insert(k, k.Reverse(), 0));
    }

    private static void Step(ConntrackTable t, int i, bool reply, Chunk chunks, ConntrackState expected, long now = 0)
    {
        t.Observe(i, reply, (ushort)chunks, 60, now);
        Assert.Equal(expected, t[i].State);
        Assert.Equal(now + t.Timeouts.Nanoseconds(expected), t[i].Expires);
    }

    [Fact]
    public void FourWayHandshakeAndShutdownFollowLinux()
    {
        var (t, i) = Association();
        Assert.Equal(SctpNew, t[i].State);
        Step(t, i, false, Chunk.Init, SctpClosed);                 // INIT: sNO → sCL (10 s)
        Step(t, i, true, Chunk.InitAck, SctpCookieWait);           // reply INIT ACK: sCL → sCW (3 s)
        Step(t, i, false, Chunk.CookieEcho, SctpCookieEchoed);     // COOKIE ECHO (+DATA): sCW → sCE
        Assert.False(t[i].Assured);
        Step(t, i, true, Chunk.CookieAck, SctpEstablished);        // reply COOKIE ACK: sCE → sES, assured (210 s)
        Assert.True(t[i].Assured);
        Assert.Equal(TimeSpan.FromSeconds(210).Ticks * 100, t.Timeouts.Nanoseconds(SctpEstablished));
        Step(t, i, false, Chunk.None, SctpEstablished);            // DATA / SACK change nothing
        Step(t, i, false, Chunk.Shutdown, SctpShutdownSent);       // sES → sSS
        Step(t, i, true, Chunk.ShutdownAck, SctpShutdownAckSent);  // reply SHUTDOWN ACK: sSS → sSA
        Step(t, i, false, Chunk.ShutdownComplete, SctpClosed);     // SHUTDOWN COMPLETE: sSA → sCL
    }

    [Fact]
    public void ServerShutdownAbortAndHeartbeatPaths()
    {
        var (t, i) = Association();
        Step(t, i, false, Chunk.Init, SctpClosed);
        Step(t, i, true, Chunk.InitAck, SctpCookieWait);
        Step(t, i, false, Chunk.CookieEcho, SctpCookieEchoed);
        Step(t, i, true, Chunk.CookieAck, SctpEstablished);
        Step(t, i, true, Chunk.Shutdown, SctpShutdownRecd);        // reply SHUTDOWN: sES → sSR
        Step(t, i, false, Chunk.ShutdownAck, SctpShutdownAckSent); // sSR → sSA
        Step(t, i, true, Chunk.ShutdownComplete, SctpClosed);

        (t, i) = Association();
        Step(t, i, false, Chunk.Init, SctpClosed);
        Step(t, i, true, Chunk.Abort, SctpClosed);                 // ABORT from anywhere: sCL

        // a secondary path first seen by its HEARTBEAT: sHS (30 s), the reply's HEARTBEAT ACK establishes it
        (t, i) = Association();
        Step(t, i, false, Chunk.Heartbeat, SctpHeartbeatSent);
        Step(t, i, true, Chunk.HeartbeatAck, SctpEstablished);
        Assert.True(t[i].Assured);

        // an INIT in the reply direction of a new entry is invalid in Linux (sIV): the state stays
        (t, i) = Association();
        Step(t, i, false, Chunk.None, SctpClosed);                 // DATA picked up mid-association (see remarks)
        Step(t, i, true, Chunk.Init, SctpClosed);
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public void NatRewritesPortsAndRecomputesTheCrc(bool v6)
    {
        var spec = v6
            ? (Src: Ip("fd00::a"), Dst: Ip("fd00::60"), NewDst: Ip("fd00::b"))
            : (Src: Ip("10.244.1.10"), Dst: Ip("10.96.0.60"), NewDst: Ip("10.244.1.11"));
        int l3Len = v6 ? Ipv6Header.Length : Ipv4Header.MinLength;
        var frame = new byte[EthernetHeader.Length + l3Len + Init.Length];
        EthernetHeader.Write(frame, MacAddress.Zero, MacAddress.Zero, v6 ? EtherType.Ipv6 : EtherType.Ipv4);
        var ip = frame.AsSpan(EthernetHeader.Length);
        if (v6)
        {
            ip[0] = 0x60;
            System.Buffers.Binary.BinaryPrimitives.WriteUInt16BigEndian(ip[4..], (ushort)Init.Length);
            ip[6] = IpProtocol.Sctp;
            ip[7] = 64;
            System.Buffers.Binary.BinaryPrimitives.WriteUInt128BigEndian(ip[8..], spec.Src.Value);
            System.Buffers.Binary.BinaryPrimitives.WriteUInt128BigEndian(ip[24..], spec.Dst.Value);
        }
        else
        {
            ip[0] = 0x45;
            System.Buffers.Binary.BinaryPrimitives.WriteUInt16BigEndian(ip[2..], (ushort)(l3Len + Init.Length));
            ip[8] = 64;
            ip[9] = IpProtocol.Sctp;
            System.Buffers.Binary.BinaryPrimitives.WriteUInt32BigEndian(ip[12..], spec.Src.V4);
            System.Buffers.Binary.BinaryPrimitives.WriteUInt32BigEndian(ip[16..], spec.Dst.V4);
            System.Buffers.Binary.BinaryPrimitives.WriteUInt16BigEndian(ip[10..], Checksum.Ipv4Header(ip[..l3Len]));
        }
        Init.CopyTo(ip[l3Len..]);
        var m = new PacketMeta { Offset = 0, Length = frame.Length };
        Assert.Equal(DataPlane.Telemetry.DropReason.None, PacketParser.Parse(frame, ref m));

        // address only: the CRC has no pseudo-header, so it stays as it was
        Assert.True(NatRewriter.RewriteDestination(frame, ref m, spec.NewDst, 3868));
        Assert.Equal(Init[8..12], frame[^Init.Length..][8..12]);
        // port: recomputed, and equal to a CRC computed from scratch
        Assert.True(NatRewriter.RewriteDestination(frame, ref m, spec.NewDst, 3869));
        var sctp = frame.AsSpan(frame.Length - Init.Length);
        Assert.Equal(3869, System.Buffers.Binary.BinaryPrimitives.ReadUInt16BigEndian(sctp[2..]));
        Assert.Equal(3869, m.DestinationPort);
        Assert.True(SctpPacket.ChecksumValid(sctp));
        if (!v6) Assert.True(Checksum.Ipv4HeaderValid(frame.AsSpan(EthernetHeader.Length, l3Len)));
        Assert.Equal((ushort)Chunk.Init, ConntrackNat.StateInput(frame, in m));
    }
}
