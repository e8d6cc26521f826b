/*
 * rte_lpm peer for bench/FastPath.Benchmarks/LpmBenchmarks.cs: builds an rte_lpm (DPDK lib/lpm) from the same
 * route file and looks up the same addresses, so the two sets of numbers compare like for like.
 * Files come from `FastPath.Benchmarks export-lpm DIR`: v4-N.routes ("prefix length nexthop" per line, prefix as
 * an unsigned host-order integer) and v4-N-Traffic.addrs (little-endian uint32 array).
 * Usage: rte_lpm_bench DIR [N...]   (EAL runs with --no-huge --no-pci --no-shconf, no hugepages needed)
 */
#include <stdio.h>
#include <stdlib.h>
#include <stdint.h>
#include <string.h>
#include <time.h>
#include <rte_eal.h>
#include <rte_lpm.h>
#include <rte_errno.h>

#define REPS 5
#define ROUNDS 8 /* passes over the address array per timed run */

static volatile int64_t sink; /* keeps the compiler from dropping lookups whose results are unused */

/* The thread's CPU time, not wall time: on a shared machine the process is descheduled at random, and CPU time per
 * lookup is what a lookup costs a core while it runs (the .NET side, LpmDataSets.Time, reads the same clock). */
static double now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
	return ts.tv_sec * 1e9 + ts.tv_nsec;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

typedef int64_t (*lookup_fn)(const struct rte_lpm *, const uint32_t *, uint32_t, uint32_t *);

/* Misses count as -1 so checksums match LpmTable4.Lookup's. */
static int64_t run_single(const struct rte_lpm *lpm, const uint32_t *a, uint32_t n, uint32_t *hops)
{
	int64_t sum = 0;
	(void)hops;
	for (uint32_t i = 0; i < n; i++) {
		uint32_t hop;
		sum += rte_lpm_lookup((struct rte_lpm *)lpm, a[i], &hop) == 0 ? (int64_t)hop : -1;
	}
	return sum;
}

static int64_t run_bulk(const struct rte_lpm *lpm, const uint32_t *a, uint32_t n, uint32_t *hops)
{
	int64_t sum = 0;
	for (uint32_t i = 0; i < n; i += 64)
		rte_lpm_lookup_bulk(lpm, a + i, hops + i, 64);
	for (uint32_t i = 0; i < n; i++)
		sum += (hops[i] & RTE_LPM_LOOKUP_SUCCESS) ? (int64_t)(hops[i] & 0x00FFFFFF) : -1;
	return sum;
}

static int64_t run_x4(const struct rte_lpm *lpm, const uint32_t *a, uint32_t n, uint32_t *hops)
{
	int64_t sum = 0;
	for (uint32_t i = 0; i < n; i += 4) {
		xmm_t ip = _mm_loadu_si128((const __m128i *)(a + i));
		rte_lpm_lookupx4(lpm, ip, hops + i, UINT32_MAX);
	}
	for (uint32_t i = 0; i < n; i++)
		sum += hops[i] == UINT32_MAX ? -1 : (int64_t)hops[i];
	return sum;
}

static void time_it(const char *label, lookup_fn fn, const struct rte_lpm *lpm, const uint32_t *a, uint32_t n, uint32_t *hops)
{
	double t[REPS];
	int64_t sum = fn(lpm, a, n, hops); /* warm-up, and the checksum */
	for (int r = 0; r < REPS; r++) {
		double t0 = now_ns();
		for (int k = 0; k < ROUNDS; k++)
			sink += fn(lpm, a, n, hops);
		t[r] = (now_ns() - t0) / ((double)n * ROUNDS);
	}
	qsort(t, REPS, sizeof t[0], cmp_double);
	printf("  %-7s %6.2f ns/lookup  %7.1f Mlookups/s  (min %.2f)  checksum %lld\n",
	       label, t[REPS / 2], 1e3 / t[REPS / 2], t[0], (long long)sum);
}

static int bench(const char *dir, int n)
{
	char path[4096];
	snprintf(path, sizeof path, "%s/v4-%d.routes", dir, n);
	FILE *f = fopen(path, "r");
	if (!f) { fprintf(stderr, "%s: cannot open\n", path); return 2; }
	uint32_t *prefix = malloc(sizeof(uint32_t) * n), *hop = malloc(sizeof(uint32_t) * n);
	uint8_t *len = malloc(n);
	int count = 0;
	unsigned p, l, h;
	while (count < n && fscanf(f, "%u %u %u", &p, &l, &h) == 3) {
		prefix[count] = p; len[count] = (uint8_t)l; hop[count] = h; count++;
	}
	fclose(f);

	/* One tbl8 group per /24 holding longer routes; size the pool from the file, plus slack. */
	struct rte_lpm_config cfg = { .max_rules = (uint32_t)count * 2, .number_tbl8s = 0, .flags = 0 };
	for (int i = 0; i < count; i++)
		if (len[i] > 24) cfg.number_tbl8s++;
	cfg.number_tbl8s = cfg.number_tbl8s + 256;
	char name[32];
	snprintf(name, sizeof name, "lpm%d", n);
	double t0 = now_ns();
	struct rte_lpm *lpm = rte_lpm_create(name, SOCKET_ID_ANY, &cfg);
	if (!lpm) { fprintf(stderr, "rte_lpm_create: %s\n", rte_strerror(rte_errno)); return 1; }
	for (int i = 0; i < count; i++) {
		int rc = rte_lpm_add(lpm, prefix[i], len[i], hop[i]);
		if (rc < 0) { fprintf(stderr, "rte_lpm_add %u/%u: %d\n", prefix[i], len[i], rc); return 1; }
	}
	printf("v4 %d routes: rte_lpm build %.1f ms\n", count, (now_ns() - t0) / 1e6);

	const char *traffic[] = { "Random", "Zipf" };
	for (int t = 0; t < 2; t++) {
		snprintf(path, sizeof path, "%s/v4-%d-%s.addrs", dir, n, traffic[t]);
		f = fopen(path, "rb");
		if (!f) { fprintf(stderr, "%s: cannot open\n", path); return 2; }
		fseek(f, 0, SEEK_END);
		uint32_t na = (uint32_t)(ftell(f) / 4) & ~63u;
		fseek(f, 0, SEEK_SET);
		uint32_t *a = malloc(4 * (size_t)na), *hops = malloc(4 * (size_t)na);
		if (fread(a, 4, na, f) != na) { fprintf(stderr, "%s: short read\n", path); return 2; }
		fclose(f);
		printf(" %s, %u addresses\n", traffic[t], na);
		time_it("single", run_single, lpm, a, na, hops);
		time_it("bulk64", run_bulk, lpm, a, na, hops);
		time_it("x4", run_x4, lpm, a, na, hops);
		free(a); free(hops);
	}
	rte_lpm_free(lpm);
	free(prefix); free(hop); free(len);
	return 0;
}

int main(int argc, char **argv)
{
	char *eal_args[] = { argv[0], "--no-huge", "--no-pci", "--no-shconf", "-m", "1024", "--log-level", "lib.eal:error", NULL };
	if (rte_eal_init(8, eal_args) < 0) {
		fprintf(stderr, "rte_eal_init failed: %s\n", rte_strerror(rte_errno));
		return 1;
	}
	if (argc < 2) { fprintf(stderr, "usage: %s DIR [N...]\n", argv[0]); return 2; }
	int rc = 0;
	if (argc == 2) {
		int sizes[] = { 1000, 100000, 1000000 };
		for (int i = 0; i < 3 && rc == 0; i++) rc = bench(argv[1], sizes[i]);
	} else {
		for (int i = 2; i < argc && rc == 0; i++) rc = bench(argv[1], atoi(argv[i]));
	}
	rte_eal_cleanup();
	return rc;
}
