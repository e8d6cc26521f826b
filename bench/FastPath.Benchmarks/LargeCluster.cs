using FastPath.ControlPlane.Cluster;
using FastPath.ControlPlane.Cluster.Sources;
using k8s.Models;

namespace FastPath.Benchmarks;

/// <summary>
/// A cluster at the size of the control-plane targets, built as objects in memory (no YAML): 5,000 Nodes (a /24
/// each out of 10.0.0.0/8), 150,000 Pods (30 per node), 10,000 ClusterIP Services with one EndpointSlice of 10 ready
/// endpoints each (100,000 endpoints). The engine runs as node-0.
/// </summary>
public sealed class LargeCluster
{
    public const int Nodes = 5_000, PodsPerNode = 30, Services = 10_000, EndpointsPerService = 10;
    public const string NodeName = "node-0";

    public LargeCluster(int maglevTableSize)
    {
        Configuration = new ClusterObject<FastPathConfiguration>(FastPathConfiguration.Default with
        {
            ClusterCidrs = [Cidr("10.0.0.0/8")],
            MaglevTableSize = maglevTableSize,
            NodePortRange = new PortRange(30000, 32767),
        }, FastPathConfiguration.KindName, null, "", "bench", 1);
        for (int n = 0; n < Nodes; n++) NodeObjects.Add(Node(n, n));
        for (int p = 0; p < Nodes * PodsPerNode; p++)
        {
            int n = p % Nodes;
            var pod = new V1Pod
            {
                Metadata = new V1ObjectMeta { Name = $"pod-{p}", NamespaceProperty = "default" },
                Spec = new V1PodSpec { NodeName = $"node-{n}" },
                Status = new V1PodStatus { PodIP = PodIp(p) },
            };
            PodObjects.Add(new ClusterObject<V1Pod>(pod, "Pod", "default", pod.Metadata.Name, "bench", 1));
        }
        for (int s = 0; s < Services; s++)
        {
            var svc = new V1Service
            {
                Metadata = new V1ObjectMeta { Name = $"svc-{s}", NamespaceProperty = "default" },
                Spec = new V1ServiceSpec
                {
                    ClusterIP = ServiceIp(s),
                    Ports = [new V1ServicePort { Name = "http", Port = 80, Protocol = "TCP" }],
                },
            };
            ServiceObjects.Add(new ClusterObject<V1Service>(svc, "Service", "default", svc.Metadata.Name, "bench", 1));
            SliceObjects.Add(Slice(s, 0));
        }
    }

    public ClusterObject<FastPathConfiguration> Configuration { get; }
    public List<ClusterObject<V1Node>> NodeObjects { get; } = [];
    public List<ClusterObject<V1Pod>> PodObjects { get; } = [];
    public List<ClusterObject<V1Service>> ServiceObjects { get; } = [];
    public List<ClusterObject<V1EndpointSlice>> SliceObjects { get; } = [];

    public int ObjectCount => 1 + NodeObjects.Count + PodObjects.Count + ServiceObjects.Count + SliceObjects.Count;

    public ClusterChangeBatch Initial() => new(
        new IClusterObject[] { Configuration }.Concat(NodeObjects).Concat(PodObjects).Concat(ServiceObjects).Concat(SliceObjects)
            .Select(ClusterChange.Upsert).ToList(), [], []);

    public static string PodIp(int p)
    {
        int n = p % Nodes, k = p / Nodes;
        return $"10.{n / 256}.{n % 256}.{k + 2}";
    }

    public static string ServiceIp(int s) => $"10.96.{s / 256}.{s % 256}";

    /// <summary>Service <paramref name="s"/>'s slice; <paramref name="shift"/> rotates which pods back it (a rollout).</summary>
    public static ClusterObject<V1EndpointSlice> Slice(int s, int shift)
    {
        var endpoints = new List<V1Endpoint>();
        for (int e = 0; e < EndpointsPerService; e++)
        {
            int p = (s * EndpointsPerService + e + shift) % (Nodes * PodsPerNode);
            endpoints.Add(new V1Endpoint { Addresses = [PodIp(p)], NodeName = $"node-{p % Nodes}" });
        }
        var slice = new V1EndpointSlice
        {
            Metadata = new V1ObjectMeta
            {
                Name = $"svc-{s}-abcde", NamespaceProperty = "default",
                Labels = new Dictionary<string, string> { ["kubernetes.io/service-name"] = $"svc-{s}" },
            },
            AddressType = "IPv4",
            Ports = [new Discoveryv1EndpointPort { Name = "http", Port = 8080, Protocol = "TCP" }],
            Endpoints = endpoints,
        };
        return new ClusterObject<V1EndpointSlice>(slice, "EndpointSlice", "default", slice.Metadata.Name, "bench", 1);
    }

    /// <summary>Node <paramref name="n"/> owning pod CIDR number <paramref name="cidr"/> (a new node takes a fresh one).</summary>
    public static ClusterObject<V1Node> Node(int n, int cidr)
    {
        var node = new V1Node
        {
            Metadata = new V1ObjectMeta { Name = $"node-{n}", Annotations = new Dictionary<string, string> { ["fastpath.io/mac"] = $"02:00:00:00:{n / 256:x2}:{n % 256:x2}" } },
            Spec = new V1NodeSpec { PodCIDR = $"10.{cidr / 256}.{cidr % 256}.0/24" },
            Status = new V1NodeStatus { Addresses = [new V1NodeAddress { Type = "InternalIP", Address = $"172.16.{n / 250}.{n % 250 + 1}" }] },
        };
        return new ClusterObject<V1Node>(node, "Node", null, node.Metadata.Name, "bench", 1);
    }

    private static Cidr Cidr(string text) => FastPath.ControlPlane.Cluster.Cidr.TryParse(text, out var c) ? c : throw new ArgumentException(text);
}
