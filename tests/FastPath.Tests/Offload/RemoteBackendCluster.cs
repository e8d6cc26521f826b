using System.Buffers.Binary;
using FastPath.Commands;
using FastPath.DataPlane.Pipeline;
using FastPath.Tests.Support;

namespace FastPath.Tests.Offload;

/// <summary>
/// The demo cluster (pcaps/demo/cluster) as node-a with the ClusterIP 10.96.0.20's only endpoint on node-b
/// (web-3, 10.244.2.11:8080): every connection to it is DNATed and VXLAN-encapsulated.
/// </summary>
internal static class RemoteBackendCluster
{
    public static ForwardingSnapshot Snapshot(TempFolder dir)
    {
        string yaml = File.ReadAllText(Path.Combine(RepositoryFiles.Root, "pcaps", "demo", "cluster", "cluster.yaml"));
        int local = yaml.IndexOf("  - addresses: [10.244.1.11]", StringComparison.Ordinal);
        int remote = yaml.IndexOf("  - addresses: [10.244.2.11]", StringComparison.Ordinal);
        File.WriteAllText(dir.File("cluster.yaml"), yaml[..local] + yaml[remote..]);
        return NodeSnapshot.Load(dir.Path, "node-a", "test", TextWriter.Null, out _)!;
    }

    /// <summary>UDP 50000 → 8472 with a VXLAN header (VNI 1) around <paramref name="innerFrame"/>.</summary>
    public static byte[] Vxlan(byte[] innerFrame)
    {
        var v = new byte[16 + innerFrame.Length];
        BinaryPrimitives.WriteUInt16BigEndian(v, 50000);
        BinaryPrimitives.WriteUInt16BigEndian(v.AsSpan(2), 8472);
        BinaryPrimitives.WriteUInt16BigEndian(v.AsSpan(4), (ushort)v.Length);
        v[8] = 0x08; // I flag
        v[14] = 1; // VNI 1
        innerFrame.CopyTo(v, 16);
        return v;
    }
}
