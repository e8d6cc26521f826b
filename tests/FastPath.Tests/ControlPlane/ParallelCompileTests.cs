using Xunit;
using FastPath.ControlPlane.Cluster;
using FastPath.ControlPlane.Compile;
using FastPath.DataPlane.Pipeline;
using FastPath.DataPlane.Services;
using FastPath.Tests.Support;
using k8s.Models;

namespace FastPath.Tests.ControlPlane;

/// <summary>The full compile builds Services in parallel; its snapshot must be the one the one-by-one compile gives.</summary>
public class ParallelCompileTests
{
    [Fact]
    public void DemoCluster_ParallelCompileEqualsSequential()
    {
        var load = ClusterDirectory.Load(Path.Combine(RepositoryFiles.Root, "pcaps", "demo", "cluster"));
        Assert.Empty(load.Errors);
        Assert.NotEmpty(load.State.Services);
        foreach (var node in load.State.Nodes) AssertSame(load.State, node.Name);
    }

    [Fact]
    public void GeneratedCluster_ParallelCompileEqualsSequential()
    {
        var state = Generated(nodes: 20, podsPerNode: 10, services: 300);
        var errors = new List<ClusterError>();
        ClusterValidator.Validate(state, errors);
        Assert.Empty(errors);
        AssertSame(state, "node-3");
    }

    private static void AssertSame(ClusterState state, string node)
    {
        var sequential = Compile(state, node, parallelism: 1);
        var parallel = Compile(state, node, parallelism: 4);
        Assert.Equal(sequential.Ports.Select(p => (p.Name, p.Kind, p.Mac, string.Join(',', p.Addresses))),
            parallel.Ports.Select(p => (p.Name, p.Kind, p.Mac, string.Join(',', p.Addresses))));
        var expected = sequential.Services.Frontends;
        var actual = parallel.Services.Frontends;
        Assert.Equal(expected.Count, actual.Count);
        Assert.True(expected.Count > 0);
        for (int i = 0; i < expected.Count; i++)
        {
            ServiceFrontend e = expected[i], a = actual[i]; // same order: the table was built from the same entry list
            Assert.Equal((e.Name, e.Address, e.Port, e.Protocol, e.Masquerade, e.LocalPolicy, e.AffinityTimeout, e.Eligibility),
                (a.Name, a.Address, a.Port, a.Protocol, a.Masquerade, a.LocalPolicy, a.AffinityTimeout, a.Eligibility));
            Assert.Equal(e.Backends, a.Backends);
            Assert.Equal(e.Retained, a.Retained);
            Assert.Equal(e.SourceRanges, a.SourceRanges);
            int fe = sequential.Services.Lookup(e.Address, e.Port, e.Protocol), fa = parallel.Services.Lookup(a.Address, a.Port, a.Protocol);
            Assert.Equal(fe, fa);
            Assert.True(sequential.Services.Maglev(fe).Slots.SequenceEqual(parallel.Services.Maglev(fa).Slots), $"{e.Name} {e.Address}: Maglev tables differ");
        }
    }

    private static ForwardingSnapshot Compile(ClusterState state, string node, int parallelism)
    {
        var compiler = new IncrementalCompiler(node) { Parallelism = parallelism };
        foreach (var o in state.Objects()) compiler.Upsert(o);
        var result = compiler.Compile(1, state.Source);
        Assert.Empty(result.Errors);
        Assert.Equal(state.Services.Length, compiler.LastServicesCompiled);
        return result.Snapshot!;
    }

    /// <summary>
    /// Nodes with a /24 each, pods spread over them, Services of every kind FastPath compiles differently (ClusterIP,
    /// NodePort with traffic policy Local, two ports), each with one or two EndpointSlices of 1–12 endpoints, some not ready.
    /// </summary>
    private static ClusterState Generated(int nodes, int podsPerNode, int services)
    {
        var objects = new List<IClusterObject>();
        for (int n = 0; n < nodes; n++)
        {
            var node = new V1Node
            {
                Metadata = new V1ObjectMeta { Name = $"node-{n}" },
                Spec = new V1NodeSpec { PodCIDR = $"10.1.{n}.0/24" },
                Status = new V1NodeStatus { Addresses = [new V1NodeAddress { Type = "InternalIP", Address = $"192.168.0.{n + 1}" }] },
            };
            objects.Add(new ClusterObject<V1Node>(node, "Node", null, node.Metadata.Name, "gen", 1));
        }
        int pods = nodes * podsPerNode;
        string PodIp(int p) => $"10.1.{p % nodes}.{p / nodes + 2}";
        for (int p = 0; p < pods; p++)
        {
            var pod = new V1Pod
            {
                Metadata = new V1ObjectMeta { Name = $"pod-{p}", NamespaceProperty = "default", Labels = new Dictionary<string, string> { ["app"] = $"a{p % 7}" } },
                Spec = new V1PodSpec { NodeName = $"node-{p % nodes}" },
                Status = new V1PodStatus { PodIP = PodIp(p) },
            };
            objects.Add(new ClusterObject<V1Pod>(pod, "Pod", "default", pod.Metadata.Name, "gen", 1));
        }
        var random = new Random(20);
        for (int s = 0; s < services; s++)
        {
            bool nodePort = s % 3 == 0;
            var svc = new V1Service
            {
                Metadata = new V1ObjectMeta { Name = $"svc-{s}", NamespaceProperty = "default" },
                Spec = new V1ServiceSpec
                {
                    Type = nodePort ? "NodePort" : "ClusterIP",
                    ClusterIP = $"10.96.{s / 250}.{s % 250 + 1}",
                    ExternalTrafficPolicy = nodePort && s % 2 == 0 ? "Local" : null,
                    Ports = s % 5 == 0
                        ? [new V1ServicePort { Name = "http", Port = 80, NodePort = nodePort ? 30000 + s : null }, new V1ServicePort { Name = "dns", Port = 53, Protocol = "UDP" }]
                        : [new V1ServicePort { Name = "http", Port = 80, NodePort = nodePort ? 30000 + s : null }],
                },
            };
            objects.Add(new ClusterObject<V1Service>(svc, "Service", "default", svc.Metadata.Name, "gen", 1));
            int sliceCount = 1 + s % 2;
            for (int k = 0; k < sliceCount; k++)
            {
                var endpoints = new List<V1Endpoint>();
                int count = 1 + random.Next(12);
                for (int e = 0; e < count; e++)
                {
                    int p = random.Next(pods);
                    endpoints.Add(new V1Endpoint
                    {
                        Addresses = [PodIp(p)],
                        NodeName = $"node-{p % nodes}",
                        Conditions = new V1EndpointConditions { Ready = random.Next(5) != 0 },
                    });
                }
                var slice = new V1EndpointSlice
                {
                    Metadata = new V1ObjectMeta
                    {
                        Name = $"svc-{s}-{k}", NamespaceProperty = "default",
                        Labels = new Dictionary<string, string> { [ServiceCompiler.ServiceNameLabel] = svc.Metadata.Name },
                    },
                    AddressType = "IPv4",
                    Ports = [new Discoveryv1EndpointPort { Name = "http", Port = 8080, Protocol = "TCP" }, new Discoveryv1EndpointPort { Name = "dns", Port = 5353, Protocol = "UDP" }],
                    Endpoints = endpoints,
                };
                objects.Add(new ClusterObject<V1EndpointSlice>(slice, "EndpointSlice", "default", slice.Metadata.Name, "gen", 1));
            }
        }
        var load = ClusterDirectory.FromObjects("generated", objects, []);
        Assert.Empty(load.Errors);
        return load.State;
    }
}
