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

        BenchmarkSwitcher.FromAssembly(typeof(Program).Assembly).Run(args);
    }
}
