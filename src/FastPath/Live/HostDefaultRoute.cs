using System.Globalization;
using FastPath.DataPlane.Packets;

namespace FastPath.Live;

/// <summary>
/// The host's default gateways as the kernel's routing tables show them in this network namespace: /proc/net/route
/// (IPv4; fields as net/ipv4/fib_trie.c's fib_route_seq_show writes them, addresses in host byte order as hex) and
/// /proc/net/ipv6_route (net/ipv6/route.c's rt6_info_seq_show). Of several default routes the lowest metric wins, as
/// the kernel's lookup picks it. Only <c>fastpath run</c> uses it, when the configuration names no uplink gateway.
/// </summary>
public static class HostDefaultRoute
{
    private const uint RtfUp = 0x1, RtfGateway = 0x2;

    /// <summary>The default gateways (at most one IPv4 and one IPv6) with the device each leaves by.</summary>
    public static List<(IpAddr Gateway, string Device)> Read(string v4Table = "/proc/net/route", string v6Table = "/proc/net/ipv6_route")
    {
        var found = new List<(IpAddr, string)>();
        if (ReadLines(v4Table) is { } v4 && ParseV4(v4) is { } g4) found.Add(g4);
        if (ReadLines(v6Table) is { } v6 && ParseV6(v6) is { } g6) found.Add(g6);
        return found;
    }

    private static string[]? ReadLines(string path)
    {
        try { return File.ReadAllLines(path); }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException) { return null; }
    }

    /// <summary>"Iface Destination Gateway Flags RefCnt Use Metric Mask ..." with a header line.</summary>
    public static (IpAddr, string)? ParseV4(IEnumerable<string> lines)
    {
        (IpAddr, string)? best = null;
        long bestMetric = long.MaxValue;
        foreach (var line in lines.Skip(1))
        {
            var f = line.Split((char[])['\t', ' '], StringSplitOptions.RemoveEmptyEntries);
            if (f.Length < 8 || f[1] != "00000000" || f[7] != "00000000") continue;
            if (!uint.TryParse(f[2], NumberStyles.HexNumber, CultureInfo.InvariantCulture, out uint gw) || gw == 0) continue;
            if (!uint.TryParse(f[3], NumberStyles.HexNumber, CultureInfo.InvariantCulture, out uint flags) || (flags & (RtfUp | RtfGateway)) != (RtfUp | RtfGateway)) continue;
            if (!long.TryParse(f[6], NumberStyles.None, CultureInfo.InvariantCulture, out long metric) || metric >= bestMetric) continue;
            // The kernel prints the address as the native (little-endian) integer of its network-order bytes.
            uint address = System.Buffers.Binary.BinaryPrimitives.ReverseEndianness(gw);
            if (!BitConverter.IsLittleEndian) address = gw;
            best = (IpAddr.FromV4(address), f[0]);
            bestMetric = metric;
        }
        return best;
    }

    /// <summary>"dest plen src plen nexthop metric refcnt use flags iface", addresses as 32 hex digits, no header.</summary>
    public static (IpAddr, string)? ParseV6(IEnumerable<string> lines)
    {
        (IpAddr, string)? best = null;
        long bestMetric = long.MaxValue;
        foreach (var line in lines)
        {
            var f = line.Split(' ', StringSplitOptions.RemoveEmptyEntries);
            if (f.Length < 10 || f[1] != "00" || f[0].Trim('0').Length != 0 || f[9] == "lo") continue;
            if (!UInt128.TryParse(f[4], NumberStyles.HexNumber, CultureInfo.InvariantCulture, out var gw) || gw == UInt128.Zero) continue;
            if (!uint.TryParse(f[8], NumberStyles.HexNumber, CultureInfo.InvariantCulture, out uint flags) || (flags & (RtfUp | RtfGateway)) != (RtfUp | RtfGateway)) continue;
            if (!long.TryParse(f[5], NumberStyles.HexNumber, CultureInfo.InvariantCulture, out long metric) || metric >= bestMetric) continue;
            best = (new IpAddr(gw), f[9]);
            bestMetric = metric;
        }
        return best;
    }
}
