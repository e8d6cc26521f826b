using FastPath.DataPlane.Conntrack;
using FastPath.DataPlane.Nat;
using FastPath.DataPlane.Packets;
using FastPath.DataPlane.Pipeline;
using FastPath.DataPlane.Routing;
using FastPath.DataPlane.Telemetry;

namespace FastPath.DataPlane.Policy;

/// <summary>
/// NetworkPolicy on the packet path of one worker: decides a new flow once, where conntrack would create its entry,
/// and counts what it denies. Established flows never come here — their conntrack entry lets them pass, both ways.
/// </summary>
/// <remarks>
/// <para>Where: after Service DNAT (ingress is checked against the real backend pod, egress against the real
/// destination) and before masquerade (egress sees the pod's own source). A Service flow that SNATs its client
/// (externalTrafficPolicy Cluster, hairpin) is judged on the client's original address, as iptables-based CNIs do
/// (their filter chain runs before POSTROUTING's MASQUERADE).</para>
/// <para>Stateful: a flow allowed to or from an isolated local pod that no NAT stage tracks gets a plain conntrack
/// entry (no rewrite), so its replies pass whatever the reply direction's rules say; a node enforces its own pods'
/// ingress and egress, so a flow between two nodes is checked once at each end.</para>
/// </remarks>
public sealed class PolicyEnforcer
{
    /// <summary><see cref="ConntrackEntry.NatKind"/> of a plain (not translated) entry opened for policy.</summary>
    public const byte NatKind = 3;

    private PolicyTable _sized = PolicyTable.Empty;
    private ForwardingSnapshot? _sizedSnapshot;
    private long[] _deniedByPolicy = [];
    private long[] _deniedByPort = [];

    /// <summary>
    /// Decides a packet that belongs to no tracked connection, addressed (after DNAT) to <paramref name="destination"/>.
    /// <paramref name="serviceOpened"/>: the Service stage
    /// just created its entry and DNATed the packet (the entry is removed again when policy denies). Returns None to
    /// go on, <see cref="DropReason.PolicyDenied"/>, or <see cref="DropReason.ConntrackFull"/>.
    /// </summary>
    public DropReason Admit<TObserver>(ForwardingSnapshot snap, ConntrackTable table, byte[] arena, ref PacketMeta m, int ingress, IpAddr destination,
        bool serviceOpened, ref TObserver observer) where TObserver : struct, IPacketObserver
    {
        var policy = snap.Policy;
        int from = ingress >= PortIndex.FirstPod ? ingress : -1;
        int to = snap.LocalAddresses.Lookup(destination);
        if (!policy.IsIsolated(from) && !policy.IsIsolated(to)) return DropReason.None; // nothing to judge or track
        if (!ReferenceEquals(snap, _sizedSnapshot)) Resize(snap);
        var frame = arena.AsSpan(m.Offset, m.Length);
        // Non-first fragments carry no ports and are not reassembled here: they pass, as with stateless filters —
        // their first fragment, which carries the ports, was judged, and without it the datagram cannot be reassembled.
        if (!FlowKey.TryFromPacket(frame, in m, out var key)) return DropReason.None;
        uint portKey = PolicyRuleSet.Key(key.Protocol, key.Protocol is IpProtocol.Tcp or IpProtocol.Udp or IpProtocol.Sctp ? key.DestinationPort : (ushort)0);

        var peer = key.Source;
        int serviceEntry = -1;
        if (serviceOpened)
        {
            serviceEntry = table.Lookup(key.Reverse(), m.Timestamp, out _);
            if (serviceEntry >= 0) peer = table[serviceEntry].Original.Source;
        }

        if (policy.For(from, PolicyDirection.Egress) is { } egress)
        {
            bool allowed = egress.Allows(key.Destination, portKey);
            Report(policy, egress, allowed, ref observer);
            if (!allowed) return Deny(table, serviceEntry, egress, from, PolicyDirection.Egress);
        }
        if (to >= PortIndex.FirstPod && policy.For(to, PolicyDirection.Ingress) is { } ingressRules)
        {
            bool allowed = ingressRules.Allows(peer, portKey);
            Report(policy, ingressRules, allowed, ref observer);
            if (!allowed) return Deny(table, serviceEntry, ingressRules, to, PolicyDirection.Ingress);
        }

        if (serviceOpened || (m.Flags & PacketFlags.IcmpError) != 0) return DropReason.None;
        if (to < 0 && !RoutedWithoutNat(snap, key.Destination)) return DropReason.None;
        int index = table.Insert(key, key.Reverse(), m.Timestamp);
        if (index == ConntrackTable.Full) return DropReason.ConntrackFull;
        if (index >= 0)
        {
            table[index].NatKind = NatKind;
            table.Observe(index, isReply: false, ConntrackNat.StateInput(frame, in m), m.Length, m.Timestamp);
        }
        return DropReason.None;
    }

    /// <summary>Flows denied by a policy (every policy isolating the pod counts the denial), since the worker started.</summary>
    public long Denied(string policy)
    {
        int id = IndexOf(_sized.PolicyNames, policy);
        return id < 0 ? 0 : _deniedByPolicy[id];
    }

    /// <summary>Flows denied to (ingress) or from (egress) the pod on <paramref name="port"/> of the current snapshot.</summary>
    public long Denied(int port, PolicyDirection direction)
    {
        int i = port * 2 + (int)direction;
        return (uint)i < (uint)_deniedByPort.Length ? _deniedByPort[i] : 0;
    }

    /// <summary>Tells a tracing observer which policies isolate the pod and what their union decided (compiled out for <see cref="NoObserver"/>).</summary>
    private static void Report<TObserver>(PolicyTable policy, PolicyRuleSet set, bool allowed, ref TObserver observer)
        where TObserver : struct, IPacketObserver
    {
        if (typeof(TObserver) == typeof(NoObserver)) return;
        foreach (int id in set.Policies) observer.OnPolicy(policy.PolicyNames[id], allowed);
    }

    private DropReason Deny(ConntrackTable table, int serviceEntry, PolicyRuleSet set, int port, PolicyDirection direction)
    {
        foreach (int id in set.Policies) _deniedByPolicy[id]++;
        _deniedByPort[port * 2 + (int)direction]++;
        if (serviceEntry >= 0) table.Remove(serviceEntry);
        return DropReason.PolicyDenied;
    }

    /// <summary>
    /// A pod's flow to a remote address needs a policy entry only when it will be forwarded without one of its own:
    /// masquerade (a masqueraded route and a node address of the family) tracks it already, and an unreachable
    /// destination is dropped anyway.
    /// </summary>
    private static bool RoutedWithoutNat(ForwardingSnapshot snap, IpAddr destination)
    {
        int hop = snap.Routes.Lookup(destination);
        if (hop < 0) return false;
        var nh = snap.Routes.NextHops[hop];
        if (nh.Kind == NextHopKind.Unreachable) return false;
        bool hasNodeAddress = destination.IsV4 ? snap.UnderlayV4 != 0 : snap.MasqueradeV6.Value != UInt128.Zero;
        return !(nh.Masquerade && hasNodeAddress);
    }

    // Control path (once per snapshot): counters follow policy and port names across snapshots.
    private void Resize(ForwardingSnapshot snap)
    {
        var policy = snap.Policy;
        var byPolicy = _deniedByPolicy;
        // The compiler hands on the same name list while no policy comes or goes (most snapshots: a Service or pod
        // changed); otherwise counters move by name, through a dictionary (1,000 policies: not a million compares).
        if (!ReferenceEquals(policy.PolicyNames, _sized.PolicyNames))
        {
            var oldIds = new Dictionary<string, int>(_sized.PolicyNames.Count, StringComparer.Ordinal);
            for (int id = 0; id < _sized.PolicyNames.Count; id++) oldIds.TryAdd(_sized.PolicyNames[id], id);
            byPolicy = new long[policy.PolicyNames.Count];
            for (int id = 0; id < byPolicy.Length; id++)
                if (oldIds.TryGetValue(policy.PolicyNames[id], out int old)) byPolicy[id] = _deniedByPolicy[old];
        }
        var byPort = new long[snap.PortCount * 2];
        if (_sizedSnapshot is { } previous)
            for (int p = 0; p < snap.PortCount; p++)
            {
                int old = previous.FindPort(snap.Ports[p].Name);
                if (old < 0 || old * 2 + 1 >= _deniedByPort.Length) continue;
                byPort[p * 2] = _deniedByPort[old * 2];
                byPort[p * 2 + 1] = _deniedByPort[old * 2 + 1];
            }
        _deniedByPolicy = byPolicy;
        _deniedByPort = byPort;
        _sized = policy;
        _sizedSnapshot = snap;
    }

    private static int IndexOf(IReadOnlyList<string> names, string name)
    {
        for (int i = 0; i < names.Count; i++)
            if (string.Equals(names[i], name, StringComparison.Ordinal)) return i;
        return -1;
    }
}
