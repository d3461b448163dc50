// SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause
/*
 * Policy decisions, run for real: each shipped policy is loaded into this kernel and asked on
 * hand-built contexts through BPF_PROG_RUN, single and batched; the answers are checked against
 * what the policy's idea says. A deliberately bad policy checks clamping and counting, two
 * broken ones check that a failed load says why, and the struct_ops path is checked on a kernel
 * that does not register gmem_policy_ops (every kernel today).
 *
 * The BPF cases need root (CAP_BPF); without it they skip and say so.
 */
#include <errno.h>
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include <bpf/libbpf.h>

#include "policy.h"

#define MS 1000000ull

static char build_dir[PATH_MAX];

static const char *bpath(const char *rel)
{
	static char buf[4][PATH_MAX + 64];
	static int k;

	k = (k + 1) % 4;
	snprintf(buf[k], sizeof(buf[k]), "%s/%s", build_dir, rel);
	return buf[k];
}

static void need_root(void)
{
	if (geteuid() != 0) {
		print_message("needs root for BPF_PROG_RUN: skipped\n");
		skip();
	}
}

static struct policy *open_ok(const char *spec)
{
	struct policy_opts o = {};
	struct policy *p = NULL;
	char err[512] = "";
	int e;

	e = policy__open(&p, spec, &o, err, sizeof(err));
	if (e)
		print_message("policy__open(%s): %s\n", spec, err);
	assert_int_equal(e, 0);
	assert_non_null(p);
	return p;
}

static struct gmem_region_hist cold_hist(void)
{
	return (struct gmem_region_hist){
		.since_conv_ns = GMEM_HIST_NEVER, .since_punch_ns = GMEM_HIST_NEVER,
		.since_split_ns = GMEM_HIST_NEVER, .since_merge_ns = GMEM_HIST_NEVER,
		.window_ns = 1000 * MS,
	};
}

static int split(struct policy *p, __u32 order, __u32 cause, __u32 recent)
{
	struct gmem_split_ctx c = { .index = 512, .start = 600, .nr_pages = 1, .order = order,
				    .cause = cause, .hist = cold_hist() };
	struct policy_answer a;

	c.hist.recent_conversions = recent;
	assert_int_equal(policy__split(p, &c, &a), 0);
	assert_false(a.clamped);
	assert_false(a.error);
	return a.value;
}

static int merge(struct policy *p, __u64 since_conv, __u64 since_punch)
{
	struct gmem_merge_ctx c = { .index = 0, .order = 9, .folios = 10, .hist = cold_hist() };
	struct policy_answer a;

	c.hist.since_conv_ns = since_conv;
	c.hist.since_punch_ns = since_punch;
	assert_int_equal(policy__merge(p, &c, &a), 0);
	assert_false(a.clamped);
	return a.value;
}

static int alloc(struct policy *p, __u32 max_order, __u32 recent)
{
	struct gmem_alloc_ctx c = { .index = 5, .nr_pages = 1, .max_order = max_order,
				    .source = GMEM_SRC_GUEST_FAULT, .hist = cold_hist() };
	struct policy_answer a;

	c.hist.recent_conversions = recent;
	assert_int_equal(policy__alloc(p, &c, &a), 0);
	assert_false(a.clamped);
	return a.value;
}

/* ---- pure helpers ------------------------------------------------------------------------ */

static void test_clamp_rules(void **state)
{
	struct gmem_split_ctx s = { .order = 9 };
	struct gmem_alloc_ctx al = { .max_order = 4 };
	struct gmem_merge_ctx m = {};
	bool c;

	assert_int_equal(policy__clamp(GMEM_POLICY_SPLIT, &s, 8, &c), 8);
	assert_false(c);
	assert_int_equal(policy__clamp(GMEM_POLICY_SPLIT, &s, 9, &c), 8);
	assert_true(c);
	assert_int_equal(policy__clamp(GMEM_POLICY_SPLIT, &s, -1, &c), 0);
	assert_true(c);
	assert_int_equal(policy__clamp(GMEM_POLICY_ALLOC, &al, 4, &c), 4);
	assert_false(c);
	assert_int_equal(policy__clamp(GMEM_POLICY_ALLOC, &al, 9, &c), 4);
	assert_true(c);
	assert_int_equal(policy__clamp(GMEM_POLICY_MERGE, &m, GMEM_MERGE_NEVER, &c), -1);
	assert_false(c);
	assert_int_equal(policy__clamp(GMEM_POLICY_MERGE, &m, -2, &c), -1);
	assert_true(c);
	assert_int_equal(policy__clamp(GMEM_POLICY_MERGE, &m, GMEM_MERGE_MAX_DELAY_MS, &c),
			 GMEM_MERGE_MAX_DELAY_MS);
	assert_false(c);
	assert_int_equal(policy__clamp(GMEM_POLICY_MERGE, &m, INT32_MAX, &c),
			 GMEM_MERGE_MAX_DELAY_MS);
	assert_true(c);

	assert_string_equal(policy__slot_name(GMEM_POLICY_SPLIT, 0), "4k");
	assert_string_equal(policy__slot_name(GMEM_POLICY_SPLIT, 8), "1M");
	assert_string_equal(policy__slot_name(GMEM_POLICY_ALLOC, 9), "2M");
	assert_string_equal(policy__slot_name(GMEM_POLICY_ALLOC, 18), "1G");
	assert_int_equal(policy__decision_slot(GMEM_POLICY_MERGE, 0), POLICY_MERGE_NOW);
	assert_int_equal(policy__decision_slot(GMEM_POLICY_MERGE, 5), POLICY_MERGE_DELAY);
	assert_int_equal(policy__decision_slot(GMEM_POLICY_MERGE, -1), POLICY_MERGE_NEVER);
	assert_string_equal(policy__slot_name(GMEM_POLICY_MERGE, POLICY_MERGE_DELAY), "delay");
	assert_int_equal(policy__cb_parse("alloc"), GMEM_POLICY_ALLOC);
	assert_int_equal(policy__cb_parse("alloc_order"), GMEM_POLICY_ALLOC);
	assert_int_equal(policy__cb_parse("nope"), -1);
	/* the ABI: fixed sizes, 8-byte multiples, so a kernel could share them verbatim */
	assert_int_equal(sizeof(struct gmem_region_hist), 96);
	assert_int_equal(sizeof(struct gmem_split_ctx), 160);
	assert_int_equal(sizeof(struct gmem_merge_ctx), 144);
	assert_int_equal(sizeof(struct gmem_alloc_ctx), 144);
}

static void test_resolve(void **state)
{
	char path[PATH_MAX], err[512];

	assert_int_equal(policy__resolve("buddy", path, sizeof(path), err, sizeof(err)), 0);
	assert_non_null(strstr(path, "/bpf/policies/buddy.bpf.o"));
	assert_int_equal(policy__resolve("nosuch", path, sizeof(path), err, sizeof(err)),
			 -ENOENT);
	assert_non_null(strstr(err, "no policy 'nosuch' (looked in"));
	assert_int_equal(policy__resolve("Bad Name", path, sizeof(path), err, sizeof(err)),
			 -EINVAL);
	assert_non_null(strstr(err, "neither a policy name"));
	assert_int_equal(policy__resolve("/nonexistent/x.bpf.o", path, sizeof(path), err,
					 sizeof(err)), -ENOENT);
	assert_non_null(strstr(err, "No such file"));
}

/* ---- the shipped policies, in the kernel's BPF VM ----------------------------------------- */

static void test_split4k(void **state)
{
	struct policy *p;
	const char *why;

	need_root();
	p = open_ok("split4k");
	assert_string_equal(policy__name(p), "split4k");
	assert_int_equal(split(p, 9, GMEM_SPLIT_CONVERT, 0), 0);
	assert_int_equal(split(p, 9, GMEM_SPLIT_PUNCH, 5), 0);
	assert_int_equal(split(p, 18, GMEM_SPLIT_INVALIDATE, 0), 0);
	assert_int_equal(merge(p, 0, 0), GMEM_MERGE_NEVER);
	assert_int_equal(merge(p, GMEM_HIST_NEVER, GMEM_HIST_NEVER), GMEM_MERGE_NEVER);
	assert_int_equal(alloc(p, 9, 0), 9);
	assert_int_equal(alloc(p, 3, 7), 3);
	assert_int_equal(policy__struct_ops(p, &why), POLICY_SO_NOT_REGISTERED);
	assert_non_null(strstr(why, "not registered by this kernel"));
	assert_int_equal(policy__stats(p)->calls[GMEM_POLICY_SPLIT], 3);
	assert_int_equal(policy__stats(p)->decided[GMEM_POLICY_SPLIT][0], 3);
	assert_int_equal(policy__stats(p)->decided[GMEM_POLICY_MERGE][POLICY_MERGE_NEVER], 2);
	assert_int_equal(policy__stats(p)->decided[GMEM_POLICY_ALLOC][9], 1);
	assert_int_equal(policy__stats(p)->decided[GMEM_POLICY_ALLOC][3], 1);
	policy__close(p);
}

static void test_buddy(void **state)
{
	struct policy *p;

	need_root();
	p = open_ok("buddy");
	assert_string_equal(policy__name(p), "buddy");
	/* minimal: one order down, whatever the history */
	assert_int_equal(split(p, 9, GMEM_SPLIT_CONVERT, 0), 8);
	assert_int_equal(split(p, 9, GMEM_SPLIT_CONVERT, 9), 8);
	assert_int_equal(split(p, 1, GMEM_SPLIT_PUNCH, 0), 0);
	assert_int_equal(split(p, 18, GMEM_SPLIT_PUNCH, 0), 17);
	/* merge after 100 ms of quiet, counted from the later of conversion and punch */
	assert_int_equal(merge(p, 0, GMEM_HIST_NEVER), 100);
	assert_int_equal(merge(p, 40 * MS, GMEM_HIST_NEVER), 60);
	assert_int_equal(merge(p, 40 * MS + 1, GMEM_HIST_NEVER), 60); /* rounded up */
	assert_int_equal(merge(p, 500 * MS, 30 * MS), 70);
	assert_int_equal(merge(p, 100 * MS, GMEM_HIST_NEVER), GMEM_MERGE_NOW);
	assert_int_equal(merge(p, GMEM_HIST_NEVER, GMEM_HIST_NEVER), GMEM_MERGE_NOW);
	assert_int_equal(alloc(p, 9, 5), 9);
	assert_int_equal(alloc(p, 0, 0), 0);
	policy__close(p);
}

static void test_churn(void **state)
{
	struct policy *p;

	need_root();
	p = open_ok("churn");
	assert_string_equal(policy__name(p), "churn");
	/* cold (fewer than 2 conversions in the window): minimal split, largest allocation */
	assert_int_equal(split(p, 9, GMEM_SPLIT_CONVERT, 0), 8);
	assert_int_equal(split(p, 9, GMEM_SPLIT_CONVERT, 1), 8);
	assert_int_equal(alloc(p, 9, 1), 9);
	/* hot: straight to 4 KiB, and allocate 4 KiB, unless the whole region is free */
	assert_int_equal(split(p, 9, GMEM_SPLIT_CONVERT, 2), 0);
	assert_int_equal(split(p, 4, GMEM_SPLIT_PUNCH, 16), 0);
	assert_int_equal(alloc(p, 8, 2), 0);
	assert_int_equal(alloc(p, 1, 5), 0);
	assert_int_equal(alloc(p, 9, 2), 9);
	assert_int_equal(alloc(p, 18, 2), 18);
	/* merge once quiet for 1 s */
	assert_int_equal(merge(p, 0, GMEM_HIST_NEVER), 1000);
	assert_int_equal(merge(p, 300 * MS, 100 * MS), 900);
	assert_int_equal(merge(p, 1500 * MS, GMEM_HIST_NEVER), GMEM_MERGE_NOW);
	assert_int_equal(merge(p, GMEM_HIST_NEVER, GMEM_HIST_NEVER), GMEM_MERGE_NOW);
	policy__close(p);
}

/* The batch program answers exactly what single runs answer, in fewer runs. */
static void test_batch_matches_single(void **state)
{
	enum { N = 150 };
	static struct gmem_split_ctx s[N];
	static struct gmem_merge_ctx m[N];
	static struct gmem_alloc_ctx al[N];
	struct policy_answer a[N], one;
	struct policy *p;
	__u64 runs;
	int i;

	need_root();
	p = open_ok("churn");
	for (i = 0; i < N; i++) {
		s[i] = (struct gmem_split_ctx){ .order = 1 + i % 18, .hist = cold_hist() };
		s[i].hist.recent_conversions = i % 3;
		m[i] = (struct gmem_merge_ctx){ .order = 9, .folios = 2, .hist = cold_hist() };
		m[i].hist.since_conv_ns = (__u64)i * 10 * MS;
		al[i] = (struct gmem_alloc_ctx){ .max_order = i % 10, .hist = cold_hist() };
		al[i].hist.recent_conversions = i % 4;
	}
	runs = policy__stats(p)->runs;
	assert_int_equal(policy__batch(p, GMEM_POLICY_SPLIT, s, N, a), 0);
	assert_int_equal(policy__stats(p)->runs - runs, 3); /* 64 + 64 + 22 */
	for (i = 0; i < N; i++) {
		assert_int_equal(policy__split(p, &s[i], &one), 0);
		assert_int_equal(a[i].value, one.value);
		assert_int_equal(a[i].value, s[i].hist.recent_conversions >= 2 ? 0 :
					     (int)s[i].order - 1);
	}
	assert_int_equal(policy__batch(p, GMEM_POLICY_MERGE, m, N, a), 0);
	for (i = 0; i < N; i++) {
		assert_int_equal(policy__merge(p, &m[i], &one), 0);
		assert_int_equal(a[i].value, one.value);
		assert_int_equal(a[i].value, i * 10 >= 1000 ? 0 : 1000 - i * 10);
	}
	assert_int_equal(policy__batch(p, GMEM_POLICY_ALLOC, al, N, a), 0);
	for (i = 0; i < N; i++) {
		assert_int_equal(policy__alloc(p, &al[i], &one), 0);
		assert_int_equal(a[i].value, one.value);
		assert_int_equal(a[i].value, al[i].hist.recent_conversions >= 2 &&
							     al[i].max_order < 9 ? 0 :
							     (int)al[i].max_order);
	}
	policy__close(p);
}

/* ---- bad policies -------------------------------------------------------------------------- */

static void test_bad_answers_are_clamped_and_counted(void **state)
{
	struct gmem_split_ctx s = { .order = 9, .cause = GMEM_SPLIT_PUNCH };
	struct gmem_merge_ctx m = { .order = 9, .folios = 3 };
	struct gmem_alloc_ctx al = { .max_order = 5, .source = GMEM_SRC_FALLOCATE };
	const struct policy_stats *st;
	struct policy_answer a;
	struct policy *p;

	need_root();
	p = open_ok(bpath("tests/policies/test_bad.bpf.o"));
	assert_string_equal(policy__name(p), "test_bad");
	st = policy__stats(p);

	assert_int_equal(policy__split(p, &s, &a), 0);
	assert_int_equal(a.raw, 14);
	assert_int_equal(a.value, 8);
	assert_true(a.clamped);
	s.cause = GMEM_SPLIT_CONVERT;
	assert_int_equal(policy__split(p, &s, &a), 0);
	assert_int_equal(a.raw, -3);
	assert_int_equal(a.value, 0);
	assert_true(a.clamped);
	s.cause = GMEM_SPLIT_INVALIDATE; /* valid only because init ran first */
	assert_int_equal(policy__split(p, &s, &a), 0);
	assert_int_equal(a.raw, 0);
	assert_false(a.clamped);

	assert_int_equal(policy__merge(p, &m, &a), 0);
	assert_int_equal(a.raw, GMEM_MERGE_MAX_DELAY_MS + 1);
	assert_int_equal(a.value, GMEM_MERGE_MAX_DELAY_MS);
	assert_true(a.clamped);
	m.folios = 2;
	assert_int_equal(policy__merge(p, &m, &a), 0);
	assert_int_equal(a.raw, -7);
	assert_int_equal(a.value, GMEM_MERGE_NEVER);

	assert_int_equal(policy__alloc(p, &al, &a), 0);
	assert_int_equal(a.raw, 8);
	assert_int_equal(a.value, 5);
	assert_true(a.clamped);
	al.source = GMEM_SRC_GUEST_FAULT;
	assert_int_equal(policy__alloc(p, &al, &a), 0);
	assert_int_equal(a.raw, -1);
	assert_int_equal(a.value, 0);
	assert_true(a.clamped);

	assert_int_equal(st->calls[GMEM_POLICY_SPLIT], 3);
	assert_int_equal(st->clamped[GMEM_POLICY_SPLIT], 2);
	assert_int_equal(st->clamped[GMEM_POLICY_MERGE], 2);
	assert_int_equal(st->clamped[GMEM_POLICY_ALLOC], 2);
	assert_int_equal(st->errors[GMEM_POLICY_SPLIT], 0);
	/* decisions are counted by the clamped answer */
	assert_int_equal(st->decided[GMEM_POLICY_SPLIT][8], 1);
	assert_int_equal(st->decided[GMEM_POLICY_SPLIT][0], 2);
	assert_int_equal(st->decided[GMEM_POLICY_MERGE][POLICY_MERGE_DELAY], 1);
	assert_int_equal(st->decided[GMEM_POLICY_MERGE][POLICY_MERGE_NEVER], 1);
	policy__close(p);
}

static void expect_open_fails(const char *spec, int want_err, const char *const *needles)
{
	struct policy *p = (struct policy *)1;
	char err[1024] = "";
	int e;

	e = policy__open(&p, spec, NULL, err, sizeof(err));
	print_message("  %s -> %d: %s\n", spec, e, err);
	assert_int_equal(e, want_err);
	assert_null(p);
	for (; *needles; needles++)
		assert_non_null(strstr(err, *needles));
}

static void test_broken_policies_say_why(void **state)
{
	static const char *const unverif[] = { "cannot load policy", "the verifier rejected",
					       "gmem_split", "map_value_or_null", NULL };
	static const char *const initfail[] = { "test_initfail", "init refused, returning -22",
						NULL };
	static const char *const notpolicy[] = { "is not a gmemscope policy", NULL };
	static const char *const missing[] = { "no policy 'nosuch'", NULL };

	need_root();
	expect_open_fails(bpath("tests/policies/test_unverifiable.bpf.o"), -EACCES, unverif);
	expect_open_fails(bpath("tests/policies/test_initfail.bpf.o"), -ECANCELED, initfail);
	expect_open_fails(bpath("bpf/gmem_scan.bpf.o"), -EINVAL, notpolicy);
	expect_open_fails("nosuch", -ENOENT, missing);
}

/* ---- struct_ops -------------------------------------------------------------------------- */

/* The struct_ops form is a real struct_ops map of type gmem_policy_ops. */
static void test_struct_ops_object(void **state)
{
	static const char *const progs[] = { "gmem_so_split", "gmem_so_merge", "gmem_so_alloc",
					     "gmem_so_init", "gmem_so_exit" };
	struct bpf_object *obj;
	struct bpf_map *map;
	unsigned int i;

	obj = bpf_object__open_file(bpath("bpf/policies/buddy.struct_ops.bpf.o"), NULL);
	assert_non_null(obj);
	map = bpf_object__find_map_by_name(obj, "buddy_ops");
	assert_non_null(map);
	assert_int_equal(bpf_map__type(map), BPF_MAP_TYPE_STRUCT_OPS);
	for (i = 0; i < sizeof(progs) / sizeof(progs[0]); i++) {
		struct bpf_program *pr = bpf_object__find_program_by_name(obj, progs[i]);

		assert_non_null(pr);
		assert_int_equal(bpf_program__type(pr), BPF_PROG_TYPE_STRUCT_OPS);
	}
	/* and no syscall programs: the two forms never share an object */
	assert_null(bpf_object__find_program_by_name(obj, "gmem_split"));
	bpf_object__close(obj);
}

/*
 * On this kernel: "not registered" and the syscall path works. Pointing the BTF check at a
 * BTF that does have the type (the struct_ops object's own) makes the loader try for real:
 * libbpf then fails against the running kernel, which must be reported, and the syscall path
 * must still work.
 */
static void test_struct_ops_fallback(void **state)
{
	struct policy_opts o = { .btf_path = bpath("bpf/policies/buddy.struct_ops.bpf.o") };
	struct policy *p = NULL;
	char err[512] = "";
	const char *why;

	need_root();
	p = open_ok("buddy");
	assert_int_equal(policy__struct_ops(p, &why), POLICY_SO_NOT_REGISTERED);
	assert_string_equal(why, "not registered by this kernel (no struct gmem_policy_ops in "
				 "kernel BTF); decisions run through BPF_PROG_RUN");
	assert_int_equal(split(p, 9, GMEM_SPLIT_CONVERT, 0), 8);
	policy__close(p);

	assert_int_equal(policy__open(&p, "buddy", &o, err, sizeof(err)), 0);
	assert_int_equal(policy__struct_ops(p, &why), POLICY_SO_FAILED);
	print_message("  struct_ops with a BTF that has the type: %s\n", why);
	assert_non_null(strstr(why, "buddy.struct_ops.bpf.o"));
	assert_non_null(strstr(why, "gmem_policy_ops is not found in kernel BTF"));
	assert_non_null(strstr(why, "decisions run through BPF_PROG_RUN"));
	assert_int_equal(split(p, 9, GMEM_SPLIT_CONVERT, 0), 8);
	policy__close(p);

	o.btf_path = "/nonexistent/btf";
	assert_int_equal(policy__open(&p, "buddy", &o, err, sizeof(err)), 0);
	assert_int_equal(policy__struct_ops(p, &why), POLICY_SO_NOT_REGISTERED);
	assert_non_null(strstr(why, "cannot read kernel BTF"));
	policy__close(p);

	o = (struct policy_opts){ .no_struct_ops = true };
	assert_int_equal(policy__open(&p, "churn", &o, err, sizeof(err)), 0);
	assert_int_equal(policy__struct_ops(p, &why), POLICY_SO_DISABLED);
	policy__close(p);
}

static int setup_paths(void)
{
	char exe[PATH_MAX], *slash;
	ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);

	if (n <= 0)
		return -1;
	exe[n] = 0;
	slash = strrchr(exe, '/'); /* build/tests/test_policy -> build */
	if (!slash)
		return -1;
	*slash = 0;
	slash = strrchr(exe, '/');
	if (!slash)
		return -1;
	*slash = 0;
	snprintf(build_dir, sizeof(build_dir), "%s", exe);
	return 0;
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_clamp_rules),
		cmocka_unit_test(test_resolve),
		cmocka_unit_test(test_split4k),
		cmocka_unit_test(test_buddy),
		cmocka_unit_test(test_churn),
		cmocka_unit_test(test_batch_matches_single),
		cmocka_unit_test(test_bad_answers_are_clamped_and_counted),
		cmocka_unit_test(test_broken_policies_say_why),
		cmocka_unit_test(test_struct_ops_object),
		cmocka_unit_test(test_struct_ops_fallback),
	};

	if (setup_paths())
		return 1;
	libbpf_set_print(NULL);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
