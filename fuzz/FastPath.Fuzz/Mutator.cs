using System.Diagnostics;

namespace FastPath.Fuzz;

/// <summary>
/// Volume after coverage: libFuzzer (through libfuzzer-dotnet) finds the inputs that reach new code, but pays a pipe
/// round trip and a 64 KiB coverage-map copy per input, which holds it to 5–15 k executions/s here. This runs the
/// uninstrumented target in process on mutations of that corpus — libFuzzer's own mutation kinds (bit flips,
/// interesting values, byte insertion and erasure, copies within an input, crossover with another corpus input) —
/// without coverage feedback, at the target's own speed. The first exception is written to OUT as crash-&lt;n&gt; and
/// ends the run (exit 1); an input that keeps the process busy for 10 s of CPU time is written as hang-&lt;n&gt; (exit 3). Progress is printed every 30 s.
/// </summary>
public static class Mutator
{
    private static readonly byte[] Interesting = [0, 1, 2, 0x7F, 0x80, 0xFF, 0xFE, 8, 16, 17, 6, 40, 64, 0x45, 0x60, 0x86, 0xDD, 0x08];

    public static int Run(string target, long runs, string outDir, string[] corpusDirs)
    {
        var corpus = corpusDirs.Where(Directory.Exists).SelectMany(Directory.EnumerateFiles).Select(File.ReadAllBytes)
            .Where(b => b.Length <= 70_000).ToList();
        if (corpus.Count == 0) corpus.Add([]);
        Directory.CreateDirectory(outDir);
        // FUZZ_SEED picks the mutation stream, so parallel runs (scripts/fuzz.sh --jobs) each try different inputs.
        var rng = new Random(int.TryParse(Environment.GetEnvironmentVariable("FUZZ_SEED"), out int fuzzSeed) ? fuzzSeed : 21);
        var buffer = new byte[70_000];
        long done = 0, started = Stopwatch.GetTimestamp();
        long current = 0; // nonzero (a Stopwatch timestamp) while an input runs
        int runningLength = 0; // the stuck input is still in buffer when the watchdog fires
        // A hang is an input that holds the process busy for 10 s of CPU time. On a shared machine a niced process can
        // wait that long for a core (a manifest input "hung" 10 s at load 40 and replays in 0.2 s of CPU), so wall
        // time alone only says when to look.
        var watchdog = new Thread(() =>
        {
            long seen = -1;
            TimeSpan cpuAtStall = default;
            int stalled = 0;
            for (int tick = 1; ; tick++)
            {
                Thread.Sleep(1000);
                long now = Interlocked.Read(ref done);
                if (tick % 30 == 0) Console.WriteLine($"{target}: {now} executions in {Stopwatch.GetElapsedTime(started).TotalSeconds:F0} s");
                if (now != seen || Interlocked.Read(ref current) == 0)
                {
                    (seen, stalled, cpuAtStall) = (now, 0, Environment.CpuUsage.TotalTime);
                    continue;
                }
                if (++stalled < 10 || Environment.CpuUsage.TotalTime - cpuAtStall < TimeSpan.FromSeconds(10)) continue;
                File.WriteAllBytes(Path.Combine(outDir, $"hang-{now}"), buffer.AsSpan(0, Volatile.Read(ref runningLength)).ToArray());
                Console.WriteLine($"{target}: hang (an input used > 10 s of CPU) after {now} executions");
                Environment.Exit(3);
            }
        }) { IsBackground = true };
        watchdog.Start();
        while (done < runs)
        {
            var seed = corpus[rng.Next(corpus.Count)];
            int length = Mutate(seed, buffer, corpus[rng.Next(corpus.Count)], rng);
            Volatile.Write(ref runningLength, length);
            Interlocked.Exchange(ref current, Stopwatch.GetTimestamp());
            try
            {
                FuzzTargets.Run(target, buffer.AsSpan(0, length));
            }
            catch (Exception e)
            {
                string file = Path.Combine(outDir, $"crash-{done}");
                File.WriteAllBytes(file, buffer.AsSpan(0, length).ToArray());
                Console.WriteLine($"{target}: crash after {done} executions, input {file}:\n{e}");
                return 1;
            }
            Interlocked.Exchange(ref current, 0);
            Interlocked.Increment(ref done);
        }
        double seconds = Stopwatch.GetElapsedTime(started).TotalSeconds;
        Console.WriteLine($"{target}: {done} executions in {seconds:F0} s ({done / seconds:F0}/s) on {corpus.Count} corpus inputs, 0 crashes, 0 hangs");
        return 0;
    }

    /// <summary>Writes a mutation of <paramref name="seed"/> into <paramref name="into"/>; returns its length.</summary>
    internal static int Mutate(byte[] seed, byte[] into, byte[] other, Random rng)
    {
        int length = seed.Length;
        seed.CopyTo(into, 0);
        int rounds = 1 + rng.Next(4);
        for (int r = 0; r < rounds; r++)
        {
            switch (rng.Next(7))
            {
                case 0 when length > 0: into[rng.Next(length)] ^= (byte)(1 << rng.Next(8)); break;
                case 1 when length > 0: into[rng.Next(length)] = Interesting[rng.Next(Interesting.Length)]; break;
                case 2 when length > 0: into[rng.Next(length)] = (byte)rng.Next(256); break;
                case 3 when length + 16 < into.Length:
                {
                    int at = rng.Next(length + 1), n = 1 + rng.Next(16);
                    Array.Copy(into, at, into, at + n, length - at);
                    for (int i = 0; i < n; i++) into[at + i] = (byte)rng.Next(256);
                    length += n;
                    break;
                }
                case 4 when length > 1:
                {
                    int at = rng.Next(length), n = 1 + rng.Next(Math.Min(16, length - at));
                    Array.Copy(into, at + n, into, at, length - at - n);
                    length -= n;
                    break;
                }
                case 5 when length > 2:
                {
                    int from = rng.Next(length), to = rng.Next(length), n = rng.Next(Math.Min(length - from, length - to)) + 1;
                    Array.Copy(into, from, into, to, n);
                    break;
                }
                case 6 when other.Length > 0:
                {
                    int cut = rng.Next(length + 1), from = rng.Next(other.Length), n = Math.Min(other.Length - from, into.Length - cut);
                    Array.Copy(other, from, into, cut, n);
                    length = cut + n;
                    break;
                }
            }
        }
        return length;
    }
}
