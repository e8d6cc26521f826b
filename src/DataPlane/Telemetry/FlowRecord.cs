using System.Runtime.InteropServices;
using FastPath.DataPlane.Conntrack;

namespace FastPath.DataPlane.Telemetry;

/// <summary>What a flow record says happened.</summary>
public enum FlowEvent : byte
{
    /// <summary>A tracked connection was created (its first packet passed).</summary>
    Start = 1,
    /// <summary>A tracked connection ended: timed out, evicted or flushed.</summary>
    End,
    /// <summary>Still tracked when the log was closed (the end of a replay).</summary>
    Active,
    /// <summary>A packet was dropped.</summary>
    Drop,
}

/// <summary>One flow-log record: fixed size, no references, so the packet path copies it into the ring and moves on.</summary>
[StructLayout(LayoutKind.Sequential)]
public struct FlowRecord
{
    public FlowEvent Event;
    public DropReason Drop;
    public ConntrackState State;
    /// <summary><see cref="ConntrackEntry.NatKind"/>: 0 none, 1 masquerade, 2 Service.</summary>
    public byte NatKind;
    public short Ingress;
    /// <summary>Capture-clock nanoseconds of the first and last packet.</summary>
    public long Start, End;
    /// <summary>The connection's (or dropped packet's) tuple as it arrived.</summary>
    public FlowKey Original;
    /// <summary>The reply tuple: reversed, it is the original direction after NAT.</summary>
    public FlowKey Reply;
    public long PacketsOriginal, BytesOriginal, PacketsReply, BytesReply;
}
