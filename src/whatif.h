/* SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause */
/*
 * whatif.h - replay a stream of records through one huge-page model per policy and compare:
 * splits and merges by order, huge coverage over time, the direct-map estimate, merge/split
 * ping-pongs and what each decision cost in the kernel's BPF VM.
 *
 * The engine does not know where records come from: it pulls them through a callback, so a
 * recording, a subscribe stream or a constructed array all work. Policies are loaded by the
 * caller (policy__open) and keep their own state across runs; each result holds only its run's
 * share of their statistics.
 *
 *	struct whatif_result res;
 *	err = whatif__run(&opts, next, ctx, pols, npols, &res);
 *	whatif__print(stdout, &res);            or   json_t *j = whatif__json(&res);
 *	whatif__result_free(&res);
 */
#ifndef GMEM_WHATIF_H
#define GMEM_WHATIF_H
#ifdef __bpf__
#error "user-space only header"
#endif

#include <stdbool.h>
#include <stdio.h>
#include <jansson.h>

#include "gmem_events.h"
#include "hugemodel.h"
#include "policy.h"

struct whatif_opts {
	__u32 max_order;    /* largest folio modelled: 9 (2 MiB, default) .. 18 (1 GiB) */
	__u64 window_ns;    /* region history window (recent_*); 0 = 1 s */
	__u64 sample_ns;    /* coverage series period in record time; 0 = 100 ms */
	bool no_series;     /* keep no series */
	bool no_direct_map; /* count every file as GUEST_MEMFD_FLAG_NO_DIRECT_MAP */
};

/* The next record into *ev: 1, or 0 at the end, or -errno. */
typedef int (*whatif_next_fn)(void *ctx, struct gmem_event *ev);

struct whatif_policy_result {
	char name[GMEM_POLICY_NAME_LEN];
	const char *path;          /* the policy's; valid while the policy is open */
	struct hugemodel_stats hm; /* the model's view */
	struct policy_stats pol;   /* the policy's, this run only */
	struct hm_sample *series;
	size_t nr_series;
};

/*
 * KVM's own mapping of the guests as the recording sampled it (KVM_STAT records of pages_4k,
 * pages_2m and pages_1g, gmemd's binary stats), summed over the VMs: one point per tick.
 */
struct whatif_kvm_point {
	__u64 ts_ns;
	__u64 pages[3]; /* 4k, 2m, 1g */
};

struct whatif_result {
	struct whatif_kvm_point *kvm; /* NULL when the recording has no such samples */
	size_t nr_kvm;
	__u64 records;
	__u64 first_ts_ns, last_ts_ns;
	__u64 wall_ns; /* replay time, all policies */
	__u32 max_order;
	bool no_direct_map;
	int nr;
	struct whatif_policy_result *pol;
};

int whatif__run(const struct whatif_opts *opts, whatif_next_fn next, void *ctx,
		struct policy **pols, int n, struct whatif_result *out);
void whatif__result_free(struct whatif_result *r);
json_t *whatif__json(const struct whatif_result *r);
void whatif__print(FILE *f, const struct whatif_result *r);

/* Sources for the callback: an array of records, and raw 64-byte records read from an fd
 * (a subscribe stream, or a file of them); a record of an unknown kind is passed on (the model
 * ignores it), a short read at the end is an error. */
struct whatif_array {
	const struct gmem_event *ev;
	size_t n, i;
};
int whatif__next_array(void *ctx, struct gmem_event *ev);

struct whatif_fd {
	int fd;
	size_t off, len;
	char buf[1 << 16];
};
int whatif__next_fd(void *ctx, struct gmem_event *ev);

/* Records from a gmemtrace recording, chunk by chunk; keep (optional) filters them. status is
 * recording__next()'s last: < 0 when the file was cut short or damaged (what was read is
 * used; recording__error() says why). */
struct recording;
struct whatif_rec {
	struct recording *r;
	bool (*keep)(void *kctx, const struct gmem_event *e);
	void *kctx;
	const struct gmem_event *recs;
	size_t n, i;
	int status;
};
int whatif__next_recording(void *ctx, struct gmem_event *ev);

/*
 * A constructed conversion-heavy stream shaped like the KVM selftest
 * private_mem_conversions_test: one VM, one private guest_memfd of vcpus x 4 MiB bound at
 * 4 GiB, each vCPU converting within its own 4 MiB. Per vCPU and iteration, in five stages
 * over the selftest's ranges (offset, size) = (0, 4K), (0, 2M), (4K, 4K), (4K, 2M), (2M, 4K):
 * 52 map-GPA-range exits (CONV_REQUEST + VCPU_RESUME), 32 set-attributes calls (CONV_ATTR),
 * 35 punch holes and 5 allocating fallocates, plus the guest's faults on pages it writes.
 * Iterations start period_ns apart (records step_ns apart within one); after the last, a quiet
 * tail_ns of one DMAP_SAMPLE per second. Every record has GMEM_EVF_SCENARIO.
 */
struct whatif_gen_opts {
	__u32 vcpus;       /* 0 = 4 */
	__u32 iterations;  /* 0 = 10 */
	__u64 period_ns;   /* 0 = 300 ms */
	__u64 step_ns;     /* 0 = 100 us */
	__u64 tail_ns;     /* quiet time after the last iteration */
	__u32 vm;          /* 0 = 4242 */
	__u64 ino;         /* 0 = 777 */
};

struct whatif_gen_counts {
	__u64 exits, attrs, punches, fallocates, faults;
};

/* *out is malloc'd; counts (may be NULL) gets what was made, per vCPU and iteration summed. */
int whatif__gen_conversions(const struct whatif_gen_opts *g, struct gmem_event **out,
			    size_t *n, struct whatif_gen_counts *counts);

#endif /* GMEM_WHATIF_H */
