namespace FastPath.DataPlane.Ports;

/// <summary>The kind of Linux device behind a live port.</summary>
public enum LinkKind
{
    /// <summary>A TAP device through /dev/net/tun (<see cref="TapDevice"/>): FastPath is the other end of the wire.</summary>
    Tap,
    /// <summary>An existing interface through AF_PACKET with a TPACKET_V3 receive ring (<see cref="PacketSocketDevice"/>).</summary>
    Packet,
    /// <summary>An existing interface through libpcap (SharpPcap; <see cref="PcapLinkDevice"/>): the portable fallback.</summary>
    Pcap,
    /// <summary>An existing interface through AF_XDP: XSK sockets, UMEM and rings, an XDP redirect program (<see cref="XdpSocketDevice"/>).</summary>
    Xdp,
}

/// <summary>
/// One live device a port reads frames from and writes frames to, with one queue (descriptor) per forwarding worker:
/// a TAP FastPath created or found, or an existing interface it attached to (a pod's veth, a NIC). <see cref="TapPort"/>
/// drives every kind alike: poll(2) on <see cref="FileDescriptor"/>, then <see cref="Read"/> and <see cref="Write"/>.
/// The read and write are virtual calls, once per frame beside a system call (TAP, pcap) or a ring access that costs
/// more than the call; the loop over the batch stays in <see cref="TapPort"/>.
/// </summary>
public abstract class LinkDevice : IDisposable
{
    /// <summary>IFNAMSIZ - 1: Linux interface names are at most 15 bytes.</summary>
    public const int MaxNameLength = 15;

    protected LinkDevice(string name, LinkKind kind, bool created, TapOffloads offloads, int headerLength)
    {
        Name = name;
        Kind = kind;
        Created = created;
        Offloads = offloads;
        HeaderLength = headerLength;
    }

    /// <summary>The interface name.</summary>
    public string Name { get; }

    public LinkKind Kind { get; }

    /// <summary>True when this process created the device (it disappears on <see cref="Dispose"/>).</summary>
    public bool Created { get; }

    /// <summary>The offloads in force (none: plain, complete frames both ways).</summary>
    public TapOffloads Offloads { get; }

    /// <summary>Bytes of virtio-net header in front of every frame read or written (0, 12 or 24).</summary>
    public int HeaderLength { get; }

    /// <summary>Queues (descriptors) of the device: one per worker.</summary>
    public abstract int Queues { get; }

    /// <summary>The descriptor of queue <paramref name="queue"/>, for poll(2); -1 when the queue reads nothing.</summary>
    public abstract int FileDescriptor(int queue = 0);

    /// <summary>Reads one frame (with its virtio-net header in front when the device has one) into <paramref name="buffer"/>.</summary>
    /// <returns>The bytes read (header included); 0 when no frame is waiting; a negative errno on failure.</returns>
    public abstract int Read(int queue, Span<byte> buffer);

    /// <summary>Sends one frame preceded by <paramref name="header"/> (empty for a device without one).</summary>
    /// <returns>0 when sent; a negative errno otherwise (EAGAIN: the queue is full; ENETDOWN/EIO: the device is down).</returns>
    public abstract int Write(int queue, ReadOnlySpan<byte> header, ReadOnlySpan<byte> frame);

    /// <summary>Prefix of the interface names of ports other than the uplink and host (pods' TAPs and veths).</summary>
    public const string PortInterfacePrefix = "fp";

    /// <summary>
    /// The interface name of a port (a pod's TAP, or the host end of its veth): "fp" + the first 12 hex digits of
    /// SHA-1 of the port name ("namespace/pod"), 14 characters, within Linux's 15 (the Calico scheme, "cali" + 11 hex
    /// of a hash, for the same reason: pod names are longer than any interface name). `fastpath run` and
    /// `fastpath-cni` both name them so. In a shell: <c>printf '%s' "$ns/$pod" | sha1sum | cut -c1-12</c>.
    /// </summary>
    public static string PortInterfaceName(string portName) =>
        PortInterfacePrefix + Convert.ToHexStringLower(System.Security.Cryptography.SHA1.HashData(System.Text.Encoding.UTF8.GetBytes(portName)))[..12];

    /// <summary>Whether <paramref name="name"/> can name a network interface (1–15 bytes, no '/', ':' or whitespace).</summary>
    public static bool IsValidName(string name) =>
        name.Length is > 0 and <= MaxNameLength && name != "." && name != ".."
        && !name.Any(c => c is '/' or ':' or '\0' || char.IsWhiteSpace(c) || c > 0x7E);

    /// <summary>Closes the descriptors; a device this process created disappears with them.</summary>
    public abstract void Dispose();
}
