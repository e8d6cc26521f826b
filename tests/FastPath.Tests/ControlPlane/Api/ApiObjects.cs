using System.Text.Json.Nodes;
using FastPath.ControlPlane.Cluster;
using FastPath.Tests.Support;

namespace FastPath.Tests.ControlPlane.Api;

/// <summary>
/// Objects as the API server returns them: the demo cluster (pcaps/demo/cluster) plus what the server adds — uid,
/// creationTimestamp, managedFields, ownerReferences on EndpointSlices, status — so the source reads real shapes.
/// </summary>
internal static class ApiObjects
{
    public static string DemoFile => Path.Combine(RepositoryFiles.Root, "pcaps", "demo", "cluster", "cluster.yaml");

    /// <summary>The demo's FastPathConfiguration document (it comes from a file next to an API source).</summary>
    public static string Configuration => File.ReadAllText(DemoFile).Split("\n---\n")[0];

    public static IEnumerable<JsonObject> Demo()
    {
        var load = ClusterDirectory.Load(DemoFile);
        Assert.Empty(load.Errors);
        foreach (var o in load.State.Namespaces.Cast<IClusterObject>().Concat(load.State.Nodes).Concat(load.State.Services)
                     .Concat(load.State.Pods).Concat(load.State.EndpointSlices))
            yield return AsServed(JsonNode.Parse(k8s.KubernetesJson.Serialize(o.Value))!.AsObject());
    }

    /// <summary>Adds the fields the API server writes (and a managedFields entry like kubectl's apply).</summary>
    public static JsonObject AsServed(JsonObject o)
    {
        var meta = o["metadata"]!.AsObject();
        meta["uid"] = Guid.NewGuid().ToString();
        meta["creationTimestamp"] = "2024-05-01T10:00:00Z";
        meta["managedFields"] = JsonNode.Parse("""
            [{"apiVersion": "v1", "fieldsType": "FieldsV1", "manager": "kubectl-client-side-apply", "operation": "Update",
              "time": "2024-05-01T10:00:00Z", "fieldsV1": {"f:metadata": {"f:annotations": {".": {}, "f:kubectl.kubernetes.io/last-applied-configuration": {}}}}}]
            """);
        if ((string?)o["kind"] == "EndpointSlice")
        {
            string service = (string)meta["labels"]!["kubernetes.io/service-name"]!;
            meta["ownerReferences"] = JsonNode.Parse($$$"""[{"apiVersion": "v1", "kind": "Service", "name": "{{{service}}}", "uid": "{{{Guid.NewGuid()}}}", "controller": true, "blockOwnerDeletion": true}]""");
            meta["generateName"] = service + "-";
        }
        if ((string?)o["kind"] == "Service") o["status"] ??= JsonNode.Parse("""{"loadBalancer": {}}""");
        return o;
    }

    public static JsonObject Pod(string name, string ns, string node, string ip) => AsServed(JsonNode.Parse($$$"""
        {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "{{{name}}}", "namespace": "{{{ns}}}", "labels": {"app": "web"}},
         "spec": {"nodeName": "{{{node}}}", "containers": [{"name": "web", "image": "nginx", "ports": [{"name": "http", "containerPort": 8080}]}]},
         "status": {"phase": "Running", "podIP": "{{{ip}}}", "podIPs": [{"ip": "{{{ip}}}"}],
                    "conditions": [{"type": "Ready", "status": "True", "lastTransitionTime": "2024-05-01T10:00:00Z"}]}}
        """)!.AsObject());

    public static JsonObject Service(string name, string ns, string clusterIp) => AsServed(JsonNode.Parse($$$"""
        {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "{{{name}}}", "namespace": "{{{ns}}}"},
         "spec": {"type": "ClusterIP", "clusterIP": "{{{clusterIp}}}", "clusterIPs": ["{{{clusterIp}}}"], "ipFamilies": ["IPv4"],
                  "ports": [{"name": "http", "port": 80, "protocol": "TCP", "targetPort": 8080}]}}
        """)!.AsObject());

    public static JsonObject Slice(string name, string ns, string service, params (string Ip, string Node)[] endpoints) => AsServed(JsonNode.Parse($$$"""
        {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice", "addressType": "IPv4",
         "metadata": {"name": "{{{name}}}", "namespace": "{{{ns}}}", "labels": {"kubernetes.io/service-name": "{{{service}}}"}},
         "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}],
         "endpoints": [{{{string.Join(",", endpoints.Select(e => Endpoint(e.Ip, e.Node)))}}}]}
        """)!.AsObject());

    private static string Endpoint(string ip, string node) =>
        "{\"addresses\": [\"" + ip + "\"], \"conditions\": {\"ready\": true, \"serving\": true, \"terminating\": false}, \"nodeName\": \"" + node + "\"}";

    /// <summary><paramref name="services"/> Services in "default", each with one slice of <paramref name="endpoints"/> endpoints on node-b.</summary>
    public static IEnumerable<JsonObject> Scale(int services, int endpoints)
    {
        for (int i = 0; i < services; i++)
        {
            yield return Service($"svc-{i}", "default", $"10.100.{i >> 8}.{i & 255}");
            yield return Slice($"svc-{i}-x1", "default", $"svc-{i}",
                [.. Enumerable.Range(0, endpoints).Select(e => ($"10.244.2.{(i + e) % 250 + 2}", "node-b"))]);
        }
    }
}
