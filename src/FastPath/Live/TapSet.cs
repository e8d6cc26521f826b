using FastPath.DataPlane.Pipeline;
using FastPath.DataPlane.Ports;

namespace FastPath.Live;

/// <summary>How `run --attach` opens an existing interface.</summary>
public enum AttachMode
{
    /// <summary>The best this machine allows, saying which it fell back to: AF_XDP, then AF_PACKET, then libpcap.</summary>
    Auto,
    Xdp,
    Packet,
    Pcap,
}

/// <summary>`--attach IFNAME[=PORT]`: an existing interface for a port (null: the port its name implies).</summary>
public sealed record AttachSpec(string Interface, string? Port)
{
    /// <summary>Parses IFNAME or IFNAME=PORT; null with a one-line reason when it is not one.</summary>
    public static AttachSpec? Parse(string text, out string? error)
    {
        int eq = text.IndexOf('=');
        string name = eq < 0 ? text : text[..eq];
        string? port = eq < 0 ? null : text[(eq + 1)..];
        error = !LinkDevice.IsValidName(name)
            ? $"--attach {text}: \"{name}\" is not a valid interface name (1-{LinkDevice.MaxNameLength} characters, no '/', ':' or spaces)"
            : port is "" ? $"--attach {text}: the port after '=' is empty (uplink, host or NAMESPACE/POD)" : null;
        return error is null ? new AttachSpec(name, port) : null;
    }
}

/// <summary>What `run` puts behind its ports: TAPs it creates or finds, and existing interfaces it attaches to.</summary>
/// <param name="Taps">`--tap`: every port without an interface of its own gets a TAP (the uplink's is
/// <paramref name="UplinkTap"/>; the host port only with <paramref name="HostTap"/>). Without it, a pod's port attaches
/// to the host end of the pod's veth, named as its TAP would be (<see cref="TapSet.PodTapName"/>; `fastpath-cni` names
/// it so), as soon as that interface exists and is up.</param>
/// <param name="Queues">Queues per device: one per forwarding worker.</param>
/// <param name="Offloads">Open TAPs with the virtio-net header and offloads (partial checksums, GSO).</param>
/// <param name="Umems">One AF_XDP memory per worker (queue q of every AF_XDP device on <c>Umems[q]</c>, so the
/// worker forwards between them without copying); null: each AF_XDP device gets memory of its own.</param>
/// <param name="Persist">`--state-dir`: TAPs are created persistent and found again by the next `run`, wherever they
/// were moved; null: they go with this process.</param>
public sealed record LinkOptions(bool Taps, string UplinkTap, string? HostTap, IReadOnlyList<AttachSpec> Attach,
    AttachMode Mode, int Queues = 1, bool Offloads = true, IReadOnlyList<XdpUmem>? Umems = null, PersistentTaps? Persist = null);

/// <summary>
/// The devices behind a snapshot's ports: TAPs (the uplink's named on the command line, one per local pod named by
/// <see cref="PodTapName"/>) and existing interfaces attached through AF_XDP, AF_PACKET or libpcap (`--attach`, and pods'
/// veths). <see cref="Reconcile"/> follows the snapshot as pods come and go (opening new devices, closing those of
/// removed pods, attaching a pod's veth once it appears, letting go of one that disappeared) and gives the device of
/// every port index, for <see cref="TapPort.Attach"/>.
/// </summary>
public sealed class TapSet(LinkOptions options, TextWriter log) : IDisposable
{
    /// <summary>Prefix of pod TAP (and host-side veth) names.</summary>
    public const string PodPrefix = LinkDevice.PortInterfacePrefix;

    private readonly Dictionary<string, (LinkDevice Device, int Index)> _byPortName = new(StringComparer.Ordinal);
    private readonly List<(string Port, LinkDevice Device)> _retiring = [];
    private readonly HashSet<string> _waitingLogged = new(StringComparer.Ordinal);
    private bool _autoLogged;

    public TapSet(string uplinkTap, string? hostTap, TextWriter log, int queues = 1, bool offloads = true)
        : this(new LinkOptions(true, uplinkTap, hostTap, [], AttachMode.Auto, queues, offloads), log)
    {
    }

    /// <summary>A pod's TAP (or host-side veth) name: <see cref="LinkDevice.PortInterfaceName"/>.</summary>
    public static string PodTapName(string portName) => LinkDevice.PortInterfaceName(portName);

    /// <summary>Whether <paramref name="name"/> has the shape of a pod's interface name ("fp" + 12 hex digits).</summary>
    public static bool LooksLikePodInterface(string name) =>
        name.Length == PodPrefix.Length + 12 && name.StartsWith(PodPrefix, StringComparison.Ordinal)
        && name.AsSpan(PodPrefix.Length).ContainsAnyExcept("0123456789abcdef") == false;

    /// <summary>Ports that should have an attached interface which does not exist (or is down) yet.</summary>
    public int Waiting { get; private set; }

    /// <summary>
    /// The device a port wants: its name, whether it is an existing interface to attach (else a TAP), and whether
    /// its absence is an error (named on the command line) rather than something to wait for (a pod's veth).
    /// </summary>
    public (string Name, bool Attach, bool Required)? Plan(PortDefinition port)
    {
        foreach (var spec in options.Attach)
            if (spec.Port == port.Name) return (spec.Interface, true, true);
        foreach (var spec in options.Attach)
        {
            if (spec.Port is not null) continue;
            if (port.Kind == PortKind.Pod && spec.Interface == PodTapName(port.Name)) return (spec.Interface, true, true);
            if (port.Kind == PortKind.Uplink && !LooksLikePodInterface(spec.Interface)) return (spec.Interface, true, true);
        }
        if (port.Kind == PortKind.Pod && !options.Taps) return (PodTapName(port.Name), true, false);
        if (!options.Taps) return null;
        return port.Kind switch
        {
            PortKind.Uplink => (options.UplinkTap, false, true),
            PortKind.Host => options.HostTap is { } host ? (host, false, true) : null,
            _ => (PodTapName(port.Name), false, true),
        };
    }

    /// <summary>Opens the devices <paramref name="snapshot"/> needs and closes the others.</summary>
    /// <param name="deferClose">Keep the devices of removed ports open until <see cref="CloseRetired"/> (when no worker
    /// reads them any more), so a descriptor number is never reused under a worker that still polls it.</param>
    /// <returns>The device per port index.</returns>
    /// <exception cref="IOException">A device named on the command line could not be created or attached.</exception>
    public LinkDevice?[] Reconcile(ForwardingSnapshot snapshot, bool deferClose = false)
    {
        var byPort = new LinkDevice?[snapshot.PortCount];
        var wanted = new HashSet<string>(StringComparer.Ordinal);
        int waiting = 0;
        for (int p = 0; p < snapshot.PortCount; p++)
        {
            var port = snapshot.Ports[p];
            if (Plan(port) is not var (name, attach, required)) continue;
            if (_byPortName.TryGetValue(port.Name, out var held) && attach && InterfaceState.Index(name) != held.Index)
            {
                // The interface went away (its pod was deleted: the veth goes with the namespace) or was made anew.
                _retiring.Add((port.Name, held.Device));
                _byPortName.Remove(port.Name);
                log.WriteLine($"attach {name} = {port.Name} (gone)");
            }
            if (!_byPortName.TryGetValue(port.Name, out held))
            {
                if (attach && !required && !InterfaceState.IsUp(name))
                {
                    waiting++;
                    if (_waitingLogged.Add(port.Name)) log.WriteLine($"attach {name} = {port.Name} (waiting for the interface: the CNI plugin creates it)");
                    continue;
                }
                string? where = null;
                var device = attach ? OpenAttached(name) : OpenTap(name, out where);
                held = (device, InterfaceState.Index(name));
                _byPortName[port.Name] = held;
                _waitingLogged.Remove(port.Name);
                log.WriteLine(attach
                    ? $"attach {name} = {port.Name} ({device.Kind.ToString().ToLowerInvariant()}); {device.Queues} queue(s)"
                    : $"tap {name} = {port.Name} ({where ?? (device.Created ? "created" : "attached")}); {Describe(device)}");
            }
            wanted.Add(port.Name);
            byPort[p] = held.Device;
        }
        foreach (var gone in _byPortName.Keys.Where(k => !wanted.Contains(k)).ToList())
        {
            _retiring.Add((gone, _byPortName[gone].Device));
            _byPortName.Remove(gone);
        }
        Waiting = waiting;
        if (!deferClose) CloseRetired();
        return byPort;
    }

    /// <summary>
    /// A port's TAP: created (persistent under `--state-dir`), or the one a previous `run` left, found by its name here
    /// or where it was moved to (<see cref="PersistentTaps.Locate"/>); <paramref name="where"/> says which when found.
    /// </summary>
    private TapDevice OpenTap(string name, out string? where)
    {
        where = null;
        if (options.Persist is not { } persist) return TapDevice.Open(name, options.Queues, options.Offloads);
        bool owned = persist.Owns(name), here = InterfaceState.Index(name) != 0;
        TapDevice device;
        if (OpenPrepared(name, owned && !here, persist, out where) is { } early) device = early;
        else if (owned && !here && persist.Locate(name) is var (netns, ifName))
        {
            device = TapDevice.OpenIn(netns, ifName, name, options.Queues, options.Offloads);
            where = $"found again in {netns} as {ifName}";
        }
        else
        {
            device = TapDevice.Open(name, options.Queues, options.Offloads, persist: true, owned: owned);
            if (owned && here) where = "found again";
        }
        if (device.Created && !device.Persistent) device.SetPersistent(true);
        persist.Record([device]);
        return device;
    }

    /// <summary>The TAP on the descriptors <see cref="PrepareTakeover"/> opened, if it is still where it was then.</summary>
    private TapDevice? OpenPrepared(string name, bool elsewhere, PersistentTaps persist, out string? where)
    {
        where = null;
        if (!_prepared.Remove(name, out var early)) return null;
        if (!elsewhere || persist.Seen(name) != early.Seen)
        {
            TapDevice.CloseTun(early.Tun);
            return null;
        }
        try
        {
            var device = TapDevice.OpenIn(early.Netns, early.Seen.IfName, name, options.Queues, options.Offloads, early.Tun);
            where = $"found again in {early.Netns} as {early.Seen.IfName}";
            return device;
        }
        catch (IOException e)
        {
            log.WriteLine($"{e.Message}; looking for tap {name} again");
            return null;
        }
    }

    // TAPs in other namespaces whose /dev/net/tun descriptors were opened there before a takeover's hand-over.
    private readonly Dictionary<string, (string Netns, (ulong Device, ulong Inode, string IfName) Seen, int[] Tun)> _prepared = new(StringComparer.Ordinal);

    /// <summary>
    /// `run --takeover`, before it asks for the hand-over: for every persistent TAP of <paramref name="snapshot"/> that a
    /// previous `run` left in another namespace (a pod's), finds that namespace and opens the TAP's /dev/net/tun
    /// descriptors in it, so <see cref="Reconcile"/> in the forwarding gap only attaches them (TUNSETIFF: the previous
    /// process has let go of the device by then) — no namespace search, no thread, no setns. Returns how many.
    /// </summary>
    public int PrepareTakeover(ForwardingSnapshot snapshot)
    {
        if (options.Persist is not { } persist) return 0;
        for (int p = 0; p < snapshot.PortCount; p++)
        {
            if (Plan(snapshot.Ports[p]) is not (var name, false, _) || _prepared.ContainsKey(name)) continue;
            if (!persist.Owns(name) || InterfaceState.Index(name) != 0 || persist.Seen(name) is not { } seen
                || persist.Locate(name) is not var (netns, _)) continue;
            try
            {
                _prepared[name] = (netns, seen, TapDevice.OpenTunIn(netns, options.Queues));
            }
            catch (IOException e)
            {
                log.WriteLine($"{e.Message}; tap {name} is looked for after the hand-over");
            }
        }
        return _prepared.Count;
    }

    /// <summary>Notes where every persistent TAP is now (`--state-dir`; the coordinator calls it every second).</summary>
    public void RecordWhereabouts() => options.Persist?.Record(_byPortName.Values.Select(h => h.Device));

    /// <summary>Persistent TAPs held (they stay after this process).</summary>
    public int PersistentCount => _byPortName.Values.Count(h => h.Device is TapDevice { Persistent: true });

    /// <summary>Opens an existing interface in the configured mode; under auto, falls back and says so once.</summary>
    private LinkDevice OpenAttached(string name)
    {
        InterfaceState.Require(name);
        switch (options.Mode)
        {
            case AttachMode.Packet: return PacketSocketDevice.Open(name, options.Queues);
            case AttachMode.Pcap: return PcapLinkDevice.Open(name);
            case AttachMode.Xdp: return OpenXdp(name);
        }
        try
        {
            return OpenXdp(name);
        }
        catch (IOException e)
        {
            // Older kernels, no CAP_BPF, another XDP program on the interface, fewer queues than workers.
            if (!_autoLogged) log.WriteLine($"{e.Message}; falling back to AF_PACKET (TPACKET_V3)");
            _autoLogged = true;
        }
        try
        {
            return PacketSocketDevice.Open(name, options.Queues);
        }
        catch (IOException e) when (options.Queues == 1)
        {
            log.WriteLine($"{e.Message}; falling back to libpcap");
            return PcapLinkDevice.Open(name);
        }
    }

    private XdpSocketDevice OpenXdp(string name) =>
        options.Umems is { } umems ? XdpSocketDevice.Open(name, umems) : XdpSocketDevice.Open(name, options.Queues);

    /// <summary>Frames the attached AF_PACKET devices skipped (coordinator thread; figures, not a consistent cut).</summary>
    public long Skipped
    {
        get
        {
            long n = 0;
            foreach (var (device, _) in _byPortName.Values) if (device is PacketSocketDevice packet) n += packet.Skipped;
            return n;
        }
    }

    /// <summary>True while devices of removed ports wait for <see cref="CloseRetired"/>.</summary>
    public bool HasRetired => _retiring.Count > 0;

    /// <summary>Closes the devices of ports that are gone (those this process created disappear).</summary>
    public void CloseRetired()
    {
        foreach (var (port, device) in _retiring)
        {
            // A persistent TAP of a port that is gone goes, as a non-persistent one would with its descriptors.
            if (device is TapDevice { Persistent: true } tap)
            {
                tap.SetPersistent(false);
                options.Persist?.Forget(tap.Name);
            }
            device.Dispose();
            log.WriteLine(device.Kind == LinkKind.Tap ? $"tap {device.Name} = {port} (closed: the port is gone)" : $"attach {device.Name} = {port} (closed)");
        }
        _retiring.Clear();
    }

    private static string Describe(LinkDevice device) =>
        $"{device.Queues} queue(s), offloads {(device.Offloads == TapOffloads.None ? "none" : device.Offloads.ToString().Replace(", ", "+"))}";

    /// <summary>Closes every device: the ones this process created disappear, unless persistent.</summary>
    public void Dispose()
    {
        foreach (var early in _prepared.Values) TapDevice.CloseTun(early.Tun);
        _prepared.Clear();
        CloseRetired();
        foreach (var (device, _) in _byPortName.Values) device.Dispose();
        _byPortName.Clear();
    }
}
