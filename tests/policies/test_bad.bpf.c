// SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause
/*
 * test_bad - a deliberately wrong policy: every answer is out of range, in both directions,
 * so the tests can check that hosts clamp and count instead of trusting it. Its init sets a
 * flag the split answer depends on, so the tests also see that init ran before any decision.
 */
#include "gmem_policy.bpf.h"

__u32 bad_init_ran;

static __always_inline int bad_init(void)
{
	bad_init_ran = 1;
	return 0;
}

static __always_inline int bad_split(const struct gmem_split_ctx *ctx)
{
	if (ctx->cause == GMEM_SPLIT_INVALIDATE)
		return bad_init_ran ? 0 : -100; /* the one valid answer, if init ran */
	if (ctx->cause == GMEM_SPLIT_PUNCH)
		return ctx->order + 5; /* too large: must become order - 1 */
	return -3;                     /* negative: must become 0 */
}

static __always_inline int bad_merge(const struct gmem_merge_ctx *ctx)
{
	if (ctx->folios > 2)
		return GMEM_MERGE_MAX_DELAY_MS + 1; /* too long: must become the maximum delay */
	return -7;                                  /* below NEVER: must become NEVER */
}

static __always_inline int bad_alloc(const struct gmem_alloc_ctx *ctx)
{
	if (ctx->source == GMEM_SRC_FALLOCATE)
		return ctx->max_order + 3; /* too large: must become max_order */
	return -1;                         /* negative: must become 0 */
}

GMEM_POLICY(test_bad, bad_split, bad_merge, bad_alloc, bad_init, gmem_policy_no_exit);
