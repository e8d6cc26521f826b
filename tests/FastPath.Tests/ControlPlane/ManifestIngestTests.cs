using System.Text;
using Xunit;
using FastPath.ControlPlane.Cluster;

namespace FastPath.Tests.ControlPlane;

/// <summary>
/// The manifest reader of issue 17: one YAML parse per document (pieces of large files on all cores), typed reading
/// through JSON as kubectl does, and what <c>kubectl get -o yaml|json</c> writes (kind List with items).
/// </summary>
public class ManifestIngestTests
{
    private const string Node = "apiVersion: v1\nkind: Node\nmetadata: {name: node-a}\nspec: {podCIDR: 10.244.1.0/24}\n";

    private const string WideNode = "apiVersion: v1\nkind: Node\nmetadata: {name: node-a}\nspec: {podCIDR: 10.244.0.0/16}\n";

    private static string Pod(string name, string ip) =>
        $"apiVersion: v1\nkind: Pod\nmetadata: {{name: {name}, namespace: default}}\nspec: {{nodeName: node-a}}\nstatus: {{podIP: \"{ip}\"}}\n";

    // What `kubectl get nodes,pods -o yaml` writes (trimmed): a v1 List, items with managedFields and status.
    private const string KubectlYaml = """
        apiVersion: v1
        items:
        - apiVersion: v1
          kind: Node
          metadata:
            name: node-a
            resourceVersion: "812"
            managedFields:
            - apiVersion: v1
              fieldsType: FieldsV1
              fieldsV1:
                f:spec:
                  f:podCIDR: {}
              manager: kube-controller-manager
              operation: Update
              time: "2024-05-01T10:00:00Z"
          spec:
            podCIDR: 10.244.1.0/24
            podCIDRs:
            - 10.244.1.0/24
          status:
            addresses:
            - address: 192.168.56.11
              type: InternalIP
        - apiVersion: v1
          kind: Pod
          metadata:
            name: web-0
            namespace: shop
            labels: {app: web, version: 2}
            ownerReferences:
            - apiVersion: apps/v1
              kind: StatefulSet
              name: web
              uid: 5b0c6d6e-0000-0000-0000-000000000001
              controller: true
          spec:
            nodeName: node-a
            containers:
            - name: web
              image: nginx
              ports:
              - containerPort: 80
                protocol: TCP
          status:
            phase: Running
            podIP: 10.244.1.10
            podIPs:
            - ip: 10.244.1.10
        kind: List
        metadata:
          resourceVersion: ""
        """;

    [Fact]
    public void KubectlListYaml_LoadsEveryItem_WithItsLine()
    {
        using var c = new TempCluster();
        c.Write("cluster.yaml", KubectlYaml);
        var load = ClusterDirectory.Load(c.Path);
        Assert.Empty(load.Errors);
        Assert.Empty(load.Warnings);
        var node = Assert.Single(load.State.Nodes);
        Assert.Equal(3, node.Line);
        var pod = Assert.Single(load.State.Pods);
        Assert.Equal("shop/web-0", pod.QualifiedName);
        Assert.Equal(25, pod.Line);
        Assert.Equal("2", pod.Value.Metadata.Labels["version"]); // a plain number where a string is wanted: its text
        Assert.Equal(80, pod.Value.Spec.Containers[0].Ports[0].ContainerPort);
    }

    [Fact]
    public void TypedListJson_LoadsEveryItem_AndErrorsNameTheItem()
    {
        using var c = new TempCluster();
        c.Write("pods.json", """
            {
              "apiVersion": "v1",
              "kind": "PodList",
              "metadata": {"resourceVersion": "9"},
              "items": [
                {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "a", "namespace": "default"},
                 "spec": {"nodeName": "node-a"}, "status": {"podIP": "10.244.1.1"}},
                {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "b", "namespace": "default"},
                 "spec": {"nodeName": "node-a", "containers": [{"name": "c", "ports": [{"containerPort": "http"}]}]},
                 "status": {"podIP": "10.244.1.2"}}
              ]
            }
            """);
        c.Write("node.yaml", Node);
        var load = ClusterDirectory.Load(c.Path);
        Assert.Equal("a", Assert.Single(load.State.Pods).Name);
        Assert.Equal($"{c.F("pods.json")}:9: items[1] Pod default/b: spec.containers[0].ports[0].containerPort: \"http\" is not a valid Int32",
            Assert.Single(load.Errors).ToString());
    }

    [Fact]
    public void ListWithoutItems_IsEmpty_AndItemsThatAreNotAList_IsAnError()
    {
        using var c = new TempCluster();
        c.Write("a.yaml", "apiVersion: v1\nkind: List\nitems: []\n---\napiVersion: v1\nkind: ServiceList\nitems: {a: b}\n");
        var load = ClusterDirectory.Load(c.Path);
        Assert.Equal($"{c.F("a.yaml")}:7: ServiceList: items: expected a list of objects", Assert.Single(load.Errors).ToString());
    }

    /// <summary>A node and 3,000 pods (over 256 KiB: read in pieces); <paramref name="line"/> is the next line to write.</summary>
    private static StringBuilder ThreeThousandPods(out int line)
    {
        var text = new StringBuilder(WideNode);
        for (int i = 0; i < 3000; i++) text.Append("---\n").Append(Pod($"p{i}", $"10.244.{1 + i / 250}.{i % 250 + 1}"));
        line = text.ToString().Count(ch => ch == '\n') + 1;
        return text;
    }

    [Fact]
    public void LargeFile_ReadInPieces_KeepsFileLinesInObjectsErrorsAndWarnings()
    {
        // > 256 KiB, so the reader cuts it at "---" lines and parses the pieces in parallel.
        using var c = new TempCluster();
        var text = ThreeThousandPods(out int line);
        text.Append("---\napiVersion: v1\nkind: Pod\nmetadata: {name: bad, namespace: default}\nspec:\n  nodeName: node-a\n  containers:\n  - name: c\n    ports:\n    - containerPort: eighty\n");
        text.Append("---\napiVersion: v1\nkind: Pod\nmetadata: {name: typo, namespace: default}\nspec: {nodeName: node-a}\nstatus:\n  podIp: 10.244.1.9\n");
        // a block scalar holding "---" indented is content, not a document marker
        text.Append("---\napiVersion: v1\nkind: Pod\nmetadata:\n  name: note\n  namespace: default\n  annotations:\n    note: |\n      ---\n      not a document\nspec: {nodeName: node-a}\n");
        Assert.True(text.Length > 300_000);
        c.Write("pods.yaml", text.ToString());
        var load = ClusterDirectory.Load(c.Path);
        Assert.Equal(3002, load.State.Pods.Length); // all but "bad"
        Assert.Equal(6 + 6 * 2999, load.State.Pods[2999].Line);
        Assert.Equal($"{c.F("pods.yaml")}:{line + 9}: Pod default/bad: spec.containers[0].ports[0].containerPort: \"eighty\" is not a valid Int32",
            Assert.Single(load.Errors).ToString());
        Assert.Equal($"{c.F("pods.yaml")}:{line + 16}: Pod default/typo: status.podIp: unknown field ignored", Assert.Single(load.Warnings).ToString());
        Assert.Equal("---\nnot a document\n", load.State.Pods.Single(p => p.Name == "note").Value.Metadata.Annotations["note"]);
    }

    [Fact]
    public void SyntaxErrorInALaterPiece_KeepsTheDocumentsBeforeIt_AtTheRightLine()
    {
        using var c = new TempCluster();
        var text = ThreeThousandPods(out int line);
        text.Append("---\napiVersion: v1\nkind: Pod\nmetadata: {name: p\n");
        c.Write("pods.yaml", text.ToString());
        var load = ClusterDirectory.Load(c.Path);
        Assert.Equal(3000, load.State.Pods.Length);
        var error = Assert.Single(load.Errors);
        Assert.Equal(line + 4, error.Line);
        Assert.StartsWith($"{c.F("pods.yaml")}:{line + 4}: YAML syntax error: ", error.ToString());
    }

    [Fact]
    public void AnchorsAliasesAndMergeKeys_AreResolved()
    {
        using var c = new TempCluster();
        c.Write("a.yaml", Node + """
            ---
            apiVersion: v1
            kind: Pod
            metadata:
              name: p
              namespace: default
              labels: &labels {app: web, tier: front}
              annotations: *labels
            spec:
              nodeName: node-a
            status:
              <<: {podIP: 10.244.1.5, phase: Pending}
              phase: Running
            """);
        var load = ClusterDirectory.Load(c.Path);
        Assert.Empty(load.Errors);
        var pod = Assert.Single(load.State.Pods).Value;
        Assert.Equal("front", pod.Metadata.Annotations["tier"]);
        Assert.Equal("10.244.1.5", pod.Status.PodIP);
        Assert.Equal("Running", pod.Status.Phase);
    }

    [Fact]
    public void DuplicateField_IsAWarning_TheLastValueIsUsed()
    {
        using var c = new TempCluster();
        c.Write("a.yaml", Node + "---\napiVersion: v1\nkind: Pod\nmetadata: {name: p, namespace: default}\nspec: {nodeName: node-a}\nstatus:\n  podIP: 10.244.1.1\n  podIP: 10.244.1.2\n");
        var load = ClusterDirectory.Load(c.Path);
        Assert.Empty(load.Errors);
        Assert.Equal("10.244.1.2", Assert.Single(load.State.Pods).Value.Status.PodIP);
        var warning = Assert.Single(load.Warnings);
        Assert.Equal("Pod default/p", warning.Object);
        Assert.Equal("duplicate field: the last value is used", warning.Message);
    }

    [Fact]
    public void YamlAndJsonOfTheSameCluster_ReadTheSame()
    {
        using var c = new TempCluster();
        c.Write("y/cluster.yaml", KubectlYaml);
        var json = k8s.KubernetesJson.Serialize(k8s.KubernetesYaml.Deserialize<Dictionary<string, object>>(KubectlYaml));
        c.Write("j/cluster.json", json);
        var yaml = ClusterDirectory.Load(c.F("y"));
        var fromJson = ClusterDirectory.Load(c.F("j"));
        Assert.Empty(fromJson.Errors);
        Assert.Equal(k8s.KubernetesJson.Serialize(yaml.State.Pods[0].Value), k8s.KubernetesJson.Serialize(fromJson.State.Pods[0].Value));
        Assert.Equal(k8s.KubernetesJson.Serialize(yaml.State.Nodes[0].Value), k8s.KubernetesJson.Serialize(fromJson.State.Nodes[0].Value));
    }

    [Fact]
    public void JsonFile_SyntaxError_NamesTheLine_AndEarlierObjectsStay()
    {
        using var c = new TempCluster();
        c.Write("node.yaml", Node);
        c.Write("pods.json", "{\"apiVersion\": \"v1\", \"kind\": \"Pod\", \"metadata\": {\"name\": \"a\", \"namespace\": \"default\"},\n \"spec\": {\"nodeName\": \"node-a\"}, \"status\": {\"podIP\": \"10.244.1.1\"}}\n"
            + "{\"apiVersion\": \"v1\", \"kind\": \"Pod\",\n \"metadata\": {\"name\": \"b\",, }}\n");
        var load = ClusterDirectory.Load(c.Path);
        Assert.Equal("a", Assert.Single(load.State.Pods).Name); // two top-level values: two documents
        var error = Assert.Single(load.Errors);
        Assert.Equal(4, error.Line);
        Assert.StartsWith($"{c.F("pods.json")}:4: YAML syntax error: JSON: ", error.ToString());
        Assert.DoesNotContain('\n', error.ToString());
    }

    [Fact]
    public void JsonExtensionHoldingYaml_IsReadAsYaml()
    {
        using var c = new TempCluster();
        c.Write("node.json", Node);
        var load = ClusterDirectory.Load(c.Path);
        Assert.Empty(load.Errors);
        Assert.Equal("10.244.1.0/24", Assert.Single(load.State.Nodes).Value.Spec.PodCIDR);
    }
}
