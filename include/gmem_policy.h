/* SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause */
/*
 * gmem_policy.h - the huge-page policy interface: what a policy is asked, and what its answers
 * mean. Shared by the BPF policies (bpf/policies/), the hosts that run them in the kernel's BPF
 * VM (gmemd's live advice, what-if replay) and, for a kernel that registers it, guest_memfd.
 * docs/policy-contract.md is the precise contract; docs/writing-a-policy.md the tutorial.
 *
 * Three decisions, each one call with one context record:
 *   split        part of a huge folio is converted, punched or invalidated: the order to split
 *                the untouched remainder to (the touched range is always isolated).
 *   merge        an aligned block became uniform again (every page present, one state, more
 *                than one folio): merge now, after a quiet delay, or never.
 *   alloc_order  a page with no folio is faulted or fallocated: the order to allocate.
 *
 * Contexts hold fixed-width fields only, widest first; page numbers are 4 KiB file page
 * indices. Region history is kept per 2 MiB region (GMEM_POLICY_REGION_ORDER) by whoever keeps
 * the huge-page model (gmemd's, or the replay's), and copied into every context.
 */
#ifndef GMEM_POLICY_H
#define GMEM_POLICY_H

/* BPF code gets the __u64 family from vmlinux.h. */
#ifndef __VMLINUX_H__
#include <linux/types.h>
#endif

/* Bumped on any change to a context's layout or to the meaning of an answer. */
#define GMEM_POLICY_ABI_VERSION 1

#define GMEM_POLICY_NAME_LEN     16
#define GMEM_POLICY_MAX_ORDER    18 /* 1 GiB folios of 4 KiB pages */
#define GMEM_POLICY_REGION_ORDER 9  /* history granularity: 2 MiB */
#define GMEM_POLICY_BATCH_MAX    64 /* contexts one batched run decides */
#define GMEM_HIST_RECENT_MAX     16 /* recent_* counts saturate here */
#define GMEM_HIST_NEVER          (~0ull) /* since_*_ns of something that never happened */

enum gmem_policy_cb {
	GMEM_POLICY_SPLIT = 0,
	GMEM_POLICY_MERGE = 1,
	GMEM_POLICY_ALLOC = 2,
	GMEM_POLICY_CB_MAX
};

/* Why a split is asked for. */
enum gmem_split_cause {
	GMEM_SPLIT_CONVERT = 0,    /* part of the folio changes shared <-> private */
	GMEM_SPLIT_PUNCH = 1,      /* part of the folio is punched out (freed) */
	GMEM_SPLIT_INVALIDATE = 2, /* part of the folio is invalidated (freed) by the kernel */
	GMEM_SPLIT_CAUSE_MAX
};

/* merge's answer: GMEM_MERGE_NOW, GMEM_MERGE_NEVER, or a delay in ms (1..MAX_DELAY_MS). */
#define GMEM_MERGE_NOW          0
#define GMEM_MERGE_NEVER        (-1)
#define GMEM_MERGE_MAX_DELAY_MS 3600000 /* one hour */

/* Context flags. */
#define GMEM_POLF_NO_DIRECT_MAP (1u << 0) /* the file's folios are out of the kernel direct map */
#define GMEM_POLF_SHARED        (1u << 1) /* the folio (split), block (merge), page (alloc) is shared */
#define GMEM_POLF_WHATIF        (1u << 2) /* a replay: nothing real acts on the answer */
#define GMEM_POLF_ADVICE        (1u << 3) /* a query over gmemd's control socket */

/*
 * What the model remembers of one 2 MiB region (the one holding the context's index). Counts
 * are since the file was created or first seen, saturating at U32_MAX; recent_* count events in
 * the last window_ns, at most GMEM_HIST_RECENT_MAX.
 */
struct gmem_region_hist {
	__u64 age_ns;         /* since the region first held a folio; 0 if it never did */
	__u64 layout_age_ns;  /* since its folios last changed (alloc, split, merge, free) */
	__u64 since_conv_ns;  /* since a conversion last touched it, or GMEM_HIST_NEVER */
	__u64 since_punch_ns; /* since a punch hole last touched it, or GMEM_HIST_NEVER */
	__u64 since_split_ns; /* since a folio in it was last split, or GMEM_HIST_NEVER */
	__u64 since_merge_ns; /* since a block in it was last merged, or GMEM_HIST_NEVER */
	__u64 window_ns;      /* the window recent_* count over */
	__u32 conversions;
	__u32 recent_conversions;
	__u32 punches;
	__u32 recent_punches;
	__u32 splits;
	__u32 merges;
	__u32 shared_pages;    /* pages of the region in the shared state (present or not) */
	__u32 populated_pages; /* pages of the region that are in a folio */
	__u32 folios;          /* folios with a page in the region */
	__u32 huge_pages;      /* pages of the region in folios of order >= 9 */
};

/* split: a folio of order `order` at `index` must be split; [start, start + nr_pages) is the
 * part of the request inside it. Answer: the order for the untouched remainder, 0..order-1. */
struct gmem_split_ctx {
	__u64 ino;
	__u64 index;
	__u64 start;
	__u64 nr_pages;
	__u64 now_ns;
	struct gmem_region_hist hist;
	__u32 vm;
	__u32 order;
	__u32 cause; /* enum gmem_split_cause */
	__u32 to;    /* GMEM_SPLIT_CONVERT: enum gmem_dir the range converts to; else 0 */
	__u32 flags; /* GMEM_POLF_*; SHARED: the folio's state before the request */
	__u32 pad;
};

/* merge: the aligned block of order `order` at `index` is uniform, fully present and made of
 * `folios` folios (the smallest of order min_order). Answer: GMEM_MERGE_NOW, GMEM_MERGE_NEVER,
 * or a delay in ms after which it is merged if nothing touched it meanwhile. */
struct gmem_merge_ctx {
	__u64 ino;
	__u64 index;
	__u64 now_ns;
	struct gmem_region_hist hist;
	__u32 vm;
	__u32 order;
	__u32 folios;
	__u32 min_order;
	__u32 flags; /* GMEM_POLF_*; SHARED: the block's state */
	__u32 pad;
};

/* alloc_order: page `index` has no folio; the request wants nr_pages pages from index inside
 * its max-order block. Answer: the order of the folio to allocate around index, 0..max_order,
 * where max_order is the largest aligned block around index that lies inside the file, holds no
 * folio and is in one state. The same order is used for the rest of the request in the block. */
struct gmem_alloc_ctx {
	__u64 ino;
	__u64 index;
	__u64 nr_pages;
	__u64 now_ns;
	struct gmem_region_hist hist;
	__u32 vm;
	__u32 max_order;
	__u32 source; /* enum gmem_source: who asked for the page */
	__u32 flags;  /* GMEM_POLF_*; SHARED: the page's state */
};

/* The context of a policy's batch program: decide n contexts of one callback, laid out by the
 * host in the policy's gmem_batch_* arrays; answers land in gmem_batch_ret. */
struct gmem_policy_batch {
	__u32 callback; /* enum gmem_policy_cb */
	__u32 n;        /* at most GMEM_POLICY_BATCH_MAX */
};

/* Every policy object carries one of these (section .rodata.gmem_policy): hosts refuse an
 * object whose abi or context sizes differ from their own. */
struct gmem_policy_info {
	__u32 abi;
	__u32 split_ctx_size;
	__u32 merge_ctx_size;
	__u32 alloc_ctx_size;
	char name[GMEM_POLICY_NAME_LEN];
};

#if defined(__bpf__) || defined(__KERNEL__)
/*
 * The struct_ops type a kernel would register (docs/policy-contract.md). The one structure
 * here with pointers: it is the kernel's vtable, never shared with user space.
 */
struct gmem_policy_ops {
	int (*split)(struct gmem_split_ctx *ctx);
	int (*merge)(struct gmem_merge_ctx *ctx);
	int (*alloc_order)(struct gmem_alloc_ctx *ctx);
	int (*init)(void);
	void (*exit)(void);
	char name[GMEM_POLICY_NAME_LEN];
};
#endif

#endif /* GMEM_POLICY_H */
