// SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause
/*
 * What-if replay with the shipped BPF policies running in the kernel's BPF VM, on CONSTRUCTED
 * streams (this kernel has no conversions and no huge guest_memfd folios):
 *   - a hand-computed trace, where every decision, merge, ping-pong and coverage figure of
 *     each policy is worked out in the comments and checked exactly;
 *   - the selftest-shaped conversion stream (private_mem_conversions_test: 52 map-GPA-range
 *     exits, 32 set-attributes calls, 35 punch holes, 5 allocating fallocates per vCPU and
 *     iteration), where each policy must behave as its idea says: churn fewer ping-pongs than
 *     buddy, split4k the lowest huge coverage; and a replay is deterministic.
 * The BPF cases need root; without it they skip and say so.
 */
#include <errno.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include <bpf/libbpf.h>

#include "kvmstats.h"
#include "whatif.h"

#define MS  1000000ull
#define S   1000000000ull
#define K4  4096ull
#define M2  (2ull << 20)
#define GPA 0x100000000ull

enum { SPLIT4K, BUDDY, CHURN, NPOL };
static const char *const names[NPOL] = { "split4k", "buddy", "churn" };

static void need_root(void)
{
	if (geteuid() != 0) {
		print_message("needs root for BPF_PROG_RUN: skipped\n");
		skip();
	}
}

static void open_all(struct policy **p)
{
	char err[512];
	int i;

	for (i = 0; i < NPOL; i++) {
		if (policy__open(&p[i], names[i], NULL, err, sizeof(err)))
			fail_msg("%s", err);
	}
}

static void close_all(struct policy **p)
{
	int i;

	for (i = 0; i < NPOL; i++)
		policy__close(p[i]);
}

static void run(const struct gmem_event *ev, size_t n, struct policy **p, int np,
		const struct whatif_opts *o, struct whatif_result *res)
{
	struct whatif_array a = { .ev = ev, .n = n };

	assert_int_equal(whatif__run(o, whatif__next_array, &a, p, np, res), 0);
	assert_int_equal(res->records, n);
}

/*
 * A private 2 MiB file fallocated at 0; page 1 converts to shared at 1 s and back at 1.01 s,
 * again at 1.5 s and 1.51 s; the trace ends at 3 s.
 *   split4k  split 2m->4k at 1 s; merge offered at 1.01 and 1.51: never. Huge [0, 1 s): 1/3.
 *   buddy    split 2m->1m at 1 s; merge at 1.01 -> +100 ms (1.11); the split at 1.5 s undoes
 *            it (one ping-pong); merge at 1.51 -> 1.61. Huge 1 + 0.39 + 1.39 = 2.78 s of 3.
 *   churn    split 2m->1m at 1 s (nothing recent yet); merge at 1.01 -> +1000 ms, cancelled
 *            by the touch at 1.5 s (page 1 is a folio of its own: no split); merge at 1.51 ->
 *            2.51. Huge 1 + 0.49 = 1.49 s of 3; no ping-pong.
 */
static void test_hand_computed(void **state)
{
	const struct gmem_event ev[] = {
		{ .ts_ns = 0, .kind = GMEM_EV_FILE_CREATE, .vm = 1, .ino = 9, .a = M2 },
		{ .ts_ns = 0, .kind = GMEM_EV_BIND, .vm = 1, .ino = 9, .a = GPA, .b = M2 },
		{ .ts_ns = 0, .kind = GMEM_EV_FALLOCATE, .vm = 1, .ino = 9, .a = 0, .b = M2 },
		{ .ts_ns = 1000 * MS, .kind = GMEM_EV_CONV_ATTR, .vm = 1, .a = GPA + K4, .b = K4,
		  .sub = GMEM_TO_SHARED },
		{ .ts_ns = 1010 * MS, .kind = GMEM_EV_CONV_ATTR, .vm = 1, .a = GPA + K4, .b = K4,
		  .sub = GMEM_TO_PRIVATE },
		{ .ts_ns = 1500 * MS, .kind = GMEM_EV_CONV_ATTR, .vm = 1, .a = GPA + K4, .b = K4,
		  .sub = GMEM_TO_SHARED },
		{ .ts_ns = 1510 * MS, .kind = GMEM_EV_CONV_ATTR, .vm = 1, .a = GPA + K4, .b = K4,
		  .sub = GMEM_TO_PRIVATE },
		{ .ts_ns = 3000 * MS, .kind = GMEM_EV_DMAP_SAMPLE },
	};
	const struct hugemodel_stats *h;
	struct policy *p[NPOL];
	struct whatif_result res;
	int i;

	need_root();
	open_all(p);
	run(ev, sizeof(ev) / sizeof(ev[0]), p, NPOL, NULL, &res);
	assert_int_equal(res.nr, NPOL);
	assert_int_equal(res.last_ts_ns - res.first_ts_ns, 3 * S);
	for (i = 0; i < NPOL; i++) {
		assert_string_equal(res.pol[i].name, names[i]);
		h = &res.pol[i].hm;
		assert_int_equal(h->decisions[GMEM_POLICY_ALLOC], 1);
		assert_int_equal(h->allocs[9], 1);
		assert_int_equal(h->conversions, 4);
		/* the model asked exactly what the policy answered, and nothing was out of range */
		assert_int_equal(res.pol[i].pol.calls[GMEM_POLICY_SPLIT],
				 h->decisions[GMEM_POLICY_SPLIT]);
		assert_int_equal(res.pol[i].pol.calls[GMEM_POLICY_MERGE],
				 h->decisions[GMEM_POLICY_MERGE]);
		assert_int_equal(res.pol[i].pol.clamped[GMEM_POLICY_SPLIT] +
					 res.pol[i].pol.clamped[GMEM_POLICY_MERGE] +
					 res.pol[i].pol.clamped[GMEM_POLICY_ALLOC], 0);
	}
	h = &res.pol[SPLIT4K].hm;
	assert_int_equal(h->decisions[GMEM_POLICY_SPLIT], 1);
	assert_int_equal(h->splits[9][0], 1);
	assert_int_equal(h->decisions[GMEM_POLICY_MERGE], 2);
	assert_int_equal(h->merge_never, 2);
	assert_int_equal(h->pingpongs, 0);
	assert_true(h->coverage_avg == (double)(512 * 1000 * MS) / (double)(512 * 3000 * MS));
	assert_true(h->coverage_final == 0.0);

	h = &res.pol[BUDDY].hm;
	assert_int_equal(h->decisions[GMEM_POLICY_SPLIT], 2);
	assert_int_equal(h->splits[9][8], 2);
	assert_int_equal(h->merge_delayed, 2);
	assert_int_equal(h->merges[0][9], 2);
	assert_int_equal(h->merges_cancelled, 0);
	assert_int_equal(h->pingpongs, 1);
	assert_true(h->coverage_avg == (double)(512 * 2780 * MS) / (double)(512 * 3000 * MS));
	assert_true(h->coverage_final == 1.0);

	h = &res.pol[CHURN].hm;
	assert_int_equal(h->decisions[GMEM_POLICY_SPLIT], 1);
	assert_int_equal(h->splits[9][8], 1);
	assert_int_equal(h->merge_delayed, 2);
	assert_int_equal(h->merges_cancelled, 1);
	assert_int_equal(h->merges[0][9], 1);
	assert_int_equal(h->pingpongs, 0);
	assert_true(h->coverage_avg == (double)(512 * 1490 * MS) / (double)(512 * 3000 * MS));
	/* the policy's own counts, by decision: both merges were "delay" */
	assert_int_equal(res.pol[CHURN].pol.decided[GMEM_POLICY_MERGE][POLICY_MERGE_DELAY], 2);
	assert_int_equal(res.pol[CHURN].pol.decided[GMEM_POLICY_SPLIT][8], 1);
	assert_int_equal(res.pol[CHURN].pol.decided[GMEM_POLICY_ALLOC][9], 1);
	whatif__result_free(&res);
	close_all(p);
}

static void count_kinds(const struct gmem_event *ev, size_t n, __u64 *by_kind)
{
	size_t i;

	memset(by_kind, 0, GMEM_EV_KIND_MAX * sizeof(*by_kind));
	for (i = 0; i < n; i++)
		by_kind[ev[i].kind]++;
}

/* The stream has the selftest's shape, per vCPU and iteration, exactly. */
static void test_selftest_stream_shape(void **state)
{
	struct whatif_gen_opts g = { .vcpus = 4, .iterations = 3, .tail_ns = 5 * S };
	struct whatif_gen_counts c;
	__u64 k[GMEM_EV_KIND_MAX];
	struct gmem_event *ev;
	size_t n, i;

	assert_int_equal(whatif__gen_conversions(&g, &ev, &n, &c), 0);
	assert_int_equal(c.exits, 52 * 4 * 3);
	assert_int_equal(c.attrs, 32 * 4 * 3);
	assert_int_equal(c.punches, 35 * 4 * 3);
	assert_int_equal(c.fallocates, 5 * 4 * 3);
	count_kinds(ev, n, k);
	assert_int_equal(k[GMEM_EV_CONV_REQUEST], 52 * 4 * 3);
	assert_int_equal(k[GMEM_EV_VCPU_RESUME], 52 * 4 * 3);
	assert_int_equal(k[GMEM_EV_CONV_ATTR], 32 * 4 * 3);
	assert_int_equal(k[GMEM_EV_PUNCH_HOLE], 35 * 4 * 3);
	assert_int_equal(k[GMEM_EV_FALLOCATE], 5 * 4 * 3);
	assert_int_equal(k[GMEM_EV_DMAP_SAMPLE], 5);
	assert_int_equal(k[GMEM_EV_FILE_CREATE], 1);
	assert_int_equal(k[GMEM_EV_BIND], 1);
	for (i = 1; i < n; i++)
		assert_true(ev[i].ts_ns >= ev[i - 1].ts_ns);
	for (i = 0; i < n; i++)
		assert_true(ev[i].flags & GMEM_EVF_SCENARIO);
	free(ev);
}

static __u64 total_splits(const struct hugemodel_stats *h)
{
	__u64 n = 0;
	unsigned int a, b;

	for (a = 0; a < HM_ORDERS; a++)
		for (b = 0; b < HM_ORDERS; b++)
			n += h->splits[a][b];
	return n;
}

/*
 * The three policies on a churning guest that then goes quiet (4 vCPUs, the selftest loop
 * every 300 ms for 6 s, then 10 s quiet): each must do what its idea says.
 */
static void test_policies_behave_as_their_idea_says(void **state)
{
	struct whatif_gen_opts g = { .vcpus = 4, .iterations = 20, .tail_ns = 10 * S };
	const struct hugemodel_stats *s4, *bd, *ch;
	struct whatif_result res, again;
	struct policy *p[NPOL];
	struct gmem_event *ev;
	unsigned int a, b;
	size_t n;

	need_root();
	assert_int_equal(whatif__gen_conversions(&g, &ev, &n, NULL), 0);
	open_all(p);
	run(ev, n, p, NPOL, NULL, &res);
	s4 = &res.pol[SPLIT4K].hm;
	bd = &res.pol[BUDDY].hm;
	ch = &res.pol[CHURN].hm;
	print_message("  ping-pongs: split4k %llu, buddy %llu, churn %llu; coverage avg: %.4f "
		      "%.4f %.4f\n", (unsigned long long)s4->pingpongs,
		      (unsigned long long)bd->pingpongs, (unsigned long long)ch->pingpongs,
		      s4->coverage_avg, bd->coverage_avg, ch->coverage_avg);
	/* churn: fewer ping-pongs than buddy on a churning workload */
	assert_true(bd->pingpongs > 0);
	assert_true(ch->pingpongs < bd->pingpongs);
	/* split4k: the lowest huge coverage, no merges at all, every split straight to 4k */
	assert_true(s4->coverage_avg < ch->coverage_avg);
	assert_true(s4->coverage_avg < bd->coverage_avg);
	assert_int_equal(s4->merge_now + s4->merge_delayed, 0);
	assert_int_equal(s4->pingpongs, 0);
	for (a = 0; a < HM_ORDERS; a++)
		for (b = 1; b < HM_ORDERS; b++)
			assert_int_equal(s4->splits[a][b], 0);
	/* buddy: only minimal splits; it merges back */
	for (a = 1; a < HM_ORDERS; a++)
		for (b = 0; b < HM_ORDERS; b++)
			if (b != a - 1)
				assert_int_equal(bd->splits[a][b], 0);
	assert_true(bd->merges[0][9] > 0);
	/* churn: hot regions split once, to 4k, instead of a chain of halvings */
	assert_true(total_splits(ch) < total_splits(bd));
	/* churn: merges cold regions back (everything is cold after the quiet tail) */
	assert_true(ch->merges[0][9] > 0);
	assert_true(ch->coverage_final == 1.0);
	assert_true(bd->coverage_final == 1.0);
	assert_true(s4->coverage_final == 0.0);

	/* a replay is deterministic: the same stream gives the same model, number for number */
	run(ev, n, p, NPOL, NULL, &again);
	for (a = 0; a < NPOL; a++) {
		struct hugemodel_stats x = res.pol[a].hm, y = again.pol[a].hm;

		assert_memory_equal(x.splits, y.splits, sizeof(x.splits));
		assert_memory_equal(x.merges, y.merges, sizeof(x.merges));
		assert_int_equal(x.pingpongs, y.pingpongs);
		assert_true(x.coverage_avg == y.coverage_avg);
		assert_int_equal(res.pol[a].nr_series, again.pol[a].nr_series);
	}
	whatif__result_free(&again);
	whatif__result_free(&res);
	close_all(p);
	free(ev);
}

/*
 * The same guest converting without a pause (no quiet tail): the trade-off shows. buddy still
 * merges between bursts (and ping-pongs); churn keeps the hot regions at 4k, so its coverage
 * falls to split4k's (equal, by construction: the same allocations where huge is possible,
 * merges only after 1 s of quiet); it never goes below it, and it never ping-pongs.
 */
static void test_continuous_churn_trade_off(void **state)
{
	struct whatif_gen_opts g = { .vcpus = 4, .iterations = 20 };
	const struct hugemodel_stats *s4, *bd, *ch;
	struct whatif_result res;
	struct policy *p[NPOL];
	struct gmem_event *ev;
	size_t n;

	need_root();
	assert_int_equal(whatif__gen_conversions(&g, &ev, &n, NULL), 0);
	open_all(p);
	run(ev, n, p, NPOL, NULL, &res);
	s4 = &res.pol[SPLIT4K].hm;
	bd = &res.pol[BUDDY].hm;
	ch = &res.pol[CHURN].hm;
	print_message("  no quiet tail: ping-pongs buddy %llu churn %llu; coverage %.4f %.4f %.4f\n",
		      (unsigned long long)bd->pingpongs, (unsigned long long)ch->pingpongs,
		      s4->coverage_avg, bd->coverage_avg, ch->coverage_avg);
	assert_true(ch->pingpongs < bd->pingpongs);
	assert_true(s4->coverage_avg <= ch->coverage_avg);
	assert_true(ch->coverage_avg < bd->coverage_avg);
	whatif__result_free(&res);
	close_all(p);
	free(ev);
}

/* A bad policy through the replay: its answers are clamped and counted by the policy host,
 * so the model never sees one out of range. */
static void test_bad_policy_in_replay(void **state)
{
	struct whatif_gen_opts g = { .vcpus = 1, .iterations = 2 };
	struct policy *p;
	struct whatif_result res;
	struct gmem_event *ev;
	const struct policy_stats *s;
	char err[512], path[4096];
	size_t n;
	ssize_t k;

	need_root();
	k = readlink("/proc/self/exe", path, sizeof(path) - 64);
	assert_true(k > 0);
	path[k] = 0;
	strcpy(strrchr(path, '/'), "/policies/test_bad.bpf.o");
	if (policy__open(&p, path, NULL, err, sizeof(err)))
		fail_msg("%s", err);
	assert_int_equal(whatif__gen_conversions(&g, &ev, &n, NULL), 0);
	run(ev, n, &p, 1, NULL, &res);
	s = &res.pol[0].pol;
	assert_true(s->calls[GMEM_POLICY_ALLOC] > 0);
	assert_int_equal(s->clamped[GMEM_POLICY_ALLOC], s->calls[GMEM_POLICY_ALLOC]);
	assert_int_equal(s->clamped[GMEM_POLICY_MERGE], s->calls[GMEM_POLICY_MERGE]);
	assert_int_equal(res.pol[0].hm.clamped[GMEM_POLICY_ALLOC], 0);
	assert_int_equal(res.pol[0].hm.clamped[GMEM_POLICY_SPLIT], 0);
	assert_int_equal(res.pol[0].hm.clamped[GMEM_POLICY_MERGE], 0);
	whatif__result_free(&res);
	policy__close(p);
	free(ev);
}

/* JSON and text carry the same figures. */
static void test_renderings(void **state)
{
	struct whatif_gen_opts g = { .vcpus = 2, .iterations = 2, .tail_ns = 2 * S };
	struct policy *p[NPOL];
	struct whatif_result res;
	struct gmem_event *ev;
	json_t *j, *pol;
	char *text = NULL;
	size_t n, len = 0;
	FILE *f;
	int i;

	need_root();
	assert_int_equal(whatif__gen_conversions(&g, &ev, &n, NULL), 0);
	open_all(p);
	run(ev, n, p, NPOL, NULL, &res);
	j = whatif__json(&res);
	assert_non_null(j);
	assert_int_equal(json_integer_value(json_object_get(j, "records")), n);
	assert_string_equal(json_string_value(json_object_get(j, "max_folio")), "2M");
	assert_int_equal(json_array_size(json_object_get(j, "policies")), NPOL);
	for (i = 0; i < NPOL; i++) {
		pol = json_array_get(json_object_get(j, "policies"), i);
		assert_string_equal(json_string_value(json_object_get(pol, "name")), names[i]);
		assert_int_equal(json_integer_value(json_object_get(pol, "pingpongs")),
				 res.pol[i].hm.pingpongs);
		assert_true(json_real_value(json_object_get(json_object_get(pol, "coverage"),
							    "avg")) == res.pol[i].hm.coverage_avg);
		assert_int_equal(json_array_size(json_object_get(json_object_get(pol, "coverage"),
								 "series")),
				 res.pol[i].nr_series);
	}
	json_decref(j);
	f = open_memstream(&text, &len);
	whatif__print(f, &res);
	fclose(f);
	assert_non_null(strstr(text, "merge/split ping-pongs"));
	assert_non_null(strstr(text, "huge coverage, average"));
	assert_non_null(strstr(text, "cost per decision (us)"));
	assert_non_null(strstr(text, "split4k"));
	free(text);
	whatif__result_free(&res);
	close_all(p);
	free(ev);
}

static int by_time(const void *a, const void *b)
{
	const struct gmem_event *x = a, *y = b;

	if (x->ts_ns != y->ts_ns)
		return x->ts_ns < y->ts_ns ? -1 : 1;
	/* a tick's DESC records before its samples, as gmemd sends them */
	return (x->kind == GMEM_EV_KVM_STAT) - (y->kind == GMEM_EV_KVM_STAT);
}

/*
 * CONSTRUCTED: KVM's recorded mapping mix is put beside each policy's simulated coverage. Two
 * VMs sampled at three ticks; VM 4242 splits two of its 12 huge pages (pages_2m 12 -> 10,
 * pages_4k 0 -> 1024), VM 4343 holds 2 throughout: the sums per tick, their first/last/min/max,
 * and the huge part by 4 KiB, in JSON and in the text's KVM column. Without samples: null.
 */
static void test_recorded_mapping_beside_coverage(void **state)
{
	static const char *const mix[3] = { "pages_4k", "pages_2m", "pages_1g" };
	static const __u64 v4242[3][3] = { { 0, 12, 0 }, { 1024, 10, 0 }, { 1024, 10, 0 } };
	struct whatif_gen_opts g = { .vcpus = 1, .iterations = 2, .tail_ns = 3 * S };
	struct policy *p[NPOL];
	struct whatif_result res;
	struct gmem_event *ev, *all;
	json_t *j, *rm;
	char *text = NULL;
	size_t n, m, len = 0;
	double want;
	FILE *f;
	int t, w;

	need_root();
	assert_int_equal(whatif__gen_conversions(&g, &ev, &n, NULL), 0);
	all = calloc(n + 3 * 9, sizeof(*all));
	memcpy(all, ev, n * sizeof(*ev));
	m = n;
	for (t = 0; t < 3; t++) {
		__u64 ts = ev[0].ts_ns + S / 2 + t * S;

		for (w = 0; w < 3; w++) {
			struct gmem_event d = { .ts_ns = ts, .kind = GMEM_EV_KVM_STAT_DESC, .sub = w,
						.result = 1 /* instant */ };

			kvmstats__pack_name(&d, mix[w], 0);
			all[m++] = d;
			all[m++] = (struct gmem_event){ .ts_ns = ts, .kind = GMEM_EV_KVM_STAT,
							.vm = 4242, .sub = w, .a = v4242[t][w] };
			all[m++] = (struct gmem_event){ .ts_ns = ts, .kind = GMEM_EV_KVM_STAT,
							.vm = 4343, .sub = w, .a = w == 1 ? 2 : 0 };
		}
	}
	qsort(all, m, sizeof(*all), by_time);
	open_all(p);
	run(all, m, p, NPOL, NULL, &res);
	assert_int_equal(res.nr_kvm, 3);
	assert_int_equal(res.kvm[0].pages[1], 14);
	assert_int_equal(res.kvm[1].pages[0], 1024);
	assert_int_equal(res.kvm[2].pages[1], 12);
	j = whatif__json(&res);
	rm = json_object_get(j, "recorded_mapping");
	assert_true(json_is_object(rm));
	assert_int_equal(json_array_size(json_object_get(rm, "series")), 3);
	assert_int_equal(json_integer_value(json_object_get(json_object_get(rm, "pages_2m"),
							    "first")), 14);
	assert_int_equal(json_integer_value(json_object_get(json_object_get(rm, "pages_2m"),
							    "last")), 12);
	assert_int_equal(json_integer_value(json_object_get(json_object_get(rm, "pages_4k"),
							    "max")), 1024);
	want = 12.0 * 512 / (1024 + 12.0 * 512);
	assert_true(fabs(json_real_value(json_object_get(rm, "huge_final")) - want) < 1e-9);
	want = (1.0 + 2 * want) / 3;
	assert_true(fabs(json_real_value(json_object_get(rm, "huge_avg")) - want) < 1e-9);
	json_decref(j);
	f = open_memstream(&text, &len);
	whatif__print(f, &res);
	fclose(f);
	assert_non_null(strstr(text, "KVM (rec.)"));
	assert_non_null(strstr(text, "KVM's mapping (recorded, pages)"));
	assert_non_null(strstr(text, "85.7%")); /* 6144 of 7168 at the end */
	free(text);
	whatif__result_free(&res);

	/* the same stream without the samples: no KVM column, null in JSON */
	run(ev, n, p, NPOL, NULL, &res);
	assert_int_equal(res.nr_kvm, 0);
	j = whatif__json(&res);
	assert_true(json_is_null(json_object_get(j, "recorded_mapping")));
	json_decref(j);
	text = NULL;
	f = open_memstream(&text, &len);
	whatif__print(f, &res);
	fclose(f);
	assert_null(strstr(text, "KVM (rec.)"));
	free(text);
	whatif__result_free(&res);
	close_all(p);
	free(all);
	free(ev);
}

/* Raw records from an fd: whole records pass, a torn one at the end is an error. */
static void test_fd_source(void **state)
{
	struct gmem_event in[3] = { { .kind = 1, .ts_ns = 1 }, { .kind = 6, .ts_ns = 2 },
				    { .kind = 99, .ts_ns = 3 } }, out;
	struct whatif_fd *r = calloc(1, sizeof(*r));
	int fds[2];

	assert_int_equal(pipe(fds), 0);
	assert_int_equal(write(fds[1], in, sizeof(in)), sizeof(in));
	assert_int_equal(write(fds[1], in, 10), 10);
	close(fds[1]);
	r->fd = fds[0];
	assert_int_equal(whatif__next_fd(r, &out), 1);
	assert_int_equal(out.kind, 1);
	assert_int_equal(whatif__next_fd(r, &out), 1);
	assert_int_equal(whatif__next_fd(r, &out), 1);
	assert_int_equal(out.kind, 99); /* unknown kinds pass through; the model skips them */
	assert_int_equal(whatif__next_fd(r, &out), -EPROTO);
	close(fds[0]);
	free(r);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_hand_computed),
		cmocka_unit_test(test_selftest_stream_shape),
		cmocka_unit_test(test_policies_behave_as_their_idea_says),
		cmocka_unit_test(test_continuous_churn_trade_off),
		cmocka_unit_test(test_bad_policy_in_replay),
		cmocka_unit_test(test_renderings),
		cmocka_unit_test(test_fd_source),
		cmocka_unit_test(test_recorded_mapping_beside_coverage),
	};

	libbpf_set_print(NULL);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
