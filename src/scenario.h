/* SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause */
/*
 * scenario.h - constructed event streams for what this machine's kernel cannot produce:
 * private/shared conversions, SEV-SNP RMP and TDX page-state transitions, huge-page splits.
 *
 * Each scenario replays, record by record, the sequence gmemscope's probes would emit for a
 * known workload on a kernel that has the feature: the KVM selftest
 * private_mem_conversions_test, an SNP guest's launch and boot (arch/x86/kvm/svm/sev.c), a TDX
 * guest (arch/x86/kvm/vmx/tdx.c), huge guest_memfd folios being split and merged. Counts and
 * order follow the named source; timings are illustrative constants, stated in the
 * description. Every record carries GMEM_EVF_SCENARIO. `gmemtrace synth` writes them through
 * the recorder's own writer, so they are recordings like any other (tests/scenarios/README.md).
 */
#ifndef GMEM_SCENARIO_H
#define GMEM_SCENARIO_H
#ifdef __bpf__
#error "user-space only header"
#endif

#include <stddef.h>
#include <linux/types.h>
#include <jansson.h>

#include "gmem_events.h"

struct scenario_params {
	unsigned int vcpus; /* private-mem-conversions: vCPUs (the selftest's -n); 0 = default */
	__u64 events;       /* synthetic-churn: records to make; 0 = default */
};

/* Receives the records in time order; a non-zero return stops the scenario and is returned. */
typedef int (*scenario_emit_fn)(void *ctx, const struct gmem_event *e);

struct scenario {
	const char *name;
	const char *summary;     /* one line */
	const char *source;      /* the kernel source or selftest the sequence follows */
	const char *description; /* how it was constructed, what is and is not from the source */
	int (*run)(const struct scenario_params *p, scenario_emit_fn emit, void *ctx);
};

extern const struct scenario scenario_list[];
extern const size_t scenario_count;

const struct scenario *scenario__find(const char *name);
/* The parameters with defaults filled in. */
void scenario__defaults(const struct scenario *s, struct scenario_params *p);
int scenario__run(const struct scenario *s, const struct scenario_params *p,
		  scenario_emit_fn emit, void *ctx);
/* Metadata for the recording: {"scenario": {name, summary, source, description, params},
 * "probe": the coverage of a kernel that has every hook and permits fentry}. */
json_t *scenario__meta(const struct scenario *s, const struct scenario_params *p);

#endif /* GMEM_SCENARIO_H */
