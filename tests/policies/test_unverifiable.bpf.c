// SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause
/*
 * test_unverifiable - compiles, but the verifier must refuse it: split reads a map value
 * without checking the lookup for NULL. Hosts must keep their previous policy and say why.
 */
#include "gmem_policy.bpf.h"

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 16);
	__type(key, __u64);
	__type(value, __u32);
} orders SEC(".maps");

static __always_inline int unver_split(const struct gmem_split_ctx *ctx)
{
	__u64 key = ctx->index;
	__u32 *o = bpf_map_lookup_elem(&orders, &key);

	return *o; /* no NULL check: "invalid mem access 'map_value_or_null'" */
}

static __always_inline int unver_merge(const struct gmem_merge_ctx *ctx)
{
	return GMEM_MERGE_NEVER;
}

static __always_inline int unver_alloc(const struct gmem_alloc_ctx *ctx)
{
	return 0;
}

GMEM_POLICY(test_unverif, unver_split, unver_merge, unver_alloc, gmem_policy_no_init,
	    gmem_policy_no_exit);
