using System.Security.Cryptography;
using System.Text;
using FastPath.DataPlane.Pipeline;
using FastPath.DataPlane.Ports;

namespace FastPath.Live;

/// <summary>
/// The TAP devices behind a snapshot's ports: the uplink's (named on the command line) and one per local pod, named
/// by <see cref="PodTapName"/>. <see cref="Reconcile"/> follows the snapshot as pods come and go (opening new devices,
/// closing those of removed pods) and gives the device of every port index, for <see cref="TapPort.Attach"/>.
/// </summary>
/// <param name="queues">Queues per device: one per forwarding worker.</param>
/// <param name="offloads">Open the devices with the virtio-net header and offloads (partial checksums, GSO).</param>
public sealed class TapSet(string uplinkTap, string? hostTap, TextWriter log, int queues = 1, bool offloads = true) : IDisposable
{
    /// <summary>Prefix of pod TAP names.</summary>
    public const string PodPrefix = "fp";

    private readonly Dictionary<string, TapDevice> _byPortName = new(StringComparer.Ordinal);
    private readonly List<(string Port, TapDevice Device)> _retiring = [];

    /// <summary>
    /// A pod's TAP name: "fp" + the first 12 hex digits of SHA-1("namespace/pod"), 14 characters, within Linux's 15
    /// (the Calico scheme, "cali" + 11 hex of a hash, for the same reason: pod names are longer than any interface
    /// name). In a shell: <c>printf '%s' "$ns/$pod" | sha1sum | cut -c1-12</c>.
    /// </summary>
    public static string PodTapName(string portName) =>
        PodPrefix + Convert.ToHexStringLower(SHA1.HashData(Encoding.UTF8.GetBytes(portName)))[..12];

    /// <summary>The TAP name for a port, or null for a port with no device (the host port unless one was named).</summary>
    public string? TapName(PortDefinition port) => port.Kind switch
    {
        PortKind.Uplink => uplinkTap,
        PortKind.Host => hostTap,
        _ => PodTapName(port.Name),
    };

    /// <summary>Opens the devices <paramref name="snapshot"/> needs and closes the others.</summary>
    /// <param name="deferClose">Keep the devices of removed ports open until <see cref="CloseRetired"/> (when no worker
    /// reads them any more), so a descriptor number is never reused under a worker that still polls it.</param>
    /// <returns>The device per port index.</returns>
    /// <exception cref="IOException">A device could not be created or attached.</exception>
    public TapDevice?[] Reconcile(ForwardingSnapshot snapshot, bool deferClose = false)
    {
        var byPort = new TapDevice?[snapshot.PortCount];
        var wanted = new HashSet<string>(StringComparer.Ordinal);
        for (int p = 0; p < snapshot.PortCount; p++)
        {
            var port = snapshot.Ports[p];
            if (TapName(port) is not { } name) continue;
            wanted.Add(port.Name);
            if (!_byPortName.TryGetValue(port.Name, out var device))
            {
                device = TapDevice.Open(name, queues, offloads);
                _byPortName[port.Name] = device;
                log.WriteLine($"tap {name} = {port.Name} ({(device.Created ? "created" : "attached")}); {Describe(device)}");
            }
            byPort[p] = device;
        }
        foreach (var gone in _byPortName.Keys.Where(k => !wanted.Contains(k)).ToList())
        {
            _retiring.Add((gone, _byPortName[gone]));
            _byPortName.Remove(gone);
        }
        if (!deferClose) CloseRetired();
        return byPort;
    }

    /// <summary>True while devices of removed ports wait for <see cref="CloseRetired"/>.</summary>
    public bool HasRetired => _retiring.Count > 0;

    /// <summary>Closes the devices of ports that are gone (those this process created disappear).</summary>
    public void CloseRetired()
    {
        foreach (var (port, device) in _retiring)
        {
            device.Dispose();
            log.WriteLine($"tap {device.Name} = {port} (closed: the port is gone)");
        }
        _retiring.Clear();
    }

    private static string Describe(TapDevice device) =>
        $"{device.Queues} queue(s), offloads {(device.Offloads == TapOffloads.None ? "none" : device.Offloads.ToString().Replace(", ", "+"))}";

    /// <summary>Closes every device: the ones this process created disappear.</summary>
    public void Dispose()
    {
        CloseRetired();
        foreach (var device in _byPortName.Values) device.Dispose();
        _byPortName.Clear();
    }
}
