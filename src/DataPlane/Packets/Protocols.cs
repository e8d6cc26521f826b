namespace FastPath.DataPlane.Packets;

/// <summary>EtherType values the engine looks at (IEEE 802 numbers).</summary>
public static class EtherType
{
    public const ushort Ipv4 = 0x0800;
    public const ushort Arp = 0x0806;
    public const ushort Ipv6 = 0x86DD;
    /// <summary>802.1Q C-tag.</summary>
    public const ushort Vlan = 0x8100;
    /// <summary>802.1ad S-tag (QinQ outer tag).</summary>
    public const ushort QinQ = 0x88A8;
    /// <summary>Pre-standard QinQ outer tag some switches still send.</summary>
    public const ushort QinQLegacy = 0x9100;
}

/// <summary>IANA protocol numbers (IPv4 protocol / IPv6 next header).</summary>
public static class IpProtocol
{
    public const byte HopByHop = 0;
    public const byte Icmp = 1;
    public const byte Tcp = 6;
    public const byte Udp = 17;
    public const byte Routing = 43;
    public const byte Fragment = 44;
    public const byte Gre = 47;
    public const byte Esp = 50;
    public const byte Ah = 51;
    public const byte Icmpv6 = 58;
    public const byte NoNextHeader = 59;
    public const byte DestinationOptions = 60;
    public const byte Sctp = 132;
    public const byte Mobility = 135;
    public const byte Hip = 139;
    public const byte Shim6 = 140;
}
