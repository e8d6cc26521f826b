using BenchmarkDotNet.Running;

namespace FastPath.Benchmarks;

public static class Program
{
    public static void Main(string[] args)
    {
        if (args is ["maglev-stats"])
        {
            MaglevStats.Run();
            return;
        }
        if (args is ["watch-latency", ..])
        {
            WatchLatency.Run(args.Length > 1 ? int.Parse(args[1], System.Globalization.CultureInfo.InvariantCulture) : 200);
            return;
        }
        if (args is ["control-plane-stats", ..])
        {
            ControlPlaneStats.Command(args[1..]);
            return;
        }

        BenchmarkSwitcher.FromAssembly(typeof(Program).Assembly).Run(args);
    }
}
