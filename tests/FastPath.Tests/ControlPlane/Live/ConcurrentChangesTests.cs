using FastPath.ControlPlane.Cluster.Sources;
using static FastPath.Tests.ControlPlane.Live.ControllerHarness;

namespace FastPath.Tests.ControlPlane.Live;

/// <summary>
/// One thread forwards continuously while another applies thousands of changes. Every change moves the backends of
/// two Services together (one batch, one snapshot), and every forwarded batch carries a new flow to each: both must
/// land on the same backend — the old one or the new one, never one of each (a torn snapshot) — and none may be lost.
/// </summary>
public class ConcurrentChangesTests
{
    private static readonly string[] Backends = ["10.244.1.11", "10.244.1.12", "10.244.2.13"];

    [Fact]
    public void ForwardingWhileThousandsOfChangesApply_EveryBatchSeesOneSnapshot()
    {
        using var h = new ControllerHarness();
        Assert.Empty(h.Apply("b.yaml", "apiVersion: v1\nkind: Service\nmetadata: {name: web-b}\nspec: {clusterIP: 10.96.0.20, ports: [{name: http, port: 80}, {name: dns, port: 53, protocol: UDP}]}"));
        // One prepared batch per backend: both Services' slices point at it.
        var states = Backends.Select((ip, i) => h.Read($"slices-{i}.yaml",
            Slice("web-abc", "web", Ready(ip, ip.StartsWith("10.244.2.") ? "node-b" : "node-a")) + "\n---\n"
            + Slice("web-b-abc", "web-b", Ready(ip, ip.StartsWith("10.244.2.") ? "node-b" : "node-a")))).ToArray();
        Assert.Empty(h.Controller.Apply(states[0]));
        // Random churn on the side: a third Service added and removed.
        var extra = h.Read("extra.yaml", "apiVersion: v1\nkind: Service\nmetadata: {name: extra}\nspec: {clusterIP: 10.96.0.30, ports: [{port: 80}]}");
        var removeExtra = new ClusterChangeBatch([ClusterChange.Delete(extra.Changes[0].Object!)], [], []);

        const int Changes = 3000;
        var random = new Random(6);
        Exception? changerError = null, forwarderError = null;
        bool done = false;
        var changer = new Thread(() =>
        {
            try
            {
                for (int i = 0; i < Changes; i++)
                {
                    var batch = random.Next(10) switch { 0 => extra, 1 => removeExtra, _ => states[random.Next(states.Length)] };
                    Assert.Empty(h.Controller.Apply(batch));
                }
            }
            catch (Exception e) { changerError = e; }
            finally { Volatile.Write(ref done, true); }
        });

        int batches = 0, torn = 0, lost = 0;
        var seen = new HashSet<string>();
        var forwarder = new Thread(() =>
        {
            try
            {
                ushort port = 1024;
                while (!Volatile.Read(ref done) || batches < 100)
                {
                    if (++port == 0) port = 1024;
                    var sent = h.Run(
                        ClientFrame(17, "10.96.0.10", Support.TestFrames.Udp(port, 53)),
                        ClientFrame(17, "10.96.0.20", Support.TestFrames.Udp(port, 53)));
                    batches++;
                    if (sent.Any(s => s.Drop != FastPath.DataPlane.Telemetry.DropReason.None || s.Destination is null)) { lost++; continue; }
                    if (sent[0].Destination != sent[1].Destination || !Backends.Contains(sent[0].Destination)) torn++;
                    seen.Add(sent[0].Destination!);
                }
            }
            catch (Exception e) { forwarderError = e; }
        });
        forwarder.Start();
        changer.Start();
        Assert.True(changer.Join(TimeSpan.FromMinutes(3)), "changes did not finish");
        Assert.True(forwarder.Join(TimeSpan.FromMinutes(1)), "forwarding did not finish");

        Assert.Null(changerError);
        Assert.Null(forwarderError);
        Assert.Equal((0, 0), (torn, lost));
        Assert.True(seen.Count >= 2, $"forwarding saw only {string.Join(", ", seen)} in {batches} batches");
    }
}
