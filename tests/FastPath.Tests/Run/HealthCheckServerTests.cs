using System.Net;
using System.Net.Sockets;
using System.Text.Json;
using FastPath.ControlPlane.Cluster;
using FastPath.ControlPlane.Compile;
using FastPath.Health;
using FastPath.Tests.ControlPlane;

namespace FastPath.Tests.Run;

/// <summary>
/// The health check node ports and /healthz, /livez of `run`, as kube-proxy serves them (pkg/proxy/healthcheck):
/// over real HTTP on 127.0.0.1 with free ports.
/// </summary>
public class HealthCheckServerTests
{
    private static int FreePort()
    {
        var l = new TcpListener(IPAddress.Loopback, 0);
        l.Start();
        int port = ((IPEndPoint)l.LocalEndpoint).Port;
        l.Stop();
        return port;
    }

    private static async Task<(HttpStatusCode Status, JsonElement Body, HttpResponseMessage Response)> Get(int port, string path = "/")
    {
        using var http = new HttpClient { Timeout = TimeSpan.FromSeconds(10) };
        var response = await http.GetAsync($"http://127.0.0.1:{port}{path}", TestContext.Current.CancellationToken);
        var text = await response.Content.ReadAsStringAsync(TestContext.Current.CancellationToken);
        return (response.StatusCode, JsonDocument.Parse(text).RootElement, response);
    }

    [Fact]
    public async Task HealthCheckNodePortsAnswer200WithLocalEndpointsAnd503Without()
    {
        int serving = FreePort(), empty = FreePort();
        using var server = new HealthCheckServer("127.0.0.1", _ => { });
        server.Update([new("shop", "web", serving, 2), new("shop", "other", empty, 0)]);

        var (status, body, response) = await Get(serving);
        Assert.Equal(HttpStatusCode.OK, status);
        Assert.Equal("shop", body.GetProperty("service").GetProperty("namespace").GetString());
        Assert.Equal("web", body.GetProperty("service").GetProperty("name").GetString());
        Assert.Equal(2, body.GetProperty("localEndpoints").GetInt32());
        Assert.True(body.GetProperty("serviceProxyHealthy").GetBoolean());
        Assert.Equal("2", response.Headers.GetValues("X-Load-Balancing-Endpoint-Weight").Single());
        Assert.Equal("application/json", response.Content.Headers.ContentType?.MediaType);

        (status, body, _) = await Get(empty, "/any/path");
        Assert.Equal(HttpStatusCode.ServiceUnavailable, status);
        Assert.Equal(0, body.GetProperty("localEndpoints").GetInt32());

        // the Service's endpoints move: the count follows; a Service gone closes its port
        server.Update([new("shop", "web", serving, 0)]);
        (status, _, _) = await Get(serving);
        Assert.Equal(HttpStatusCode.ServiceUnavailable, status);
        await Assert.ThrowsAsync<HttpRequestException>(() => Get(empty));
    }

    [Fact]
    public async Task HealthzAndLivezFollowTheForwardingLoop()
    {
        int port = FreePort();
        var staleness = TimeSpan.FromSeconds(1);
        using var server = new HealthCheckServer("127.0.0.1", _ => { }) { Staleness = staleness };
        Assert.True(server.ServeHealthz(port));
        // The loop beats while the healthy answers are asked for, so a slow request on a busy machine is not a stall.
        using var beating = new CancellationTokenSource();
        var test = TestContext.Current.CancellationToken;
        var beater = Task.Run(async () =>
        {
            while (!beating.IsCancellationRequested) { server.Beat(); await Task.Delay(10, test); }
        }, test);
        var (status, body, _) = await Get(port, "/healthz");
        Assert.Equal(HttpStatusCode.OK, status);
        Assert.True(body.GetProperty("nodeEligible").GetBoolean());
        Assert.True(body.TryGetProperty("lastUpdated", out _) && body.TryGetProperty("currentTime", out _));
        (status, body, _) = await Get(port, "/livez");
        Assert.Equal(HttpStatusCode.OK, status);
        Assert.False(body.TryGetProperty("nodeEligible", out _));

        beating.Cancel(); // the loop stalls
        await beater;
        await Task.Delay(staleness + TimeSpan.FromMilliseconds(200), test);
        (status, _, _) = await Get(port, "/healthz");
        Assert.Equal(HttpStatusCode.ServiceUnavailable, status);
        (status, _, _) = await Get(port, "/nope");
        Assert.Equal(HttpStatusCode.NotFound, status);
    }

    [Fact]
    public void HealthCheckPortsCountReadyLocalEndpointsOfLocalLoadBalancers()
    {
        using var cluster = new TempCluster();
        cluster.Write("c.yaml", """
            apiVersion: v1
            kind: Node
            metadata: {name: node-a}
            spec: {podCIDRs: [10.244.1.0/24]}
            status: {addresses: [{type: InternalIP, address: 192.168.56.11}]}
            ---
            apiVersion: v1
            kind: Service
            metadata: {name: lbl, namespace: shop}
            spec: {type: LoadBalancer, clusterIP: 10.96.0.70, externalTrafficPolicy: Local, healthCheckNodePort: 32100, ports: [{port: 80, targetPort: 8080, nodePort: 30170}]}
            ---
            apiVersion: v1
            kind: Service
            metadata: {name: lbc, namespace: shop}
            spec: {type: LoadBalancer, clusterIP: 10.96.0.71, ports: [{port: 80, targetPort: 8080, nodePort: 30171}]}
            ---
            apiVersion: discovery.k8s.io/v1
            kind: EndpointSlice
            metadata: {name: lbl-1, namespace: shop, labels: {kubernetes.io/service-name: lbl}}
            addressType: IPv4
            ports: [{port: 8080, protocol: TCP}]
            endpoints:
              - {addresses: [10.244.1.11], nodeName: node-a}
              - {addresses: [10.244.1.12], nodeName: node-a, conditions: {ready: false, serving: true, terminating: true}}
              - {addresses: [10.244.2.11], nodeName: node-b}
            """);
        var load = ClusterDirectory.Load(cluster.Path);
        Assert.Empty(load.Errors);
        var ports = ServiceCompiler.HealthCheckPorts(load.State, "node-a");
        // only the Local LoadBalancer; its ready endpoint on node-a counts, the terminating one does not
        Assert.Equal([new ServiceCompiler.HealthCheckPort("shop", "lbl", 32100, 1)], ports);
        Assert.Equal(0, ServiceCompiler.HealthCheckPorts(load.State, "node-b").Single().LocalEndpoints - 1);
        Assert.Equal(0, ServiceCompiler.HealthCheckPorts(load.State, "node-c").Single().LocalEndpoints);
    }
}
