// SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause
/*
 * The huge-page model on small hand-computed traces (CONSTRUCTED: mainline guest_memfd has no
 * huge folios and this kernel no conversions). Deciders are plain C here, so every split,
 * merge, folio order, coverage figure and history field is checked exactly against numbers
 * worked out by hand in the comments; BPF policies drive the same model in test_policy_whatif.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "hugemodel.h"

#define MS  1000000ull
#define S   1000000000ull
#define K4  4096ull
#define M2  (2ull << 20)
#define INO 7
#define VM  100
#define GPA 0x100000000ull

#define EV(...) (&(struct gmem_event){ __VA_ARGS__ })
#define APPLY(m, ...) assert_int_equal(hugemodel__apply(m, EV(__VA_ARGS__)), 0)

enum { MINIMAL = -100, MAXFIT = -100 };

struct tdec {
	int split;  /* MINIMAL: order - 1; else this */
	int merge;  /* the answer */
	int alloc;  /* MAXFIT: max_order; else this */
	unsigned int nsplit, nmerge, nalloc;
	struct gmem_split_ctx ls;
	struct gmem_merge_ctx lm;
	struct gmem_alloc_ctx la;
};

static int t_split(void *ctx, const struct gmem_split_ctx *c)
{
	struct tdec *d = ctx;

	d->nsplit++;
	d->ls = *c;
	return d->split == MINIMAL ? (int)c->order - 1 : d->split;
}

static int t_merge(void *ctx, const struct gmem_merge_ctx *c)
{
	struct tdec *d = ctx;

	d->nmerge++;
	d->lm = *c;
	return d->merge;
}

static int t_alloc(void *ctx, const struct gmem_alloc_ctx *c)
{
	struct tdec *d = ctx;

	d->nalloc++;
	d->la = *c;
	return d->alloc == MAXFIT ? (int)c->max_order : d->alloc;
}

static struct hugemodel *new_model(struct tdec *d, __u32 max_order, __u64 sample_ns)
{
	struct hugemodel_opts o = { .max_order = max_order, .sample_ns = sample_ns };
	struct hm_decider dec = { t_split, t_merge, t_alloc, d };
	struct hugemodel *m = hugemodel__new(&o, &dec);

	assert_non_null(m);
	return m;
}

/* A 2 MiB file (flags as given) bound at GPA, slot 0. */
static void file2m(struct hugemodel *m, __u64 ts, __u64 flags)
{
	APPLY(m, .kind = GMEM_EV_FILE_CREATE, .ts_ns = ts, .vm = VM, .ino = INO, .a = M2,
	      .b = flags);
	APPLY(m, .kind = GMEM_EV_BIND, .ts_ns = ts, .vm = VM, .ino = INO, .a = GPA, .b = M2);
}

static void conv(struct hugemodel *m, __u64 ts, __u64 page, __u64 pages, __u32 to)
{
	APPLY(m, .kind = GMEM_EV_CONV_ATTR, .ts_ns = ts, .vm = VM, .a = GPA + page * K4,
	      .b = pages * K4, .sub = to);
}

static void punch(struct hugemodel *m, __u64 ts, __u64 page, __u64 pages)
{
	APPLY(m, .kind = GMEM_EV_PUNCH_HOLE, .ts_ns = ts, .vm = VM, .ino = INO, .a = page * K4,
	      .b = pages * K4);
}

static void fault(struct hugemodel *m, __u64 ts, __u64 page)
{
	APPLY(m, .kind = GMEM_EV_PAGE_ALLOC, .ts_ns = ts, .vm = VM, .ino = INO, .a = page, .b = 1,
	      .sub = GMEM_SRC_GUEST_FAULT);
}

/* Checks that pages [first, first + n) all sit in folios of the given order. */
static void expect_orders(struct hugemodel *m, __u64 first, __u64 n, __u8 order)
{
	__u8 o[512];
	__u64 i;

	assert_true(n <= 512);
	assert_int_equal(hugemodel__orders(m, INO, first, n, o), 0);
	for (i = 0; i < n; i++) {
		if (o[i] != order)
			print_message("page %llu: order %u, want %u\n",
				      (unsigned long long)(first + i), o[i], order);
		assert_int_equal(o[i], order);
	}
}

/* The minimal split of an order-9 folio around [0, 2): [2,4) o1, [4,8) o2 ... [256,512) o8. */
static void expect_buddy_tail(struct hugemodel *m, unsigned int from)
{
	unsigned int k;

	for (k = from; k < 9; k++)
		expect_orders(m, 1u << k, 1u << k, k);
}

static void test_alloc_then_punch_minimal(void **state)
{
	struct tdec d = { .split = MINIMAL, .merge = GMEM_MERGE_NEVER, .alloc = MAXFIT };
	struct hugemodel *m = new_model(&d, 0, 0);
	const struct hugemodel_stats *st;

	file2m(m, 0, HM_FLAG_INIT_SHARED);
	fault(m, 1, 5);
	/* one decision: page 5, nothing around it, the whole 2 MiB fits */
	assert_int_equal(d.nalloc, 1);
	assert_int_equal(d.la.index, 5);
	assert_int_equal(d.la.max_order, 9);
	assert_int_equal(d.la.nr_pages, 1);
	assert_int_equal(d.la.source, GMEM_SRC_GUEST_FAULT);
	assert_true(d.la.flags & GMEM_POLF_SHARED);
	assert_int_equal(d.la.hist.populated_pages, 0);
	assert_int_equal(d.la.hist.shared_pages, 512);
	expect_orders(m, 0, 512, 9);
	/* more faults in the folio ask nothing */
	fault(m, 2, 6);
	fault(m, 3, 400);
	assert_int_equal(d.nalloc, 1);

	punch(m, 4, 0, 2);
	assert_int_equal(d.nsplit, 1);
	assert_int_equal(d.ls.index, 0);
	assert_int_equal(d.ls.order, 9);
	assert_int_equal(d.ls.start, 0);
	assert_int_equal(d.ls.nr_pages, 2);
	assert_int_equal(d.ls.cause, GMEM_SPLIT_PUNCH);
	assert_int_equal(d.ls.hist.populated_pages, 512);
	assert_int_equal(d.ls.hist.huge_pages, 512);
	assert_int_equal(d.ls.hist.folios, 1);
	expect_orders(m, 0, 2, HM_NO_FOLIO);
	expect_orders(m, 2, 2, 1);
	expect_buddy_tail(m, 2);

	punch(m, 5, 2, 2); /* the order-1 folio, wholly inside: freed, nothing asked */
	assert_int_equal(d.nsplit, 1);
	punch(m, 6, 4, 1); /* [4,8) o2 partly: split to 1 -> [5] o0, [6,8) o1 */
	assert_int_equal(d.nsplit, 2);
	assert_int_equal(d.ls.order, 2);
	assert_int_equal(d.ls.index, 4);
	expect_orders(m, 4, 1, HM_NO_FOLIO);
	expect_orders(m, 5, 1, 0);
	expect_orders(m, 6, 2, 1);
	punch(m, 7, 6, 1); /* [6,8) o1 partly: only 0 is possible, so nobody is asked */
	assert_int_equal(d.nsplit, 2);
	expect_orders(m, 7, 1, 0);
	/* a fault where only 4k fits asks nothing either */
	fault(m, 8, 6);
	assert_int_equal(d.nalloc, 1);
	expect_orders(m, 6, 1, 0);

	/* a counted total names no page: the model places nothing for it */
	assert_int_equal(hugemodel__apply(m, &(struct gmem_event){ .ts_ns = 9, .kind =
					  GMEM_EV_PAGE_ALLOC, .vm = VM, .ino = INO, .b = 64, .c = 64,
					  .flags = GMEM_EVF_COUNTED }), 0);
	st = hugemodel__stats(m);
	assert_int_equal(st->populated_pages, 512 - 5);
	assert_int_equal(st->splits[9][8], 1);
	assert_int_equal(st->splits[2][1], 1);
	assert_int_equal(st->splits[1][0], 1);
	assert_int_equal(st->allocs[9], 1);
	assert_int_equal(st->allocs[0], 1);
	assert_int_equal(st->populated_pages, 512 - 5);
	assert_int_equal(st->huge_pages, 0);
	assert_int_equal(st->decisions[GMEM_POLICY_SPLIT], 2);
	assert_int_equal(st->decisions[GMEM_POLICY_ALLOC], 1);
	assert_int_equal(st->decisions[GMEM_POLICY_MERGE], 0);
	assert_int_equal(st->pingpongs, 0);
	hugemodel__free(m);
}

/* Coverage is weighted by time and size: 512 huge pages for 10 s, then 511 small ones for
 * 10 s: 5120 / (5120 + 5110). */
static void test_coverage_split4k(void **state)
{
	struct tdec d = { .split = 0, .merge = GMEM_MERGE_NEVER, .alloc = MAXFIT };
	struct hugemodel *m = new_model(&d, 0, 0);
	const struct hugemodel_stats *st;

	file2m(m, 0, 0);
	fault(m, 0, 0);
	punch(m, 10 * S, 0, 1);
	expect_orders(m, 1, 511, 0);
	hugemodel__tick(m, 20 * S);
	st = hugemodel__stats(m);
	assert_int_equal(st->splits[9][0], 1);
	assert_true(st->coverage_avg == 5120.0 / 10230.0);
	assert_true(st->coverage_final == 0.0);
	assert_int_equal(st->first_ts_ns, 0);
	assert_int_equal(st->last_ts_ns, 20 * S);
	assert_int_equal(st->peak_populated_pages, 512);
	hugemodel__free(m);
}

/* Convert page 1 of a private 2 MiB folio to shared and back: a split, then a merge, then a
 * split of the merged folio (one ping-pong). */
static void test_convert_split_merge_pingpong(void **state)
{
	struct tdec d = { .split = MINIMAL, .merge = GMEM_MERGE_NOW, .alloc = MAXFIT };
	struct hugemodel *m = new_model(&d, 0, 0);
	const struct hugemodel_stats *st;
	struct gmem_region_hist h;

	file2m(m, 0, 0);
	APPLY(m, .kind = GMEM_EV_FALLOCATE, .ts_ns = 1, .vm = VM, .ino = INO, .a = 0, .b = M2);
	assert_int_equal(d.nalloc, 1);
	assert_int_equal(d.la.source, GMEM_SRC_FALLOCATE);
	assert_int_equal(d.la.nr_pages, 512);
	assert_false(d.la.flags & GMEM_POLF_SHARED);
	expect_orders(m, 0, 512, 9);

	conv(m, 1 * S, 1, 1, GMEM_TO_SHARED);
	assert_int_equal(d.nsplit, 1);
	assert_int_equal(d.ls.cause, GMEM_SPLIT_CONVERT);
	assert_int_equal(d.ls.to, GMEM_TO_SHARED);
	assert_int_equal(d.ls.start, 1);
	assert_false(d.ls.flags & GMEM_POLF_SHARED); /* the folio's state before */
	assert_int_equal(d.ls.hist.conversions, 0);  /* history before this conversion */
	expect_orders(m, 0, 2, 0);
	expect_buddy_tail(m, 1);
	assert_int_equal(hugemodel__hist(m, INO, 0, 0, &h), 0);
	assert_int_equal(h.shared_pages, 1);
	assert_int_equal(h.conversions, 1);
	assert_int_equal(h.recent_conversions, 1);
	assert_int_equal(h.since_conv_ns, 0);
	assert_int_equal(h.splits, 1);
	assert_int_equal(h.folios, 10); /* [0] [1] [2,4) ... [256,512) */
	assert_int_equal(d.nmerge, 0);  /* mixed: nothing to merge */

	conv(m, 2 * S, 1, 1, GMEM_TO_PRIVATE);
	assert_int_equal(d.nsplit, 1); /* page 1's folio is wholly inside: no split */
	assert_int_equal(d.nmerge, 1);
	assert_int_equal(d.lm.index, 0);
	assert_int_equal(d.lm.order, 9);
	assert_int_equal(d.lm.folios, 10);
	assert_int_equal(d.lm.min_order, 0);
	assert_false(d.lm.flags & GMEM_POLF_SHARED);
	assert_int_equal(d.lm.hist.conversions, 2);
	assert_int_equal(d.lm.hist.recent_conversions, 1); /* 1 s ago is outside the window */
	expect_orders(m, 0, 512, 9);

	conv(m, 3 * S, 511, 1, GMEM_TO_SHARED);
	st = hugemodel__stats(m);
	assert_int_equal(st->splits[9][8], 2);
	assert_int_equal(st->merges[0][9], 1);
	assert_int_equal(st->merge_now, 1);
	assert_int_equal(st->pingpongs, 1);
	assert_int_equal(st->conversions, 3);
	expect_orders(m, 511, 1, 0);
	expect_orders(m, 0, 256, 8);
	hugemodel__free(m);
}

/* A delayed merge happens when due, unless the region is touched first. */
static void test_delayed_merge_and_cancel(void **state)
{
	struct tdec d = { .split = MINIMAL, .merge = 100, .alloc = MAXFIT };
	struct hugemodel *m = new_model(&d, 0, 0);
	const struct hugemodel_stats *st;

	file2m(m, 0, 0);
	APPLY(m, .kind = GMEM_EV_FALLOCATE, .ts_ns = 0, .vm = VM, .ino = INO, .a = 0, .b = M2);
	conv(m, 1 * S, 1, 1, GMEM_TO_SHARED);
	conv(m, 1 * S + 10 * MS, 1, 1, GMEM_TO_PRIVATE); /* merge due at 1.110 s */
	st = hugemodel__stats(m);
	assert_int_equal(st->merge_delayed, 1);
	assert_int_equal(st->pending_merges, 1);
	conv(m, 1 * S + 50 * MS, 300, 1, GMEM_TO_SHARED); /* touches the region: cancels it */
	conv(m, 1 * S + 60 * MS, 300, 1, GMEM_TO_PRIVATE); /* due at 1.160 s */
	hugemodel__tick(m, 1 * S + 159 * MS);
	st = hugemodel__stats(m);
	assert_int_equal(st->merges_cancelled, 1);
	assert_int_equal(st->merges[0][9], 0);
	assert_int_equal(st->pending_merges, 1);
	hugemodel__tick(m, 1 * S + 160 * MS);
	st = hugemodel__stats(m);
	assert_int_equal(st->merges[0][9], 1);
	assert_int_equal(st->pending_merges, 0);
	assert_int_equal(st->merge_delayed, 2);
	expect_orders(m, 0, 512, 9);
	/* a punch cancels too */
	conv(m, 2 * S, 1, 1, GMEM_TO_SHARED);
	conv(m, 2 * S + 1, 1, 1, GMEM_TO_PRIVATE);
	punch(m, 2 * S + 2, 100, 1);
	hugemodel__tick(m, 3 * S);
	st = hugemodel__stats(m);
	assert_int_equal(st->merges_cancelled, 2);
	assert_int_equal(st->merges[0][9], 1);
	assert_int_equal(st->pingpongs, 1);
	hugemodel__free(m);
}

/*
 * Allocation respects state and neighbours. Page 10 of a private file turns shared before any
 * page exists; a fault at 0 then fits [0,8) (order 3) at most. A fallocate of the whole file
 * asks once (at page 8: fit 1) and, the answer being "as large as fits", fills the rest with
 * the largest folios that fit: [8,10) o1, [10] o0, [11] o0, [12,16) o2, [16,32) o4 ...
 * [256,512) o8. Converting page 10 back makes the region uniform: one merge offer of 10 folios.
 */
static void test_alloc_fit(void **state)
{
	struct tdec d = { .split = MINIMAL, .merge = GMEM_MERGE_NEVER, .alloc = MAXFIT };
	struct hugemodel *m = new_model(&d, 0, 0);
	const struct hugemodel_stats *st;
	unsigned int k;

	file2m(m, 0, 0);
	conv(m, 1, 10, 1, GMEM_TO_SHARED);
	assert_int_equal(d.nsplit, 0);
	fault(m, 2, 0);
	assert_int_equal(d.la.max_order, 3);
	expect_orders(m, 0, 8, 3);
	APPLY(m, .kind = GMEM_EV_FALLOCATE, .ts_ns = 3, .vm = VM, .ino = INO, .a = 0, .b = M2);
	assert_int_equal(d.nalloc, 2);
	assert_int_equal(d.la.index, 8);
	assert_int_equal(d.la.max_order, 1);
	assert_int_equal(d.la.nr_pages, 504);
	expect_orders(m, 8, 2, 1);
	expect_orders(m, 10, 2, 0);
	expect_orders(m, 12, 4, 2);
	for (k = 4; k < 9; k++)
		expect_orders(m, 1u << k, 1u << k, k);
	assert_int_equal(d.nmerge, 0);
	conv(m, 4, 10, 1, GMEM_TO_PRIVATE);
	assert_int_equal(d.nmerge, 1);
	assert_int_equal(d.lm.folios, 10);
	assert_int_equal(d.lm.min_order, 0);
	st = hugemodel__stats(m);
	assert_int_equal(st->merge_never, 1);
	assert_int_equal(st->allocs[3], 1);
	assert_int_equal(st->allocs[0], 2);
	assert_int_equal(st->populated_pages, 512);

	/* a fault answered below the fit caps the rest of the request */
	d.alloc = 0;
	punch(m, 5, 0, 512);
	assert_int_equal(hugemodel__stats(m)->populated_pages, 0);
	APPLY(m, .kind = GMEM_EV_PAGE_ALLOC, .ts_ns = 6, .vm = VM, .ino = INO, .a = 0, .b = 4,
	      .sub = GMEM_SRC_USER_FAULT);
	assert_int_equal(d.nalloc, 3);
	expect_orders(m, 0, 4, 0);
	expect_orders(m, 4, 4, HM_NO_FOLIO);
	hugemodel__free(m);
}

/* The history a policy sees: lifetime counts, recent counts over the window, times since. */
static void test_history(void **state)
{
	struct tdec d = { .split = 0, .merge = GMEM_MERGE_NEVER, .alloc = MAXFIT };
	struct hugemodel *m = new_model(&d, 0, 0);
	struct gmem_region_hist h;

	file2m(m, 0, HM_FLAG_INIT_SHARED);
	assert_int_equal(hugemodel__hist(m, INO, 0, 0, &h), 0);
	assert_int_equal(h.since_conv_ns, GMEM_HIST_NEVER);
	assert_int_equal(h.shared_pages, 512);
	fault(m, 100 * MS, 3);
	conv(m, 200 * MS, 0, 1, GMEM_TO_PRIVATE);
	conv(m, 700 * MS, 0, 1, GMEM_TO_SHARED);
	punch(m, 800 * MS, 20, 2);
	conv(m, 1400 * MS, 0, 1, GMEM_TO_PRIVATE);
	assert_int_equal(hugemodel__hist(m, INO, 0, 1500 * MS, &h), 0);
	assert_int_equal(h.age_ns, 1400 * MS);
	assert_int_equal(h.conversions, 3);
	assert_int_equal(h.recent_conversions, 2); /* 0.7 s and 1.4 s; 0.2 s is 1.3 s ago */
	assert_int_equal(h.since_conv_ns, 100 * MS);
	assert_int_equal(h.punches, 1);
	assert_int_equal(h.recent_punches, 1);
	assert_int_equal(h.since_punch_ns, 700 * MS);
	assert_int_equal(h.splits, 1);               /* split4k split it once, at 0.2 s */
	assert_int_equal(h.since_split_ns, 1300 * MS);
	assert_int_equal(h.since_merge_ns, GMEM_HIST_NEVER);
	assert_int_equal(h.shared_pages, 511);
	assert_int_equal(h.populated_pages, 510);
	assert_int_equal(h.folios, 510);
	assert_int_equal(h.huge_pages, 0);
	assert_int_equal(h.layout_age_ns, 700 * MS); /* the punch at 0.8 s */
	assert_int_equal(h.window_ns, 1000 * MS);
	hugemodel__free(m);
}

/* Out-of-range answers are clamped and counted by the model too. */
static void test_bad_decider_clamped(void **state)
{
	struct tdec d = { .split = 99, .merge = -5, .alloc = 77 };
	struct hugemodel *m = new_model(&d, 0, 0);
	const struct hugemodel_stats *st;

	file2m(m, 0, 0);
	fault(m, 1, 0);
	expect_orders(m, 0, 512, 9);
	conv(m, 2, 0, 1, GMEM_TO_SHARED);
	expect_orders(m, 0, 1, 0);
	expect_buddy_tail(m, 0);
	conv(m, 3, 0, 1, GMEM_TO_PRIVATE);
	st = hugemodel__stats(m);
	assert_int_equal(st->clamped[GMEM_POLICY_ALLOC], 1);
	assert_int_equal(st->clamped[GMEM_POLICY_SPLIT], 1);
	assert_int_equal(st->clamped[GMEM_POLICY_MERGE], 1);
	assert_int_equal(st->merge_never, 1);
	hugemodel__free(m);
}

/* The direct-map estimate: a no-direct-map 2 MiB region holding small folios costs one 2 MiB
 * direct-map mapping; merging it back gives it back. */
static void test_direct_map_estimate(void **state)
{
	struct tdec d = { .split = MINIMAL, .merge = GMEM_MERGE_NOW, .alloc = MAXFIT };
	struct hugemodel *m = new_model(&d, 0, 0);
	const struct hugemodel_stats *st;

	file2m(m, 0, HM_FLAG_NO_DIRECT_MAP);
	fault(m, 1, 0);
	assert_true(d.la.flags & GMEM_POLF_NO_DIRECT_MAP);
	st = hugemodel__stats(m);
	assert_int_equal(st->dmap_fragmented, 0);
	punch(m, 2, 0, 1);
	st = hugemodel__stats(m);
	assert_int_equal(st->dmap_splits, 1);
	assert_int_equal(st->dmap_fragmented, 1);
	fault(m, 3, 0); /* only 4k fits: no question; it fills the region: merged at once */
	assert_int_equal(d.nalloc, 1);
	st = hugemodel__stats(m);
	assert_int_equal(st->allocs[0], 1);
	assert_int_equal(st->merges[0][9], 1);
	assert_int_equal(st->dmap_fragmented, 0);
	assert_int_equal(st->dmap_fragmented_peak, 1);
	assert_int_equal(st->dmap_splits, 1);
	hugemodel__free(m);

	/* a file without the flag costs nothing, unless the model is told to count all */
	m = new_model(&d, 0, 0);
	file2m(m, 0, 0);
	fault(m, 1, 0);
	punch(m, 2, 0, 1);
	assert_int_equal(hugemodel__stats(m)->dmap_splits, 0);
	hugemodel__free(m);
}

/* 1 GiB folios: minimal split of one around page 1000 leaves every 2 MiB region but [512,
 * 1024) huge; a release drops everything. */
static void test_1g_and_release(void **state)
{
	struct tdec d = { .split = MINIMAL, .merge = GMEM_MERGE_NEVER, .alloc = MAXFIT };
	struct hugemodel *m = new_model(&d, 18, 0);
	const struct hugemodel_stats *st;

	APPLY(m, .kind = GMEM_EV_FILE_CREATE, .ts_ns = 0, .vm = VM, .ino = INO, .a = 1ull << 30);
	APPLY(m, .kind = GMEM_EV_FALLOCATE, .ts_ns = 1, .vm = VM, .ino = INO, .a = 0,
	      .b = 1ull << 30);
	assert_int_equal(d.nalloc, 1);
	assert_int_equal(d.la.max_order, 18);
	st = hugemodel__stats(m);
	assert_int_equal(st->huge_pages, 262144);
	punch(m, 2, 1000, 1);
	assert_int_equal(d.ls.order, 18);
	st = hugemodel__stats(m);
	assert_int_equal(st->splits[18][17], 1);
	assert_int_equal(st->populated_pages, 262143);
	assert_int_equal(st->huge_pages, 262144 - 512);
	expect_orders(m, 0, 512, 9);
	expect_orders(m, 1000, 1, HM_NO_FOLIO);
	expect_orders(m, 1001, 1, 0);
	expect_orders(m, 1002, 2, 1);
	APPLY(m, .kind = GMEM_EV_FILE_RELEASE, .ts_ns = 3, .vm = VM, .ino = INO);
	st = hugemodel__stats(m);
	assert_int_equal(st->populated_pages, 0);
	assert_int_equal(st->huge_pages, 0);
	assert_int_equal(hugemodel__orders(m, INO, 0, 1, (__u8[1]){ 0 }), -ENOENT);
	hugemodel__free(m);
}

/* Conversions find their file through the VM's bindings; unbound ones are counted. */
static void test_bindings(void **state)
{
	struct tdec d = { .split = 0, .merge = GMEM_MERGE_NEVER, .alloc = MAXFIT };
	struct hugemodel *m = new_model(&d, 0, 0);
	const struct hugemodel_stats *st;

	/* the file is bound at an offset: gpa GPA maps to page 256 */
	APPLY(m, .kind = GMEM_EV_FILE_CREATE, .ts_ns = 0, .vm = VM, .ino = INO, .a = M2);
	APPLY(m, .kind = GMEM_EV_BIND, .ts_ns = 0, .vm = VM, .ino = INO, .a = GPA, .b = M2 / 2,
	      .c = M2 / 2, .sub = 3);
	fault(m, 1, 0);
	conv(m, 2, 1, 1, GMEM_TO_SHARED); /* page 257 */
	assert_int_equal(d.ls.start, 257);
	conv(m, 3, 0, 1, GMEM_TO_SHARED);
	APPLY(m, .kind = GMEM_EV_CONV_ATTR, .ts_ns = 4, .vm = VM + 1, .a = GPA, .b = K4);
	APPLY(m, .kind = GMEM_EV_CONV_ATTR, .ts_ns = 5, .vm = VM, .a = GPA, .b = K4,
	      .result = -EINVAL); /* failed: ignored */
	APPLY(m, .kind = GMEM_EV_UNBIND, .ts_ns = 6, .vm = VM, .sub = 3);
	conv(m, 7, 0, 1, GMEM_TO_PRIVATE);
	st = hugemodel__stats(m);
	assert_int_equal(st->conversions, 2);
	assert_int_equal(st->unmapped_conversions, 2);
	assert_int_equal(d.nsplit, 1);
	hugemodel__free(m);
}

/* The coverage series: one sample per period of record time, state before the record. */
static void test_samples(void **state)
{
	struct tdec d = { .split = 0, .merge = GMEM_MERGE_NEVER, .alloc = MAXFIT };
	struct hugemodel *m = new_model(&d, 0, 1 * S);
	const struct hm_sample *s;
	size_t n;

	file2m(m, 0, 0);
	fault(m, 0, 0);
	punch(m, 2500 * MS, 0, 1);
	hugemodel__tick(m, 4 * S);
	s = hugemodel__samples(m, &n);
	assert_int_equal(n, 4);
	assert_int_equal(s[0].ts_ns, 1 * S);
	assert_int_equal(s[0].huge_pages, 512);
	assert_int_equal(s[1].ts_ns, 2 * S);
	assert_int_equal(s[1].huge_pages, 512);
	assert_int_equal(s[2].ts_ns, 3 * S);
	assert_int_equal(s[2].populated_pages, 511);
	assert_int_equal(s[2].huge_pages, 0);
	assert_int_equal(s[3].ts_ns, 4 * S);
	hugemodel__free(m);
}

/* Planning asks what an operation would need, and changes nothing. */
static void test_plan(void **state)
{
	struct tdec d = { .split = MINIMAL, .merge = GMEM_MERGE_NEVER, .alloc = MAXFIT };
	struct hugemodel *m = new_model(&d, 0, 0);
	struct hm_plan_req req = { .op = HM_PLAN_PUNCH, .ino = INO, .first = 0, .n = 1 };
	struct hm_plan plan;

	file2m(m, 0, 0);
	req.op = HM_PLAN_FAULT;
	req.source = GMEM_SRC_USER_FAULT;
	assert_int_equal(hugemodel__plan(m, &req, &plan), 0);
	assert_int_equal(plan.n, 1);
	assert_int_equal(plan.cb[0], GMEM_POLICY_ALLOC);
	assert_int_equal(plan.ctx[0].alloc.max_order, 9);
	assert_true(plan.ctx[0].alloc.flags & GMEM_POLF_ADVICE);
	fault(m, 1, 0);
	assert_int_equal(hugemodel__plan(m, &req, &plan), 0);
	assert_int_equal(plan.n, 0); /* present now */

	req.op = HM_PLAN_PUNCH;
	assert_int_equal(hugemodel__plan(m, &req, &plan), 0);
	assert_int_equal(plan.n, 1);
	assert_int_equal(plan.cb[0], GMEM_POLICY_SPLIT);
	assert_int_equal(plan.ctx[0].split.order, 9);
	assert_int_equal(plan.ctx[0].split.cause, GMEM_SPLIT_PUNCH);
	expect_orders(m, 0, 512, 9); /* unchanged */
	assert_int_equal(d.nsplit, 0);

	req = (struct hm_plan_req){ .op = HM_PLAN_CONVERT, .vm = VM, .gpa = GPA + 4 * K4,
				    .size = 2 * K4, .to = GMEM_TO_SHARED };
	assert_int_equal(hugemodel__plan(m, &req, &plan), 0);
	assert_int_equal(plan.n, 1);
	assert_int_equal(plan.ctx[0].split.start, 4);
	assert_int_equal(plan.ctx[0].split.nr_pages, 2);
	req.to = GMEM_TO_PRIVATE; /* already private: nothing to split */
	assert_int_equal(hugemodel__plan(m, &req, &plan), 0);
	assert_int_equal(plan.n, 0);
	req.vm = VM + 1;
	assert_int_equal(hugemodel__plan(m, &req, &plan), -ENOENT);
	/* a punch across two folios asks for each end: [0,256) o8 and [288,320) o5 */
	punch(m, 2, 256, 1);
	req = (struct hm_plan_req){ .op = HM_PLAN_PUNCH, .ino = INO, .first = 200, .n = 100 };
	assert_int_equal(hugemodel__plan(m, &req, &plan), 0);
	assert_int_equal(plan.n, 2);
	assert_int_equal(plan.ctx[0].split.index, 0); /* [0,256) o8 holds page 200 */
	assert_int_equal(plan.ctx[0].split.order, 8);
	assert_int_equal(plan.ctx[1].split.index, 288);
	assert_int_equal(plan.ctx[1].split.order, 5);
	hugemodel__free(m);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_alloc_then_punch_minimal),
		cmocka_unit_test(test_coverage_split4k),
		cmocka_unit_test(test_convert_split_merge_pingpong),
		cmocka_unit_test(test_delayed_merge_and_cancel),
		cmocka_unit_test(test_alloc_fit),
		cmocka_unit_test(test_history),
		cmocka_unit_test(test_bad_decider_clamped),
		cmocka_unit_test(test_direct_map_estimate),
		cmocka_unit_test(test_1g_and_release),
		cmocka_unit_test(test_bindings),
		cmocka_unit_test(test_samples),
		cmocka_unit_test(test_plan),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
