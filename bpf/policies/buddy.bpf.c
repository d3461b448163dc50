// SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause
/*
 * buddy - split as little as correctness allows, merge back once a region has been quiet.
 *
 * Idea: treat a huge folio like the buddy allocator treats a free block. A request that touches
 * part of a folio of order N splits it into halves only along the path to the touched range,
 * so the untouched remainder keeps the largest aligned pieces possible (order N-1 at the far
 * end, then N-2, ...). When a block becomes uniform again (every page present, one state),
 * merge it after buddy_quiet_ms without a touch; any conversion, punch or fault in the region
 * meanwhile cancels that merge and the next uniform moment asks again.
 *
 * Trade-off: the best huge coverage a split/merge policy can have, at the cost of work: a
 * region that keeps converting at intervals longer than the quiet period is merged and split
 * again every time (ping-pong), and each split on a no-direct-map file breaks the direct map.
 */
#include "gmem_policy.bpf.h"

/* Merge once the region has been left alone this long. */
const volatile __u32 buddy_quiet_ms = 100;

static __always_inline int buddy_split(const struct gmem_split_ctx *ctx)
{
	return ctx->order - 1;
}

static __always_inline int buddy_merge(const struct gmem_merge_ctx *ctx)
{
	/* A block made uniform by a fault into a long-quiet region merges at once. */
	return gmem_quiet_ms(&ctx->hist, (__u64)buddy_quiet_ms * GMEM_NS_PER_MS);
}

static __always_inline int buddy_alloc(const struct gmem_alloc_ctx *ctx)
{
	return ctx->max_order;
}

GMEM_POLICY(buddy, buddy_split, buddy_merge, buddy_alloc, gmem_policy_no_init,
	    gmem_policy_no_exit);
