/* SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause */
/*
 * gmem_policy.bpf.h - what a policy source includes: GMEM_POLICY(), which turns three plain C
 * functions into either form a policy runs in, and small helpers over the region history.
 *
 * One source, two objects (the Makefile builds both):
 *   NAME.bpf.o             SEC("syscall") programs gmem_split, gmem_merge, gmem_alloc,
 *                          gmem_init, gmem_exit and gmem_batch, which gmemd and the what-if
 *                          replay run with BPF_PROG_RUN at the decision points they own.
 *   NAME.struct_ops.bpf.o  built with -DGMEM_POLICY_STRUCT_OPS: a struct_ops map of type
 *                          gmem_policy_ops, for a kernel that registers the type. libbpf fails
 *                          a whole object whose struct_ops type the kernel lacks, so this form
 *                          lives in its own object, opened only when vmlinux BTF has the type.
 *
 * The functions take a const pointer to their context and return the answer; they run the same
 * whether the pointer is a syscall program's ctx, an element of the batch arrays, or a
 * struct_ops argument, so they must only read through it. docs/writing-a-policy.md.
 */
#ifndef GMEM_POLICY_BPF_H
#define GMEM_POLICY_BPF_H

#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include "gmem_events.h"
#include "gmem_policy.h"

#define GMEM_NS_PER_MS 1000000ull

static __always_inline int gmem_policy_no_init(void)
{
	return 0;
}

static __always_inline void gmem_policy_no_exit(void)
{
}

/* The delay, in whole ms rounded up, until the region has been quiet for quiet_ns since the
 * later of its last conversion and punch; 0 when it already has. */
static __always_inline int gmem_quiet_ms(const struct gmem_region_hist *h, __u64 quiet_ns)
{
	__u64 since = h->since_conv_ns < h->since_punch_ns ? h->since_conv_ns : h->since_punch_ns;

	if (since >= quiet_ns)
		return 0;
	return (int)((quiet_ns - since + GMEM_NS_PER_MS - 1) / GMEM_NS_PER_MS);
}

/* Both forms carry the same record, which the host checks before it trusts the object. */
#define __GMEM_POLICY_INFO(NAME)                                                               \
	_Static_assert(sizeof(#NAME) <= GMEM_POLICY_NAME_LEN, "policy name too long");          \
	const struct gmem_policy_info gmem_policy_info SEC(".rodata.gmem_policy") = {          \
		.abi = GMEM_POLICY_ABI_VERSION,                                                \
		.split_ctx_size = sizeof(struct gmem_split_ctx),                               \
		.merge_ctx_size = sizeof(struct gmem_merge_ctx),                               \
		.alloc_ctx_size = sizeof(struct gmem_alloc_ctx),                               \
		.name = #NAME,                                                                 \
	};                                                                                     \
	char LICENSE[] SEC("license") = "Dual BSD/GPL"

#ifdef GMEM_POLICY_STRUCT_OPS

#define GMEM_POLICY(NAME, SPLIT, MERGE, ALLOC, INIT, EXIT)                                      \
	SEC("struct_ops/split")                                                                \
	int BPF_PROG(gmem_so_split, struct gmem_split_ctx *c)                                  \
	{                                                                                      \
		return SPLIT(c);                                                               \
	}                                                                                      \
	SEC("struct_ops/merge")                                                                \
	int BPF_PROG(gmem_so_merge, struct gmem_merge_ctx *c)                                  \
	{                                                                                      \
		return MERGE(c);                                                               \
	}                                                                                      \
	SEC("struct_ops/alloc_order")                                                          \
	int BPF_PROG(gmem_so_alloc, struct gmem_alloc_ctx *c)                                  \
	{                                                                                      \
		return ALLOC(c);                                                               \
	}                                                                                      \
	SEC("struct_ops/init")                                                                 \
	int BPF_PROG(gmem_so_init)                                                             \
	{                                                                                      \
		return INIT();                                                                 \
	}                                                                                      \
	SEC("struct_ops/exit")                                                                 \
	void BPF_PROG(gmem_so_exit)                                                            \
	{                                                                                      \
		EXIT();                                                                        \
	}                                                                                      \
	SEC(".struct_ops")                                                                     \
	struct gmem_policy_ops NAME##_ops = {                                                  \
		.split = (void *)gmem_so_split,                                                \
		.merge = (void *)gmem_so_merge,                                                \
		.alloc_order = (void *)gmem_so_alloc,                                          \
		.init = (void *)gmem_so_init,                                                  \
		.exit = (void *)gmem_so_exit,                                                  \
		.name = #NAME,                                                                 \
	};                                                                                     \
	__GMEM_POLICY_INFO(NAME)

#else /* the syscall form */

/*
 * The batch arrays: a host that has several decisions that do not depend on each other's
 * answers writes them here (the map is mmapped) and runs gmem_batch once.
 */
#define GMEM_POLICY(NAME, SPLIT, MERGE, ALLOC, INIT, EXIT)                                      \
	SEC("syscall") int gmem_split(struct gmem_split_ctx *ctx)                              \
	{                                                                                      \
		return SPLIT(ctx);                                                             \
	}                                                                                      \
	SEC("syscall") int gmem_merge(struct gmem_merge_ctx *ctx)                              \
	{                                                                                      \
		return MERGE(ctx);                                                             \
	}                                                                                      \
	SEC("syscall") int gmem_alloc(struct gmem_alloc_ctx *ctx)                              \
	{                                                                                      \
		return ALLOC(ctx);                                                             \
	}                                                                                      \
	SEC("syscall") int gmem_init(void *ctx)                                                \
	{                                                                                      \
		return INIT();                                                                 \
	}                                                                                      \
	SEC("syscall") int gmem_exit(void *ctx)                                                \
	{                                                                                      \
		EXIT();                                                                        \
		return 0;                                                                      \
	}                                                                                      \
	struct gmem_split_ctx gmem_batch_split[GMEM_POLICY_BATCH_MAX] SEC(".data.gmem_batch"); \
	struct gmem_merge_ctx gmem_batch_merge[GMEM_POLICY_BATCH_MAX] SEC(".data.gmem_batch"); \
	struct gmem_alloc_ctx gmem_batch_alloc[GMEM_POLICY_BATCH_MAX] SEC(".data.gmem_batch"); \
	__s32 gmem_batch_ret[GMEM_POLICY_BATCH_MAX] SEC(".data.gmem_batch");                  \
	SEC("syscall") int gmem_batch(struct gmem_policy_batch *b)                             \
	{                                                                                      \
		__u32 i, n = b->n, cb = b->callback;                                           \
                                                                                               \
		if (n > GMEM_POLICY_BATCH_MAX)                                                 \
			n = GMEM_POLICY_BATCH_MAX;                                             \
		for (i = 0; i < n && i < GMEM_POLICY_BATCH_MAX; i++) {                         \
			if (cb == GMEM_POLICY_SPLIT)                                           \
				gmem_batch_ret[i] = SPLIT(&gmem_batch_split[i]);               \
			else if (cb == GMEM_POLICY_MERGE)                                      \
				gmem_batch_ret[i] = MERGE(&gmem_batch_merge[i]);               \
			else                                                                   \
				gmem_batch_ret[i] = ALLOC(&gmem_batch_alloc[i]);               \
		}                                                                              \
		return n;                                                                      \
	}                                                                                      \
	__GMEM_POLICY_INFO(NAME)

#endif /* GMEM_POLICY_STRUCT_OPS */

#endif /* GMEM_POLICY_BPF_H */
