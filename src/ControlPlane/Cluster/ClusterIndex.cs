using FastPath.DataPlane.Packets;
using k8s.Models;

namespace FastPath.ControlPlane.Cluster;

/// <summary>
/// The cross-object facts validation needs, kept up to date object by object: each Node's podCIDRs and who holds a
/// pod IP, a ClusterIP or a NodePort (the API server's allocators refuse a second holder). Full validation fills it
/// as it walks the objects; the live controller adds and removes the versions in force (for Pods, the compact
/// <see cref="PodRecord"/> the compiler keeps, so the index holds no model objects).
/// </summary>
public sealed class ClusterIndex(FastPathConfiguration configuration)
{
    private readonly Dictionary<string, List<Cidr>> _nodeCidrs = new(StringComparer.Ordinal);
    private readonly Dictionary<IpAddr, IObjectOrigin> _podIps = [];
    private readonly Dictionary<IpAddr, IObjectOrigin> _clusterIps = [];
    private readonly Dictionary<(int Port, byte Protocol), IObjectOrigin> _nodePorts = [];

    public FastPathConfiguration Configuration { get; set; } = configuration;

    /// <summary>The Node's podCIDRs, or null when there is no such Node.</summary>
    public List<Cidr>? NodePodCidrs(string node) => _nodeCidrs.GetValueOrDefault(node);

    /// <summary>Another object than <paramref name="self"/> holding the pod IP, ClusterIP or NodePort, else null.</summary>
    public IObjectOrigin? PodWithIp(IpAddr ip, ObjectKey self) => Other(_podIps, ip, self);
    public IObjectOrigin? ServiceWithClusterIp(IpAddr ip, ObjectKey self) => Other(_clusterIps, ip, self);
    public IObjectOrigin? ServiceWithNodePort(int port, byte protocol, ObjectKey self) => Other(_nodePorts, (port, protocol), self);

    private static IObjectOrigin? Other<TKey>(Dictionary<TKey, IObjectOrigin> map, TKey key, ObjectKey self) where TKey : notnull =>
        map.TryGetValue(key, out var o) && o.Key != self ? o : null;

    /// <summary>Records the object's claims; a claim someone else already holds stays theirs.</summary>
    public void Add(IObjectOrigin o)
    {
        switch (o)
        {
            case ClusterObject<V1Node> node:
                _nodeCidrs[node.Name] = ClusterValidator.NodePodCidrs(node);
                break;
            case ClusterObject<V1Pod> pod:
                foreach (var ip in ClusterValidator.PodIps(pod.Value)) _podIps.TryAdd(ip, o);
                break;
            case PodRecord pod:
                foreach (var ip in pod.OwnAddresses) _podIps.TryAdd(ip, o);
                break;
            case ClusterObject<V1Service> service:
                foreach (var ip in ClusterValidator.ClusterIps(service.Value)) _clusterIps.TryAdd(ip, o);
                foreach (var np in ClusterValidator.NodePorts(service.Value)) _nodePorts.TryAdd(np, o);
                break;
        }
    }

    /// <summary>Releases the object's claims (only those it holds).</summary>
    public void Remove(IObjectOrigin o)
    {
        switch (o)
        {
            case ClusterObject<V1Node> node:
                _nodeCidrs.Remove(node.Name);
                break;
            case ClusterObject<V1Pod> pod:
                foreach (var ip in ClusterValidator.PodIps(pod.Value)) Release(_podIps, ip, o.Key);
                break;
            case PodRecord pod:
                foreach (var ip in pod.OwnAddresses) Release(_podIps, ip, o.Key);
                break;
            case ClusterObject<V1Service> service:
                foreach (var ip in ClusterValidator.ClusterIps(service.Value)) Release(_clusterIps, ip, o.Key);
                foreach (var np in ClusterValidator.NodePorts(service.Value)) Release(_nodePorts, np, o.Key);
                break;
        }
    }

    private static void Release<TKey>(Dictionary<TKey, IObjectOrigin> map, TKey key, ObjectKey owner) where TKey : notnull
    {
        if (map.TryGetValue(key, out var o) && o.Key == owner) map.Remove(key);
    }
}
