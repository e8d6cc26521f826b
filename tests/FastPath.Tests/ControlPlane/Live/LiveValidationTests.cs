using FastPath.ControlPlane.Cluster;

namespace FastPath.Tests.ControlPlane.Live;

/// <summary>
/// Bad objects arriving while the node forwards: each is rejected with its exact one-line message (file, object,
/// field), the last good version stays in force and the Service and routes keep forwarding as before.
/// </summary>
public class LiveValidationTests
{
    private const string Svc = "apiVersion: v1\nkind: Service\nmetadata: {name: web}\nspec:\n";
    private const string Node = "apiVersion: v1\nkind: Node\nmetadata: {name: node-b}\n";
    private const string Pod = "apiVersion: v1\nkind: Pod\n";

    [Theory]
    // CIDR syntax and family
    [InlineData("node.yaml", Node + "spec: {podCIDR: 10.244.2.0/33}", "node.yaml: Node node-b: spec.podCIDR: \"10.244.2.0/33\" is not a CIDR")]
    [InlineData("node.yaml", Node + "spec: {podCIDRs: [10.244.2.0/24, 10.245.2.0/24]}", "node.yaml: Node node-b: spec.podCIDRs[1]: \"10.245.2.0/24\": at most one CIDR per IP family")]
    // port ranges and protocol names
    [InlineData("svc.yaml", Svc + "  clusterIP: 10.96.0.10\n  ports: [{name: http, port: 70000}]", "svc.yaml: Service default/web: spec.ports[0].port: 70000 is out of range (1-65535)")]
    [InlineData("svc.yaml", Svc + "  clusterIP: 10.96.0.10\n  ports: [{name: http, port: 80, protocol: tcp}]", "svc.yaml: Service default/web: spec.ports[0].protocol: \"tcp\" is not a protocol (TCP | UDP | SCTP)")]
    [InlineData("svc.yaml", Svc + "  type: NodePort\n  clusterIP: 10.96.0.10\n  ports: [{name: http, port: 80, nodePort: 20000}]", "svc.yaml: Service default/web: spec.ports[0].nodePort: 20000 is not in the NodePort range 30000-32767 (FastPathConfiguration nodePortRange)")]
    [InlineData("svc.yaml", Svc + "  clusterIP: 10.96.0.300\n  ports: [{name: http, port: 80}]", "svc.yaml: Service default/web: spec.clusterIP: \"10.96.0.300\" is not an IP address")]
    [InlineData("svc.yaml", Svc + "  type: Internal\n  clusterIP: 10.96.0.10", "svc.yaml: Service default/web: spec.type: \"Internal\" is not a Service type (ClusterIP | NodePort | LoadBalancer | ExternalName)")]
    // duplicate ClusterIPs and NodePorts
    [InlineData("copy.yaml", "apiVersion: v1\nkind: Service\nmetadata: {name: copy}\nspec: {clusterIP: 10.96.0.10, ports: [{port: 80}]}", "copy.yaml: Service default/copy: spec.clusterIP: \"10.96.0.10\" is already allocated to Service default/web (base.yaml)")]
    [InlineData("copy.yaml", "apiVersion: v1\nkind: Service\nmetadata: {name: copy}\nspec: {type: NodePort, clusterIP: 10.96.0.21, ports: [{port: 80, nodePort: 30080}]}", "copy.yaml: Service default/copy: spec.ports[0].nodePort: 30080/TCP is already allocated to Service default/np (np.yaml)")]
    // endpoint address of the wrong family
    [InlineData("slice.yaml", "apiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata: {name: web-abc, labels: {kubernetes.io/service-name: web}}\naddressType: IPv4\nendpoints: [{addresses: [\"fd00::1\"]}]", "slice.yaml: EndpointSlice default/web-abc: endpoints[0].addresses[0]: \"fd00::1\" is not an IPv4 address (addressType)")]
    // pods outside their node's podCIDR, duplicate pod IPs
    [InlineData("pod.yaml", Pod + "metadata: {name: web-1}\nspec: {nodeName: node-a}\nstatus: {podIP: 10.244.2.50}", "pod.yaml: Pod default/web-1: status.podIP: \"10.244.2.50\" is not inside the podCIDRs of Node node-a (10.244.1.0/24)")]
    [InlineData("pod.yaml", Pod + "metadata: {name: copy}\nspec: {nodeName: node-a}\nstatus: {podIP: 10.244.1.11}", "pod.yaml: Pod default/copy: status.podIP: \"10.244.1.11\" is also the IP of Pod default/web-1 (base.yaml)")]
    [InlineData("pod.yaml", Pod + "metadata: {name: web-1}\nspec: {nodeName: node-z}\nstatus: {podIP: 10.244.1.11}", "pod.yaml: Pod default/web-1: spec.nodeName: no Node named \"node-z\"")]
    // unknown FastPathConfiguration fields, and a file that does not parse (a partial write)
    [InlineData("cfg.yaml", "apiVersion: fastpath.io/v1alpha1\nkind: FastPathConfiguration\nvxlanport: 4789", "cfg.yaml:3: FastPathConfiguration: vxlanport: unknown field")]
    [InlineData("svc.yaml", Svc + "  clusterIP: 10.96.0.99\n  ports: [{name: http, port: 80", "svc.yaml:7: YAML syntax error: While parsing a flow mapping, did not find expected ',' or '}'.")]
    public void BadObject_IsRejected_AndThePreviousStateKeepsForwarding(string file, string yaml, string expected)
    {
        using var h = new ControllerHarness();
        Assert.Empty(h.Apply("np.yaml", "apiVersion: v1\nkind: Service\nmetadata: {name: np}\nspec: {type: NodePort, clusterIP: 10.96.0.20, ports: [{port: 80, nodePort: 30080}]}"));
        Assert.Equal("default/web-1", h.Tcp(40000).Egress);
        var before = h.Controller.State;

        var problems = h.Apply(file, yaml);

        Assert.Equal([expected], problems.Select(p => p.ToString().Replace(h.Dir + "/", "")));
        Assert.Contains(h.Logger.Lines, l => l.Message.Contains(problems[0].ToString()));
        // The last good versions are still in force and still forward.
        var after = h.Controller.State;
        Assert.Equal(Dump(before), Dump(after));
        var tcp = h.Tcp(40001);
        Assert.Equal(("default/web-1", "10.244.1.11", (ushort)8080), (tcp.Egress, tcp.Destination, tcp.DestinationPort));
        Assert.Equal(("uplink", "10.244.2.13"), (h.FromClient(17, "10.244.2.13", Support.TestFrames.Udp(1, 2)) is var u ? (u.Egress, u.Destination) : default));
    }

    private static string Dump(ClusterState s) => string.Join("\n",
        s.Nodes.Select(o => k8s.KubernetesJson.Serialize(o.Value)).Concat(s.Pods.Select(o => k8s.KubernetesJson.Serialize(o.Value)))
            .Concat(s.Services.Select(o => k8s.KubernetesJson.Serialize(o.Value))).Concat(s.EndpointSlices.Select(o => k8s.KubernetesJson.Serialize(o.Value)))
            .Append(s.Configuration.VxlanPort.ToString()));
}
