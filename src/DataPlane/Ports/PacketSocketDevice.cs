using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;

namespace FastPath.DataPlane.Ports;

/// <summary>
/// An existing Linux interface (a pod's host-side veth, a NIC) attached through AF_PACKET: one SOCK_RAW socket per
/// queue, each with a TPACKET_V3 receive ring mmap'ed into the process (Documentation/networking/packet_mmap.rst), and
/// with several queues all of them in one PACKET_FANOUT group hashed by flow (PACKET_FANOUT_HASH, the skb flow hash,
/// which the flow dissector makes symmetric: both directions of a connection land on the same worker). The kernel
/// fills blocks of frames and hands a block over when it is full or after <see cref="RetireTimeoutMs"/>; a read copies
/// one frame out of the current block into the batch slot and gives the block back once its last frame was taken.
/// Frames are sent with one write(2) each on the queue's socket (PACKET_QDISC_BYPASS: straight to the driver, as a
/// TAP write is). PACKET_IGNORE_OUTGOING keeps the frames this node's own kernel sends out of the interface away from
/// the ring; a socket never sees its own writes (net/core/dev.c skb_loop_sk, by fanout group).
/// Frames come as the wire has them, except that a veth peer with checksum offload hands over TCP and UDP with the
/// checksum left partial (TP_STATUS_CSUMNOTREADY): for those <see cref="Read"/> writes a virtio-net header in front
/// of the frame with NEEDS_CSUM and the checksum's place, found from the IPv4/IPv6 header, so the engine treats it as
/// it treats a TAP's partial checksum (finished in software on the way out, since this device takes none). GSO
/// super-frames have no such header here: the peer must not hand them over (on a veth, `ethtool -K eth0 tx off` on
/// the pod's side, as `fastpath-cni` does). A frame whose partial checksum cannot be placed, that was cut short, or
/// that is larger than the caller's buffer is skipped and counted in <see cref="Skipped"/>.
/// </summary>
[SkipLocalsInit]
public sealed unsafe partial class PacketSocketDevice : LinkDevice
{
    /// <summary>How long the kernel keeps a block that is not full before handing it over (tp_retire_blk_tov): the
    /// latency TPACKET_V3 adds at low rates.</summary>
    public const int RetireTimeoutMs = 1;

    private const int AfPacket = 17, SockRaw = 3, SockNonBlock = 0x800, SockCloExec = 0x80000;
    private const ushort EthPAllNetworkOrder = 0x0300; // htons(ETH_P_ALL)
    private const int SolPacket = 263;
    private const int PacketAddMembership = 1, PacketRxRing = 5, PacketVersion = 10, PacketFanout = 18,
        PacketQdiscBypass = 20, PacketIgnoreOutgoing = 23;
    private const int TpacketV3 = 2, PacketMrPromisc = 1;
    private const int PacketFanoutHash = 0, PacketFanoutFlagDefrag = 0x8000;
    private const uint TpStatusUser = 1, TpStatusCsumNotReady = 0x8;
    private const int ProtRead = 1, ProtWrite = 2, MapShared = 1;
    private const int EAgain = 11, EIntr = 4, EMsgSize = 90;
    private const int BlockSize = 1 << 18, BlockCount = 8, FrameSize = 2048;

    private readonly int[] _fds;
    private readonly Ring[] _rings;
    private long _skipped;

    /// <summary>One queue's ring: where it is mapped and how far the reader got.</summary>
    private struct Ring
    {
        public byte* Base;
        public int Block;      // the block being read, or the next one to wait for
        public int Left;       // frames of the current block not read yet
        public byte* Next;     // the next frame's tpacket3_hdr; null when no block is held
    }

    private PacketSocketDevice(string name, int[] fds, Ring[] rings)
        : base(name, LinkKind.Packet, created: false, TapOffloads.None, VirtioNetHeader.Length)
    {
        _fds = fds;
        _rings = rings;
    }

    public override int Queues => _fds.Length;

    public override int FileDescriptor(int queue = 0) => _fds[queue];

    /// <summary>Frames skipped on receive: larger than the slot, or with a checksum the peer left partial.</summary>
    public long Skipped => Volatile.Read(ref _skipped);

    /// <summary>Attaches to interface <paramref name="name"/> with <paramref name="queues"/> sockets.</summary>
    /// <exception cref="IOException">The interface does not exist, is down, or the socket is refused (no CAP_NET_RAW).</exception>
    public static PacketSocketDevice Open(string name, int queues = 1)
    {
        int ifindex = InterfaceState.Require(name);
        var fds = new int[queues];
        var rings = new Ring[queues];
        Array.Fill(fds, -1);
        try
        {
            // One group id per interface and process; the kernel keeps groups per network namespace.
            int group = (Environment.ProcessId ^ (ifindex << 4)) & 0xFFFF;
            for (int q = 0; q < queues; q++) fds[q] = OpenQueue(name, ifindex, queues > 1 ? group : -1, out rings[q].Base);
            return new PacketSocketDevice(name, fds, rings);
        }
        catch
        {
            for (int q = 0; q < queues; q++)
            {
                if (rings[q].Base != null) Unmap(rings[q].Base, (nuint)BlockSize * BlockCount);
                if (fds[q] >= 0) Close(fds[q]);
            }
            throw;
        }
    }

    private static int OpenQueue(string name, int ifindex, int fanoutGroup, out byte* mapped)
    {
        mapped = null;
        int fd = Socket(AfPacket, SockRaw | SockNonBlock | SockCloExec, EthPAllNetworkOrder);
        if (fd < 0) throw Failure(name, "socket(AF_PACKET)");
        byte* ring = null;
        try
        {
            SetOption(fd, name, PacketVersion, TpacketV3, "PACKET_VERSION TPACKET_V3");
            // struct tpacket_req3 (linux/if_packet.h): block size, block count, frame size, frame count, retire
            // timeout (ms), private bytes per block, feature request word; 7 × u32.
            uint* req = stackalloc uint[7];
            (req[0], req[1], req[2], req[3], req[4], req[5], req[6]) =
                (BlockSize, BlockCount, FrameSize, BlockSize / FrameSize * BlockCount, RetireTimeoutMs, 0, 0);
            if (SetSocketOption(fd, SolPacket, PacketRxRing, req, 7 * sizeof(uint)) < 0) throw Failure(name, "PACKET_RX_RING");
            ring = (byte*)Map(null, (nuint)BlockSize * BlockCount, ProtRead | ProtWrite, MapShared, fd, 0);
            if (ring == (byte*)-1) throw Failure(name, "mmap of the receive ring");
            // struct sockaddr_ll: family u16 @0, protocol be16 @2, ifindex i32 @4, hatype u16 @8, pkttype u8 @10,
            // halen u8 @11, addr[8] @12; 20 bytes.
            byte* sll = stackalloc byte[20];
            new Span<byte>(sll, 20).Clear();
            *(ushort*)sll = AfPacket;
            *(ushort*)(sll + 2) = EthPAllNetworkOrder;
            *(int*)(sll + 4) = ifindex;
            if (Bind(fd, sll, 20) < 0) throw Failure(name, "bind");
            if (fanoutGroup >= 0)
                SetOption(fd, name, PacketFanout, fanoutGroup | ((PacketFanoutHash | PacketFanoutFlagDefrag) << 16), "PACKET_FANOUT");
            // Optional: older kernels lack them (ignore-outgoing is 4.20+); the frames are then only more work.
            int one = 1;
            _ = SetSocketOption(fd, SolPacket, PacketIgnoreOutgoing, &one, sizeof(int));
            _ = SetSocketOption(fd, SolPacket, PacketQdiscBypass, &one, sizeof(int));
            // struct packet_mreq: ifindex i32 @0, type u16 @4, alen u16 @6, address[8] @8; 16 bytes. A NIC must pass
            // frames for pod MACs up (a veth passes everything anyway).
            byte* mreq = stackalloc byte[16];
            new Span<byte>(mreq, 16).Clear();
            *(int*)mreq = ifindex;
            *(ushort*)(mreq + 4) = PacketMrPromisc;
            if (SetSocketOption(fd, SolPacket, PacketAddMembership, mreq, 16) < 0) throw Failure(name, "PACKET_ADD_MEMBERSHIP promiscuous");
            mapped = ring;
            return fd;
        }
        catch
        {
            if (ring != null && ring != (byte*)-1) Unmap(ring, (nuint)BlockSize * BlockCount);
            Close(fd);
            throw;
        }
    }

    private static void SetOption(int fd, string name, int option, int value, string what)
    {
        if (SetSocketOption(fd, SolPacket, option, &value, sizeof(int)) < 0) throw Failure(name, what);
    }

    private static IOException Failure(string name, string what)
    {
        int errno = Marshal.GetLastPInvokeError();
        string hint = errno is 1 or 13 ? " (AF_PACKET needs CAP_NET_RAW: run as root)" : "";
        return new IOException($"attach {name} (packet): {what}: {Marshal.GetPInvokeErrorMessage(errno)}{hint}");
    }

    /// <summary>
    /// Copies the next frame of queue <paramref name="queue"/>'s ring into <paramref name="buffer"/>. A block
    /// (struct tpacket_block_desc: version u32 @0, offset_to_priv u32 @4, then tpacket_hdr_v1: block_status u32 @8,
    /// num_pkts u32 @12, offset_to_first_pkt u32 @16) belongs to us while block_status has TP_STATUS_USER; each frame
    /// (struct tpacket3_hdr: tp_next_offset u32 @0, tp_snaplen u32 @12, tp_status u32 @20, tp_mac u16 @24) links to
    /// the next; the block goes back to the kernel (block_status = TP_STATUS_KERNEL) when its last frame was read.
    /// </summary>
    public override int Read(int queue, Span<byte> buffer)
    {
        ref var r = ref _rings[queue];
        while (true)
        {
            if (r.Left == 0)
            {
                byte* block = r.Base + (nint)r.Block * BlockSize;
                if (r.Next != null)
                {
                    Volatile.Write(ref *(uint*)(block + 8), 0u);
                    r.Block = r.Block + 1 == BlockCount ? 0 : r.Block + 1;
                    r.Next = null;
                    block = r.Base + (nint)r.Block * BlockSize;
                }
                if ((Volatile.Read(ref *(uint*)(block + 8)) & TpStatusUser) == 0) return 0;
                r.Left = (int)*(uint*)(block + 12);
                r.Next = block + *(uint*)(block + 16);
                if (r.Left == 0) continue;
            }
            byte* frame = r.Next;
            uint snap = *(uint*)(frame + 12), length = *(uint*)(frame + 16), status = *(uint*)(frame + 20);
            r.Left--;
            if (r.Left > 0) r.Next = frame + *(uint*)frame;
            var data = new ReadOnlySpan<byte>(frame + *(ushort*)(frame + 24), (int)snap);
            var header = buffer[..VirtioNetHeader.Length];
            header.Clear();
            if (snap != length || snap > (uint)(buffer.Length - VirtioNetHeader.Length)
                || ((status & TpStatusCsumNotReady) != 0 && !PlacePartialChecksum(data, header)))
            {
                _skipped++;
                continue;
            }
            data.CopyTo(buffer[VirtioNetHeader.Length..]);
            return VirtioNetHeader.Length + (int)snap;
        }
    }

    /// <summary>
    /// Fills NEEDS_CSUM, csum_start and csum_offset (virtio_net_hdr @0, @6, @8) for a TCP or UDP packet directly in
    /// IPv4 or IPv6 (the transport checksum at 16 or 6 bytes into its header), as the kernel's skb would have them.
    /// </summary>
    private static bool PlacePartialChecksum(ReadOnlySpan<byte> frame, Span<byte> header)
    {
        if (frame.Length < 34) return false;
        int type = frame[12] << 8 | frame[13], start, protocol;
        if (type == 0x0800) (start, protocol) = (14 + (frame[14] & 0xF) * 4, frame[23]);
        else if (type == 0x86DD && frame.Length >= 54) (start, protocol) = (54, frame[20]);
        else return false;
        int offset = protocol switch { 6 => 16, 17 => 6, _ => -1 };
        if (offset < 0 || start + offset + 2 > frame.Length) return false;
        header[0] = VirtioNetHeader.FlagNeedsChecksum;
        System.Buffers.Binary.BinaryPrimitives.WriteUInt16LittleEndian(header[6..], (ushort)start);
        System.Buffers.Binary.BinaryPrimitives.WriteUInt16LittleEndian(header[8..], (ushort)offset);
        return true;
    }

    public override int Write(int queue, ReadOnlySpan<byte> header, ReadOnlySpan<byte> frame)
    {
        int fd = _fds[queue];
        fixed (byte* f = frame)
        {
            while (true)
            {
                nint n = WriteFile(fd, f, (nuint)frame.Length);
                if (n >= 0) return 0;
                int errno = Marshal.GetLastPInvokeError();
                if (errno != EIntr) return -errno;
            }
        }
    }

    public override void Dispose()
    {
        for (int q = 0; q < _fds.Length; q++)
        {
            int fd = Interlocked.Exchange(ref _fds[q], -1);
            if (fd < 0) continue;
            Unmap(_rings[q].Base, (nuint)BlockSize * BlockCount);
            _rings[q] = default;
            Close(fd);
        }
    }

    [LibraryImport("libc", EntryPoint = "socket", SetLastError = true)]
    private static partial int Socket(int domain, int type, int protocol);

    [LibraryImport("libc", EntryPoint = "setsockopt", SetLastError = true)]
    private static partial int SetSocketOption(int fd, int level, int option, void* value, int length);

    [LibraryImport("libc", EntryPoint = "bind", SetLastError = true)]
    private static partial int Bind(int fd, void* address, int length);

    [LibraryImport("libc", EntryPoint = "mmap", SetLastError = true)]
    private static partial void* Map(void* address, nuint length, int protection, int flags, int fd, nint offset);

    [LibraryImport("libc", EntryPoint = "munmap")]
    private static partial int Unmap(void* address, nuint length);

    [LibraryImport("libc", EntryPoint = "write", SetLastError = true)]
    private static partial nint WriteFile(int fd, byte* buffer, nuint count);

    [LibraryImport("libc", EntryPoint = "close")]
    private static partial int Close(int fd);
}
