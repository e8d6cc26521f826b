using Xunit;
using FastPath.ControlPlane.Cluster;
using FastPath.ControlPlane.Compile;
using FastPath.DataPlane.Packets;
using k8s.Models;

namespace FastPath.Tests.ControlPlane;

/// <summary>
/// The compact form the control plane keeps of an EndpointSlice holds every field the Service compiler reads, and
/// gives them back as a model object (the controller's State, health check ports and tests read that view).
/// </summary>
public class EndpointSliceRecordTests
{
    private static ClusterObject<V1EndpointSlice> Slice() => new(new V1EndpointSlice
    {
        Metadata = new V1ObjectMeta
        {
            Name = "web-abc12", NamespaceProperty = "shop",
            Labels = new Dictionary<string, string> { [ServiceCompiler.ServiceNameLabel] = "web", ["other"] = "x" },
        },
        AddressType = "IPv4",
        Ports = [new Discoveryv1EndpointPort { Name = "dns", Port = 53, Protocol = "UDP" }, new Discoveryv1EndpointPort { Name = "all" }],
        Endpoints =
        [
            new V1Endpoint { Addresses = ["10.1.0.5", "10.1.0.6"], NodeName = new string("node-a".AsSpan()) },
            new V1Endpoint
            {
                Addresses = ["10.1.0.7"],
                Conditions = new V1EndpointConditions { Ready = false, Serving = true, Terminating = true },
                Hints = new V1EndpointHints { ForZones = [new V1ForZone { Name = "z1" }], ForNodes = [new V1ForNode { Name = "node-b" }] },
            },
        ],
    }, "EndpointSlice", "shop", "web-abc12", "slices.yaml", 7);

    private static IpAddr Ip(string text) => IpAddr.TryParse(text, out var a) ? a : throw new ArgumentException(text);

    [Fact]
    public void From_KeepsWhatTheServiceCompilerReads()
    {
        string node = "node-a";
        var record = EndpointSliceRecord.From(Slice(), name => name == node ? node : null);

        Assert.Equal(("shop", "web-abc12", "web", "IPv4"), (record.Namespace, record.Name, record.Service, record.AddressType));
        Assert.Equal(new ObjectKey("EndpointSlice", "shop", "web-abc12"), record.Key);
        Assert.Equal(("slices.yaml", 7), (record.File, record.Line));
        Assert.Equal([new SlicePort("dns", IpProtocol.Udp, 53), new SlicePort("all", IpProtocol.Tcp, null)], record.Ports);
        Assert.Equal(2, record.Endpoints.Length);
        Assert.Equal([Ip("10.1.0.5"), Ip("10.1.0.6")], record.AddressesOf(record.Endpoints[0]).ToArray());
        Assert.Equal([Ip("10.1.0.7")], record.AddressesOf(record.Endpoints[1]).ToArray());
        Assert.Same(node, record.NodeNames[0]); // the Node's own string, not the slice's copy
        Assert.Null(record.NodeNames[1]);
        Assert.Equal(new SliceEndpoint(0, 2, null, null, null), record.Endpoints[0]);
        Assert.Equal(new SliceEndpoint(2, 1, false, true, true), record.Endpoints[1]);
        Assert.NotNull(record.Hints);
        Assert.Null(record.Hints![0]);
        Assert.Equal(["node-b"], record.Hints[1]!.Nodes!);
        Assert.Equal(["z1"], record.Hints[1]!.Zones!);
    }

    [Fact]
    public void ToObject_GivesBackTheKeptFields()
    {
        var slice = EndpointSliceRecord.From(Slice()).ToObject();

        Assert.Equal(("shop", "web-abc12", "slices.yaml", 7), (slice.Namespace, slice.Name, slice.File, slice.Line));
        var v = slice.Value;
        Assert.Equal("web", v.Metadata.Labels[ServiceCompiler.ServiceNameLabel]);
        Assert.Equal("IPv4", v.AddressType);
        Assert.Equal([("dns", (int?)53, "UDP"), ("all", null, "TCP")], v.Ports.Select(p => (p.Name, p.Port, p.Protocol)));
        Assert.Equal(["10.1.0.5", "10.1.0.6"], v.Endpoints[0].Addresses);
        Assert.Equal("node-a", v.Endpoints[0].NodeName);
        Assert.Null(v.Endpoints[0].Conditions);
        Assert.Null(v.Endpoints[0].Hints);
        Assert.Equal((false, true, true), (v.Endpoints[1].Conditions.Ready, v.Endpoints[1].Conditions.Serving, v.Endpoints[1].Conditions.Terminating));
        Assert.Equal("z1", v.Endpoints[1].Hints.ForZones.Single().Name);
        Assert.Equal("node-b", v.Endpoints[1].Hints.ForNodes.Single().Name);
        // and read again, it is the same record
        var again = EndpointSliceRecord.From(slice);
        var first = EndpointSliceRecord.From(Slice());
        Assert.Equal(first.Endpoints, again.Endpoints);
        Assert.Equal(first.Addresses, again.Addresses);
        Assert.Equal(first.Ports, again.Ports);
        Assert.Equal(first.NodeNames, again.NodeNames);
    }

    [Fact]
    public void ASliceWithoutHintsKeepsNoHintArray()
    {
        var record = EndpointSliceRecord.From(new ClusterObject<V1EndpointSlice>(new V1EndpointSlice
        {
            Metadata = new V1ObjectMeta { Name = "s", NamespaceProperty = "default" },
            AddressType = "IPv6",
            Endpoints = [new V1Endpoint { Addresses = ["fd00::1"] }],
        }, "EndpointSlice", "default", "s", "f", 1));
        Assert.Null(record.Hints);
        Assert.Null(record.Service);
        Assert.Empty(record.Ports);
        Assert.Equal([Ip("fd00::1")], record.Addresses);
    }
}
