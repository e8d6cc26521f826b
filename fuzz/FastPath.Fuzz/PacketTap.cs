using System.Buffers.Binary;
using System.Runtime.InteropServices;

namespace FastPath.Fuzz;

/// <summary>
/// The far side of one of FastPath's TAP devices, as the kernel sees it: an AF_PACKET socket bound to the netdev in
/// the namespace the TAP lives in. A frame sent on it is transmitted by the netdev, i.e. handed to the TAP's reader
/// (`fastpath run`), with the virtio-net header the kernel derives from the socket's own (all zero: no partial
/// checksum, no GSO); a frame `run` writes into the TAP is received by the netdev and read here, behind the
/// virtio_net_hdr the kernel fills from the skb (PACKET_VNET_HDR), which says whether its transport checksum is still
/// partial. Our own transmissions are not looped back (PACKET_IGNORE_OUTGOING).
/// </summary>
public sealed partial class PacketTap : IDisposable
{
    private const int AfPacket = 17, SockRaw = 3, SolPacket = 263, SolSocket = 1, SoRcvBuf = 8, SoSndBuf = 7;
    private const int PacketAuxData = 8, PacketVnetHdr = 15, PacketIgnoreOutgoing = 23, MsgDontWait = 0x40;
    private const uint StatusVlanValid = 0x10, StatusVlanTpidValid = 0x40;
    private const ushort EthPAllBigEndian = 0x0300; // htons(ETH_P_ALL)
    /// <summary>struct virtio_net_hdr (PACKET_VNET_HDR): flags, gso_type, hdr_len, gso_size, csum_start, csum_offset.</summary>
    public const int HeaderLength = 10;
    private const byte NeedsChecksum = 1;

    private readonly int _fd;
    private readonly byte[] _send = new byte[HeaderLength + 65_536];

    private PacketTap(int fd, string device)
    {
        _fd = fd;
        Device = device;
    }

    public string Device { get; }
    public int FileDescriptor => _fd;

    /// <summary>Opens a tap on every device of <paramref name="devices"/> inside the network namespace
    /// <paramref name="netns"/> (/var/run/netns/NAME): a socket keeps the namespace it was made in, so they are made
    /// on a thread that enters it and ends there.</summary>
    public static PacketTap[] OpenIn(string netns, IReadOnlyList<string> devices)
    {
        PacketTap[]? taps = null;
        Exception? failure = null;
        var thread = new Thread(() =>
        {
            try
            {
                int ns = OpenFile($"/var/run/netns/{netns}", 0x80000 /* O_RDONLY | O_CLOEXEC */);
                if (ns < 0) throw new IOException($"open /var/run/netns/{netns}: errno {Marshal.GetLastPInvokeError()}");
                int entered = SetNamespace(ns, 0x40000000 /* CLONE_NEWNET */);
                int errno = Marshal.GetLastPInvokeError();
                Close(ns);
                if (entered != 0) throw new IOException($"setns {netns}: errno {errno}");
                taps = devices.Select(Open).ToArray();
            }
            catch (Exception e)
            {
                failure = e;
            }
        }) { Name = "live-diff-taps" };
        thread.Start(); // ends in the other namespace; nothing else runs on it
        thread.Join();
        if (failure is not null) throw failure as IOException ?? new IOException(failure.Message, failure);
        return taps!;
    }

    private static unsafe PacketTap Open(string device)
    {
        int index = (int)InterfaceIndex(device);
        if (index == 0) throw new IOException($"{device}: no such interface in this namespace");
        int fd = Socket(AfPacket, SockRaw | 0x80000 /* SOCK_CLOEXEC */, EthPAllBigEndian);
        if (fd < 0) throw new IOException($"socket(AF_PACKET) for {device}: errno {Marshal.GetLastPInvokeError()}");
        int one = 1, buffer = 8 << 20;
        if (SetSocketOption(fd, SolPacket, PacketVnetHdr, &one, 4) != 0
            || SetSocketOption(fd, SolPacket, PacketAuxData, &one, 4) != 0
            || SetSocketOption(fd, SolPacket, PacketIgnoreOutgoing, &one, 4) != 0
            || SetSocketOption(fd, SolSocket, SoRcvBuf, &buffer, 4) != 0
            || SetSocketOption(fd, SolSocket, SoSndBuf, &buffer, 4) != 0)
        {
            int errno = Marshal.GetLastPInvokeError();
            Close(fd);
            throw new IOException($"setsockopt on the packet socket of {device}: errno {errno}");
        }
        // struct sockaddr_ll: family, protocol (network order), ifindex, hatype, pkttype, halen, addr[8].
        byte* address = stackalloc byte[20];
        new Span<byte>(address, 20).Clear();
        *(ushort*)address = AfPacket;
        *(ushort*)(address + 2) = EthPAllBigEndian;
        *(int*)(address + 4) = index;
        if (Bind(fd, address, 20) != 0)
        {
            int errno = Marshal.GetLastPInvokeError();
            Close(fd);
            throw new IOException($"bind to {device}: errno {errno}");
        }
        return new PacketTap(fd, device);
    }

    /// <summary>Transmits <paramref name="frame"/> on the device (to the TAP's reader), with a partial transport
    /// checksum from <paramref name="checksumStart"/> (its field at + <paramref name="checksumOffset"/>) as a local
    /// stack hands one over, or (start 0) as a plain frame. False with the errno when the kernel refused it.</summary>
    public unsafe bool Send(ReadOnlySpan<byte> frame, out int errno, int checksumStart = 0, int checksumOffset = 0)
    {
        _send.AsSpan(0, HeaderLength).Clear();
        if (checksumStart > 0)
        {
            _send[0] = NeedsChecksum;
            BinaryPrimitives.WriteUInt16LittleEndian(_send.AsSpan(6), (ushort)checksumStart);
            BinaryPrimitives.WriteUInt16LittleEndian(_send.AsSpan(8), (ushort)checksumOffset);
        }
        frame.CopyTo(_send.AsSpan(HeaderLength));
        fixed (byte* p = _send)
        {
            long sent = SendTo(_fd, p, (nuint)(HeaderLength + frame.Length), 0);
            errno = sent < 0 ? Marshal.GetLastPInvokeError() : 0;
            return sent == HeaderLength + frame.Length;
        }
    }

    /// <summary>
    /// The next frame the TAP's writer sent, without its header, its transport checksum completed if the header says
    /// it is partial (what the receiving stack verifies: the sum over the transport segment as the IP header delimits
    /// it), and its outer VLAN tag back in place (the receive path takes the tag out of the frame into the skb; the
    /// socket reports it beside the frame, PACKET_AUXDATA, as libpcap puts it back); null when none is waiting.
    /// <paramref name="gso"/> is the header's gso_type (0: a plain frame).
    /// </summary>
    public unsafe byte[]? Receive(byte[] buffer, out byte gso)
    {
        gso = 0;
        nint n;
        // struct msghdr and one struct cmsghdr (len, level, type) + struct tpacket_auxdata (status, len, snaplen, mac,
        // net, vlan_tci, vlan_tpid).
        byte* control = stackalloc byte[64];
        long* message = stackalloc long[7];
        long* vector = stackalloc long[2];
        fixed (byte* p = buffer)
        {
            vector[0] = (long)p;
            vector[1] = buffer.Length;
            new Span<long>(message, 7).Clear();
            message[2] = (long)vector; // msg_iov
            message[3] = 1; // msg_iovlen
            message[4] = (long)control; // msg_control
            message[5] = 64; // msg_controllen
            n = ReceiveMessage(_fd, message, MsgDontWait);
        }
        if (n < HeaderLength) return null;
        int length = (int)n - HeaderLength;
        ushort tci = 0, tpid = 0;
        long controlLength = message[5];
        if (controlLength >= 16 + 20 && *(int*)(control + 8) == SolPacket && *(int*)(control + 12) == PacketAuxData)
        {
            uint status = *(uint*)(control + 16);
            if ((status & StatusVlanValid) != 0)
            {
                tci = *(ushort*)(control + 16 + 16);
                tpid = (status & StatusVlanTpidValid) != 0 ? *(ushort*)(control + 16 + 18) : (ushort)0x8100;
            }
        }
        byte[] frame;
        if (tpid != 0 && length >= 12)
        {
            frame = new byte[length + 4];
            buffer.AsSpan(HeaderLength, 12).CopyTo(frame);
            BinaryPrimitives.WriteUInt16BigEndian(frame.AsSpan(12), tpid);
            BinaryPrimitives.WriteUInt16BigEndian(frame.AsSpan(14), tci);
            buffer.AsSpan(HeaderLength + 12, length - 12).CopyTo(frame.AsSpan(16));
        }
        else frame = buffer.AsSpan(HeaderLength, length).ToArray();
        gso = buffer[1];
        if ((buffer[0] & NeedsChecksum) != 0)
            CompleteChecksum(frame, BinaryPrimitives.ReadUInt16LittleEndian(buffer.AsSpan(6)) + (tpid != 0 ? 4 : 0), BinaryPrimitives.ReadUInt16LittleEndian(buffer.AsSpan(8)));
        return frame;
    }

    /// <summary>Finishes a partial checksum: the one's complement sum from <paramref name="start"/> to the end of the
    /// IP packet (not of the frame: Ethernet padding is no part of it), stored at start + offset; a UDP sum of 0 is sent
    /// as 0xFFFF (RFC 768).</summary>
    private static void CompleteChecksum(Span<byte> frame, int start, int offset)
    {
        int l3 = 14;
        int type = frame.Length >= 14 ? BinaryPrimitives.ReadUInt16BigEndian(frame[12..]) : 0;
        while (type is 0x8100 or 0x88A8 && frame.Length >= l3 + 4)
        {
            type = BinaryPrimitives.ReadUInt16BigEndian(frame[(l3 + 2)..]);
            l3 += 4;
        }
        int end = frame.Length;
        if (type == 0x0800 && frame.Length >= l3 + 4) end = Math.Min(end, l3 + BinaryPrimitives.ReadUInt16BigEndian(frame[(l3 + 2)..]));
        else if (type == 0x86DD && frame.Length >= l3 + 6) end = Math.Min(end, l3 + 40 + BinaryPrimitives.ReadUInt16BigEndian(frame[(l3 + 4)..]));
        int field = start + offset;
        if (start >= end || field + 2 > end) return; // nothing a stack could verify: left as written
        ushort sum = DataPlane.Packets.Checksum.Fold(DataPlane.Packets.Checksum.Sum(frame[start..end]));
        BinaryPrimitives.WriteUInt16BigEndian(frame[field..], sum == 0 && offset == 6 ? (ushort)0xFFFF : sum);
    }

    /// <summary>Waits up to <paramref name="timeoutMs"/> until one of <paramref name="taps"/> has a frame.</summary>
    public static unsafe bool WaitAny(PacketTap[] taps, int timeoutMs)
    {
        var fds = stackalloc long[taps.Length]; // struct pollfd: int fd, short events, short revents
        for (int i = 0; i < taps.Length; i++) fds[i] = (uint)taps[i]._fd | (1L << 32); // POLLIN
        return Poll(fds, (nuint)taps.Length, timeoutMs) > 0;
    }

    public void Dispose() => Close(_fd);

    [LibraryImport("libc", EntryPoint = "open", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    private static partial int OpenFile(string path, int flags);

    [LibraryImport("libc", EntryPoint = "setns", SetLastError = true)]
    private static partial int SetNamespace(int fd, int type);

    [LibraryImport("libc", EntryPoint = "if_nametoindex", StringMarshalling = StringMarshalling.Utf8)]
    private static partial uint InterfaceIndex(string name);

    [LibraryImport("libc", EntryPoint = "socket", SetLastError = true)]
    private static partial int Socket(int domain, int type, int protocol);

    [LibraryImport("libc", EntryPoint = "setsockopt", SetLastError = true)]
    private static unsafe partial int SetSocketOption(int fd, int level, int option, void* value, int length);

    [LibraryImport("libc", EntryPoint = "bind", SetLastError = true)]
    private static unsafe partial int Bind(int fd, void* address, int length);

    [LibraryImport("libc", EntryPoint = "send", SetLastError = true)]
    private static unsafe partial nint SendTo(int fd, byte* buffer, nuint length, int flags);

    [LibraryImport("libc", EntryPoint = "recvmsg", SetLastError = true)]
    private static unsafe partial nint ReceiveMessage(int fd, long* message, int flags);

    [LibraryImport("libc", EntryPoint = "poll", SetLastError = true)]
    private static unsafe partial int Poll(long* fds, nuint count, int timeoutMs);

    [LibraryImport("libc", EntryPoint = "close")]
    private static partial int Close(int fd);
}
