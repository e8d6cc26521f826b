using System.Globalization;
using System.Net;
using System.Net.Sockets;
using FastPath.DataPlane.Packets;

namespace FastPath.ControlPlane.Cluster;

/// <summary>
/// An IPv4 or IPv6 prefix such as 10.244.1.0/24 or fd00:10:244::/64. The address is kept in the data plane's
/// <see cref="IpAddr"/> form (IPv4 mapped into ::ffff:0:0/96) with host bits cleared; <see cref="Length"/> is
/// the prefix length in the address's own family (0–32 or 0–128).
/// </summary>
public readonly record struct Cidr(IpAddr Network, int Length)
{
    public bool IsV4 => Network.IsV4;

    /// <summary>
    /// Parses "address/length". Host bits are accepted and cleared, as Kubernetes does for podCIDR
    /// (netutils.ParseCIDRSloppy), so a manifest that passes the API server loads here too.
    /// </summary>
    public static bool TryParse(string? text, out Cidr cidr)
    {
        cidr = default;
        if (text is null) return false;
        int slash = text.IndexOf('/');
        if (slash <= 0 || slash == text.Length - 1) return false;
        if (!IPAddress.TryParse(text.AsSpan(0, slash), out var ip)) return false;
        if (!int.TryParse(text.AsSpan(slash + 1), NumberStyles.None, CultureInfo.InvariantCulture, out int length)) return false;
        bool v4 = ip.AddressFamily == AddressFamily.InterNetwork;
        if (length > (v4 ? 32 : 128)) return false;
        var addr = IpAddr.From(ip);
        cidr = new Cidr(new IpAddr(addr.Value & IpAddr.PrefixMask(v4, length)), length);
        return true;
    }

    public bool Contains(IpAddr address)
    {
        if (address.IsV4 != IsV4) return false;
        return (address.Value & IpAddr.PrefixMask(IsV4, Length)) == Network.Value;
    }

    public override string ToString() => $"{Network}/{Length.ToString(CultureInfo.InvariantCulture)}";
}
