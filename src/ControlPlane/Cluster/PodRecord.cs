using FastPath.DataPlane.Packets;
using k8s.Models;

namespace FastPath.ControlPlane.Cluster;

/// <summary>What validation says about an object holding an address or a port: which object, and where it was read.</summary>
public interface IObjectOrigin
{
    ObjectKey Key { get; }
    string Label { get; }
    string File { get; }
    int Line { get; }
}

/// <summary>A container port as NetworkPolicy named ports read it.</summary>
public readonly record struct ContainerPort(string? Name, int Port, byte Protocol);

/// <summary>
/// A Pod in force as the control plane keeps it: only the fields validation and compiling read (node, hostNetwork,
/// addresses, labels, container ports, the MAC annotation), not the whole KubernetesClient model. Pods are most of a
/// cluster's objects (150,000 of 175,000 in the benchmark cluster); a model object is ~1 KB there and several KB from
/// a real API server (containers, env, volumes, managed fields), and keeping them made every collection of the older
/// generations walk them. One record per pod is shared by the compiler, the policy compiler and the claims index.
/// </summary>
public sealed class PodRecord : IObjectOrigin
{
    private PodRecord(string ns, string name, string file, int line)
    {
        Namespace = ns;
        QualifiedName = $"{ns}/{name}";
        File = file;
        Line = line;
    }

    public string Namespace { get; }
    /// <summary>metadata.name (cut from <see cref="QualifiedName"/>: one string per pod is kept, not two).</summary>
    public string Name => QualifiedName[(Namespace.Length + 1)..];
    /// <summary>"namespace/name": the port name and the key the compilers use.</summary>
    public string QualifiedName { get; }
    public string File { get; }
    public int Line { get; }
    public string? NodeName { get; private init; }
    public bool HostNetwork { get; private init; }
    /// <summary>The fastpath.io/mac annotation, or <see cref="MacAddress.Zero"/>.</summary>
    public MacAddress Mac { get; private init; }
    /// <summary>status.podIPs (one per family), else status.podIP; distinct, in order. A hostNetwork pod's are the node's.</summary>
    public IpAddr[] Addresses { get; private init; } = [];
    /// <summary>metadata.labels (the model's dictionary, read-only from here on), or null.</summary>
    public IDictionary<string, string>? Labels { get; private init; }
    /// <summary>Every container's ports, in container order.</summary>
    public ContainerPort[] ContainerPorts { get; private init; } = [];

    public ObjectKey Key => new("Pod", Namespace, Name);
    public string Label => $"Pod {QualifiedName}";

    /// <summary>The addresses the pod holds on its own (none for hostNetwork pods: they carry the node's).</summary>
    public ReadOnlySpan<IpAddr> OwnAddresses => HostNetwork ? [] : Addresses;

    /// <param name="nodeName">spec.nodeName as a string already kept (the Node's own name), so 150,000 pods share a few
    /// thousand strings; null to keep the pod's.</param>
    public static PodRecord From(ClusterObject<V1Pod> pod, string? nodeName = null)
    {
        var v = pod.Value;
        List<ContainerPort>? ports = null; // most pods declare none: no list for them
        foreach (var c in v.Spec?.Containers ?? [])
            foreach (var p in c?.Ports ?? [])
                if (p is not null) (ports ??= []).Add(new ContainerPort(p.Name, p.ContainerPort, ClusterValidator.ProtocolNumber(p.Protocol)));
        return new PodRecord(pod.Namespace ?? v.Metadata?.NamespaceProperty ?? "default", pod.Name, pod.File, pod.Line)
        {
            NodeName = nodeName is not null && nodeName == v.Spec?.NodeName ? nodeName : v.Spec?.NodeName,
            HostNetwork = v.Spec?.HostNetwork == true,
            Mac = Compile.SnapshotCompiler.AnnotatedMac(v.Metadata),
            Addresses = Compile.SnapshotCompiler.PodAddresses(v),
            Labels = v.Metadata?.Labels is { Count: > 0 } labels ? labels : null,
            ContainerPorts = ports is null ? [] : [.. ports],
        };
    }

    /// <summary>
    /// The kept fields as a model object (for <see cref="ClusterState"/> views: checks, tests, a full recompile); fields
    /// the control plane does not read are not there, and the container ports come back as one container's.
    /// </summary>
    public ClusterObject<V1Pod> ToObject()
    {
        var pod = new V1Pod
        {
            ApiVersion = "v1",
            Kind = "Pod",
            Metadata = new V1ObjectMeta
            {
                Name = Name,
                NamespaceProperty = Namespace,
                Labels = Labels,
                Annotations = Mac == MacAddress.Zero ? null : new Dictionary<string, string> { [FastPathAnnotations.Mac] = Mac.ToString() },
            },
            Spec = new V1PodSpec
            {
                NodeName = NodeName,
                HostNetwork = HostNetwork ? true : null,
                Containers = ContainerPorts.Length == 0 ? [] :
                [
                    new V1Container
                    {
                        Name = "ports",
                        Ports = [.. ContainerPorts.Select(p => new V1ContainerPort { ContainerPort = p.Port, Name = p.Name, Protocol = ProtocolName(p.Protocol) })],
                    },
                ],
            },
            Status = new V1PodStatus
            {
                PodIP = Addresses.Length > 0 ? Addresses[0].ToString() : null,
                PodIPs = Addresses.Length > 0 ? [.. Addresses.Select(a => new V1PodIP { Ip = a.ToString() })] : null,
            },
        };
        return new ClusterObject<V1Pod>(pod, "Pod", Namespace, Name, File, Line);
    }

    /// <summary>The API's name of a protocol number (TCP for anything else).</summary>
    internal static string ProtocolName(byte protocol) => protocol switch
    {
        IpProtocol.Udp => "UDP",
        IpProtocol.Sctp => "SCTP",
        _ => "TCP",
    };
}
