namespace FastPath.Tests.Live;

/// <summary>
/// NetworkPolicy live on the demo cluster: each scenario adds one policy to the watched cluster directory, then every
/// pod tries every web pod (HTTP on TCP 8080 and a datagram on UDP 5353, IPv4) through the real kernels and TAPs of the
/// pods, and the outcome is compared with the expected allow/deny cell; the policy is removed again afterwards. The
/// replay-level truth table (Policy/PolicyTruthTableTests) covers many more scenarios, IPv6 and an interpreter.
/// </summary>
[Collection(DemoClusterCollection.Name)]
public class LivePolicyTests(DemoCluster cluster, ITestOutputHelper output)
{
    // Pods of the demo cluster: namespace, app label, IPv4 address.
    private static readonly Dictionary<string, (string Namespace, string App, string Ip)> Pods = new()
    {
        ["client"] = ("default", "client", "10.244.1.10"),
        ["web-a"] = ("shop", "web", "10.244.1.11"),
        ["web-b"] = ("shop", "web", "10.244.2.11"),
        ["cart"] = ("shop", "client", "10.244.2.12"),
    };

    private const string Header = "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\n";

    /// <summary>Scenario name → (policy YAML, expected verdict for (source pod, destination pod, "tcp"|"udp")).</summary>
    public static TheoryData<string> Scenarios => [.. Cases.Keys];

    private static readonly Dictionary<string, (string Yaml, Func<string, string, string, bool> Allowed)> Cases = new()
    {
        ["deny-all-ingress"] = (Header + "metadata: {name: deny-all, namespace: shop}\nspec: {podSelector: {}, policyTypes: [Ingress]}\n",
            (_, _, _) => false),
        ["from-namespace-default"] = ("apiVersion: v1\nkind: Namespace\nmetadata: {name: default}\n---\n" + Header
            + "metadata: {name: from-default, namespace: shop}\nspec:\n  podSelector: {matchLabels: {app: web}}\n"
            + "  ingress: [{from: [{namespaceSelector: {matchLabels: {kubernetes.io/metadata.name: default}}}]}]\n",
            (from, _, _) => Pods[from].Namespace == "default"),
        ["client-pods-any-namespace-tcp-only"] = (Header
            + "metadata: {name: clients-http, namespace: shop}\nspec:\n  podSelector: {matchLabels: {app: web}}\n"
            + "  ingress: [{from: [{namespaceSelector: {}, podSelector: {matchLabels: {app: client}}}], ports: [{protocol: TCP, port: 8080}]}]\n",
            (from, _, proto) => Pods[from].App == "client" && proto == "tcp"),
        ["ip-block-with-except"] = (Header
            + "metadata: {name: node-a-pods, namespace: shop}\nspec:\n  podSelector: {matchLabels: {app: web}}\n"
            + "  ingress: [{from: [{ipBlock: {cidr: 10.244.0.0/16, except: [10.244.2.0/24]}}]}]\n",
            (from, _, _) => Pods[from].Ip.StartsWith("10.244.1.", StringComparison.Ordinal)),
        ["tcp-port-range"] = (Header
            + "metadata: {name: tcp-range, namespace: shop}\nspec:\n  podSelector: {matchLabels: {app: web}}\n"
            + "  ingress: [{ports: [{protocol: TCP, port: 8000, endPort: 8100}]}]\n",
            (_, _, proto) => proto == "tcp"),
        ["egress-only-dns-from-cart"] = (Header
            + "metadata: {name: cart-dns-only, namespace: shop}\nspec:\n  podSelector: {matchLabels: {app: client}}\n"
            + "  policyTypes: [Egress]\n  egress: [{ports: [{protocol: UDP, port: 5353}]}]\n",
            (from, _, proto) => from != "cart" || proto == "udp"),
    };

    [Theory]
    [MemberData(nameof(Scenarios))]
    public void EveryPodToEveryWebPodMatchesTheExpectedCell(string scenario)
    {
        cluster.Require();
        var (yaml, allowed) = Cases[scenario];
        string file = Path.Combine(cluster.Directory, "cluster", "policy.yaml");
        cluster.WriteFile(file, yaml);
        try
        {
            var wrong = new List<string>();
            foreach (var from in Pods.Keys)
                foreach (var to in new[] { "web-a", "web-b" })
                {
                    if (from == to) continue;
                    foreach (var proto in new[] { "tcp", "udp" })
                    {
                        bool expected = allowed(from, to, proto), got = Reaches(from, Pods[to].Ip, proto);
                        output.WriteLine($"{from} -> {to} {proto}: {(got ? "allowed" : "denied")}");
                        if (got != expected) wrong.Add($"{from} -> {to} {proto}: expected {(expected ? "allowed" : "denied")}");
                    }
                }
            Assert.True(wrong.Count == 0, string.Join("\n", wrong) + "\n" + cluster.Logs());
        }
        finally
        {
            cluster.WriteFile(file, null);
        }
    }

    /// <summary>An HTTP GET (2 s) or a datagram answered within 1 s: the backend replies with its name.</summary>
    private bool Reaches(string from, string ip, string proto)
    {
        var (exit, text) = proto == "tcp"
            ? cluster.In(from, TimeSpan.FromSeconds(10), "curl", "-sS", "-m", "2", $"http://{ip}:8080/")
            : cluster.In(from, TimeSpan.FromSeconds(10), "sh", "-c", $"echo hi | nc -u -w 1 {ip} 5353");
        return exit == 0 && text.Trim().StartsWith("web-", StringComparison.Ordinal);
    }
}
