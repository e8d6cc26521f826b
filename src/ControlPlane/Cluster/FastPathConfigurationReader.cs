using System.Collections.Immutable;
using System.Globalization;
using System.Text.RegularExpressions;
using FastPath.DataPlane.Packets;

namespace FastPath.ControlPlane.Cluster;

/// <summary>
/// Reads a FastPathConfiguration document field by field, so every problem names its field. Unknown fields are
/// errors (like the API server's strict field validation, KEP-2885): a typo such as "vxlanport" must not silently
/// fall back to a default.
/// </summary>
internal static partial class FastPathConfigurationReader
{
    public static FastPathConfiguration Read(ManifestMapping document, string file, string label, List<ClusterError> errors)
    {
        var config = new FastPathConfiguration();
        foreach (var (keyNode, value) in document.Entries)
        {
            string key = keyNode.Value;
            int line = (int)keyNode.Start.Line;
            void Error(string message) => errors.Add(new ClusterError(file, line, label, key, message));

            switch (key)
            {
                case "apiVersion" or "kind" or "metadata":
                    break;
                case "clusterCIDRs":
                    if (ReadCidrs(value, Error) is { } clusterCidrs) config = config with { ClusterCidrs = clusterCidrs };
                    break;
                case "serviceCIDRs":
                    if (ReadCidrs(value, Error) is { } serviceCidrs) config = config with { ServiceCidrs = serviceCidrs };
                    break;
                case "tunnel":
                    if (ReadScalar(value, Error) is { } tunnel)
                    {
                        if (tunnel == "vxlan") config = config with { Tunnel = TunnelMode.Vxlan };
                        else if (tunnel == "direct") config = config with { Tunnel = TunnelMode.Direct };
                        else Error($"\"{tunnel}\" is not a tunnel mode (vxlan | direct)");
                    }
                    break;
                case "vxlanPort":
                    if (ReadInt(value, 1, 65535, Error) is int vxlanPort) config = config with { VxlanPort = vxlanPort };
                    break;
                case "vni":
                    // The VXLAN network identifier is 24 bits (RFC 7348 §5).
                    if (ReadInt(value, 0, 0xFF_FFFF, Error) is int vni) config = config with { Vni = vni };
                    break;
                case "mtu":
                    // 576 is the smallest datagram every IPv4 host must accept (RFC 791); 9216 the usual jumbo limit.
                    if (ReadInt(value, 576, 9216, Error) is int mtu) config = config with { Mtu = mtu };
                    break;
                case "gatewayMAC":
                    if (ReadUnicastMac(value, Error) is { } gatewayMac) config = config with { GatewayMac = gatewayMac };
                    break;
                case "uplinkGatewayMAC":
                    if (ReadUnicastMac(value, Error) is { } uplinkGateway) config = config with { UplinkGatewayMac = uplinkGateway };
                    break;
                case "uplinkGateway":
                    if (ReadGateways(value, Error) is { } gateways) config = config with { UplinkGateways = gateways };
                    break;
                case "nodePortRange":
                    if (ReadScalar(value, Error) is { } rangeText)
                    {
                        if (TryParseRange(rangeText, out var range)) config = config with { NodePortRange = range };
                        else Error($"\"{rangeText}\" is not a port range \"first-last\" with 1 <= first <= last <= 65535");
                    }
                    break;
                case "masqueradeOffCluster":
                    if (ReadScalar(value, Error) is { } masqText)
                    {
                        if (masqText is "true" or "false") config = config with { MasqueradeOffCluster = masqText == "true" };
                        else Error($"\"{masqText}\" is not a boolean (true | false)");
                    }
                    break;
                case "maglevTableSize":
                    if (ReadInt(value, 1, 1 << 24, Error) is int m)
                    {
                        // Maglev's permutation fills every slot only when M is prime (Maglev paper, §3.4).
                        if (!IsPrime(m)) Error($"{m} is not a prime number");
                        else config = config with { MaglevTableSize = m };
                    }
                    break;
                case "maglevSlotsPerBackend":
                    if (ReadInt(value, 0, 1 << 16, Error) is int perBackend) config = config with { MaglevSlotsPerBackend = perBackend };
                    break;
                case "conntrackMaxEntries":
                    if (ReadInt(value, 1, 1 << 26, Error) is int maxEntries) config = config with { ConntrackMaxEntries = maxEntries };
                    break;
                case "conntrackTCPEstablishedTimeout":
                    if (ReadDuration(value, Error) is TimeSpan established) config = config with { ConntrackTcpEstablishedTimeout = established };
                    break;
                case "conntrackTCPCloseWaitTimeout":
                    if (ReadDuration(value, Error) is TimeSpan closeWait) config = config with { ConntrackTcpCloseWaitTimeout = closeWait };
                    break;
                case "conntrackUDPTimeout":
                    if (ReadDuration(value, Error) is TimeSpan udp) config = config with { ConntrackUdpTimeout = udp };
                    break;
                case "conntrackUDPStreamTimeout":
                    if (ReadDuration(value, Error) is TimeSpan udpStream) config = config with { ConntrackUdpStreamTimeout = udpStream };
                    break;
                default:
                    Error("unknown field");
                    break;
            }
        }
        return config;
    }

    private static string? ReadScalar(ManifestNode node, Action<string> error)
    {
        if (node is ManifestScalar { IsNull: false } s) return s.Value;
        error(node is ManifestScalar ? "a value is required" : "expected a single value, not a list or mapping");
        return null;
    }

    private static MacAddress? ReadUnicastMac(ManifestNode value, Action<string> error)
    {
        if (ReadScalar(value, error) is not { } text) return null;
        if (!MacAddress.TryParse(text, out var mac)) error($"\"{text}\" is not a MAC address");
        else if (mac.IsMulticast || mac == MacAddress.Zero) error($"\"{text}\" is not a unicast MAC address");
        else return mac;
        return null;
    }

    /// <summary>One address, or a list of one IPv4 and/or one IPv6 address: unicast, as a next hop must be.</summary>
    private static ImmutableArray<IpAddr>? ReadGateways(ManifestNode node, Action<string> error)
    {
        IReadOnlyList<ManifestNode> items = node is ManifestSequence seq ? seq.Items : [node];
        var gateways = ImmutableArray.CreateBuilder<IpAddr>();
        foreach (var item in items)
        {
            if (ReadScalar(item, error) is not { } text) return null;
            if (!IpAddr.TryParse(text, out var address)) { error($"\"{text}\" is not an IP address"); return null; }
            if (address.Value == UInt128.Zero || address == IpAddr.FromV4(0) || Ipv6Header.IsMulticast(address)
                || (address.IsV4 && (address.V4 >> 28) >= 0xE))
            {
                error($"\"{text}\" is not a unicast address");
                return null;
            }
            if (gateways.Any(g => g.IsV4 == address.IsV4))
            {
                error($"more than one {(address.IsV4 ? "IPv4" : "IPv6")} gateway (give at most one per family)");
                return null;
            }
            gateways.Add(address);
        }
        if (gateways.Count == 0) { error("expected an IP address or a list of one IPv4 and one IPv6 address"); return null; }
        return gateways.ToImmutable();
    }

    private static int? ReadInt(ManifestNode node, int min, int max, Action<string> error)
    {
        if (ReadScalar(node, error) is not { } text) return null;
        if (!int.TryParse(text, NumberStyles.None, CultureInfo.InvariantCulture, out int v)) { error($"\"{text}\" is not an integer"); return null; }
        if (v < min || v > max) { error($"{v} is out of range ({min}-{max})"); return null; }
        return v;
    }

    private static ImmutableArray<Cidr>? ReadCidrs(ManifestNode node, Action<string> error)
    {
        if (node is not ManifestSequence seq) { error("expected a list of CIDRs"); return null; }
        var cidrs = ImmutableArray.CreateBuilder<Cidr>();
        bool ok = true;
        foreach (var item in seq.Items)
        {
            if (item is ManifestScalar { IsNull: false } s && Cidr.TryParse(s.Value, out var c)) cidrs.Add(c);
            else { error($"\"{(item as ManifestScalar)?.Value}\" is not a CIDR"); ok = false; }
        }
        return ok ? cidrs.ToImmutable() : null;
    }

    /// <summary>Seconds as an integer, or a Go duration like kube-proxy's ("24h0m0s", "30s", "1h").</summary>
    private static TimeSpan? ReadDuration(ManifestNode node, Action<string> error)
    {
        if (ReadScalar(node, error) is not { } text) return null;
        if (long.TryParse(text, NumberStyles.None, CultureInfo.InvariantCulture, out long seconds) && seconds <= int.MaxValue)
            return TimeSpan.FromSeconds(seconds);
        var m = GoDuration().Match(text);
        if (m.Success && text.Length > 0)
        {
            static long Part(Group g) => g.Success ? long.Parse(g.Value, CultureInfo.InvariantCulture) : 0;
            return TimeSpan.FromHours(Part(m.Groups["h"])) + TimeSpan.FromMinutes(Part(m.Groups["m"])) + TimeSpan.FromSeconds(Part(m.Groups["s"]));
        }
        error($"\"{text}\" is not a duration (seconds, or like \"1h30m0s\")");
        return null;
    }

    [GeneratedRegex(@"^(?:(?<h>\d{1,6})h)?(?:(?<m>\d{1,6})m)?(?:(?<s>\d{1,9})s)?$", RegexOptions.CultureInvariant)]
    private static partial Regex GoDuration();

    internal static bool TryParseRange(string text, out PortRange range)
    {
        range = default;
        int dash = text.IndexOf('-');
        if (dash <= 0) return false;
        if (!int.TryParse(text.AsSpan(0, dash), NumberStyles.None, CultureInfo.InvariantCulture, out int first)) return false;
        if (!int.TryParse(text.AsSpan(dash + 1), NumberStyles.None, CultureInfo.InvariantCulture, out int last)) return false;
        if (first < 1 || last > 65535 || first > last) return false;
        range = new PortRange(first, last);
        return true;
    }

    internal static bool IsPrime(int n)
    {
        if (n < 2) return false;
        if (n % 2 == 0) return n == 2;
        for (int d = 3; (long)d * d <= n; d += 2)
            if (n % d == 0) return false;
        return true;
    }
}
