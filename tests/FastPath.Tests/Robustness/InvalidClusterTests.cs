using FastPath.ControlPlane.Cluster;
using FastPath.Tests.Support;

namespace FastPath.Tests.Robustness;

/// <summary>A cluster directory with thousands of invalid objects: every problem reported on one line naming file, object and field; no crash.</summary>
public class InvalidClusterTests
{
    /// <summary>Writes <paramref name="objects"/> broken Pods, Services and Nodes over 50 files, plus a YAML syntax error and a non-object document.</summary>
    internal static void WriteBrokenCluster(string dir, int objects)
    {
        for (int f = 0; f < 50; f++)
        {
            var docs = new List<string>();
            for (int i = f; i < objects; i += 50)
            {
                docs.Add((i % 3) switch
                {
                    0 => $"apiVersion: v1\nkind: Pod\nmetadata: {{name: p{i}, namespace: default}}\nspec: {{nodeName: node-a, containers: [{{name: c, image: x}}]}}\nstatus: {{podIP: 10.244.{i % 256}.{300 + i % 100}}}\n",
                    1 => $"apiVersion: v1\nkind: Service\nmetadata: {{name: s{i}, namespace: default}}\nspec: {{clusterIP: not-an-ip-{i}, ports: [{{port: {70000 + i}}}]}}\n",
                    _ => $"apiVersion: v1\nkind: Node\nmetadata: {{name: n{i}}}\nspec: {{podCIDR: 10.{i % 256}.0.0/{33 + i % 5}}}\n",
                });
            }
            File.WriteAllText(Path.Combine(dir, $"objects-{f:D2}.yaml"), string.Join("---\n", docs));
        }
        File.WriteAllText(Path.Combine(dir, "broken.yaml"), "apiVersion: v1\nkind: Pod\nmetadata: {name: [\n");
        File.WriteAllText(Path.Combine(dir, "scalar.yaml"), "just a string\n");
    }

    [Fact]
    public void ThousandsOfInvalidObjectsAreAllReportedClearly()
    {
        using var tmp = new TempFolder();
        WriteBrokenCluster(tmp.Path, 6000);
        var stdout = new StringWriter();
        var stderr = new StringWriter();
        int exit = FastPath.Program.Run(["check", "--cluster", tmp.Path], stdout, stderr);
        Assert.Equal(2, exit);
        var lines = (stdout + stderr.ToString()).Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.Contains(lines, l => l.Contains("broken.yaml:4: YAML syntax error"));
        Assert.Contains(lines, l => l.Contains("scalar.yaml") && l.Contains("expected a Kubernetes object"));
        // One line per broken field, each naming the file, the object and the field.
        Assert.Contains(lines, l => l.EndsWith("objects-00.yaml: Pod default/p0: status.podIP: \"10.244.0.300\" is not an IP address"));
        Assert.Contains(lines, l => l.EndsWith("objects-01.yaml: Service default/s1: spec.clusterIP: \"not-an-ip-1\" is not an IP address"));
        Assert.Contains(lines, l => l.EndsWith("objects-01.yaml: Service default/s1: spec.ports[0].port: 70001 is out of range (1-65535)"));
        Assert.Contains(lines, l => l.EndsWith("objects-02.yaml: Node n2: spec.podCIDR: \"10.2.0.0/35\" is not a CIDR"));
        Assert.True(lines.Count(l => l.Contains(": Pod default/p") && l.Contains("status.podIP")) == 2000);
        Assert.True(lines.Count(l => l.Contains(": Service default/s") && l.Contains("spec.clusterIP")) == 2000);
        Assert.True(lines.Count(l => l.Contains(": Node n") && l.Contains("spec.podCIDR")) == 2000);

        var load = ClusterDirectory.Load(tmp.Path);
        Assert.False(load.IsValid);
        Assert.True(load.Errors.Count() >= 8000);
    }
}
