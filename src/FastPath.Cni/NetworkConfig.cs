using System.Collections;
using System.Text.Json;
using System.Text.Json.Nodes;
using FastPath.DataPlane.Ports;

namespace FastPath.Cni;

/// <summary>The network configuration on stdin (one plugin of a conflist, as the runtime passes it).</summary>
public sealed record NetworkConfig(string Raw, string CniVersion, string Name, string Socket, int Mtu, string IpamType,
    JsonObject? Dns, JsonObject? PreviousResult)
{
    public const string DefaultSocket = "/run/fastpath/cni.sock";

    public static NetworkConfig Parse(string json)
    {
        JsonObject root;
        try
        {
            root = JsonNode.Parse(json) as JsonObject ?? throw new CniError(CniError.DecodeFailure, "the network configuration is not a JSON object");
        }
        catch (JsonException e)
        {
            throw new CniError(CniError.DecodeFailure, $"the network configuration is not JSON: {e.Message}");
        }
        string version = Text(root, "cniVersion") ?? throw new CniError(CniError.InvalidConfig, "cniVersion is missing");
        if (version is not ("0.3.0" or "0.3.1" or "0.4.0" or "1.0.0"))
            throw new CniError(CniError.IncompatibleVersion, $"cniVersion {version} is not supported (0.3.0, 0.3.1, 0.4.0, 1.0.0)");
        string name = Text(root, "name") ?? throw new CniError(CniError.InvalidConfig, "name is missing");
        int mtu = 1450;
        if (root["mtu"] is { } m && (m.GetValueKind() != JsonValueKind.Number || (mtu = m.GetValue<int>()) is < 576 or > 9000))
            throw new CniError(CniError.InvalidConfig, $"mtu {m.ToJsonString()}: must be a number from 576 to 9000");
        string ipam = (root["ipam"] as JsonObject) is { } i ? Text(i, "type") ?? "" : "";
        if (ipam.Length == 0) throw new CniError(CniError.InvalidConfig, "ipam.type is missing (e.g. host-local)");
        return new NetworkConfig(json, version, name, Text(root, "socket") ?? DefaultSocket, mtu, ipam,
            root["dns"] as JsonObject, root["prevResult"] as JsonObject);
    }

    private static string? Text(JsonObject o, string key) =>
        o[key] is JsonValue v && v.GetValueKind() == JsonValueKind.String ? v.GetValue<string>() : null;
}

/// <summary>One invocation: the CNI_* environment, with the pod from CNI_ARGS (K8S_POD_NAMESPACE, K8S_POD_NAME).</summary>
public sealed record Invocation(NetworkConfig Config, string ContainerId, string NetNs, string IfName, string CniPath,
    string Pod, string? Mac, IReadOnlyDictionary<string, string> Environment)
{
    /// <summary>The host end of the pod's veth: the name `fastpath run` attaches for the pod's port.</summary>
    public string HostInterface => LinkDevice.PortInterfaceName(Pod);

    public static Invocation From(Func<string, string> env, NetworkConfig config, string command)
    {
        var args = env("CNI_ARGS").Split(';', StringSplitOptions.RemoveEmptyEntries)
            .Select(kv => kv.Split('=', 2)).Where(kv => kv.Length == 2).ToDictionary(kv => kv[0], kv => kv[1]);
        string Need(string name) => env(name) is { Length: > 0 } v ? v
            : throw new CniError(CniError.InvalidEnvironment, $"{name} is not set");
        string containerId = Need("CNI_CONTAINERID");
        // DEL may come without a namespace (it is gone already); every other command needs one.
        string netns = command == "DEL" ? env("CNI_NETNS") : Need("CNI_NETNS");
        string ifName = Need("CNI_IFNAME");
        if (!LinkDevice.IsValidName(ifName)) throw new CniError(CniError.InvalidEnvironment, $"CNI_IFNAME {ifName}: not a valid interface name");
        if (!args.TryGetValue("K8S_POD_NAMESPACE", out var ns) || !args.TryGetValue("K8S_POD_NAME", out var pod))
            throw new CniError(CniError.InvalidEnvironment, "CNI_ARGS lacks K8S_POD_NAMESPACE and K8S_POD_NAME: FastPath names a pod's port by them");
        args.TryGetValue("MAC", out var mac);
        var environment = new Dictionary<string, string>();
        foreach (var key in new[] { "CNI_CONTAINERID", "CNI_NETNS", "CNI_IFNAME", "CNI_ARGS", "CNI_PATH" }) environment[key] = env(key);
        return new Invocation(config, containerId, netns, ifName, env("CNI_PATH"), $"{ns}/{pod}", mac, environment);
    }
}
