using System.Diagnostics;
using System.Globalization;
using System.Text;
using System.Text.Json.Nodes;
using FastPath.ControlPlane.Cluster;
using FastPath.ControlPlane.Cluster.Sources;
using FastPath.ControlPlane.Live;
using FastPath.ControlPlane.Publish;
using FastPath.Tests.Support;
using Microsoft.Extensions.Logging.Abstractions;

namespace FastPath.Benchmarks;

/// <summary>
/// `dotnet run -c Release --project bench/FastPath.Benchmarks -- watch-latency [CHANGES]` (issue 17): one EndpointSlice
/// changed at a time on a cluster of 100 Nodes and 10,000 Services × 10 endpoints (100,000 endpoints), through each
/// source feeding the live controller: the Kubernetes API (<see cref="KubernetesApiSource"/> on the in-process
/// <see cref="FakeApiServer"/>: real HTTP, chunked watch stream) and a watched directory (<see cref="DirectorySource"/>,
/// 100 files of 100 Services, the changed file written by rename). The latency runs from the change being made (the
/// server recording the event, or the rename) to the snapshot holder the engine reads at its next batch holding the
/// new generation.
/// </summary>
public static class WatchLatency
{
    private const int Nodes = 100, Services = 10_000, Endpoints = 10, Files = 100;

    private const string Configuration = """
        apiVersion: fastpath.io/v1alpha1
        kind: FastPathConfiguration
        clusterCIDRs: [10.0.0.0/8]
        serviceCIDRs: [10.96.0.0/12]
        maglevTableSize: 1021
        """;

    public static void Run(int changes)
    {
        Console.WriteLine($"cluster: {Nodes} nodes, {Services:N0} services x {Endpoints} endpoints ({Services * Endpoints:N0}); {changes} changes per source; {Environment.ProcessorCount} cores");
        var dir = Path.Combine(Path.GetTempPath(), "fastpath-watch-latency-" + Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(dir);
        try
        {
            StreamCost();
            Report("Kubernetes API (watch)", ApiLatencies(dir, changes));
            Report("directory (watcher + 100 ms debounce)", DirectoryLatencies(Path.Combine(dir, "cluster"), changes));
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    /// <summary>
    /// Where a watch event's time goes on the client before the controller: splitting the chunked stream into lines
    /// (what System.IO.Pipelines would replace) and KubernetesClient's decoding of each line (twice: as a generic object
    /// to spot a Status, then as the typed event), per EndpointSlice event of 10 endpoints.
    /// </summary>
    private static void StreamCost()
    {
        const int Events = 20_000;
        var text = new StringBuilder();
        for (int i = 0; i < Events; i++)
            text.Append("{\"type\":\"MODIFIED\",\"object\":").Append(SliceJson(i % Services, SliceAddresses(i % Services, i)).ReplaceLineEndings("")).Append("}\n");
        var bytes = Encoding.UTF8.GetBytes(text.ToString());
        for (int round = 0; round < 3; round++)
        {
            long start = Stopwatch.GetTimestamp();
            using (var reader = new StreamReader(new MemoryStream(bytes)))
                while (reader.ReadLineAsync().GetAwaiter().GetResult() is { } line) GC.KeepAlive(line);
            double split = Stopwatch.GetElapsedTime(start).TotalMicroseconds / Events;
            var lines = text.ToString().Split('\n', StringSplitOptions.RemoveEmptyEntries);
            start = Stopwatch.GetTimestamp();
            foreach (var line in lines)
            {
                var generic = k8s.KubernetesJson.Deserialize<k8s.Watcher<k8s.KubernetesObject>.WatchEvent>(line);
                if (generic.Object.Kind != "Status") GC.KeepAlive(k8s.KubernetesJson.Deserialize<k8s.Watcher<k8s.Models.V1EndpointSlice>.WatchEvent>(line));
            }
            double decode = Stopwatch.GetElapsedTime(start).TotalMicroseconds / Events;
            if (round == 2)
                Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                    $"watch stream, per EndpointSlice event ({bytes.Length / Events} bytes): line split (StreamReader) {split:F2} µs, KubernetesClient decode {decode:F2} µs"));
        }
    }

    private static void Report(string source, List<double> ms)
    {
        ms.Sort();
        double P(double q) => ms[Math.Min(ms.Count - 1, (int)(q * ms.Count))];
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"{source,-40} p50 {P(0.50),8:F2} ms  p99 {P(0.99),8:F2} ms  max {ms[^1],8:F2} ms  (n = {ms.Count})"));
    }

    private static string[] SliceAddresses(int s, int round) =>
        [.. Enumerable.Range(0, Endpoints).Select(e => $"10.{1 + (s + e + round) % 250}.{(s * 7 + e) % 250}.{e + 2}")];

    private static List<double> ApiLatencies(string dir, int changes)
    {
        var server = FakeApiServer.StartAsync().GetAwaiter().GetResult();
        try
        {
            for (int n = 0; n < Nodes; n++) server.Apply(NodeJson(n));
            for (int s = 0; s < Services; s++)
            {
                server.Apply(JsonNode.Parse(ServiceJson(s))!.AsObject());
                server.Apply(JsonNode.Parse(SliceJson(s, SliceAddresses(s, 0)))!.AsObject());
            }
            File.WriteAllText(Path.Combine(dir, "config.yaml"), Configuration);
            var config = ClusterDirectory.ReadFile(Path.Combine(dir, "config.yaml")).Objects;
            var source = KubernetesApiSource.Connect(server.WriteKubeconfig(Path.Combine(dir, "kubeconfig")), fileObjects: config);
            var watch = Stopwatch.StartNew();
            using var controller = ClusterController.Start(source, "node-0", new SnapshotPublisher("node-0"), NullLogger.Instance);
            if (controller.InitialErrors.Count > 0) throw new InvalidOperationException(controller.InitialErrors[0].ToString());
            Console.WriteLine($"  API initial list + compile: {watch.Elapsed.TotalSeconds:F2} s");
            while (server.OpenWatches < 6) Thread.Sleep(10);
            return Measure(controller, changes, (s, round) => server.Apply(JsonNode.Parse(SliceJson(s, SliceAddresses(s, round)))!.AsObject()));
        }
        finally
        {
            server.DisposeAsync().AsTask().GetAwaiter().GetResult();
        }
    }

    private static List<double> DirectoryLatencies(string dir, int changes)
    {
        Directory.CreateDirectory(dir);
        File.WriteAllText(Path.Combine(dir, "config.yaml"), Configuration);
        File.WriteAllText(Path.Combine(dir, "nodes.yaml"), string.Join("---\n", Enumerable.Range(0, Nodes).Select(n => NodeJson(n).ToJsonString() + "\n")));
        var rounds = new int[Services];
        void WriteFile(int f)
        {
            var text = new StringBuilder();
            for (int s = f * (Services / Files); s < (f + 1) * (Services / Files); s++)
                text.Append(ServiceJson(s)).Append("\n---\n").Append(SliceJson(s, SliceAddresses(s, rounds[s]))).Append("\n---\n");
            // JSON objects as YAML flow documents (JSON is YAML), one per "---"; written by rename, as the README asks.
            string path = Path.Combine(dir, $".services-{f:D3}.yaml.tmp");
            File.WriteAllText(path, text.ToString());
            File.Move(path, Path.Combine(dir, $"services-{f:D3}.yaml"), overwrite: true);
        }
        for (int f = 0; f < Files; f++) WriteFile(f);
        var watch = Stopwatch.StartNew();
        using var controller = ClusterController.Start(new DirectorySource(dir), "node-0", new SnapshotPublisher("node-0"), NullLogger.Instance);
        if (controller.InitialErrors.Count > 0) throw new InvalidOperationException(controller.InitialErrors[0].ToString());
        Console.WriteLine($"  directory initial read + compile: {watch.Elapsed.TotalSeconds:F2} s");
        return Measure(controller, changes, (s, round) => { rounds[s] = round; WriteFile(s / (Services / Files)); });
    }

    /// <summary>Makes one change at a time and waits for the holder to publish it; milliseconds per change.</summary>
    private static List<double> Measure(ClusterController controller, int changes, Action<int, int> change)
    {
        var latencies = new List<double>(changes);
        var random = new Random(17);
        for (int i = 0; i < changes; i++)
        {
            long generation = controller.Holder.Current!.Generation;
            int s = random.Next(Services);
            long start = Stopwatch.GetTimestamp();
            change(s, i + 1);
            var deadline = DateTime.UtcNow.AddSeconds(30);
            while (controller.Holder.Current!.Generation == generation)
            {
                if (DateTime.UtcNow > deadline) throw new TimeoutException($"change {i} was not published");
                Thread.SpinWait(200);
            }
            latencies.Add(Stopwatch.GetElapsedTime(start).TotalMilliseconds);
            Thread.Sleep(20);
        }
        return latencies;
    }

    private static JsonObject NodeJson(int n) => JsonNode.Parse($$$"""
        {"apiVersion": "v1", "kind": "Node", "metadata": {"name": "node-{{{n}}}"},
         "spec": {"podCIDR": "10.{{{1 + n / 250}}}.{{{n % 250}}}.0/24"},
         "status": {"addresses": [{"type": "InternalIP", "address": "192.168.{{{n / 250}}}.{{{n % 250 + 1}}}"}]}}
        """)!.AsObject();

    private static string ServiceJson(int s) => $$$"""
        {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "svc-{{{s}}}", "namespace": "default"},
         "spec": {"clusterIP": "10.96.{{{s >> 8}}}.{{{s & 255}}}", "ports": [{"name": "http", "port": 80, "protocol": "TCP"}]}}
        """;

    private static string SliceJson(int s, string[] addresses) => $$$"""
        {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice", "addressType": "IPv4",
         "metadata": {"name": "svc-{{{s}}}-x", "namespace": "default", "labels": {"kubernetes.io/service-name": "svc-{{{s}}}"}},
         "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}],
         "endpoints": [{{{string.Join(",", addresses.Select(a => "{\"addresses\": [\"" + a + "\"], \"conditions\": {\"ready\": true}}"))}}}]}
        """;
}
