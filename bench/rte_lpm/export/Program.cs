// Writes v4-N.routes / v4-N-Traffic.addrs (the exact sets Lpm4Benchmarks uses) and prints build times and the
// lookup checksums rte_lpm_bench must reproduce.
return FastPath.Benchmarks.LpmDataSets.Export(args.Length > 0 ? args[0] : "/tmp/fastpath-lpm");
