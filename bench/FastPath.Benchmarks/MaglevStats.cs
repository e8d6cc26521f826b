using System.Globalization;
using FastPath.DataPlane.Services;

namespace FastPath.Benchmarks;

/// <summary>
/// Distribution and disruption of <see cref="MaglevTable"/> (docs/MAGLEV.md): not a timing, so it runs as a plain
/// command, <c>dotnet run -c Release --project bench/FastPath.Benchmarks -- maglev-stats</c>.
/// </summary>
public static class MaglevStats
{
    public static MaglevBackend[] Backends(int n, int first = 0)
    {
        var backends = new MaglevBackend[n];
        for (int i = 0; i < n; i++) backends[i] = MaglevBackend.Named(Name(first + i), first + i);
        return backends;
    }

    public static string Name(int i) => string.Create(CultureInfo.InvariantCulture, $"10.244.{i / 250}.{i % 250 + 1}:8080");

    public static void Run()
    {
        Console.WriteLine("| M | N | max/min slot share | removal: moved (mean of ≤20 removals) | removal optimum (owned by removed) | 1/N | add: moved | add: to new backend | 1/(N+1) |");
        Console.WriteLine("|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
        foreach (int m in new[] { 16381, 131071 })
        {
            foreach (int n in new[] { 3, 10, 100, 1000 })
            {
                var builder = new MaglevTable.Builder();
                var all = Backends(n + 1);
                var baseSet = all.AsSpan(0, n);
                var table = builder.Build(baseSet, m);
                var counts = new int[n];
                foreach (int s in table.Slots) counts[s]++;
                double maxMin = (double)counts.Max() / counts.Min();

                int removals = Math.Min(n, 20);
                double moved = 0, owned = 0;
                var without = new MaglevBackend[n - 1];
                for (int r = 0; r < removals; r++)
                {
                    int k = r * n / removals;
                    baseSet[..k].CopyTo(without);
                    baseSet[(k + 1)..].CopyTo(without.AsSpan(k));
                    var after = builder.Build(without, m);
                    moved += Changed(table.Slots, after.Slots);
                    owned += counts[k];
                }
                moved /= removals * (double)m;
                owned /= removals * (double)m;

                var added = builder.Build(all, m);
                int addMoved = Changed(table.Slots, added.Slots);
                int toNew = 0;
                foreach (int s in added.Slots) if (s == n) toNew++;

                Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                    $"| {m} | {n} | {maxMin:F3} | {moved:P2} | {owned:P2} | {1.0 / n:P2} | {(double)addMoved / m:P2} | {(double)toNew / m:P2} | {1.0 / (n + 1):P2} |"));
            }
        }
    }

    private static int Changed(ReadOnlySpan<ushort> a, ReadOnlySpan<ushort> b)
    {
        int changed = 0;
        for (int i = 0; i < a.Length; i++) if (a[i] != b[i]) changed++;
        return changed;
    }
}
