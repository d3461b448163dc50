/* SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause */
/*
 * policy.h - load a huge-page policy (bpf/policies/NAME.bpf.o) and run its decisions in the
 * kernel's BPF VM with BPF_PROG_RUN.
 *
 * A policy is named (NAME, found beside the running binary or in $GMEM_POLICY_DIR) or given
 * as a path to its .bpf.o. Opening checks that the object is a policy of this ABI, loads it
 * (the verifier's refusal comes back as a one-line reason), runs its init, and looks for the
 * struct_ops form: only when kernel BTF has struct gmem_policy_ops is NAME.struct_ops.bpf.o
 * opened and attached; otherwise the policy says "not registered by this kernel", which is
 * not an error. Every answer is clamped into its callback's range and counted (policy__clamp);
 * a failed run answers the safe default (split to 4 KiB, never merge, allocate 4 KiB).
 *
 * Not thread-safe: one thread at a time per policy (gmemd runs it under its server lock).
 */
#ifndef GMEM_POLICY_HOST_H
#define GMEM_POLICY_HOST_H
#ifdef __bpf__
#error "user-space only header"
#endif

#include <stdbool.h>
#include <stddef.h>
#include <linux/types.h>

#include "gmem_events.h"
#include "gmem_policy.h"

/* Decision slots per callback: orders 0..MAX_ORDER for split and alloc_order; for merge
 * POLICY_MERGE_NOW / _DELAY / _NEVER. */
#define POLICY_DECISIONS (GMEM_POLICY_MAX_ORDER + 1)
#define POLICY_MERGE_NOW   0
#define POLICY_MERGE_DELAY 1
#define POLICY_MERGE_NEVER 2

struct policy;

struct policy_opts {
	bool verbose;         /* libbpf's log (and the verifier's) to stderr */
	bool no_struct_ops;   /* do not look for the struct_ops form at all */
	const char *btf_path; /* where to look for gmem_policy_ops; NULL = the running kernel's */
};

enum policy_so_state {
	POLICY_SO_NOT_REGISTERED = 0, /* kernel BTF has no gmem_policy_ops: syscall form only */
	POLICY_SO_ATTACHED = 1,       /* the kernel runs the struct_ops form */
	POLICY_SO_FAILED = 2,         /* the kernel has the type; loading or attaching failed */
	POLICY_SO_MISSING = 3,        /* the kernel has the type; no NAME.struct_ops.bpf.o */
	POLICY_SO_DISABLED = 4,       /* opts.no_struct_ops */
};

struct policy_answer {
	__s32 raw;    /* what the program returned */
	__s32 value;  /* what to act on: raw clamped into range, or the safe default on error */
	bool clamped; /* raw was out of range */
	bool error;   /* BPF_PROG_RUN failed */
};

struct policy_stats {
	__u64 calls[GMEM_POLICY_CB_MAX];
	__u64 clamped[GMEM_POLICY_CB_MAX];
	__u64 errors[GMEM_POLICY_CB_MAX];
	__u64 run_ns[GMEM_POLICY_CB_MAX]; /* wall time around BPF_PROG_RUN, summed */
	__u64 runs;                       /* BPF_PROG_RUN calls (a batch is one) */
	__u64 decided[GMEM_POLICY_CB_MAX][POLICY_DECISIONS]; /* by policy__decision_slot() */
};

int policy__open(struct policy **out, const char *spec, const struct policy_opts *opts,
		 char *err, size_t errlen);
/* Runs the policy's exit; accepts NULL. */
void policy__close(struct policy *p);

const char *policy__name(const struct policy *p);
const char *policy__path(const struct policy *p);
/* The struct_ops form's state, and a one-line reason. */
enum policy_so_state policy__struct_ops(const struct policy *p, const char **reason);
const struct policy_stats *policy__stats(const struct policy *p);

/* One decision per BPF_PROG_RUN. ctx is not modified. 0, or -errno from the run (then
 * a->error is set and a->value is the safe default). */
int policy__split(struct policy *p, const struct gmem_split_ctx *ctx, struct policy_answer *a);
int policy__merge(struct policy *p, const struct gmem_merge_ctx *ctx, struct policy_answer *a);
int policy__alloc(struct policy *p, const struct gmem_alloc_ctx *ctx, struct policy_answer *a);
int policy__decide(struct policy *p, enum gmem_policy_cb cb, const void *ctx,
		   struct policy_answer *a);
/*
 * n independent decisions of one callback in as few runs as possible (GMEM_POLICY_BATCH_MAX
 * per run): ctxs is an array of n contexts of cb's type. Falls back to one run per context
 * for an object without a batch program.
 */
int policy__batch(struct policy *p, enum gmem_policy_cb cb, const void *ctxs, unsigned int n,
		  struct policy_answer *a);

/* Pure helpers, shared with whoever checks answers. */
__s32 policy__clamp(enum gmem_policy_cb cb, const void *ctx, __s32 raw, bool *clamped);
__s32 policy__safe_default(enum gmem_policy_cb cb);
size_t policy__ctx_size(enum gmem_policy_cb cb);
unsigned int policy__decision_slot(enum gmem_policy_cb cb, __s32 value);
/* "split", "merge", "alloc_order"; "?" when out of range. */
const char *policy__cb_name(unsigned int cb);
/* -1 when unknown. Accepts "alloc" for "alloc_order". */
int policy__cb_parse(const char *name);
/* A decision's label: orders as sizes ("4k", "1M", "2M", "1G"), merges "now"/"delay"/"never". */
const char *policy__slot_name(enum gmem_policy_cb cb, unsigned int slot);
const char *policy__so_state_name(enum policy_so_state s);
const char *policy__cause_name(unsigned int cause);

/* Where NAME resolves to (path filled), or -ENOENT with err naming the places looked at. */
int policy__resolve(const char *spec, char *path, size_t pathlen, char *err, size_t errlen);
/* Calls cb for each policy found in the search path (NAME, path); stops on non-zero. */
int policy__for_each_installed(int (*cb)(const char *name, const char *path, void *ctx),
			       void *ctx);

#endif /* GMEM_POLICY_HOST_H */
