using FastPath.DataPlane.Telemetry;

namespace FastPath.Tests.Policy;

/// <summary>
/// The truth table: for each scenario, every (source pod, destination pod, port, protocol, family) of the 3 × 3
/// cluster (<see cref="PolicyCluster"/>) is sent through the real engines as frames, and the verdict must equal the
/// interpreter's (<see cref="PolicyOracle"/>) — plus hand-written cells that pin the reference's meaning independently
/// of both. Every delivered flow's reply must come back (stateful).
/// </summary>
public class PolicyTruthTableTests
{
    private static readonly (string Protocol, int Port)[] Ports = [("TCP", 80), ("TCP", 81), ("UDP", 53), ("UDP", 80), ("SCTP", 80), ("ICMP", 0)];

    private static string Policy(string ns, string name, string spec) => $"""
        apiVersion: networking.k8s.io/v1
        kind: NetworkPolicy
        metadata: {"{"}name: {name}, namespace: {ns}{"}"}
        spec:
        {string.Join('\n', spec.Split('\n').Select(l => "  " + l))}
        ---

        """;

    /// <summary>Scenario name → (policies, hand-written cells "from > to protocol port allow|deny [v6]").</summary>
    public static readonly Dictionary<string, (string Policies, string[] Cells)> Scenarios = new()
    {
        ["no-policy"] = ("", ["z/c > x/a tcp 80 allow", "x/a > z/c icmp 0 allow", "y/b > z/c sctp 80 allow v6"]),
        ["deny-all-ingress"] = (Policy("x", "deny", "podSelector: {}\npolicyTypes: [Ingress]"),
            ["y/a > x/a tcp 80 deny", "x/b > x/a tcp 80 deny", "z/c > x/c icmp 0 deny v6", "x/a > y/a tcp 80 allow", "x/a > z/c udp 53 allow"]),
        ["deny-all-ingress-defaulted"] = (Policy("x", "deny", "podSelector: {}"), ["z/a > x/c icmp 0 deny", "x/c > z/a icmp 0 allow"]),
        ["deny-all-egress"] = (Policy("x", "deny", "podSelector: {}\npolicyTypes: [Egress]"),
            ["x/a > x/b tcp 80 deny", "x/a > z/a udp 53 deny", "z/a > x/a tcp 80 allow", "y/a > x/b tcp 80 allow"]),
        ["empty-egress-list-is-ingress-only"] = (Policy("x", "deny", "podSelector: {}\negress: []"),
            ["x/a > z/a tcp 80 allow", "z/a > x/a tcp 80 deny"]),
        ["allow-all-ingress"] = (Policy("x", "allow", "podSelector: {}\ningress: [{}]"), ["z/c > x/a sctp 80 allow", "z/c > x/a icmp 0 allow"]),
        ["allow-all-egress-over-deny"] = (Policy("x", "deny", "podSelector: {}\npolicyTypes: [Egress]") +
            Policy("x", "allow", "podSelector: {}\npolicyTypes: [Egress]\negress: [{}]"), ["x/a > z/c tcp 81 allow", "x/b > y/b icmp 0 allow v6"]),
        ["from-same-namespace"] = (Policy("x", "same", "podSelector: {}\ningress: [{from: [{podSelector: {}}]}]"),
            ["x/b > x/a tcp 80 allow", "y/a > x/a tcp 80 deny", "x/c > x/b udp 53 allow v6"]),
        ["from-namespace-by-label"] = (Policy("x", "from-y", "podSelector: {matchLabels: {pod: a}}\ningress: [{from: [{namespaceSelector: {matchLabels: {ns: y}}}]}]"),
            ["y/b > x/a tcp 80 allow", "x/b > x/a tcp 80 deny", "z/a > x/a tcp 80 deny", "z/a > x/b tcp 80 allow"]),
        ["from-namespace-by-name"] = (Policy("x", "from-z", "podSelector: {matchLabels: {pod: a}}\ningress: [{from: [{namespaceSelector: {matchLabels: {kubernetes.io/metadata.name: z}}}]}]"),
            ["z/b > x/a udp 53 allow", "y/b > x/a udp 53 deny"]),
        ["and-peer"] = (Policy("x", "and", "podSelector: {matchLabels: {pod: a}}\ningress: [{from: [{namespaceSelector: {matchLabels: {ns: y}}, podSelector: {matchLabels: {pod: b}}}]}]"),
            ["y/b > x/a tcp 80 allow", "y/a > x/a tcp 80 deny", "x/b > x/a tcp 80 deny", "z/b > x/a tcp 80 deny"]),
        ["or-peers"] = (Policy("x", "or", "podSelector: {matchLabels: {pod: a}}\ningress: [{from: [{namespaceSelector: {matchLabels: {ns: y}}}, {podSelector: {matchLabels: {pod: b}}}]}]"),
            ["y/a > x/a tcp 80 allow", "x/b > x/a tcp 80 allow", "x/c > x/a tcp 80 deny", "z/b > x/a tcp 80 deny"]),
        ["pods-in-every-namespace"] = (Policy("x", "c-anywhere", "podSelector: {matchLabels: {pod: a}}\ningress: [{from: [{namespaceSelector: {}, podSelector: {matchLabels: {pod: c}}}]}]"),
            ["z/c > x/a tcp 80 allow", "y/c > x/a tcp 80 allow", "x/b > x/a tcp 80 deny"]),
        ["every-namespace"] = (Policy("x", "all-ns", "podSelector: {}\ningress: [{from: [{namespaceSelector: {}}]}]"), ["z/a > x/a tcp 80 allow", "y/c > x/b udp 80 allow v6"]),
        ["namespace-expression-notin"] = (Policy("x", "not-prod", "podSelector: {}\ningress: [{from: [{namespaceSelector: {matchExpressions: [{key: env, operator: NotIn, values: [prod]}]}}]}]"),
            ["z/a > x/a tcp 80 allow", "y/a > x/a tcp 80 deny", "x/b > x/a tcp 80 deny"]),
        ["target-expression-in"] = (Policy("x", "ab", "podSelector: {matchExpressions: [{key: pod, operator: In, values: [a, b]}]}"),
            ["z/a > x/a tcp 80 deny", "z/a > x/b tcp 80 deny", "z/a > x/c tcp 80 allow"]),
        ["target-expression-exists"] = (Policy("x", "tiered", "podSelector: {matchExpressions: [{key: tier, operator: Exists}]}") +
            Policy("y", "untiered", "podSelector: {matchExpressions: [{key: tier, operator: DoesNotExist}]}"),
            ["z/a > x/c tcp 80 deny", "z/a > x/a tcp 80 allow", "z/a > y/a tcp 80 deny", "z/a > y/c tcp 80 allow"]),
        ["ipblock-except"] = (Policy("x", "block", "podSelector: {matchLabels: {pod: a}}\ningress: [{from: [{ipBlock: {cidr: 10.244.2.0/24, except: [10.244.2.12/32]}}]}]"),
            ["y/b > x/a tcp 80 allow", "z/a > x/a tcp 80 deny", "x/b > x/a tcp 80 deny", "y/b > x/a tcp 80 deny v6"]),
        ["ipblock-egress-except"] = (Policy("x", "block", "podSelector: {matchLabels: {pod: b}}\npolicyTypes: [Egress]\negress: [{to: [{ipBlock: {cidr: 10.244.0.0/16, except: [10.244.1.0/24]}}]}]"),
            ["x/b > z/a tcp 80 allow", "x/b > x/a tcp 80 deny", "x/b > y/a udp 53 deny"]),
        ["egress-dns-only"] = (Policy("x", "dns", "podSelector: {}\npolicyTypes: [Egress]\negress: [{ports: [{protocol: UDP, port: 53}, {protocol: TCP, port: 53}]}]"),
            ["x/a > z/a udp 53 allow", "x/a > z/a tcp 80 deny", "x/a > z/a icmp 0 deny", "x/c > y/b udp 53 allow v6"]),
        ["egress-namespace-plus-dns"] = (Policy("x", "z-and-dns", "podSelector: {}\npolicyTypes: [Egress]\negress: [{to: [{namespaceSelector: {matchLabels: {ns: z}}}]}, {ports: [{protocol: UDP, port: 53}]}]"),
            ["x/a > z/b tcp 80 allow", "x/a > y/b tcp 80 deny", "x/a > y/b udp 53 allow"]),
        ["ingress-tcp-80"] = (Policy("x", "web", "podSelector: {}\ningress: [{ports: [{port: 80}]}]"),
            ["z/a > x/a tcp 80 allow", "z/a > x/a udp 80 deny", "z/a > x/a tcp 81 deny", "z/a > x/a icmp 0 deny"]),
        ["ingress-any-udp-port"] = (Policy("x", "udp", "podSelector: {}\ningress: [{ports: [{protocol: UDP}]}]"),
            ["z/a > x/a udp 80 allow", "z/a > x/a udp 53 allow", "z/a > x/a tcp 80 deny"]),
        ["ingress-sctp"] = (Policy("x", "sctp", "podSelector: {}\ningress: [{ports: [{protocol: SCTP, port: 80}]}]"),
            ["z/a > x/a sctp 80 allow", "z/a > x/a tcp 80 deny"]),
        ["named-port-ingress"] = (Policy("x", "http", "podSelector: {}\ningress: [{ports: [{port: http}]}]"),
            ["z/a > x/a tcp 80 allow", "z/a > x/a tcp 81 deny", "z/a > x/b tcp 81 allow", "z/a > x/b tcp 80 deny", "z/a > x/c tcp 80 deny"]),
        ["named-port-egress"] = (Policy("x", "http-out", "podSelector: {matchLabels: {pod: a}}\npolicyTypes: [Egress]\negress: [{ports: [{port: http}]}]"),
            ["x/a > z/a tcp 80 allow", "x/a > z/b tcp 81 allow", "x/a > z/b tcp 80 deny", "x/a > z/c tcp 80 deny"]),
        ["named-port-egress-ipblock"] = (Policy("x", "http-block", "podSelector: {matchLabels: {pod: a}}\npolicyTypes: [Egress]\negress: [{to: [{ipBlock: {cidr: 10.244.2.0/24}}], ports: [{port: http}, {port: 53, protocol: UDP}]}]"),
            ["x/a > y/b tcp 81 allow", "x/a > z/a tcp 80 allow", "x/a > x/b tcp 81 deny", "x/a > z/c udp 53 allow"]),
        ["named-port-protocol"] = (Policy("x", "dns-tcp", "podSelector: {matchLabels: {pod: a}}\ningress: [{ports: [{port: dns}]}]") +
            Policy("x", "dns-udp", "podSelector: {matchLabels: {pod: b}}\ningress: [{ports: [{port: dns, protocol: UDP}]}]"),
            ["z/a > x/a udp 53 deny", "z/a > x/b udp 53 allow"]),
        ["end-port"] = (Policy("x", "range", "podSelector: {matchLabels: {pod: a}}\ningress: [{ports: [{port: 80, endPort: 81}]}]") +
            Policy("x", "range-udp", "podSelector: {matchLabels: {pod: b}}\ningress: [{ports: [{protocol: UDP, port: 54, endPort: 90}]}]"),
            ["z/a > x/a tcp 81 allow", "z/a > x/a tcp 80 allow", "z/b > x/b udp 80 allow", "z/b > x/b udp 53 deny"]),
        ["union-of-policies"] = (Policy("x", "from-b", "podSelector: {matchLabels: {pod: a}}\ningress: [{from: [{podSelector: {matchLabels: {pod: b}}}], ports: [{port: 80}]}]") +
            Policy("x", "from-z-dns", "podSelector: {matchLabels: {pod: a}}\ningress: [{from: [{namespaceSelector: {matchLabels: {ns: z}}}], ports: [{protocol: UDP, port: 53}]}]"),
            ["x/b > x/a tcp 80 allow", "x/b > x/a udp 53 deny", "z/c > x/a udp 53 allow", "z/c > x/a tcp 80 deny"]),
        ["deny-all-plus-allow"] = (Policy("x", "deny", "podSelector: {}") +
            Policy("x", "from-y", "podSelector: {}\ningress: [{from: [{namespaceSelector: {matchLabels: {ns: y}}}]}]"),
            ["y/c > x/b tcp 80 allow", "z/c > x/b tcp 80 deny"]),
        ["ingress-and-egress"] = (Policy("x", "both", "podSelector: {matchLabels: {pod: a}}\npolicyTypes: [Ingress, Egress]\ningress: [{from: [{podSelector: {matchLabels: {pod: b}}}]}]\negress: [{to: [{podSelector: {matchLabels: {pod: c}}}]}]"),
            ["x/b > x/a tcp 80 allow", "x/c > x/a tcp 80 deny", "x/a > x/c tcp 80 allow", "x/a > x/b tcp 80 deny", "x/a > z/a udp 53 deny"]),
        ["egress-type-ignores-ingress-rules"] = (Policy("x", "egress-only", "podSelector: {}\npolicyTypes: [Egress]\ningress: [{from: [{podSelector: {matchLabels: {pod: b}}}]}]\negress: [{}]"),
            ["z/a > x/a tcp 80 allow", "x/a > z/a tcp 80 allow"]),
        ["ipv6-ipblock-except"] = (Policy("x", "block6", "podSelector: {matchLabels: {pod: a}}\ningress: [{from: [{ipBlock: {cidr: \"fd00:10:244:2::/64\", except: [\"fd00:10:244:2::c/128\"]}}]}]"),
            ["y/b > x/a tcp 80 allow v6", "z/a > x/a tcp 80 deny v6", "y/b > x/a tcp 80 deny"]),
        ["ipv4-any-block"] = (Policy("x", "any4", "podSelector: {}\ningress: [{from: [{ipBlock: {cidr: 0.0.0.0/0}}]}]"),
            ["z/a > x/a tcp 80 allow", "z/a > x/a tcp 80 deny v6"]),
        ["ipv6-any-block"] = (Policy("x", "any6", "podSelector: {}\ningress: [{from: [{ipBlock: {cidr: \"::/0\"}}]}]"),
            ["z/a > x/a tcp 80 allow v6", "z/a > x/a tcp 80 deny"]),
        ["selector-matches-nothing"] = (Policy("x", "nobody", "podSelector: {matchLabels: {pod: nobody}}"), ["z/a > x/a tcp 80 allow"]),
        ["policy-in-other-namespace"] = (Policy("z", "deny-a", "podSelector: {matchLabels: {pod: a}}"),
            ["x/b > z/a tcp 80 deny", "x/b > x/a tcp 80 allow", "z/b > z/a udp 53 deny v6"]),
    };

    public static TheoryData<string> ScenarioNames => new(Scenarios.Keys);

    [Theory]
    [MemberData(nameof(ScenarioNames))]
    public void EveryPairMatchesTheInterpreterAndTheHandWrittenCells(string scenario)
    {
        var (policies, _) = Scenarios[scenario];
        using var cluster = new PolicyCluster(policies);
        var actual = new Dictionary<string, bool>();
        var mismatches = new List<string>();
        ushort sourcePort = 40000;
        foreach (bool v6 in (bool[])[false, true])
            foreach (var from in PolicyCluster.PodNames)
                foreach (var to in PolicyCluster.PodNames)
                {
                    if (from == to) continue;
                    foreach (var (protocol, port) in Ports)
                    {
                        var drop = cluster.Flow(from, to, v6, protocol, port, sourcePort++);
                        Assert.True(drop is DropReason.None or DropReason.PolicyDenied, $"{from} > {to} {protocol}/{port}: {drop}");
                        bool delivered = drop == DropReason.None;
                        string cell = Cell(from, to, protocol, port, v6);
                        actual[cell] = delivered;
                        if (delivered != cluster.Expected(from, to, v6, protocol, port))
                            mismatches.Add($"{cell}: engine {(delivered ? "allow" : "deny")}");
                    }
                }
        Assert.True(mismatches.Count == 0, $"{mismatches.Count} cells differ from the interpreter:\n" + string.Join('\n', mismatches.Take(20)));

        foreach (var (cell, _, want, text) in HandWrittenCells(scenario))
            Assert.True(actual[cell] == want, $"{scenario}: {text}: engine says {(actual[cell] ? "allow" : "deny")}");
    }

    /// <summary>A scenario's hand-written cells: the cell as <see cref="Cell"/> names it, its protocol, allowed or not, the text.</summary>
    public static IEnumerable<(string Cell, string Protocol, bool Allowed, string Text)> HandWrittenCells(string scenario) =>
        Scenarios[scenario].Cells.Select(text =>
        {
            var f = text.Split(' ');
            string protocol = f[3].ToUpperInvariant();
            return (Cell(f[0], f[2], protocol, int.Parse(f[4]), f.Length > 6 && f[6] == "v6"), protocol, f[5] == "allow", text);
        });

    [Fact]
    public void AtLeastTwentyFiveScenarios() => Assert.True(Scenarios.Count >= 25);

    public static string Cell(string from, string to, string protocol, int port, bool v6) => $"{from} > {to} {protocol}/{port}{(v6 ? " v6" : "")}";
}
