// Writes v4-N.routes / v4-N-Traffic.addrs (the exact sets Lpm4Benchmarks uses) and prints build times and the
// lookup checksums rte_lpm_bench must reproduce; `time DIR N` times LpmTable4 on those files the way rte_lpm_bench
// times rte_lpm (bench/rte_lpm/compare.sh alternates the two).
if (args.Length >= 3 && args[0] == "time") return FastPath.Benchmarks.LpmDataSets.Time(args[1], int.Parse(args[2], System.Globalization.CultureInfo.InvariantCulture));
return FastPath.Benchmarks.LpmDataSets.Export(args.Length > 0 ? args[0] : "/tmp/fastpath-lpm");
