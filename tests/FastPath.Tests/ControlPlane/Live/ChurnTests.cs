using FastPath.ControlPlane.Cluster;
using FastPath.ControlPlane.Cluster.Sources;
using FastPath.DataPlane.Telemetry;

namespace FastPath.Tests.ControlPlane.Live;

/// <summary>
/// What scripts/soak.sh does to the cluster every second, as batches to the live controller: other Services and their
/// slices come and go, pods appear and disappear, policies toggle. A Service the churn never touches must keep
/// forwarding through every published snapshot (the soak saw SYNs to its stable ClusterIP dropped as no-route).
/// </summary>
public sealed class ChurnTests
{
    private static string Round(int i)
    {
        var docs = new List<string>();
        for (int k = 0; k < 5; k++)
        {
            if ((i + k) % 3 == 0) continue;
            string endpoints = (i + k) % 3 == 1 ? $"{ControllerHarness.Ready("10.244.1.11")}, {ControllerHarness.Ready("10.244.1.12")}"
                : ControllerHarness.Ready(i % 2 == 0 ? "10.244.1.11" : "10.244.2.13", i % 2 == 0 ? "node-a" : "node-b");
            docs.Add($"apiVersion: v1\nkind: Service\nmetadata: {{name: soak-{k}}}\nspec: {{clusterIP: 10.96.1.1{k}, ports: [{{name: http, port: 80, protocol: TCP}}, {{name: dns, port: 53, protocol: UDP}}]}}");
            docs.Add(ControllerHarness.Slice($"soak-{k}-v4", $"soak-{k}", endpoints));
        }
        for (int k = 0; k < 4; k++)
            if ((i + k) % 2 == 0)
                docs.Add($"apiVersion: v1\nkind: Pod\nmetadata: {{name: soak-pod-{k}, labels: {{app: soak}}}}\nspec: {{nodeName: {(k % 2 == 0 ? "node-a" : "node-b")}}}\nstatus: {{podIP: 10.244.{(k % 2 == 0 ? 1 : 2)}.10{k}}}");
        if (i % 2 == 0)
            docs.Add("apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: soak-allow}\nspec: {podSelector: {}, policyTypes: [Ingress], ingress: [{}]}");
        if (i % 3 == 0)
            docs.Add("apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: soak-deny}\nspec: {podSelector: {matchLabels: {app: soak}}, policyTypes: [Ingress, Egress]}");
        return string.Join("\n---\n", docs);
    }

    [Fact]
    public void AStableServiceForwardsThroughEveryChurnRound()
    {
        using var h = new ControllerHarness();
        var previous = new HashSet<ObjectKey>();
        for (int i = 0; i < 60; i++)
        {
            // As DirectorySource reports a rewritten file: its objects upserted, the ones it no longer holds deleted.
            var batch = h.Read("soak.yaml", Round(i));
            var keys = batch.Changes.Select(c => c.Key).ToHashSet();
            var deletes = previous.Except(keys).Select(k => new ClusterChange(ClusterChangeKind.Delete, k, null, "soak.yaml"));
            Assert.Empty(h.Controller.Apply(batch with { Changes = [.. deletes, .. batch.Changes] }));
            previous = keys;
            var sent = h.Tcp((ushort)(40000 + i));
            Assert.True(sent.Drop == DropReason.None && sent.Egress == "default/web-1",
                $"round {i}: SYN to the stable ClusterIP {DropReasons.Name(sent.Drop)}, egress {sent.Egress}");
        }
    }
}
