/* SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause */
/*
 * hugemodel.h - a huge-page guest_memfd, modelled: the folios each file would have if
 * guest_memfd backed it with huge folios and a policy decided every split, merge and
 * allocation order, driven by the events gmemscope records.
 *
 * Pure logic: no BPF, no I/O, no clock (like model.h). The policy is reached through a
 * decider (three callbacks), so the model is tested with C deciders and run with BPF policies
 * by what-if replay and by gmemd. Time is the records' ts_ns; delayed merges and coverage
 * samples happen when a record (or hugemodel__tick) moves time past them.
 *
 * Per file: a folio order per 4 KiB page (aligned, buddy-style folios of order 0..max_order),
 * present and shared bits per page, and per 2 MiB region the history policies see. What moves
 * it (records the model does not list are ignored):
 *   FILE_CREATE/DISCOVER  a file: size, flags (INIT_SHARED: pages start shared, else private;
 *                         NO_DIRECT_MAP, 1 << 2, unmerged uapi). A discovered file starts empty.
 *   BIND/UNBIND, VM_EXIT  the gpa -> (file, offset) map per VM, for conversions.
 *   PAGE_ALLOC, FALLOCATE pages that must be present: where none is, alloc_order is asked
 *                         once per max-order block the request touches and a folio of the
 *                         answered order is made around the page; the rest of the request in
 *                         that block gets folios of that order (each "as large as fits" when
 *                         the answer was max_order, capped at the answer otherwise).
 *   PUNCH_HOLE            pages freed: folios inside go, a folio partly inside is split first.
 *   CONV_ATTR (ok)        pages change state (in-place conversion): a folio partly inside in
 *                         the other state is split first; the range's state flips.
 *   FILE_RELEASE          the file and its folios go.
 * PAGE_FREE is ignored: the kernel's own (order-0) frees are what the model replaces.
 *
 * The policy is asked only where it has a choice: never to split an order-1 folio (only 0
 * is possible), never to allocate where only 4 KiB fits (max_order 0).
 *
 * Splits: the folio is cut at the request's boundaries and no piece keeps an order above the
 * policy's answer R (0..N-1). Merges: after any change, the largest aligned block (up to
 * max_order) around the first and last page touched in each max-order block that is fully
 * present, in one state and made of several folios is offered to merge(): now, never, or
 * after a delay, cancelled by any later touch of its 2 MiB region(s).
 */
#ifndef GMEM_HUGEMODEL_H
#define GMEM_HUGEMODEL_H
#ifdef __bpf__
#error "user-space only header"
#endif

#include <stdbool.h>
#include <stddef.h>
#include <linux/types.h>

#include "gmem_events.h"
#include "gmem_policy.h"

#define HM_ORDERS (GMEM_POLICY_MAX_ORDER + 1)
#define HM_HUGE_ORDER 9 /* coverage counts pages in folios of order >= 9 (2 MiB, 1 GiB) */
#define HM_FLAG_INIT_SHARED (1ull << 1)   /* GUEST_MEMFD_FLAG_INIT_SHARED */
#define HM_FLAG_NO_DIRECT_MAP (1ull << 2) /* GUEST_MEMFD_FLAG_NO_DIRECT_MAP (not merged) */

/* The policy, as the model sees it: raw answers; the model clamps (and counts) what is out of
 * range, so a decider need not. */
struct hm_decider {
	int (*split)(void *ctx, const struct gmem_split_ctx *c);
	int (*merge)(void *ctx, const struct gmem_merge_ctx *c);
	int (*alloc)(void *ctx, const struct gmem_alloc_ctx *c);
	void *ctx;
};

struct hugemodel_opts {
	__u32 max_order;     /* largest folio, 1..18; 0 = 9 (2 MiB) */
	__u32 ctx_flags;     /* ORed into every context (GMEM_POLF_WHATIF, ...) */
	__u64 window_ns;     /* what recent_* count over; 0 = 1 s */
	__u64 sample_ns;     /* coverage series period in record time; 0 = no series */
	bool no_direct_map;  /* treat every file as NO_DIRECT_MAP */
};

struct hm_sample {
	__u64 ts_ns;
	__u64 populated_pages;
	__u64 huge_pages;
	__u64 dmap_fragmented;
};

struct hugemodel_stats {
	__u64 splits[HM_ORDERS][HM_ORDERS]; /* [folio order][answer] */
	__u64 merges[HM_ORDERS][HM_ORDERS]; /* [smallest folio merged][block order] */
	__u64 allocs[HM_ORDERS];            /* folios allocated, by order */
	__u64 decisions[GMEM_POLICY_CB_MAX];
	__u64 clamped[GMEM_POLICY_CB_MAX]; /* answers out of range, fixed by the model */
	__u64 merge_now, merge_delayed, merge_never;
	__u64 merges_cancelled;   /* delayed merges a touch cancelled before they were due */
	__u64 pingpongs;          /* splits of a folio that a merge had made */
	__u64 populated_pages;    /* now */
	__u64 huge_pages;         /* now, in folios of order >= HM_HUGE_ORDER */
	__u64 peak_populated_pages;
	__u64 dmap_splits;        /* estimate: 2 MiB direct-map mappings broken (no-direct-map) */
	__u64 dmap_fragmented;    /* now: no-direct-map 2 MiB regions holding sub-2 MiB folios */
	__u64 dmap_fragmented_peak;
	__u64 pending_merges;     /* now */
	__u64 events;             /* records applied */
	__u64 conversions;        /* ok CONV_ATTR ranges applied */
	__u64 unmapped_conversions; /* ok CONV_ATTR with no binding covering its gpa */
	__u64 untracked;          /* records naming a file the model had not seen created */
	__u64 first_ts_ns, last_ts_ns;
	double coverage_avg;   /* huge share of populated memory, weighted by time and size */
	double coverage_final; /* huge_pages / populated_pages now (0 when nothing populated) */
};

struct hugemodel;

struct hugemodel *hugemodel__new(const struct hugemodel_opts *opts, const struct hm_decider *d);
void hugemodel__free(struct hugemodel *m);
/* Swap the policy; the folios and history stay. */
void hugemodel__set_decider(struct hugemodel *m, const struct hm_decider *d);

/* One record; 0 or -ENOMEM. Time moves to ev->ts_ns first (never backwards). */
int hugemodel__apply(struct hugemodel *m, const struct gmem_event *ev);
/* Move time to now: due merges happen, samples are taken. */
void hugemodel__tick(struct hugemodel *m, __u64 now_ns);

/* Statistics (coverage_avg/final computed at this call). */
const struct hugemodel_stats *hugemodel__stats(struct hugemodel *m);
const struct hm_sample *hugemodel__samples(const struct hugemodel *m, size_t *n);
const struct hugemodel_opts *hugemodel__opts(const struct hugemodel *m);

/* One file's folios, for tests and views: fills orders[i] with the order of the folio that
 * holds page i (HM_NO_FOLIO where none) for n pages from first. -ENOENT for an unknown file. */
#define HM_NO_FOLIO 0xff
int hugemodel__orders(const struct hugemodel *m, __u64 ino, __u64 first, __u64 n, __u8 *orders);
/* The history a context would carry for page index of file ino, now. */
int hugemodel__hist(const struct hugemodel *m, __u64 ino, __u64 index, __u64 now_ns,
		    struct gmem_region_hist *h);

/*
 * What an operation would ask, without doing it: the contexts of the split decisions a punch
 * or conversion of [first, first + n) pages of ino would need (at most two per file range:
 * only the folios at either end can be partly inside), or the alloc_order decision a fault at
 * first would need. For a conversion by guest address, pass ino 0 and the vm, gpa and size.
 */
enum hm_plan_op {
	HM_PLAN_PUNCH = 0,
	HM_PLAN_CONVERT = 1,
	HM_PLAN_FAULT = 2,
};

struct hm_plan_req {
	enum hm_plan_op op;
	__u64 ino;
	__u64 first; /* page */
	__u64 n;     /* pages */
	__u32 vm;    /* conversions by gpa */
	__u64 gpa;
	__u64 size;
	__u32 to;     /* enum gmem_dir, conversions */
	__u32 source; /* enum gmem_source, faults */
	__u64 now_ns; /* 0 = the model's time */
};

#define HM_PLAN_MAX 16
struct hm_plan {
	unsigned int n;
	enum gmem_policy_cb cb[HM_PLAN_MAX];
	union {
		struct gmem_split_ctx split;
		struct gmem_alloc_ctx alloc;
	} ctx[HM_PLAN_MAX];
};

int hugemodel__plan(const struct hugemodel *m, const struct hm_plan_req *req,
		    struct hm_plan *out);

#endif /* GMEM_HUGEMODEL_H */
