using System.Buffers.Binary;
using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics.Arm;
using System.Runtime.Intrinsics.X86;

namespace FastPath.DataPlane.Packets;

/// <summary>
/// SCTP's common header and chunks (RFC 9260 §3): ports at 0 and 2, verification tag at 4, the CRC32c checksum at 8,
/// then chunks of (type, flags, length) padded to 4 bytes. Unlike TCP and UDP the checksum is a CRC32c over the whole
/// packet without a pseudo-header (RFC 9260 §6.8, Appendix A), so an address change leaves it valid and a port change
/// needs it recomputed (there is no incremental update of a CRC over a changed field that is cheaper than that).
/// </summary>
[SkipLocalsInit]
public static class SctpPacket
{
    public const int CommonHeaderLength = 12;
    public const int ChecksumOffset = 8;

    // Chunk types (RFC 9260 §3.2).
    public const byte Data = 0, Init = 1, InitAck = 2, Sack = 3, Heartbeat = 4, HeartbeatAck = 5, Abort = 6, Shutdown = 7,
        ShutdownAck = 8, Error = 9, CookieEcho = 10, CookieAck = 11, ShutdownComplete = 14;

    /// <summary>
    /// The control chunks conntrack's SCTP state machine reads, as one bit each (<see cref="Chunks"/>): DATA, SACK and
    /// ERROR change no state (Linux's sctp_new_state returns the current state for them).
    /// </summary>
    [Flags]
    public enum ChunkSet : ushort
    {
        None = 0,
        Init = 1, InitAck = 2, CookieEcho = 4, CookieAck = 8, Shutdown = 16, ShutdownAck = 32, ShutdownComplete = 64,
        Abort = 128, Heartbeat = 256, HeartbeatAck = 512,
    }

    /// <summary>
    /// The control chunks of an SCTP packet (<paramref name="sctp"/> from its common header to the end of the IP
    /// payload), walking every chunk as Linux's nf_conntrack_proto_sctp does; a chunk whose length runs past the end
    /// or is shorter than its header stops the walk.
    /// </summary>
    public static ChunkSet Chunks(ReadOnlySpan<byte> sctp)
    {
        var set = ChunkSet.None;
        int at = CommonHeaderLength;
        while (at + 4 <= sctp.Length)
        {
            int length = BinaryPrimitives.ReadUInt16BigEndian(sctp[(at + 2)..]);
            if (length < 4 || at + length > sctp.Length) break;
            set |= sctp[at] switch
            {
                Init => ChunkSet.Init,
                InitAck => ChunkSet.InitAck,
                CookieEcho => ChunkSet.CookieEcho,
                CookieAck => ChunkSet.CookieAck,
                Shutdown => ChunkSet.Shutdown,
                ShutdownAck => ChunkSet.ShutdownAck,
                ShutdownComplete => ChunkSet.ShutdownComplete,
                Abort => ChunkSet.Abort,
                Heartbeat => ChunkSet.Heartbeat,
                HeartbeatAck => ChunkSet.HeartbeatAck,
                _ => ChunkSet.None,
            };
            at += (length + 3) & ~3;
        }
        return set;
    }

    /// <summary>
    /// The checksum field's value for <paramref name="sctp"/> (RFC 9260 Appendix A): CRC32c (Castagnoli, reflected,
    /// initial and final value all ones) over the packet with the checksum field taken as zero, stored least
    /// significant byte first, as Linux's sctp_compute_cksum (cpu_to_le32 of ~crc32c) does.
    /// </summary>
    public static uint ComputeChecksum(ReadOnlySpan<byte> sctp)
    {
        uint crc = Crc32c(0xFFFF_FFFF, sctp[..ChecksumOffset]);
        crc = Crc32c(crc, [0, 0, 0, 0]);
        crc = Crc32c(crc, sctp[(ChecksumOffset + 4)..]);
        return ~crc;
    }

    /// <summary>Writes <see cref="ComputeChecksum"/> into the packet.</summary>
    public static void WriteChecksum(Span<byte> sctp) =>
        BinaryPrimitives.WriteUInt32LittleEndian(sctp[ChecksumOffset..], ComputeChecksum(sctp));

    /// <summary>Whether the packet's checksum field holds its CRC32c.</summary>
    public static bool ChecksumValid(ReadOnlySpan<byte> sctp) =>
        sctp.Length >= CommonHeaderLength && BinaryPrimitives.ReadUInt32LittleEndian(sctp[ChecksumOffset..]) == ComputeChecksum(sctp);

    /// <summary>CRC32c update without the final inversion: the CPU's crc32 instruction (SSE4.2 / ARMv8 CRC) where
    /// present, 8 bytes per step, else a table.</summary>
    public static uint Crc32c(uint crc, ReadOnlySpan<byte> data)
    {
        int i = 0;
        if (Sse42.X64.IsSupported)
        {
            ulong c = crc;
            for (; i + 8 <= data.Length; i += 8) c = Sse42.X64.Crc32(c, BinaryPrimitives.ReadUInt64LittleEndian(data[i..]));
            crc = (uint)c;
            for (; i < data.Length; i++) crc = Sse42.Crc32(crc, data[i]);
            return crc;
        }
        if (Crc32.Arm64.IsSupported)
        {
            for (; i + 8 <= data.Length; i += 8) crc = Crc32.Arm64.ComputeCrc32C(crc, BinaryPrimitives.ReadUInt64LittleEndian(data[i..]));
            for (; i < data.Length; i++) crc = Crc32.ComputeCrc32C(crc, data[i]);
            return crc;
        }
        var table = Table;
        for (; i < data.Length; i++) crc = table[(byte)(crc ^ data[i])] ^ (crc >> 8);
        return crc;
    }

    private static readonly uint[] Table = BuildTable();

    private static uint[] BuildTable()
    {
        var t = new uint[256];
        for (uint n = 0; n < 256; n++)
        {
            uint c = n;
            for (int k = 0; k < 8; k++) c = (c & 1) != 0 ? 0x82F6_3B78 ^ (c >> 1) : c >> 1; // reflected 0x1EDC6F41
            t[n] = c;
        }
        return t;
    }
}
