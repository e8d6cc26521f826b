using FastPath.ControlPlane.Cluster;
using Xunit;

namespace FastPath.Tests.ControlPlane;

/// <summary>Every validation rule, with the exact one-line error text (file, object, field).</summary>
public class ClusterValidatorTests
{
    private const string NodeA = """
        apiVersion: v1
        kind: Node
        metadata: {name: node-a}
        spec: {podCIDR: 10.244.1.0/24, podCIDRs: [10.244.1.0/24, "fd00:1::/64"]}
        status: {addresses: [{type: InternalIP, address: 192.168.56.11}]}
        """;

    private static List<string> Errors(params (string File, string Text)[] files)
    {
        using var c = new TempCluster();
        foreach (var (file, text) in files) c.Write(file, text);
        return ClusterDirectory.Load(c.Path).Errors.Select(e => e.ToString().Replace(c.Path + "/", "")).ToList();
    }

    [Theory]
    [InlineData("metadata: {name: node-b, annotations: {fastpath.io/mac: \"02:00:00:zz:00:01\"}}",
        "n.yaml: Node node-b: metadata.annotations[fastpath.io/mac]: \"02:00:00:zz:00:01\" is not a MAC address")]
    [InlineData("metadata: {name: node-b, annotations: {fastpath.io/mac: \"01:00:5e:00:00:01\"}}",
        "n.yaml: Node node-b: metadata.annotations[fastpath.io/mac]: \"01:00:5e:00:00:01\" is not a unicast MAC address")]
    [InlineData("metadata: {name: node-b}\nspec: {podCIDR: 10.244.2.0/40}",
        "n.yaml: Node node-b: spec.podCIDR: \"10.244.2.0/40\" is not a CIDR")]
    [InlineData("metadata: {name: node-b}\nspec: {podCIDRs: [10.244.2.0/24, 10.245.2.0/24]}",
        "n.yaml: Node node-b: spec.podCIDRs[1]: \"10.245.2.0/24\": at most one CIDR per IP family")]
    [InlineData("metadata: {name: node-b}\nspec: {podCIDRs: [10.244.2.0/24, fd00::/640]}",
        "n.yaml: Node node-b: spec.podCIDRs[1]: \"fd00::/640\" is not a CIDR")]
    [InlineData("metadata: {name: node-b}\nspec: {podCIDR: 10.244.3.0/24, podCIDRs: [10.244.2.0/24]}",
        "n.yaml: Node node-b: spec.podCIDR: \"10.244.3.0/24\" must equal spec.podCIDRs[0] \"10.244.2.0/24\"")]
    [InlineData("metadata: {name: node-b}\nstatus: {addresses: [{type: Hostname, address: node-b}, {type: InternalIP, address: 192.168.56.300}]}",
        "n.yaml: Node node-b: status.addresses[1].address: \"192.168.56.300\" is not an IP address (InternalIP)")]
    [InlineData("metadata: {annotations: {a: b}}",
        "n.yaml:1: Node: metadata.name: required")]
    [InlineData("metadata: {name: Node_B}",
        "n.yaml: Node Node_B: metadata.name: \"Node_B\" is not a valid name (lowercase letters, digits, '-', '.'; at most 253 characters)")]
    public void Node(string body, string expected) =>
        Assert.Equal([expected], Errors(("n.yaml", "apiVersion: v1\nkind: Node\n" + body + "\n")));

    [Theory]
    [InlineData("metadata: {name: web-1}\nspec: {nodeName: node-a}\nstatus: {podIP: 10.244.1.300}",
        "p.yaml: Pod default/web-1: status.podIP: \"10.244.1.300\" is not an IP address")]
    [InlineData("metadata: {name: web-1}\nspec: {nodeName: node-a}\nstatus: {podIPs: [{ip: 10.244.1.5}, {ip: 10.244.1.6}]}",
        "p.yaml: Pod default/web-1: status.podIPs[1].ip: \"10.244.1.6\": at most one IP per IP family")]
    [InlineData("metadata: {name: web-1}\nspec: {nodeName: node-a}\nstatus: {podIPs: [{ip: \"fd00:1::zz\"}]}",
        "p.yaml: Pod default/web-1: status.podIPs[0].ip: \"fd00:1::zz\" is not an IP address")]
    [InlineData("metadata: {name: web-1}\nspec: {nodeName: node-a}\nstatus: {podIP: 10.244.1.5, podIPs: [{ip: 10.244.1.6}]}",
        "p.yaml: Pod default/web-1: status.podIP: \"10.244.1.5\" must equal status.podIPs[0].ip \"10.244.1.6\"")]
    [InlineData("metadata: {name: web-1}\nspec: {nodeName: node-a}\nstatus: {podIP: 10.244.2.5}",
        "p.yaml: Pod default/web-1: status.podIP: \"10.244.2.5\" is not inside the podCIDRs of Node node-a (10.244.1.0/24, fd00:1::/64)")]
    [InlineData("metadata: {name: web-1}\nspec: {nodeName: node-a}\nstatus: {podIPs: [{ip: 10.244.1.5}, {ip: \"fd00:2::5\"}]}",
        "p.yaml: Pod default/web-1: status.podIPs[1].ip: \"fd00:2::5\" is not inside the podCIDRs of Node node-a (10.244.1.0/24, fd00:1::/64)")]
    [InlineData("metadata: {name: web-1}\nspec: {nodeName: node-z}\nstatus: {podIP: 10.244.1.5}",
        "p.yaml: Pod default/web-1: spec.nodeName: no Node named \"node-z\"")]
    [InlineData("metadata: {name: web-1}\nstatus: {podIP: 10.244.1.5}",
        "p.yaml: Pod default/web-1: spec.nodeName: required for a pod with an IP (a pod gets its IP on the node it runs on)")]
    [InlineData("metadata: {name: web-1, namespace: prod, annotations: {fastpath.io/mac: \"02:42:0a:f4:01\"}}\nspec: {nodeName: node-a}",
        "p.yaml: Pod prod/web-1: metadata.annotations[fastpath.io/mac]: \"02:42:0a:f4:01\" is not a MAC address")]
    [InlineData("metadata: {namespace: prod}",
        "p.yaml:1: Pod: metadata.name: required")]
    [InlineData("metadata: {name: web-1, namespace: Prod}",
        "p.yaml: Pod Prod/web-1: metadata.namespace: \"Prod\" is not a valid namespace name")]
    public void Pod(string body, string expected) =>
        Assert.Equal([expected], Errors(("n.yaml", NodeA), ("p.yaml", "apiVersion: v1\nkind: Pod\n" + body + "\n")));

    [Fact]
    public void HostNetworkPod_IsExemptFromPodCidrAndDuplicateIpChecks()
    {
        const string hostPod = "apiVersion: v1\nkind: Pod\nmetadata: {name: NAME, namespace: kube-system}\nspec: {nodeName: node-a, hostNetwork: true}\nstatus: {podIP: 192.168.56.11}\n";
        Assert.Empty(Errors(("n.yaml", NodeA), ("p.yaml", hostPod.Replace("NAME", "agent-1") + "---\n" + hostPod.Replace("NAME", "agent-2"))));
    }

    [Fact]
    public void DuplicatePodIp_NamesBothPods()
    {
        const string pod = "apiVersion: v1\nkind: Pod\nmetadata: {name: NAME}\nspec: {nodeName: node-a}\nstatus: {podIP: 10.244.1.7}\n";
        Assert.Equal(["b.yaml: Pod default/b: status.podIP: \"10.244.1.7\" is also the IP of Pod default/a (a.yaml)"],
            Errors(("n.yaml", NodeA), ("a.yaml", pod.Replace("NAME", "a")), ("b.yaml", pod.Replace("NAME", "b"))));
    }

    [Fact]
    public void DuplicateObjects_NameBothFiles()
    {
        const string pod = "apiVersion: v1\nkind: Pod\nmetadata: {name: web, namespace: default}\nspec: {nodeName: node-a}\n";
        using var c = new TempCluster();
        c.Write("n.yaml", NodeA);
        c.Write("a.yaml", pod);
        c.Write("b/c.yaml", pod + "---\n" + NodeA);
        Assert.Equal(
            [$"{c.F("n.yaml")}: Node node-a: duplicate: also defined in {c.F("b/c.yaml")}",
             $"{c.F("b/c.yaml")}: Pod default/web: duplicate: also defined in {c.F("a.yaml")}"],
            ClusterDirectory.Load(c.Path).Errors.Select(e => e.ToString()));
    }

    [Fact]
    public void SameNameInDifferentNamespacesOrKinds_IsNotADuplicate()
    {
        Assert.Empty(Errors(
            ("a.yaml", "apiVersion: v1\nkind: Service\nmetadata: {name: web, namespace: a}\n---\napiVersion: v1\nkind: Service\nmetadata: {name: web, namespace: b}\n"),
            ("b.yaml", "apiVersion: v1\nkind: Namespace\nmetadata: {name: web}\n---\napiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata: {name: web, namespace: a}\naddressType: IPv4\n")));
    }

    [Theory]
    [InlineData("spec: {clusterIP: 10.96.0.300}", "s.yaml: Service default/api: spec.clusterIP: \"10.96.0.300\" is not an IP address")]
    [InlineData("spec: {clusterIP: 10.96.0.10, clusterIPs: [10.96.0.10, 10.96.0.11]}", "s.yaml: Service default/api: spec.clusterIPs[1]: \"10.96.0.11\": at most one IP per IP family")]
    [InlineData("spec: {clusterIP: 10.96.0.10, clusterIPs: [10.96.0.11]}", "s.yaml: Service default/api: spec.clusterIP: \"10.96.0.10\" must equal spec.clusterIPs[0] \"10.96.0.11\"")]
    [InlineData("spec: {type: Internal}", "s.yaml: Service default/api: spec.type: \"Internal\" is not a Service type (ClusterIP | NodePort | LoadBalancer | ExternalName)")]
    [InlineData("spec: {ports: [{port: 0}]}", "s.yaml: Service default/api: spec.ports[0].port: 0 is out of range (1-65535)")]
    [InlineData("spec: {ports: [{port: 80, targetPort: 70000}]}", "s.yaml: Service default/api: spec.ports[0].targetPort: 70000 is out of range (1-65535)")]
    [InlineData("spec: {ports: [{port: 80, protocol: ICMP}]}", "s.yaml: Service default/api: spec.ports[0].protocol: \"ICMP\" is not a protocol (TCP | UDP | SCTP)")]
    [InlineData("spec: {type: NodePort, ports: [{port: 80, nodePort: 65536}]}", "s.yaml: Service default/api: spec.ports[0].nodePort: 65536 is not in the NodePort range 30000-32767 (FastPathConfiguration nodePortRange)")]
    [InlineData("spec: {ports: [{name: a, port: 80}, {port: 81}]}", "s.yaml: Service default/api: spec.ports[1].name: required when a Service has more than one port")]
    public void Service(string body, string expected) =>
        Assert.Equal([expected], Errors(("s.yaml", "apiVersion: v1\nkind: Service\nmetadata: {name: api}\n" + body + "\n")));

    [Fact]
    public void DuplicateClusterIpsAndNodePorts_AreAllReportedAtOnce() =>
        Assert.Equal(
        [
            "b.yaml: Service default/b: spec.clusterIP: \"10.96.0.10\" is already allocated to Service default/a (a.yaml)",
            "b.yaml: Service default/b: spec.ports[0].nodePort: 30080/TCP is already allocated to Service default/a (a.yaml)",
        ], Errors(
            ("a.yaml", "apiVersion: v1\nkind: Service\nmetadata: {name: a}\nspec: {type: NodePort, clusterIP: 10.96.0.10, ports: [{name: http, port: 80, nodePort: 30080}, {name: dns, port: 53, protocol: UDP, nodePort: 30081}]}\n"),
            ("b.yaml", "apiVersion: v1\nkind: Service\nmetadata: {name: b}\nspec: {type: NodePort, clusterIP: 10.96.0.10, ports: [{name: http, port: 80, nodePort: 30080}, {name: dns, port: 53, protocol: UDP, nodePort: 30082}]}\n")));

    [Fact]
    public void Service_HeadlessAndNamedTargetPortsAreValid() =>
        Assert.Empty(Errors(("s.yaml", "apiVersion: v1\nkind: Service\nmetadata: {name: api}\nspec: {clusterIP: None, clusterIPs: [None], ports: [{port: 80, targetPort: http, protocol: UDP}]}\n")));

    [Theory]
    [InlineData("addressType: IPv4\nendpoints: [{addresses: [\"fd00::1\"]}]", "e.yaml: EndpointSlice default/api-1: endpoints[0].addresses[0]: \"fd00::1\" is not an IPv4 address (addressType)")]
    [InlineData("addressType: IPv6\nendpoints: [{addresses: [10.244.1.1]}]", "e.yaml: EndpointSlice default/api-1: endpoints[0].addresses[0]: \"10.244.1.1\" is not an IPv6 address (addressType)")]
    [InlineData("addressType: IPv4\nendpoints: [{addresses: [10.244.1.300]}]", "e.yaml: EndpointSlice default/api-1: endpoints[0].addresses[0]: \"10.244.1.300\" is not an IP address")]
    [InlineData("addressType: IPv5", "e.yaml: EndpointSlice default/api-1: addressType: \"IPv5\" is not an address type (IPv4 | IPv6 | FQDN)")]
    [InlineData("endpoints: []", "e.yaml: EndpointSlice default/api-1: addressType: required (IPv4 | IPv6 | FQDN)")]
    [InlineData("addressType: IPv4\nports: [{port: 65536}]", "e.yaml: EndpointSlice default/api-1: ports[0].port: 65536 is out of range (1-65535)")]
    [InlineData("addressType: IPv4\nports: [{port: 53, protocol: tcp}]", "e.yaml: EndpointSlice default/api-1: ports[0].protocol: \"tcp\" is not a protocol (TCP | UDP | SCTP)")]
    public void EndpointSlice(string body, string expected) =>
        Assert.Equal([expected], Errors(("e.yaml", "apiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata: {name: api-1}\n" + body + "\n")));

    [Fact]
    public void NetworkPolicy_IpBlockCidr() =>
        Assert.Equal(["np.yaml: NetworkPolicy default/deny: spec.ingress[0].from[0].ipBlock.cidr: \"10.0.0.0/99\" is not a CIDR"],
            Errors(("np.yaml", "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: deny}\nspec: {podSelector: {}, ingress: [{from: [{ipBlock: {cidr: 10.0.0.0/99}}]}]}\n")));
}
