namespace FastPath.DataPlane.Ports;

/// <summary>
/// The link-layer header types a capture may declare (tcpdump.org LINKTYPE_ values, the same numbers in pcap and
/// pcapng). Only the ones the engine can normalize to Ethernet are named.
/// </summary>
public enum LinkType : ushort
{
    Ethernet = 1,
    /// <summary>DLT_RAW as written by Linux libpcap before LINKTYPE_RAW existed (on OpenBSD 12 is DLT_LOOP).</summary>
    RawLinux = 12,
    /// <summary>LINKTYPE_RAW: raw IPv4 or IPv6, the version nibble says which.</summary>
    Raw = 101,
    /// <summary>Linux "cooked" capture v1 (tcpdump -i any): a 16-byte pseudo-header.</summary>
    LinuxSll = 113,
    Ipv4 = 228,
    Ipv6 = 229,
    /// <summary>Linux "cooked" capture v2: a 20-byte pseudo-header.</summary>
    LinuxSll2 = 276,
}

/// <summary>How a link type is turned into an Ethernet frame.</summary>
public static class LinkTypes
{
    /// <summary>True if frames of <paramref name="linkType"/> can be delivered as Ethernet.</summary>
    public static bool IsSupported(uint linkType) => linkType switch
    {
        1 or 12 or 101 or 113 or 228 or 229 or 276 => true,
        _ => false,
    };

    /// <summary>Bytes of the captured link header that are replaced by a synthesized 14-byte Ethernet header.</summary>
    internal static int StrippedHeaderLength(LinkType linkType) => linkType switch
    {
        LinkType.LinuxSll => 16,
        LinkType.LinuxSll2 => 20,
        _ => 0,
    };

    /// <summary>Bytes added in front of the captured bytes: 0 for Ethernet, 14 for everything normalized.</summary>
    internal static int SynthesizedHeaderLength(LinkType linkType) => linkType == LinkType.Ethernet ? 0 : EthernetHeaderLength;

    internal const int EthernetHeaderLength = 14;
}
