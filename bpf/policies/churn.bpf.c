// SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause
/*
 * churn - keep the regions that keep converting at 4 KiB, give everything else huge folios.
 *
 * Idea: a 2 MiB region is hot while it has had churn_hot conversions within the model's
 * window (hist.recent_conversions, default window 1 s). In a hot region a split goes straight
 * to 4 KiB (the next conversion there will need it anyway, so one split now replaces a chain
 * of halvings), a fault that can only get part of the region allocates 4 KiB (a medium folio
 * would be split again soon), and a uniform block merges only after churn_cool_ms with no
 * conversion or punch: long enough that a region converting every few hundred ms is never
 * merged just to be split again. A cold region is treated like buddy: minimal splits, the
 * largest folio that fits, and merge after churn_cool_ms of quiet (at once if it already has
 * been). A whole free region gets a huge folio even when hot: it may stay huge through the
 * next quiet spell, and costs one split if it does not; so churn never has less huge coverage
 * than split4k (same allocations where huge is possible, and merges on top).
 *
 * Trade-off: far fewer merge/split ping-pongs than buddy on a churning guest, and fewer splits
 * in hot regions; the price is 4 KiB coverage in those regions for as long as they stay hot
 * plus churn_cool_ms, and merges that come later than buddy's everywhere.
 */
#include "gmem_policy.bpf.h"

/* Conversions within the window that make a region hot. */
const volatile __u32 churn_hot = 2;
/* Quiet time before a uniform block is merged. */
const volatile __u32 churn_cool_ms = 1000;

static __always_inline bool churn_is_hot(const struct gmem_region_hist *h)
{
	return h->recent_conversions >= churn_hot;
}

static __always_inline int churn_split(const struct gmem_split_ctx *ctx)
{
	if (churn_is_hot(&ctx->hist))
		return 0;
	return ctx->order - 1;
}

static __always_inline int churn_merge(const struct gmem_merge_ctx *ctx)
{
	return gmem_quiet_ms(&ctx->hist, (__u64)churn_cool_ms * GMEM_NS_PER_MS);
}

static __always_inline int churn_alloc(const struct gmem_alloc_ctx *ctx)
{
	/* a hot region gets 4 KiB folios, except a whole free region (see above) */
	if (churn_is_hot(&ctx->hist) && ctx->max_order < GMEM_POLICY_REGION_ORDER)
		return 0;
	return ctx->max_order;
}

GMEM_POLICY(churn, churn_split, churn_merge, churn_alloc, gmem_policy_no_init,
	    gmem_policy_no_exit);
