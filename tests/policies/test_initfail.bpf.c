// SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause
/*
 * test_initfail - verifies and loads, but its init refuses (returns -EINVAL): hosts must treat
 * that as a failed load, keep their previous policy, and report the value.
 */
#include "gmem_policy.bpf.h"

static __always_inline int initfail_init(void)
{
	return -22;
}

static __always_inline int initfail_split(const struct gmem_split_ctx *ctx)
{
	return 0;
}

static __always_inline int initfail_merge(const struct gmem_merge_ctx *ctx)
{
	return GMEM_MERGE_NEVER;
}

static __always_inline int initfail_alloc(const struct gmem_alloc_ctx *ctx)
{
	return 0;
}

GMEM_POLICY(test_initfail, initfail_split, initfail_merge, initfail_alloc, initfail_init,
	    gmem_policy_no_exit);
