using System.Collections;
using System.Diagnostics;
using System.Net.Sockets;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using FastPath.DataPlane.Ports;

namespace FastPath.Cni;

/// <summary>
/// `fastpath-cni`, a CNI plugin (spec 1.0) shaped like the reference `ptp` plugin: ADD creates a veth pair, keeps
/// the host end in the node's namespace (named <see cref="LinkDevice.PortInterfaceName"/> of "namespace/pod", as
/// `fastpath run` expects it), moves the other into the pod's namespace as CNI_IFNAME with the addresses the IPAM
/// plugin (`host-local`) gives, /32 and /128 host routes to a link-local gateway FastPath answers ARP/ND for
/// (169.254.1.1, fe80::1) and the default routes through it, and then asks the running node (`socket` in the
/// config, the node's `run --cni-socket`) to attach the host end; a failure at any step undoes the steps before it.
/// DEL releases the addresses and deletes the veth (gone with the namespace already is fine): idempotent. CHECK
/// compares the links, addresses and the node's attachment with what ADD returned (prevResult).
/// Links and addresses are set with iproute2 (`ip`, `nsenter`) and `ethtool`: the pod's end sends complete checksums
/// (tx offload off), which an attached AF_PACKET or libpcap port needs.
/// </summary>
public static class CniPlugin
{
    public const string SpecVersion = "1.0.0";
    private static readonly string[] Supported = ["0.3.0", "0.3.1", "0.4.0", "1.0.0"];
    public const string Gateway4 = "169.254.1.1", Gateway6 = "fe80::1";

    public static int Run(IDictionary environment, string stdin, TextWriter stdout)
    {
        string Env(string name) => environment[name] as string ?? "";
        string command = Env("CNI_COMMAND");
        try
        {
            if (command == "VERSION")
            {
                stdout.WriteLine(new JsonObject { ["cniVersion"] = SpecVersion, ["supportedVersions"] = new JsonArray([.. Supported.Select(v => (JsonNode)v)]) }.ToJsonString());
                return 0;
            }
            var config = NetworkConfig.Parse(stdin);
            var call = Invocation.From(Env, config, command);
            switch (command)
            {
                case "ADD":
                    stdout.WriteLine(Add(call).ToJsonString());
                    return 0;
                case "DEL":
                    Del(call);
                    return 0;
                case "CHECK":
                    Check(call);
                    return 0;
                default:
                    throw new CniError(CniError.InvalidEnvironment, $"CNI_COMMAND \"{command}\": must be ADD, DEL, CHECK or VERSION");
            }
        }
        catch (CniError e)
        {
            stdout.WriteLine(new JsonObject { ["cniVersion"] = SpecVersion, ["code"] = e.Code, ["msg"] = e.Message, ["details"] = e.Details }.ToJsonString());
            return 1;
        }
    }

    private static JsonObject Add(Invocation call)
    {
        var undo = new Stack<Action>();
        try
        {
            var ipam = Ipam(call, "ADD");
            undo.Push(() => Ipam(call, "DEL"));
            var addresses = (ipam["ips"] as JsonArray ?? []).Select(ip => ip!["address"]!.GetValue<string>().Split('/')[0]).ToList();
            if (addresses.Count == 0) throw new CniError(CniError.LinkSetup, $"IPAM {call.Config.IpamType} gave no address");

            string host = call.HostInterface;
            if (Ip(null, "link", "show", host).Exit == 0)
                throw new CniError(CniError.LinkSetup, $"{host} already exists in the node's namespace: pod {call.Pod} has a veth (DEL it first)");
            Must(Ip(null, "link", "add", host, "mtu", call.Config.Mtu.ToString(), "type", "veth", "peer", "name", call.IfName,
                "mtu", call.Config.Mtu.ToString(), "netns", call.NetNs), "create the veth pair");
            undo.Push(() => Ip(null, "link", "del", host));
            Tool("sysctl", "-qw", $"net.ipv6.conf.{host}.disable_ipv6=1");
            Must(Ip(null, "link", "set", host, "up"), $"set {host} up");
            if (call.Mac is { } mac) Must(Ip(call.NetNs, "link", "set", call.IfName, "address", mac), $"set {call.IfName}'s MAC");
            Must(Ip(call.NetNs, "link", "set", "lo", "up"), "set lo up");
            Must(Ip(call.NetNs, "link", "set", call.IfName, "up"), $"set {call.IfName} up");
            Tool("nsenter", $"--net={call.NetNs}", "ethtool", "-K", call.IfName, "tx", "off");
            bool any6 = false;
            foreach (var address in addresses)
            {
                bool v6 = address.Contains(':');
                any6 |= v6;
                Must(v6 ? Ip(call.NetNs, "-6", "addr", "add", $"{address}/128", "dev", call.IfName, "nodad")
                        : Ip(call.NetNs, "addr", "add", $"{address}/32", "dev", call.IfName), $"add {address} to {call.IfName}");
            }
            Must(Ip(call.NetNs, "route", "add", Gateway4, "dev", call.IfName, "scope", "link"), "add the gateway route");
            Must(Ip(call.NetNs, "route", "add", "default", "via", Gateway4, "dev", call.IfName), "add the default route");
            if (any6) Must(Ip(call.NetNs, "-6", "route", "add", "default", "via", Gateway6, "dev", call.IfName), "add the IPv6 default route");

            string answer = AskNode(call, "ADD");
            if (!answer.StartsWith("ok", StringComparison.Ordinal))
                throw new CniError(CniError.NodeRefused, $"the FastPath node did not attach {host}: {answer["error ".Length..]}");

            string hostMac = File.ReadAllText($"/sys/class/net/{host}/address").Trim();
            string podMac = Ip(call.NetNs, "-br", "link", "show", call.IfName).Output.Split(' ', StringSplitOptions.RemoveEmptyEntries) is { Length: > 2 } f ? f[2] : "";
            var ips = new JsonArray();
            foreach (var address in addresses)
            {
                bool v6 = address.Contains(':');
                ips.Add(new JsonObject { ["address"] = v6 ? $"{address}/128" : $"{address}/32", ["gateway"] = v6 ? Gateway6 : Gateway4, ["interface"] = 1 });
            }
            var routes = new JsonArray { new JsonObject { ["dst"] = "0.0.0.0/0", ["gw"] = Gateway4 } };
            if (any6) routes.Add(new JsonObject { ["dst"] = "::/0", ["gw"] = Gateway6 });
            return new JsonObject
            {
                ["cniVersion"] = call.Config.CniVersion,
                ["interfaces"] = new JsonArray
                {
                    new JsonObject { ["name"] = host, ["mac"] = hostMac },
                    new JsonObject { ["name"] = call.IfName, ["mac"] = podMac, ["sandbox"] = call.NetNs },
                },
                ["ips"] = ips,
                ["routes"] = routes,
                ["dns"] = call.Config.Dns?.DeepClone() ?? new JsonObject(),
            };
        }
        catch (CniError)
        {
            while (undo.TryPop(out var step)) { try { step(); } catch (CniError) { } }
            throw;
        }
    }

    private static void Del(Invocation call)
    {
        // Every step tolerates what is already gone (spec: "DEL ... should not return an error" when resources are missing).
        Ipam(call, "DEL");
        if (Ip(null, "link", "show", call.HostInterface).Exit == 0) Ip(null, "link", "del", call.HostInterface);
        try { AskNode(call, "DEL"); } catch (CniError) { } // a node that is not running has nothing to let go of
    }

    private static void Check(Invocation call)
    {
        var previous = call.Config.PreviousResult ?? throw new CniError(CniError.InvalidConfig, "CHECK needs prevResult in the network configuration");
        string host = call.HostInterface;
        if (!InterfaceState.IsUp(host)) throw new CniError(CniError.CheckFailed, $"{host}, the host end of {call.Pod}'s veth, is missing or down");
        var (exit, addresses) = Ip(call.NetNs, "-br", "addr", "show", call.IfName);
        if (exit != 0) throw new CniError(CniError.CheckFailed, $"{call.IfName} is missing in {call.NetNs}");
        foreach (var ip in previous["ips"] as JsonArray ?? [])
        {
            string address = ip!["address"]!.GetValue<string>();
            if (!addresses.Contains(address, StringComparison.Ordinal))
                throw new CniError(CniError.CheckFailed, $"{call.IfName} in {call.NetNs} lacks {address}");
        }
        Ipam(call, "CHECK");
        string answer = AskNode(call, "CHECK");
        if (!answer.StartsWith("ok", StringComparison.Ordinal)) throw new CniError(CniError.CheckFailed, $"the FastPath node: {answer}");
    }

    /// <summary>Runs the IPAM plugin from CNI_PATH with this invocation's environment and configuration.</summary>
    private static JsonObject Ipam(Invocation call, string command)
    {
        string? plugin = call.CniPath.Split(':', StringSplitOptions.RemoveEmptyEntries)
            .Select(d => Path.Combine(d, call.Config.IpamType)).FirstOrDefault(File.Exists);
        if (plugin is null) throw new CniError(CniError.InvalidConfig, $"IPAM plugin {call.Config.IpamType} not found in CNI_PATH {call.CniPath} (Debian: containernetworking-plugins)");
        var info = new ProcessStartInfo(plugin) { RedirectStandardInput = true, RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (var (key, value) in call.Environment) info.Environment[key] = value;
        info.Environment["CNI_COMMAND"] = command;
        using var process = Process.Start(info)!;
        process.StandardInput.Write(call.Config.Raw);
        process.StandardInput.Close();
        string output = process.StandardOutput.ReadToEnd();
        process.WaitForExit();
        if (process.ExitCode != 0)
        {
            string message = output;
            try { message = JsonNode.Parse(output)?["msg"]?.GetValue<string>() ?? output; } catch (JsonException) { }
            if (command == "DEL") return [];
            throw new CniError(CniError.LinkSetup, $"IPAM {call.Config.IpamType} {command}: {message.Trim()}");
        }
        return output.Length == 0 ? [] : JsonNode.Parse(output) as JsonObject ?? [];
    }

    /// <summary>One request line to the node's socket, one answer line back.</summary>
    private static string AskNode(Invocation call, string command)
    {
        try
        {
            using var socket = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
            socket.ReceiveTimeout = 15000;
            socket.Connect(new UnixDomainSocketEndPoint(call.Config.Socket));
            using var stream = new NetworkStream(socket);
            using var writer = new StreamWriter(stream, new UTF8Encoding(false)) { AutoFlush = true };
            using var reader = new StreamReader(stream, Encoding.UTF8);
            writer.WriteLine($"{command} {call.Pod} {call.HostInterface}");
            return reader.ReadLine() ?? "error the node closed the connection";
        }
        catch (Exception e) when (e is SocketException or IOException)
        {
            throw new CniError(CniError.TryAgainLater, $"cannot reach the FastPath node at {call.Config.Socket}: {e.Message} (is `fastpath run --cni-socket {call.Config.Socket}` running?)");
        }
    }

    private static void Must((int Exit, string Output) result, string what)
    {
        if (result.Exit != 0) throw new CniError(CniError.LinkSetup, $"could not {what}: {result.Output.Trim()}");
    }

    /// <summary>`ip ARGS` in the node's namespace, or in the pod's (by its CNI_NETNS path) through nsenter.</summary>
    private static (int Exit, string Output) Ip(string? netns, params string[] args) =>
        netns is null ? Tool("ip", args) : Tool("nsenter", [$"--net={netns}", "ip", .. args]);

    private static (int Exit, string Output) Tool(string exe, params string[] args)
    {
        var info = new ProcessStartInfo(exe) { RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (var a in args) info.ArgumentList.Add(a);
        try
        {
            using var process = Process.Start(info)!;
            var stderr = process.StandardError.ReadToEndAsync();
            string output = process.StandardOutput.ReadToEnd();
            process.WaitForExit();
            return (process.ExitCode, output + stderr.Result);
        }
        catch (System.ComponentModel.Win32Exception e)
        {
            throw new CniError(CniError.LinkSetup, $"{exe}: {e.Message} (install iproute2, util-linux and ethtool)");
        }
    }
}
