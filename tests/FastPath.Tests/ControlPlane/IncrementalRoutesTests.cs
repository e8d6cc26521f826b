using System.Text;
using FastPath.ControlPlane.Cluster;
using FastPath.ControlPlane.Publish;
using FastPath.DataPlane.Packets;
using FastPath.DataPlane.Pipeline;
using FastPath.DataPlane.Routing;

namespace FastPath.Tests.ControlPlane;

/// <summary>A Node change recompiles only its routes; the result equals a rebuild; published snapshots never change.</summary>
public class IncrementalRoutesTests
{
    private static string Nodes(int count)
    {
        var y = new StringBuilder("apiVersion: fastpath.io/v1alpha1\nkind: FastPathConfiguration\nclusterCIDRs: [10.244.0.0/16]\nuplinkGatewayMAC: \"02:00:00:00:00:fe\"\n");
        for (int i = 1; i <= count; i++)
            y.Append($"---\napiVersion: v1\nkind: Node\nmetadata:\n  name: node-{i}\n  annotations: {{fastpath.io/mac: \"02:00:00:00:{i:x2}:01\"}}\n" +
                     $"spec: {{podCIDR: 10.244.{i}.0/24, podCIDRs: [10.244.{i}.0/24, \"fd00:10:244:{i:x}::/64\"]}}\n" +
                     $"status: {{addresses: [{{type: InternalIP, address: 192.168.56.{i}}}]}}\n");
        return y.ToString();
    }

    private static IpAddr A(string s) => IpAddr.TryParse(s, out var a) ? a : throw new ArgumentException(s);

    [Fact]
    public void RemovingANodeTouchesOnlyItsRoutes()
    {
        using var dir = new TempCluster();
        dir.Write("cluster.yaml", Nodes(50));
        var publisher = new SnapshotPublisher("node-1");
        Assert.Empty(publisher.Reload(dir.Path));
        var before = publisher.Holder.Current;
        int initial = publisher.LastRouteChanges;
        Assert.True(initial > 100);

        dir.Write("cluster.yaml", Nodes(49)); // node-50 leaves
        Assert.Empty(publisher.Reload(dir.Path));
        Assert.Equal(3, publisher.LastRouteChanges); // its v4 podCIDR, v6 podCIDR and its address
        var after = publisher.Holder.Current;

        var gone = after.Routes.NextHops[after.Routes.Lookup(A("10.244.50.7"))];
        Assert.Equal(NextHopKind.Unreachable, gone.Kind);                 // falls back to the cluster CIDR
        Assert.Equal(NextHopKind.RemoteNode, after.Routes.NextHops[after.Routes.Lookup(A("10.244.49.7"))].Kind);
        // The snapshot published before still routes to node-50: readers of the old snapshot see no change.
        var old = before.Routes.NextHops[before.Routes.Lookup(A("10.244.50.7"))];
        Assert.Equal(NextHopKind.RemoteNode, old.Kind);
        Assert.Equal(A("192.168.56.50"), old.Underlay);
    }

    [Fact]
    public void IncrementalUpdatesEqualARebuild()
    {
        var rng = new Random(11);
        var builder = new RouteTable.Builder();
        var hops = Enumerable.Range(0, 8).Select(i => new NextHop(NextHopKind.RemoteNode, IpAddr.FromV4(0xC0A8_3800u + (uint)i), new MacAddress(0x0200_0000_0000UL + (ulong)i))).ToArray();
        var routes = new List<Route>();
        for (int round = 0; round < 3; round++)
        {
            // Mutate: drop some routes, add some, change some next hops.
            routes = routes.Where(_ => rng.Next(4) != 0).Select(r => rng.Next(5) == 0 ? r with { NextHop = hops[rng.Next(hops.Length)] } : r).ToList();
            for (int n = 0; n < 200; n++)
            {
                int len = rng.Next(0, 33);
                routes.Add(new Route(IpAddr.FromV4((uint)rng.NextInt64() & (len == 0 ? 0 : uint.MaxValue << (32 - len))), len, hops[rng.Next(hops.Length)]));
                int len6 = rng.Next(0, 129);
                routes.Add(new Route(new IpAddr(new UInt128((ulong)rng.NextInt64(), (ulong)rng.NextInt64()) & (len6 == 0 ? UInt128.Zero : UInt128.MaxValue << (128 - len6))), len6, hops[rng.Next(hops.Length)]));
            }
            routes = routes.GroupBy(r => (r.Prefix, r.Length)).Select(g => g.Last()).ToList();

            var incremental = builder.Apply(routes);
            var rebuilt = new RouteTable(routes);
            for (int probe = 0; probe < 20_000; probe++)
            {
                var a = probe % 2 == 0 ? IpAddr.FromV4((uint)rng.NextInt64()) : new IpAddr(new UInt128((ulong)rng.NextInt64(), (ulong)rng.NextInt64()));
                if (probe % 3 == 0) a = routes[rng.Next(routes.Count)].Prefix; // land inside a prefix
                int x = incremental.Lookup(a), y = rebuilt.Lookup(a);
                Assert.Equal(y < 0 ? (NextHop?)null : rebuilt.NextHops[y], x < 0 ? (NextHop?)null : incremental.NextHops[x]);
            }
        }
    }

    private static ClusterObject<k8s.Models.V1Node> Node(int n, int cidr, int address) => new(new k8s.Models.V1Node
    {
        Metadata = new k8s.Models.V1ObjectMeta { Name = $"node-{n}", Annotations = new Dictionary<string, string> { ["fastpath.io/mac"] = $"02:00:00:00:{n / 256:x2}:{n % 256:x2}" } },
        Spec = new k8s.Models.V1NodeSpec { PodCIDR = $"10.{cidr / 256}.{cidr % 256}.0/24" },
        Status = new k8s.Models.V1NodeStatus { Addresses = [new k8s.Models.V1NodeAddress { Type = "InternalIP", Address = $"172.16.{address / 250}.{address % 250 + 1}" }] },
    }, "Node", null, $"node-{n}", "test", 1);

    /// <summary>
    /// Node adds, removes and changes through the incremental compiler (which rewrites only the changed Nodes'
    /// prefixes) route every address as a full compile of the same objects does, a freed podCIDR or address often
    /// taken by the next Node; every snapshot published before keeps routing as it did.
    /// </summary>
    [Fact]
    public void NodeChangesRouteLikeAFullCompile()
    {
        var rng = new Random(20);
        var config = new ClusterObject<FastPathConfiguration>(FastPathConfiguration.Default with { ClusterCidrs = [Cidr.TryParse("10.0.0.0/8", out var c) ? c : default] },
            FastPathConfiguration.KindName, null, "", "test", 1);
        var compiler = new FastPath.ControlPlane.Compile.IncrementalCompiler("node-0");
        compiler.Upsert(config);
        var live = new Dictionary<int, (int Cidr, int Address)>();
        for (int n = 0; n < 40; n++) { live[n] = (n, n); compiler.Upsert(Node(n, n, n)); }
        var published = new List<(ForwardingSnapshot Snapshot, ForwardingSnapshot Reference)>();
        var probes = Enumerable.Range(0, 80).SelectMany(k => new[] { IpAddr.FromV4(0x0A00_0005u + ((uint)k << 8)), IpAddr.FromV4(0xAC10_0001u + (uint)k) }).ToList();
        for (int step = 0; step < 60; step++)
        {
            int n = rng.Next(1, 60);
            if (live.ContainsKey(n) && rng.Next(3) == 0) { live.Remove(n); compiler.Delete(new ObjectKey("Node", null, $"node-{n}")); }
            else
            {
                // A podCIDR and an address no other Node states (validation refuses a second holder), often one just freed.
                var taken = live.Where(kv => kv.Key != n).Select(kv => kv.Value).ToList();
                var free = Enumerable.Range(0, 80).Where(x => taken.All(t => t.Cidr != x && t.Address != x)).ToList();
                var v = (free[rng.Next(free.Count)], free[rng.Next(free.Count)]);
                live[n] = v;
                compiler.Upsert(Node(n, v.Item1, v.Item2));
            }
            var snapshot = compiler.Compile(step).Snapshot!;
            var reference = FastPath.ControlPlane.Compile.SnapshotCompiler.Compile(compiler.State("test"), "node-0", step).Snapshot!;
            published.Add((snapshot, reference));
            foreach (var (s, r) in published)
                foreach (var a in probes)
                {
                    int x = s.Routes.Lookup(a), y = r.Routes.Lookup(a);
                    Assert.Equal(y < 0 ? (NextHop?)null : r.Routes.NextHops[y], x < 0 ? (NextHop?)null : s.Routes.NextHops[x]);
                }
        }
    }
}
