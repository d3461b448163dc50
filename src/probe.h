/* SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause */
/*
 * probe.h - which source (tier) serves each logical event on this kernel, and why.
 *
 * The decision is a pure function of facts gathered from the kernel (BTF, tracefs, and whether
 * an fentry program really loads), so it can be unit-tested with made-up kernels. The loader
 * gathers the facts, asks probe__decide(), then loads and attaches what it says and records
 * any attach failure back into the table.
 */
#ifndef GMEM_PROBE_H
#define GMEM_PROBE_H
#ifdef __bpf__
#error "user-space only header"
#endif

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

enum probe_tier {
	TIER_NONE = 0,
	TIER_TRACEPOINT,
	TIER_FENTRY,
};

enum probe_state {
	PROBE_UNAVAILABLE = 0,
	PROBE_LIVE,
	PROBE_FAILED, /* chosen, but load or attach failed */
};

#define PROBE_MAX_PROGS 12
#define PROBE_REASON_LEN 160

/* A BPF program and what the running kernel must have for it to load. */
struct probe_prog {
	const char *prog;   /* program name in its object */
	const char *target; /* tp_btf: tracepoint name; tracepoint: "group/name"; fentry: function;
			     * iter: iterator name */
	enum { NEED_TP_BTF, NEED_TRACEFS, NEED_FUNC, NEED_ITER } need;
	bool optional;      /* the event is served without it (e.g. one of several RMP ops) */
};

struct probe_event_def {
	const char *event;
	const char *what; /* one line for --probe */
	struct probe_prog tp[PROBE_MAX_PROGS];
	struct probe_prog fentry[PROBE_MAX_PROGS];
};

struct probe_row {
	const char *event;
	const char *what;
	enum probe_tier tier;
	enum probe_state state;
	char reason[PROBE_REASON_LEN];
	/* the alternative tier's state, for the table */
	enum probe_tier other_tier;
	char other_reason[PROBE_REASON_LEN];
};

#define PROBE_MAX_EVENTS 24

struct probe_table {
	struct probe_row rows[PROBE_MAX_EVENTS];
	int n;
	bool fentry_permitted;
	char fentry_reason[PROBE_REASON_LEN];
	char kernel[128];
};

/* What the kernel offers; callbacks so tests can fake any kernel. */
struct probe_facts {
	void *ctx;
	bool (*has_func)(void *ctx, const char *func);       /* FUNC in vmlinux BTF */
	bool (*has_tp_btf)(void *ctx, const char *tp);       /* btf_trace_<tp> typedef */
	bool (*has_tracefs)(void *ctx, const char *group_tp); /* events/<group>/<tp>/id */
	bool (*has_iter)(void *ctx, const char *iter);       /* bpf_iter_<name> in BTF */
	bool fentry_permitted;
	const char *fentry_reason; /* why not, when not */
};

extern const struct probe_event_def probe_events[];
extern const int probe_nr_events;

/* Fill the table: per event, the best tier whose required programs all exist. */
void probe__decide(const struct probe_facts *facts, struct probe_table *table);

/* Should this program be loaded, given the table? (tier chosen for its event, target present) */
bool probe__want_prog(const struct probe_facts *facts, const struct probe_table *table,
		      const char *prog, enum probe_tier tier);

/* Record that a chosen program failed to load/attach: its events become FAILED with reason. */
void probe__mark_failed(struct probe_table *table, const char *prog, enum probe_tier tier,
			const char *reason);

struct probe_row *probe__row(struct probe_table *table, const char *event);
const char *probe__tier_str(enum probe_tier tier);
const char *probe__state_str(enum probe_state state);
/* Human table (event, tier, state, reason) to a stream. */
void probe__print(const struct probe_table *table, FILE *out);

#endif /* GMEM_PROBE_H */
