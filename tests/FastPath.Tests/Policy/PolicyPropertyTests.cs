using System.Collections.Immutable;
using CsCheck;
using FastPath.ControlPlane.Cluster;
using FastPath.ControlPlane.Compile;
using FastPath.DataPlane.Packets;
using FastPath.DataPlane.Policy;
using FastPath.Tests.Support;
using k8s.Models;

namespace FastPath.Tests.Policy;

/// <summary>
/// Compiled tables agree with the interpreter on random clusters and random policies: every local pod, both
/// directions, every pod address, the node's, and a few foreign addresses, on a grid of protocols and ports.
/// </summary>
public class PolicyPropertyTests
{
    private static readonly string[] Protocols = ["TCP", "UDP", "SCTP", "ICMP"];
    private static readonly int[] PortGrid = [53, 79, 80, 81, 82, 83];
    private static readonly IReadOnlyList<IpAddr> NodeA = [EngineHarness.Addr("192.168.56.11"), EngineHarness.Addr("fd00:56::11")];

    [Fact]
    public void CompiledTablesAgreeWithTheInterpreter() =>
        Gen.Int.Sample(seed =>
        {
            var state = RandomCluster(new Random(seed));
            Assert.Empty(Validate(state));
            var pods = SnapshotCompiler.PodPorts(state, "node-a");
            var table = PolicyCompiler.Compile(state, pods, NodeA);
            string[] foreign = ["10.244.3.1", "8.8.8.8", "fd00:10:244:3::1", "2001:db8::1", "fd00:10:244:1::1"];
            var peers = state.Pods.SelectMany(p => p.Value.Status.PodIPs.Select(ip => EngineHarness.Addr(ip.Ip))).Concat(NodeA)
                .Concat(foreign.Select(EngineHarness.Addr)).ToList();
            for (int i = 0; i < pods.Count; i++)
            {
                var pod = state.Pods.Single(p => p.QualifiedName == pods[i].Name).Value;
                int port = DataPlane.Pipeline.PortIndex.FirstPod + i;
                foreach (var direction in (PolicyDirection[])[PolicyDirection.Ingress, PolicyDirection.Egress])
                {
                    var set = table.For(port, direction);
                    foreach (var peer in peers)
                        foreach (var protocol in Protocols)
                            foreach (int number in protocol == "ICMP" ? (int[])[0] : PortGrid)
                            {
                                bool want = direction == PolicyDirection.Ingress
                                    ? PolicyOracle.IngressAllowed(state, NodeA, pod, peer, protocol, number)
                                    : PolicyOracle.EgressAllowed(state, NodeA, pod, peer, protocol, number);
                                byte proto = protocol switch { "TCP" => 6, "UDP" => 17, "SCTP" => 132, _ => peer.IsV4 ? (byte)1 : (byte)58 };
                                bool got = set is null || set.Allows(peer, PolicyRuleSet.Key(proto, (ushort)number));
                                Assert.True(want == got, $"seed {seed}: {pods[i].Name} {direction} peer {peer} {protocol}/{number}: interpreter {want}, table {got}");
                            }
                }
            }
        }, iter: 150);

    private static List<ClusterError> Validate(ClusterState state)
    {
        var errors = new List<ClusterError>();
        ClusterValidator.Validate(state, errors);
        return errors;
    }

    internal static ClusterState RandomCluster(Random r)
    {
        T Pick<T>(params T[] items) => items[r.Next(items.Length)];
        Dictionary<string, string> Labels(string[] keys, string[] values)
        {
            var labels = new Dictionary<string, string>();
            foreach (var k in keys) if (r.Next(3) > 0) labels[k] = Pick(values);
            return labels;
        }
        V1LabelSelector Selector(string[] keys, string[] values)
        {
            var s = new V1LabelSelector();
            switch (r.Next(4))
            {
                case 0: break; // {}: everything
                case 1: s.MatchLabels = new Dictionary<string, string> { [Pick(keys)] = Pick(values) }; break;
                default:
                    string op = Pick("In", "NotIn", "Exists", "DoesNotExist");
                    s.MatchExpressions = [new V1LabelSelectorRequirement { Key = Pick(keys), OperatorProperty = op, Values = op is "In" or "NotIn" ? [Pick(values), Pick(values)] : null }];
                    if (r.Next(2) == 0) s.MatchLabels = new Dictionary<string, string> { [Pick(keys)] = Pick(values) };
                    break;
            }
            return s;
        }
        string[] nsKeys = ["env", "team"], nsValues = ["a", "b"], podKeys = ["app", "tier", "k"], podValues = ["w", "d", "1"];

        var namespaces = new[] { "x", "y", "z" }.Take(r.Next(2, 4))
            .Select(n => new ClusterObject<V1Namespace>(new V1Namespace { Metadata = new V1ObjectMeta { Name = n, Labels = Labels(nsKeys, nsValues) } }, "Namespace", null, n, "ns.yaml", 1))
            .ToImmutableArray();
        var nodes = new[] { ("node-a", 1), ("node-b", 2) }.Select(n => new ClusterObject<V1Node>(new V1Node
        {
            Metadata = new V1ObjectMeta { Name = n.Item1 },
            Spec = new V1NodeSpec { PodCIDRs = [$"10.244.{n.Item2}.0/24", $"fd00:10:244:{n.Item2}::/64"] },
        }, "Node", null, n.Item1, "nodes.yaml", 1)).ToImmutableArray();
        var pods = ImmutableArray.CreateBuilder<ClusterObject<V1Pod>>();
        int count = r.Next(3, 10);
        for (int i = 0; i < count; i++)
        {
            string ns = namespaces[r.Next(namespaces.Length)].Name;
            int node = r.Next(1, 3);
            string name = $"p{i}";
            var ports = new List<V1ContainerPort>();
            for (int k = r.Next(3); k > 0; k--)
                ports.Add(new V1ContainerPort { ContainerPort = r.Next(79, 83), Name = Pick("http", "dns", "m") + k, Protocol = Pick("TCP", "UDP", null) });
            var pod = new V1Pod
            {
                Metadata = new V1ObjectMeta { Name = name, NamespaceProperty = ns, Labels = Labels(podKeys, podValues) },
                Spec = new V1PodSpec { NodeName = node == 1 ? "node-a" : "node-b", Containers = [new V1Container { Name = "main", Ports = ports }] },
                Status = new V1PodStatus { PodIPs = [new V1PodIP { Ip = $"10.244.{node}.{10 + i}" }, new V1PodIP { Ip = $"fd00:10:244:{node}::{10 + i:x}" }] },
            };
            pods.Add(new ClusterObject<V1Pod>(pod, "Pod", ns, name, "pods.yaml", 1));
        }

        List<V1NetworkPolicyPeer>? Peers(string policyNs)
        {
            int n = r.Next(-1, 3);
            if (n < 0) return null;
            var peers = new List<V1NetworkPolicyPeer>();
            for (int i = 0; i < n; i++)
                peers.Add(r.Next(4) switch
                {
                    0 => new V1NetworkPolicyPeer { PodSelector = Selector(podKeys, podValues) },
                    1 => new V1NetworkPolicyPeer { NamespaceSelector = Selector(nsKeys, nsValues) },
                    2 => new V1NetworkPolicyPeer { PodSelector = Selector(podKeys, podValues), NamespaceSelector = Selector(nsKeys, nsValues) },
                    _ => new V1NetworkPolicyPeer { IpBlock = Block() },
                });
            return peers;
        }
        V1IPBlock Block()
        {
            if (r.Next(3) == 0)
            {
                int len6 = Pick(0, 48, 64, 124), net6 = r.Next(1, 3);
                string cidr6 = len6 == 0 ? "::/0" : $"fd00:10:244:{net6}::/{len6}";
                return new V1IPBlock { Cidr = cidr6, Except = r.Next(2) == 0 && len6 < 124 ? [$"fd00:10:244:{net6}::{r.Next(8, 20):x}/128"] : null };
            }
            int len = Pick(0, 8, 16, 24, 28);
            string cidr = len switch { 0 => "0.0.0.0/0", 8 => "10.0.0.0/8", 16 => "10.244.0.0/16", 24 => $"10.244.{r.Next(1, 3)}.0/24", _ => $"10.244.{r.Next(1, 3)}.{16 * r.Next(0, 2)}/28" };
            var net = System.Net.IPNetwork.Parse(cidr);
            var except = new List<string>();
            foreach (var candidate in new[] { $"10.244.{r.Next(1, 3)}.{r.Next(8, 20)}/32", $"10.244.{r.Next(1, 3)}.0/25" })
                if (r.Next(2) == 0 && System.Net.IPNetwork.Parse(candidate) is var c && net.Contains(c.BaseAddress) && c.PrefixLength > net.PrefixLength)
                    except.Add(candidate);
            return new V1IPBlock { Cidr = cidr, Except = except.Count > 0 ? except : null };
        }
        List<V1NetworkPolicyPort>? Ports()
        {
            int n = r.Next(-1, 3);
            if (n < 0) return null;
            var ports = new List<V1NetworkPolicyPort>();
            for (int i = 0; i < n; i++)
            {
                var p = new V1NetworkPolicyPort { Protocol = Pick("TCP", "UDP", "SCTP", null) };
                switch (r.Next(4))
                {
                    case 0: break;
                    case 1: p.Port = (IntOrString)Pick("http1", "dns1", "m2", "nope"); break;
                    default:
                        int first = r.Next(79, 83);
                        p.Port = (IntOrString)first.ToString();
                        if (r.Next(2) == 0) p.EndPort = first + r.Next(0, 3);
                        break;
                }
                ports.Add(p);
            }
            return ports;
        }

        var policies = ImmutableArray.CreateBuilder<ClusterObject<V1NetworkPolicy>>();
        for (int i = r.Next(1, 5); i > 0; i--)
        {
            string ns = namespaces[r.Next(namespaces.Length)].Name;
            var spec = new V1NetworkPolicySpec
            {
                PodSelector = Selector(podKeys, podValues),
                PolicyTypes = r.Next(5) switch { 0 => ["Ingress"], 1 => ["Egress"], 2 => ["Ingress", "Egress"], 3 => [], _ => null },
            };
            if (r.Next(4) > 0) spec.Ingress = Enumerable.Range(0, r.Next(0, 3)).Select(_ => new V1NetworkPolicyIngressRule { FromProperty = Peers(ns), Ports = Ports() }).ToList();
            if (r.Next(4) > 0) spec.Egress = Enumerable.Range(0, r.Next(0, 3)).Select(_ => new V1NetworkPolicyEgressRule { To = Peers(ns), Ports = Ports() }).ToList();
            var policy = new V1NetworkPolicy { Metadata = new V1ObjectMeta { Name = $"np{i}", NamespaceProperty = ns }, Spec = spec };
            policies.Add(new ClusterObject<V1NetworkPolicy>(policy, "NetworkPolicy", ns, $"np{i}", "np.yaml", 1));
        }
        return new ClusterState { Source = "random", Nodes = nodes, Namespaces = namespaces, Pods = pods.ToImmutable(), NetworkPolicies = policies.ToImmutable() };
    }
}
