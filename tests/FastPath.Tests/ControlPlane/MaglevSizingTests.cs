using Xunit;
using FastPath.ControlPlane.Cluster;
using FastPath.ControlPlane.Compile;
using FastPath.DataPlane.Packets;
using FastPath.DataPlane.Pipeline;
using FastPath.DataPlane.Services;
using k8s.Models;

namespace FastPath.Tests.ControlPlane;

/// <summary>
/// A Service's Maglev table is sized from its backend count (FastPathConfiguration maglevSlotsPerBackend, default 100)
/// up to maglevTableSize, so 10,000 ten-endpoint Services take 2 KiB of slots each instead of 32 KiB.
/// </summary>
public class MaglevSizingTests
{
    [Fact]
    public void DefaultConfiguration_SizesEachServiceFromItsBackends()
    {
        var snapshot = Compile(null, ("small", 10), ("large", 200), ("empty", 0));
        Assert.Equal(1021, Table(snapshot, "small").Size);
        Assert.Equal(16381, Table(snapshot, "large").Size); // 200 backends want 20,000 slots: capped at maglevTableSize
        Assert.Equal(MaglevTable.MinSize, Table(snapshot, "empty").Size);
        Assert.Equal(2L * (1021 + 16381 + MaglevTable.MinSize), snapshot.Services.MaglevBytes);
    }

    [Fact]
    public void NoSlotsPerBackend_GivesEveryServiceTheConfiguredSize()
    {
        var snapshot = Compile(FastPathConfiguration.Default with { MaglevSlotsPerBackend = 0 }, ("small", 10), ("large", 200));
        Assert.Equal(16381, Table(snapshot, "small").Size);
        Assert.Equal(16381, Table(snapshot, "large").Size);
    }

    [Fact]
    public void ConfiguredSize_IsTheMaximum()
    {
        var snapshot = Compile(FastPathConfiguration.Default with { MaglevTableSize = 251 }, ("small", 10));
        Assert.Equal(251, Table(snapshot, "small").Size);
    }

    [Fact]
    public void EndpointSliceChange_ResizesOnlyWhenTheBackendCountCrossesAClass()
    {
        var compiler = new IncrementalCompiler("node-0") { Parallelism = 1 };
        foreach (var o in Objects(null, ("web", 10))) compiler.Upsert(o);
        var first = compiler.Compile(1).Snapshot!;
        compiler.Upsert(Slice("web", 10, offset: 1)); // a rollout: still 10 endpoints
        var rolled = compiler.Compile(2).Snapshot!;
        compiler.Upsert(Slice("web", 11, offset: 1)); // scaled to 11: 1,100 slots wanted
        var scaled = compiler.Compile(3).Snapshot!;
        Assert.Equal(1021, Table(first, "web").Size);
        Assert.Equal(1021, Table(rolled, "web").Size);
        Assert.Equal(2039, Table(scaled, "web").Size);
        // The same backend set gives the same table on every node: a fresh compiler builds it slot for slot.
        var fresh = new IncrementalCompiler("node-1") { Parallelism = 1 };
        foreach (var o in Objects(null, ("web", 0))) fresh.Upsert(o);
        fresh.Upsert(Slice("web", 11, offset: 1));
        Assert.True(Table(scaled, "web").Slots.SequenceEqual(Table(fresh.Compile(1).Snapshot!, "web").Slots));
    }

    private static MaglevTable Table(ForwardingSnapshot snapshot, string service)
    {
        int f = snapshot.Services.Lookup(IpAddr.FromV4(0x0A60_0000u + (uint)Number(service)), 80, IpProtocol.Tcp);
        Assert.True(f >= 0, $"no frontend for {service}");
        return snapshot.Services.Maglev(f);
    }

    /// <summary>The Service's ClusterIP is 10.96.0.<c>Number(name)</c>.</summary>
    private static int Number(string service) => service switch { "small" => 1, "large" => 2, "empty" => 3, _ => 4 };

    private static ForwardingSnapshot Compile(FastPathConfiguration? config, params (string Name, int Endpoints)[] services)
    {
        var compiler = new IncrementalCompiler("node-0") { Parallelism = 2 };
        foreach (var o in Objects(config, services)) compiler.Upsert(o);
        var result = compiler.Compile(1);
        Assert.Empty(result.Errors);
        return result.Snapshot!;
    }

    private static IEnumerable<IClusterObject> Objects(FastPathConfiguration? config, params (string Name, int Endpoints)[] services)
    {
        if (config is not null) yield return new ClusterObject<FastPathConfiguration>(config, FastPathConfiguration.KindName, null, "", "test", 1);
        for (int n = 0; n < 2; n++)
            yield return new ClusterObject<V1Node>(new V1Node
            {
                Metadata = new V1ObjectMeta { Name = $"node-{n}" },
                Spec = new V1NodeSpec { PodCIDR = $"10.244.{n}.0/24" },
                Status = new V1NodeStatus { Addresses = [new V1NodeAddress { Type = "InternalIP", Address = $"192.168.0.{n + 1}" }] },
            }, "Node", null, $"node-{n}", "test", 1);
        foreach (var (name, endpoints) in services)
        {
            int s = Number(name);
            yield return new ClusterObject<V1Service>(new V1Service
            {
                Metadata = new V1ObjectMeta { Name = name, NamespaceProperty = "default" },
                Spec = new V1ServiceSpec { ClusterIP = $"10.96.0.{s}", Ports = [new V1ServicePort { Name = "http", Port = 80 }] },
            }, "Service", "default", name, "test", 1);
            yield return Slice(name, endpoints, offset: 0);
        }
    }

    /// <summary>The Service's slice of <paramref name="endpoints"/> ready endpoints 10.1.x.y from <paramref name="offset"/> on.</summary>
    private static ClusterObject<V1EndpointSlice> Slice(string service, int endpoints, int offset) => new(new V1EndpointSlice
    {
        Metadata = new V1ObjectMeta
        {
            Name = $"{service}-1", NamespaceProperty = "default",
            Labels = new Dictionary<string, string> { [ServiceCompiler.ServiceNameLabel] = service },
        },
        AddressType = "IPv4",
        Ports = [new Discoveryv1EndpointPort { Name = "http", Port = 8080, Protocol = "TCP" }],
        Endpoints = [.. Enumerable.Range(offset, endpoints).Select(e => new V1Endpoint { Addresses = [$"10.1.{e / 250}.{e % 250 + 1}"] })],
    }, "EndpointSlice", "default", $"{service}-1", "test", 1);
}
