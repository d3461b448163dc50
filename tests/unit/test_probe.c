// SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause
/*
 * Unit tests for the tier decision (src/probe.c) on made-up kernels: this machine's (fentry
 * refused), a kernel that permits fentry and has every function, one without tracefs, one
 * with SNP only; and for the DirectMap parser the source uses.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "probe.h"
#include "source.h"

struct fake {
	const char *const *funcs; /* NULL-terminated; NULL list = none */
	bool all_funcs;
	bool tracefs;
	bool tp_btf;
	bool iters;
};

static bool in_list(const char *const *l, const char *s)
{
	for (; l && *l; l++)
		if (!strcmp(*l, s))
			return true;
	return false;
}

static bool f_func(void *ctx, const char *n)
{
	struct fake *f = ctx;

	return f->all_funcs || in_list(f->funcs, n);
}

static bool f_tp_btf(void *ctx, const char *n)
{
	return ((struct fake *)ctx)->tp_btf && strcmp(n, "kvm_rmp_fault");
}

static bool f_tracefs(void *ctx, const char *n)
{
	return ((struct fake *)ctx)->tracefs;
}

static bool f_iter(void *ctx, const char *n)
{
	return ((struct fake *)ctx)->iters;
}

static struct probe_facts facts_for(struct fake *f, bool fentry, const char *why)
{
	return (struct probe_facts){ .ctx = f, .has_func = f_func, .has_tp_btf = f_tp_btf,
				     .has_tracefs = f_tracefs, .has_iter = f_iter,
				     .fentry_permitted = fentry, .fentry_reason = why };
}

static const struct probe_row *row(struct probe_table *t, const char *ev)
{
	const struct probe_row *r = probe__row(t, ev);

	assert_non_null(r);
	return r;
}

/* This machine: every tracepoint, iterators, some gmem functions, fentry refused (EPERM). */
static void test_fentry_refused_falls_back_to_tracepoints(void **state)
{
	static const char *const funcs[] = { "kvm_gmem_get_pfn", "kvm_gmem_release",
					     "kvm_gmem_create", "kvm_gmem_bind", NULL };
	struct fake f = { .funcs = funcs, .tracefs = true, .tp_btf = true, .iters = true };
	struct probe_facts facts = facts_for(&f, false, "loading an fentry program: Operation "
						       "not permitted");
	struct probe_table t;

	probe__decide(&facts, &t);
	assert_false(t.fentry_permitted);
	assert_int_equal(row(&t, "create")->tier, TIER_TRACEPOINT);
	assert_int_equal(row(&t, "create")->state, PROBE_LIVE);
	assert_non_null(strstr(row(&t, "create")->other_reason,
			       "fentry not permitted by this kernel (loading an fentry program: "
			       "Operation not permitted)"));
	assert_int_equal(row(&t, "release")->tier, TIER_TRACEPOINT);
	/* fentry-only events are unavailable, and say why */
	assert_int_equal(row(&t, "fault")->state, PROBE_UNAVAILABLE);
	assert_non_null(strstr(row(&t, "fault")->reason, "fentry not permitted"));
	assert_int_equal(row(&t, "tdx")->state, PROBE_UNAVAILABLE);
	/* the tracepoint programs are wanted, fentry programs are not */
	assert_true(probe__want_prog(&facts, &t, "handle_folio_add", TIER_TRACEPOINT));
	assert_true(probe__want_prog(&facts, &t, "handle_ioctl_enter", TIER_TRACEPOINT));
	assert_false(probe__want_prog(&facts, &t, "handle_gmem_release", TIER_FENTRY));
	/* kvm_rmp_fault is absent from this fake's BTF */
	assert_int_equal(row(&t, "rmp")->state, PROBE_UNAVAILABLE);
	assert_non_null(strstr(row(&t, "rmp")->reason, "kvm_rmp_fault not in this kernel"));
	assert_false(probe__want_prog(&facts, &t, "handle_rmp_fault", TIER_TRACEPOINT));
}

/* A kernel that permits fentry and has everything: fentry wins where it has a source,
 * shared tracepoint programs stay, exclusive ones become redundant. */
static void test_fentry_preferred_when_permitted(void **state)
{
	struct fake f = { .all_funcs = true, .tracefs = true, .tp_btf = true, .iters = true };
	struct probe_facts facts = facts_for(&f, true, NULL);
	struct probe_table t;

	probe__decide(&facts, &t);
	assert_int_equal(row(&t, "release")->tier, TIER_FENTRY);
	assert_int_equal(row(&t, "fault")->tier, TIER_FENTRY);
	assert_int_equal(row(&t, "tdx")->tier, TIER_FENTRY);
	assert_int_equal(row(&t, "hugepage_split")->tier, TIER_FENTRY);
	/* allocation sources and conversions from KVM_RUN and the VM ioctls themselves */
	assert_int_equal(row(&t, "page_alloc")->tier, TIER_FENTRY);
	assert_int_equal(row(&t, "conversion")->tier, TIER_FENTRY);
	/* frees: the page-cache folio hook, with the punch context from kvm_gmem_fallocate */
	assert_int_equal(row(&t, "free_folio")->tier, TIER_FENTRY);
	assert_string_equal(row(&t, "release")->other_reason, "available, not needed");
	/* so no syscall tracepoint is wanted at all, and no program runs on the host's other
	 * ioctls, closes or fallocates; the folio hook stays, listed by page_alloc's set */
	assert_false(probe__want_prog(&facts, &t, "handle_ioctl_enter", TIER_TRACEPOINT));
	assert_false(probe__want_prog(&facts, &t, "handle_ioctl_exit", TIER_TRACEPOINT));
	assert_false(probe__want_prog(&facts, &t, "handle_fallocate_enter", TIER_TRACEPOINT));
	assert_false(probe__want_prog(&facts, &t, "handle_close_enter", TIER_TRACEPOINT));
	assert_true(probe__want_prog(&facts, &t, "handle_folio_add", TIER_FENTRY));
	assert_true(probe__want_prog(&facts, &t, "handle_folio_delete", TIER_FENTRY));
	/* the folio hooks are the tracepoint object's: when one fails, so do the fentry rows
	 * that list it, and the tracepoint rows; the rest of the fentry tier stays live */
	probe__mark_failed(&t, "handle_folio_delete", TIER_TRACEPOINT, "attach failed: EBUSY");
	assert_int_equal(row(&t, "free_folio")->state, PROBE_FAILED);
	assert_int_equal(row(&t, "direct_map_secretmem")->state, PROBE_FAILED);
	assert_int_equal(row(&t, "page_alloc")->state, PROBE_LIVE);
	assert_int_equal(row(&t, "punch_hole")->state, PROBE_LIVE);
	/* an fentry program's failure is matched by tier: a tracepoint row never lists one */
	probe__mark_failed(&t, "handle_gmem_fallocate_entry", TIER_FENTRY, "x");
	assert_int_equal(row(&t, "punch_hole")->state, PROBE_FAILED);
	assert_int_equal(row(&t, "page_alloc")->state, PROBE_FAILED);
	assert_true(probe__want_prog(&facts, &t, "handle_vm_ioctl_entry", TIER_FENTRY));
	assert_true(probe__want_prog(&facts, &t, "handle_gmem_populate_entry", TIER_FENTRY));
	/* the scan iterators still discover files, even with release on fentry */
	assert_true(probe__want_prog(&facts, &t, "scan_files", TIER_TRACEPOINT));
	/* the mmu split tracepoint is only for hugepage_split, now served by fentry */
	assert_false(probe__want_prog(&facts, &t, "handle_mmu_split", TIER_TRACEPOINT));
	assert_true(probe__want_prog(&facts, &t, "handle_gmem_split", TIER_FENTRY));
	assert_true(probe__want_prog(&facts, &t, "handle_tdx_page_aug", TIER_FENTRY));
}

/* A kernel whose kvm_vm_ioctl has no BTF (or one that moved bind, as 7.3 did): conversion
 * stays on the ioctl tracepoints, which then serve it whole; page_alloc needs no VM ioctl. */
static void test_fentry_without_vm_ioctl_keeps_the_ioctl_hooks(void **state)
{
	static const char *const funcs[] = { "kvm_gmem_get_pfn", "kvm_gmem_release",
					     "kvm_gmem_create", "kvm_gmem_fallocate",
					     "kvm_arch_vcpu_ioctl_run", NULL };
	struct fake f = { .funcs = funcs, .tracefs = true, .tp_btf = true, .iters = true };
	struct probe_facts facts = facts_for(&f, true, NULL);
	struct probe_table t;

	probe__decide(&facts, &t);
	assert_int_equal(row(&t, "create")->tier, TIER_FENTRY);
	assert_int_equal(row(&t, "bind")->tier, TIER_TRACEPOINT);
	assert_int_equal(row(&t, "page_alloc")->tier, TIER_FENTRY);
	assert_int_equal(row(&t, "conversion")->tier, TIER_TRACEPOINT);
	assert_true(probe__want_prog(&facts, &t, "handle_ioctl_enter", TIER_TRACEPOINT));
	assert_false(probe__want_prog(&facts, &t, "handle_vm_ioctl_entry", TIER_FENTRY));
}

/* Without tracefs, classic syscall tracepoints are gone: ioctl-based events are unavailable
 * on the tracepoint tier and name the missing tracepoint; tp_btf ones still work. */
static void test_no_tracefs(void **state)
{
	struct fake f = { .tracefs = false, .tp_btf = true, .iters = true };
	struct probe_facts facts = facts_for(&f, false, "EPERM");
	struct probe_table t;

	probe__decide(&facts, &t);
	assert_int_equal(row(&t, "create")->state, PROBE_UNAVAILABLE);
	assert_non_null(strstr(row(&t, "create")->reason,
			       "tracepoint syscalls/sys_enter_ioctl not in this kernel"));
	assert_int_equal(row(&t, "free_folio")->state, PROBE_LIVE);
	assert_int_equal(row(&t, "direct_map_secretmem")->state, PROBE_LIVE);
	/* release needs the iterators; the close hint is optional */
	assert_int_equal(row(&t, "release")->state, PROBE_LIVE);
	assert_false(probe__want_prog(&facts, &t, "handle_close_enter", TIER_TRACEPOINT));
}

/* An SNP host: only some RMP functions exist; the all-optional set is usable with one. */
static void test_optional_sets_need_one(void **state)
{
	static const char *const snp[] = { "rmp_make_private", NULL };
	struct fake f = { .funcs = snp, .tracefs = true, .tp_btf = true, .iters = true };
	struct probe_facts facts = facts_for(&f, true, NULL);
	struct probe_table t;

	probe__decide(&facts, &t);
	assert_int_equal(row(&t, "rmp")->tier, TIER_FENTRY);
	assert_true(probe__want_prog(&facts, &t, "handle_rmp_make_private", TIER_FENTRY));
	assert_false(probe__want_prog(&facts, &t, "handle_psmash", TIER_FENTRY));
	assert_int_equal(row(&t, "tdx")->state, PROBE_UNAVAILABLE);
	assert_non_null(strstr(row(&t, "tdx")->reason, "none of its 6 functions"));
	/* required functions missing: create falls back to the tracepoint tier */
	assert_int_equal(row(&t, "create")->tier, TIER_TRACEPOINT);
	assert_non_null(strstr(row(&t, "create")->other_reason,
			       "function kvm_gmem_create not in this kernel"));
}

static void test_mark_failed(void **state)
{
	struct fake f = { .tracefs = true, .tp_btf = true, .iters = true };
	struct probe_facts facts = facts_for(&f, false, "EPERM");
	struct probe_table t;

	probe__decide(&facts, &t);
	probe__mark_failed(&t, "handle_folio_delete", TIER_TRACEPOINT, "attach failed: EBUSY");
	assert_int_equal(row(&t, "free_folio")->state, PROBE_FAILED);
	assert_string_equal(row(&t, "free_folio")->reason, "handle_folio_delete: attach failed: "
							   "EBUSY");
	assert_int_equal(row(&t, "direct_map_secretmem")->state, PROBE_FAILED);
	assert_int_equal(row(&t, "create")->state, PROBE_LIVE);
	/* an optional program failing costs nothing */
	probe__mark_failed(&t, "handle_close_enter", TIER_TRACEPOINT, "x");
	assert_int_equal(row(&t, "release")->state, PROBE_LIVE);
	assert_string_equal(probe__state_str(PROBE_FAILED), "failed");
	assert_string_equal(probe__tier_str(TIER_FENTRY), "fentry");
}

static void test_parse_directmap(void **state)
{
	const char *meminfo = "MemTotal:       24590000 kB\n"
			      "DirectMap4k:      135168 kB\n"
			      "DirectMap2M:     3010560 kB\n"
			      "DirectMap1G:    24117248 kB\n";
	__u64 b[3];

	assert_int_equal(source__parse_directmap(meminfo, b), 0);
	assert_int_equal(b[0], 135168ull * 1024);
	assert_int_equal(b[1], 3010560ull * 1024);
	assert_int_equal(b[2], 24117248ull * 1024);
	/* a host without 1G direct map pages: the others still parse, 1G is 0 */
	assert_int_equal(source__parse_directmap("DirectMap4k: 4 kB\nDirectMap2M: 2048 kB\n", b), 0);
	assert_int_equal(b[0], 4096);
	assert_int_equal(b[2], 0);
	assert_int_equal(source__parse_directmap("MemTotal: 1 kB\n", b), -2 /* -ENOENT */);
}

static void test_parse_slab_active(void **state)
{
	const char *slabinfo =
		"slabinfo - version: 2.1\n"
		"# name            <active_objs> <num_objs> <objsize> <objperslab> ...\n"
		"kvm_gmem_inode_cache_x  99    100    768   21    4 : tunables    0    0    0\n"
		"kvm_gmem_inode_cache     6     21    768   21    4 : tunables    0    0    0\n"
		"kvm_vcpu               2      2  10112    3    8 : tunables    0    0    0\n";
	__u64 n = 0;

	assert_int_equal(source__parse_slab_active(slabinfo, "kvm_gmem_inode_cache", &n), 0);
	assert_int_equal(n, 6); /* not the longer name that starts the same */
	assert_int_equal(source__parse_slab_active(slabinfo, "kvm_vcpu", &n), 0);
	assert_int_equal(n, 2);
	assert_int_equal(source__parse_slab_active(slabinfo, "kvm_mmu_page_header", &n),
			 -2 /* -ENOENT */);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_fentry_refused_falls_back_to_tracepoints),
		cmocka_unit_test(test_fentry_preferred_when_permitted),
		cmocka_unit_test(test_fentry_without_vm_ioctl_keeps_the_ioctl_hooks),
		cmocka_unit_test(test_no_tracefs),
		cmocka_unit_test(test_optional_sets_need_one),
		cmocka_unit_test(test_mark_failed),
		cmocka_unit_test(test_parse_directmap),
		cmocka_unit_test(test_parse_slab_active),
	};

	return cmocka_run_group_tests_name("probe", tests, NULL, NULL);
}
