using FastPath.ControlPlane.Cluster;
using FastPath.ControlPlane.Compile;
using k8s.Models;

namespace FastPath.Tests.ControlPlane;

/// <summary>NetworkPolicy validation messages (file, object, field) and label-selector semantics, hand-written.</summary>
public class NetworkPolicyValidationTests
{
    private static List<string> Errors(string spec)
    {
        using var c = new TempCluster();
        c.Write("np.yaml", $"apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {{name: np, namespace: x}}\nspec: {spec}\n");
        return ClusterDirectory.Load(c.Path).Errors.Select(e => e.ToString().Replace(c.Path + "/", "")).ToList();
    }

    [Theory]
    [InlineData("{podSelector: {}, policyTypes: [Ingres]}", "spec.policyTypes[0]: \"Ingres\" is not a policy type (Ingress | Egress)")]
    [InlineData("{ingress: []}", "spec.podSelector: required (use {} to select every pod of the namespace)")]
    [InlineData("{podSelector: {matchExpressions: [{key: app, operator: In}]}}", "spec.podSelector.matchExpressions[0].values: must be specified when operator is In")]
    [InlineData("{podSelector: {matchExpressions: [{key: app, operator: Exists, values: [a]}]}}", "spec.podSelector.matchExpressions[0].values: may not be specified when operator is Exists")]
    [InlineData("{podSelector: {matchExpressions: [{key: app, operator: Equals, values: [a]}]}}", "spec.podSelector.matchExpressions[0].operator: \"Equals\" is not a valid operator (In | NotIn | Exists | DoesNotExist)")]
    [InlineData("{podSelector: {}, ingress: [{from: [{}]}]}", "spec.ingress[0].from[0]: must specify a peer (podSelector, namespaceSelector or ipBlock)")]
    [InlineData("{podSelector: {}, egress: [{to: [{ipBlock: {cidr: 10.0.0.0/8}, podSelector: {}}]}]}", "spec.egress[0].to[0]: ipBlock may not be combined with podSelector or namespaceSelector")]
    [InlineData("{podSelector: {}, ingress: [{from: [{ipBlock: {cidr: 10.0.0.0/99}}]}]}", "spec.ingress[0].from[0].ipBlock.cidr: \"10.0.0.0/99\" is not a CIDR")]
    [InlineData("{podSelector: {}, ingress: [{from: [{ipBlock: {cidr: 10.0.0.0/8, except: [11.0.0.0/16]}}]}]}", "spec.ingress[0].from[0].ipBlock.except[0]: \"11.0.0.0/16\" must be a strict subset of cidr \"10.0.0.0/8\"")]
    [InlineData("{podSelector: {}, ingress: [{from: [{ipBlock: {cidr: 10.0.0.0/8, except: [10.0.0.0/8]}}]}]}", "spec.ingress[0].from[0].ipBlock.except[0]: \"10.0.0.0/8\" must be a strict subset of cidr \"10.0.0.0/8\"")]
    [InlineData("{podSelector: {}, ingress: [{ports: [{protocol: ICMP}]}]}", "spec.ingress[0].ports[0].protocol: \"ICMP\" is not a protocol (TCP | UDP | SCTP)")]
    [InlineData("{podSelector: {}, ingress: [{ports: [{port: 70000}]}]}", "spec.ingress[0].ports[0].port: 70000 is out of range (1-65535)")]
    [InlineData("{podSelector: {}, ingress: [{ports: [{port: Web_Port}]}]}", "spec.ingress[0].ports[0].port: \"Web_Port\" is neither a port number nor a port name (IANA_SVC_NAME: at most 15 lowercase letters, digits and '-', at least one letter)")]
    [InlineData("{podSelector: {}, egress: [{ports: [{port: 80, endPort: 79}]}]}", "spec.egress[0].ports[0].endPort: 79 must be greater than or equal to port 80")]
    [InlineData("{podSelector: {}, egress: [{ports: [{port: http, endPort: 90}]}]}", "spec.egress[0].ports[0].endPort: may not be specified when port is a named port")]
    [InlineData("{podSelector: {}, egress: [{ports: [{endPort: 90}]}]}", "spec.egress[0].ports[0].endPort: may not be specified when port is not")]
    public void RejectsWithOneLineNamingFileObjectAndField(string spec, string error) =>
        Assert.Equal(["np.yaml: NetworkPolicy x/np: " + error], Errors(spec));

    [Fact]
    public void AcceptsTheReferenceExamples() =>
        Assert.Empty(Errors("""
            {podSelector: {matchLabels: {role: db}}, policyTypes: [Ingress, Egress],
             ingress: [{from: [{ipBlock: {cidr: 172.17.0.0/16, except: [172.17.1.0/24]}}, {namespaceSelector: {matchLabels: {project: myproject}}},
                               {podSelector: {matchLabels: {role: frontend}}}], ports: [{protocol: TCP, port: 6379}]}],
             egress: [{to: [{ipBlock: {cidr: 10.0.0.0/24}}], ports: [{protocol: TCP, port: 32000, endPort: 32768}, {port: dns-tcp}]}]}
            """));

    [Theory]
    [InlineData("{}", "app=web", true)]
    [InlineData("{}", "", true)]
    [InlineData("{matchLabels: {app: web}}", "app=web,tier=f", true)]
    [InlineData("{matchLabels: {app: web, tier: b}}", "app=web,tier=f", false)]
    [InlineData("{matchLabels: {app: web}}", "", false)]
    [InlineData("{matchExpressions: [{key: app, operator: In, values: [web, db]}]}", "app=db", true)]
    [InlineData("{matchExpressions: [{key: app, operator: In, values: [web, db]}]}", "tier=f", false)]
    [InlineData("{matchExpressions: [{key: app, operator: NotIn, values: [web]}]}", "tier=f", true)]
    [InlineData("{matchExpressions: [{key: app, operator: NotIn, values: [web]}]}", "app=web", false)]
    [InlineData("{matchExpressions: [{key: app, operator: Exists}]}", "app=", true)]
    [InlineData("{matchExpressions: [{key: app, operator: DoesNotExist}]}", "app=x", false)]
    [InlineData("{matchLabels: {app: web}, matchExpressions: [{key: tier, operator: DoesNotExist}]}", "app=web", true)]
    public void LabelSelectorsMatchAsTheApiDefines(string selector, string labels, bool matches)
    {
        var parsed = k8s.KubernetesYaml.Deserialize<V1LabelSelector>(selector);
        var map = labels.Split(',', StringSplitOptions.RemoveEmptyEntries).Select(l => l.Split('=')).ToDictionary(p => p[0], p => p[1]);
        Assert.Equal(matches, PolicySelectors.Matches(parsed, map));
    }
}
