using FastPath.DataPlane.Conntrack;
using FastPath.DataPlane.Pipeline;

namespace FastPath.DataPlane.Telemetry;

/// <summary>
/// The flow-log observer: connection starts and dropped packets go into a <see cref="FlowRing"/> (ends come from the
/// conntrack table, <see cref="ConntrackTable.FlowLog"/>). Runs the packet path with
/// <see cref="Engine.Process{TObserver}"/>; costs a tuple read per packet only when flow logging is on.
/// </summary>
public struct FlowLogObserver(FlowRing ring) : IPacketObserver
{
    private FlowKey _key;
    private int _bytes;

    public void OnIngress(byte[] arena, in PacketMeta m, int ingress)
    {
        _bytes = m.Length;
        if (m.Drop != DropReason.None || !FlowKey.TryFromPacket(arena.AsSpan(m.Offset, m.Length), in m, out _key)) _key = default;
    }

    public readonly void OnDecapsulated(in PacketMeta inner, uint vni) { }
    public readonly void OnConntrackMiss(in FlowKey key) { }

    public readonly void OnConntrack(in ConntrackEntry entry, bool isReply, bool created, bool related)
    {
        if (created) ring.Started(entry);
    }

    public readonly void OnServiceFrontend(int frontend) { }
    public readonly void OnServiceBackend(int frontend, in Services.ServiceBackend backend, BackendChoice choice, ulong flowHash) { }
    public readonly void OnPolicy(string policy, bool allowed) { }
    public readonly void OnRoute(Packets.IpAddr destination, int hop) { }
    public readonly void OnEncapsulated(uint remote, uint vni) { }

    public readonly void OnVerdict(in PacketMeta m)
    {
        if (m.Drop != DropReason.None) ring.Dropped(_key, m.Drop, m.IngressPort, m.Timestamp, _bytes);
    }
}
