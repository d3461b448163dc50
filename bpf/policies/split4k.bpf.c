// SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause
/*
 * split4k - today's behaviour, the baseline every other policy is measured against.
 *
 * Idea: allocate the largest folio that fits; the first conversion, punch or invalidation that
 * touches part of a huge folio splits all of it to 4 KiB; never merge. This is what the
 * hugetlb-backed guest_memfd series does (split on first touch, reassemble only when the whole
 * range is truncated).
 *
 * Trade-off: the cheapest to reason about (one split per huge folio, ever, and no merge work),
 * but every folio a conversion touches is lost to 4 KiB for good: huge coverage only falls,
 * and on a no-direct-map file every split leaves a 2 MiB direct-map mapping broken.
 */
#include "gmem_policy.bpf.h"

static __always_inline int split4k_split(const struct gmem_split_ctx *ctx)
{
	return 0;
}

static __always_inline int split4k_merge(const struct gmem_merge_ctx *ctx)
{
	return GMEM_MERGE_NEVER;
}

static __always_inline int split4k_alloc(const struct gmem_alloc_ctx *ctx)
{
	return ctx->max_order;
}

GMEM_POLICY(split4k, split4k_split, split4k_merge, split4k_alloc, gmem_policy_no_init,
	    gmem_policy_no_exit);
