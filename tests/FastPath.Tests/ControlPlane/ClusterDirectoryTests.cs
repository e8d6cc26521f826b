using Xunit;
using FastPath.ControlPlane.Cluster;
using FastPath.DataPlane.Packets;

namespace FastPath.Tests.ControlPlane;

public class ClusterDirectoryTests
{
    private const string Node = "apiVersion: v1\nkind: Node\nmetadata: {name: node-a}\nspec: {podCIDR: 10.244.1.0/24}\n";

    private static string Pod(string name, string ip, string extra = "") =>
        $"apiVersion: v1\nkind: Pod\nmetadata: {{name: {name}, namespace: default}}\nspec: {{nodeName: node-a}}\nstatus: {{podIP: \"{ip}\"}}\n{extra}";

    [Fact]
    public void MultiFileDirectory_LoadsRecursively_SortedByPath_AllExtensions()
    {
        using var c = new TempCluster();
        c.Write("nodes/node.yml", Node);
        c.Write("pods/b.yaml", Pod("b", "10.244.1.2"));
        c.Write("pods/a.json", """{"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "a", "namespace": "default"}, "spec": {"nodeName": "node-a"}, "status": {"podIP": "10.244.1.1"}}""");
        c.Write("pods/c.YAML", Pod("c", "10.244.1.3") + "---\n" + Pod("d", "10.244.1.4") + "---\n");
        c.Write("notes.txt", "not a manifest: [");
        c.Write(".hidden/copy.yaml", Pod("b", "10.244.1.2"));
        var load = ClusterDirectory.Load(c.Path);
        Assert.Empty(load.Errors);
        Assert.Equal(["a", "b", "c", "d"], load.State.Pods.Select(p => p.Name));
        Assert.Equal(c.F("pods/a.json"), load.State.Pods[0].File);
        Assert.Equal(c.F("pods/c.YAML"), load.State.Pods[3].File);
        Assert.Equal(7, load.State.Pods[3].Line);
        Assert.Equal(c.F("nodes/node.yml"), Assert.Single(load.State.Nodes).File);
    }

    [Fact]
    public void SingleFilePath_IsAccepted()
    {
        using var c = new TempCluster();
        var file = c.Write("all.yaml", Node + "---\n" + Pod("a", "10.244.1.1"));
        var load = ClusterDirectory.Load(file);
        Assert.Empty(load.Errors);
        Assert.Equal(file, load.State.Source);
        Assert.Single(load.State.Pods);
    }

    /// <summary>The manifest fuzz target loads from memory: the same objects, errors and lines as the file gives.</summary>
    [Fact]
    public void TextLoadsAsItsFileDoes()
    {
        using var c = new TempCluster();
        string text = Node + "---\n" + Pod("a", "10.244.1.1") + "---\n" + Pod("b", "10.244.1.300") + "---\nkind: Pod\n";
        var file = c.Write("all.yaml", text);
        var fromFile = ClusterDirectory.Load(file);
        var fromText = ClusterDirectory.LoadText(file, text);
        Assert.Equal(2, fromFile.Errors.Count());
        Assert.Equal(fromFile.Errors.Select(e => e.ToString()), fromText.Errors.Select(e => e.ToString()));
        Assert.Equal(fromFile.State.Pods.Select(p => (p.Label, p.File, p.Line)), fromText.State.Pods.Select(p => (p.Label, p.File, p.Line)));
        Assert.Equal(fromFile.State.Nodes.Select(n => n.Label), fromText.State.Nodes.Select(n => n.Label));
    }

    [Fact]
    public void MissingPath_IsOneError()
    {
        var load = ClusterDirectory.Load("/nonexistent/fastpath-cluster");
        Assert.Equal("/nonexistent/fastpath-cluster: no such file or directory", Assert.Single(load.Errors).ToString());
    }

    [Fact]
    public void NamespaceDefaultsToDefault()
    {
        using var c = new TempCluster();
        c.Write("a.yaml", Node + "---\napiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec: {nodeName: node-a}\n");
        var pod = Assert.Single(ClusterDirectory.Load(c.Path).State.Pods);
        Assert.Equal("default", pod.Namespace);
        Assert.Equal("default", pod.Value.Metadata.NamespaceProperty);
        Assert.Equal("Pod default/p", pod.Label);
    }

    [Fact]
    public void UnknownKinds_AreSkippedWithWarnings()
    {
        using var c = new TempCluster();
        c.Write("a.yaml", """
            apiVersion: apps/v1
            kind: Deployment
            metadata: {name: web, namespace: default}
            ---
            apiVersion: v1
            kind: ConfigMap
            metadata: {name: cfg}
            """);
        var load = ClusterDirectory.Load(c.Path);
        Assert.Empty(load.Errors);
        Assert.Equal(
            [$"{c.F("a.yaml")}:1: Deployment default/web: skipped: FastPath does not use kind Deployment (apps/v1)",
             $"{c.F("a.yaml")}:5: ConfigMap cfg: skipped: FastPath does not use kind ConfigMap (v1)"],
            load.Warnings.Select(w => w.ToString()));
    }

    [Fact]
    public void UnsupportedApiVersionOfAKnownKind_IsAnError()
    {
        using var c = new TempCluster();
        c.Write("a.yaml", "apiVersion: discovery.k8s.io/v1beta1\nkind: EndpointSlice\nmetadata: {name: s, namespace: default}\n");
        Assert.Equal($"{c.F("a.yaml")}:1: EndpointSlice default/s: apiVersion: \"discovery.k8s.io/v1beta1\" is not supported for EndpointSlice (use discovery.k8s.io/v1)",
            Assert.Single(ClusterDirectory.Load(c.Path).Errors).ToString());
    }

    [Fact]
    public void UnknownKubernetesField_IsAWarning_AndTheObjectStillLoads()
    {
        using var c = new TempCluster();
        c.Write("a.yaml", Node + "---\n" + "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec: {nodeName: node-a}\nstatus:\n  podIp: 10.244.1.1\n");
        var load = ClusterDirectory.Load(c.Path);
        Assert.Empty(load.Errors);
        Assert.Single(load.State.Pods);
        Assert.Equal($"{c.F("a.yaml")}:11: Pod default/p: status.podIp: unknown field ignored", Assert.Single(load.Warnings).ToString());
    }

    [Fact]
    public void YamlSyntaxError_NamesFileAndLine_AndKeepsEarlierDocumentsAndOtherFiles()
    {
        using var c = new TempCluster();
        c.Write("a.yaml", Node + "---\napiVersion: v1\nkind: Pod\nmetadata: {name: p\n");
        c.Write("b.yaml", Pod("q", "10.244.1.9"));
        var load = ClusterDirectory.Load(c.Path);
        var error = Assert.Single(load.Errors);
        Assert.Equal(c.F("a.yaml"), error.File);
        Assert.Equal(9, error.Line);
        Assert.StartsWith($"{c.F("a.yaml")}:9: YAML syntax error: ", error.ToString());
        Assert.DoesNotContain('\n', error.ToString());
        Assert.Single(load.State.Nodes);
        Assert.Equal("q", Assert.Single(load.State.Pods).Name);
    }

    [Fact]
    public void WrongValueType_NamesLineObjectAndField()
    {
        using var c = new TempCluster();
        c.Write("svc.yaml", """
            apiVersion: v1
            kind: Service
            metadata: {name: api}
            spec:
              ports:
              - name: http
                port: eighty
            """);
        var error = Assert.Single(ClusterDirectory.Load(c.Path).Errors);
        Assert.Equal(7, error.Line);
        Assert.Equal("Service default/api", error.Object);
        Assert.Equal("spec.ports[0].port", error.Field);
    }

    [Fact]
    public void DocumentsThatAreNotObjects_AreErrors()
    {
        using var c = new TempCluster();
        c.Write("a.yaml", "- just\n- a list\n---\nkind: Pod\nmetadata: {name: x}\n---\n# only a comment\n");
        Assert.Equal(
            [$"{c.F("a.yaml")}:1: expected a Kubernetes object (a mapping with apiVersion and kind)",
             $"{c.F("a.yaml")}:4: Pod: apiVersion: required"],
            ClusterDirectory.Load(c.Path).Errors.Select(e => e.ToString()));
    }

    [Fact]
    public void ThousandInvalidPods_ThousandErrors()
    {
        using var c = new TempCluster();
        var text = new System.Text.StringBuilder(Node);
        for (int i = 0; i < 1000; i++) text.Append("---\n").Append(Pod($"p{i}", $"10.244.1.{300 + i}"));
        c.Write("pods.yaml", text.ToString());
        var load = ClusterDirectory.Load(c.Path);
        Assert.Equal(1000, load.Errors.Length);
        Assert.Equal(1000, load.State.Pods.Length);
        Assert.Equal($"{c.F("pods.yaml")}: Pod default/p999: status.podIP: \"10.244.1.1299\" is not an IP address", load.Errors[^1].ToString());
    }

    [Fact]
    public void Configuration_DefaultsWhenAbsent_ClusterCidrsFromNodes()
    {
        using var c = new TempCluster();
        c.Write("n.yaml", Node + "---\napiVersion: v1\nkind: Node\nmetadata: {name: node-b}\nspec: {podCIDRs: [10.244.2.0/24, \"fd00:2::/64\"]}\n");
        var load = ClusterDirectory.Load(c.Path);
        Assert.Empty(load.Errors);
        var config = load.State.Configuration;
        Assert.Null(load.State.ConfigurationFile);
        Assert.Equal(["10.244.1.0/24", "10.244.2.0/24", "fd00:2::/64"], config.ClusterCidrs.Select(x => x.ToString()));
        Assert.Equal(["10.96.0.0/12"], config.ServiceCidrs.Select(x => x.ToString()));
        Assert.Equal(TunnelMode.Vxlan, config.Tunnel);
        Assert.Equal(8472, config.VxlanPort);
        Assert.Equal(1, config.Vni);
        Assert.Equal(1500, config.Mtu);
        Assert.Equal("ee:ee:ee:ee:ee:ee", config.GatewayMac.ToString());
        Assert.Equal(new PortRange(30000, 32767), config.NodePortRange);
        Assert.True(config.MasqueradeOffCluster);
        Assert.Equal(16381, config.MaglevTableSize);
        Assert.Equal(100, config.MaglevSlotsPerBackend);
    }

    [Fact]
    public void Configuration_Overrides()
    {
        using var c = new TempCluster();
        c.Write("fastpath.yaml", """
            apiVersion: fastpath.io/v1alpha1
            kind: FastPathConfiguration
            clusterCIDRs: [10.244.0.0/16, "fd00:10:244::/56"]
            serviceCIDRs: [10.96.0.0/16]
            tunnel: direct
            vxlanPort: 4789
            vni: 42
            mtu: 9000
            gatewayMAC: "02:00:00:00:00:fe"
            nodePortRange: "20000-20099"
            masqueradeOffCluster: false
            maglevTableSize: 65537
            maglevSlotsPerBackend: 0
            conntrackMaxEntries: 1024
            conntrackTCPEstablishedTimeout: 1h30m0s
            conntrackUDPTimeout: 45
            """);
        var load = ClusterDirectory.Load(c.Path);
        Assert.Empty(load.Errors);
        var config = load.State.Configuration;
        Assert.Equal(c.F("fastpath.yaml"), load.State.ConfigurationFile);
        Assert.Equal(["10.244.0.0/16", "fd00:10:244::/56"], config.ClusterCidrs.Select(x => x.ToString()));
        Assert.Equal(["10.96.0.0/16"], config.ServiceCidrs.Select(x => x.ToString()));
        Assert.Equal(TunnelMode.Direct, config.Tunnel);
        Assert.Equal(4789, config.VxlanPort);
        Assert.Equal(42, config.Vni);
        Assert.Equal(9000, config.Mtu);
        Assert.True(MacAddress.TryParse("02:00:00:00:00:fe", out var mac));
        Assert.Equal(mac, config.GatewayMac);
        Assert.Equal(new PortRange(20000, 20099), config.NodePortRange);
        Assert.False(config.MasqueradeOffCluster);
        Assert.Equal(65537, config.MaglevTableSize);
        Assert.Equal(0, config.MaglevSlotsPerBackend);
        Assert.Equal(1024, config.ConntrackMaxEntries);
        Assert.Equal(TimeSpan.FromMinutes(90), config.ConntrackTcpEstablishedTimeout);
        Assert.Equal(TimeSpan.FromSeconds(45), config.ConntrackUdpTimeout);
        Assert.Equal(TimeSpan.FromHours(1), config.ConntrackTcpCloseWaitTimeout);
    }

    [Fact]
    public void Configuration_EveryBadFieldIsReported()
    {
        using var c = new TempCluster();
        c.Write("fastpath.yaml", """
            apiVersion: fastpath.io/v1alpha1
            kind: FastPathConfiguration
            clusterCIDRs: [10.244.0.0/33]
            serviceCIDRs: 10.96.0.0/12
            tunnel: geneve
            vxlanPort: 70000
            mtu: 100
            gatewayMAC: "ee:ee:ee:ee:ee"
            nodePortRange: "32767-30000"
            masqueradeOffCluster: yes
            maglevTableSize: 16384
            vxlanport: 8472
            """);
        string f = c.F("fastpath.yaml");
        Assert.Equal(
            [$"{f}:3: FastPathConfiguration: clusterCIDRs: \"10.244.0.0/33\" is not a CIDR",
             $"{f}:4: FastPathConfiguration: serviceCIDRs: expected a list of CIDRs",
             $"{f}:5: FastPathConfiguration: tunnel: \"geneve\" is not a tunnel mode (vxlan | direct)",
             $"{f}:6: FastPathConfiguration: vxlanPort: 70000 is out of range (1-65535)",
             $"{f}:7: FastPathConfiguration: mtu: 100 is out of range (576-9216)",
             $"{f}:8: FastPathConfiguration: gatewayMAC: \"ee:ee:ee:ee:ee\" is not a MAC address",
             $"{f}:9: FastPathConfiguration: nodePortRange: \"32767-30000\" is not a port range \"first-last\" with 1 <= first <= last <= 65535",
             $"{f}:10: FastPathConfiguration: masqueradeOffCluster: \"yes\" is not a boolean (true | false)",
             $"{f}:11: FastPathConfiguration: maglevTableSize: 16384 is not a prime number",
             $"{f}:12: FastPathConfiguration: vxlanport: unknown field"],
            ClusterDirectory.Load(c.Path).Errors.Select(e => e.ToString()));
    }

    [Fact]
    public void Configuration_Duplicate_IsAnError()
    {
        using var c = new TempCluster();
        c.Write("a.yaml", "apiVersion: fastpath.io/v1alpha1\nkind: FastPathConfiguration\nmtu: 1400\n");
        c.Write("b.yaml", "apiVersion: fastpath.io/v1alpha1\nkind: FastPathConfiguration\nmtu: 9000\n");
        var load = ClusterDirectory.Load(c.Path);
        Assert.Equal($"{c.F("b.yaml")}:1: FastPathConfiguration: duplicate: a FastPathConfiguration is already defined in {c.F("a.yaml")}",
            Assert.Single(load.Errors).ToString());
        Assert.Equal(1400, load.State.Configuration.Mtu);
    }
}
