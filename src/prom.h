/* SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause */
/*
 * prom.h - the model as Prometheus text exposition 0.0.4 or OpenMetrics 1.0.
 *
 * Every family of docs/design.md's metric contract is rendered, with HELP and TYPE even before it has
 * samples. Where a label set is small and fixed its zeros are emitted too (every source, every
 * to x result, both owners, all page sizes), so a rate() over a series that starts later does
 * not miss its first increments. The conversion histograms are the exception: a (vm, to)
 * series appears with its first observation, as Prometheus allows, since their 31 series each
 * were most of the scrape for VMs that never convert. Values are exact: counts as integers, seconds as exact
 * decimals of their nanoseconds.
 *
 * With a policy host (prom_extra.policy_family), one more family:
 *   gmem_policy_decisions_total{policy,callback,decision} (counter) - the decisions the active
 *   huge-page policy made on the events seen: policy by name, callback split | merge |
 *   alloc_order, decision the answer after clamping (an order as a size, or now/delay/never).
 *
 * One family of the exporter's own, not in the table:
 *   gmemscope_file_series_capped (gauge) - how many files the opts.max_file_series cap left
 *   out of gmem_file_size_bytes and gmem_populated_bytes in this render (each family lost that
 *   many series). A gauge, not a counter, because it describes one scrape: 0 means complete.
 */
#ifndef GMEM_PROM_H
#define GMEM_PROM_H

#ifdef __bpf__
#error "prom.h is user-space only"
#endif

#include <stdbool.h>
#include <stddef.h>
#include <linux/types.h>

#include "model.h"
#include "strbuf.h"

#define PROM_CONTENT_TYPE    "text/plain; version=0.0.4; charset=utf-8"
#define PROM_OM_CONTENT_TYPE "application/openmetrics-text; version=1.0.0; charset=utf-8"

/* One row of the loader's probe table: gmemscope_probe_info{event,tier,state} 1. */
struct prom_probe_row {
	const char *event; /* logical event, e.g. "file_create" */
	const char *tier;  /* e.g. "tracepoint", "fentry", "none" */
	const char *state; /* e.g. "live", "unsupported", "failed" */
};

enum prom_stat_type {
	PROM_STAT_GAUGE = 0,
	PROM_STAT_COUNTER = 1,
};

/* One unlabelled sample of the daemon's own (CPU, memory, scrapes...). */
struct prom_stat {
	const char *name; /* the sample name; a counter's must end in _total */
	const char *help;
	enum prom_stat_type type;
	bool is_float; /* value in d, else in u */
	__u64 u;
	double d;
};

/* One series of gmem_policy_decisions_total{policy,callback,decision}. */
struct prom_policy_row {
	const char *policy;   /* the policy's name, e.g. "buddy" */
	const char *callback; /* "split", "merge", "alloc_order" */
	const char *decision; /* e.g. "4k", "1M", "2M", "now", "delay", "never" */
	__u64 count;
};

/* One sample of a per-VM family the model does not own: name{vm="PID"} value. */
struct prom_sample {
	__u32 vm;
	bool is_float; /* value in d, else in u */
	__u64 u;
	double d;
};

/* A per-VM family from outside the model (gmemd's KVM binary stats): the name must start with
 * gmem_kvm_, and a counter's end in _total. */
struct prom_family {
	char name[128];
	const char *help;
	enum prom_stat_type type;
	struct prom_sample *samples;
	size_t n;
};

/* What the exporter shows that the model does not own. May be NULL. */
struct prom_extra {
	const struct prom_probe_row *probes;
	size_t nr_probes;
	const struct prom_stat *stats;
	size_t nr_stats;
	/*
	 * gmemd's policy host: the family gmem_policy_decisions_total is rendered (HELP and TYPE
	 * even with no rows) only when policy_family is set, so exporters without a policy host
	 * render exactly what they did before.
	 */
	bool policy_family;
	const struct prom_policy_row *policy_rows;
	size_t nr_policy_rows;
	const struct prom_family *families;
	size_t nr_families;
	/* gmemscope_build_info{version,revision,libbpf} 1, when version is set */
	const char *build_version, *build_revision, *build_libbpf;
};

/*
 * Appends the exposition of m (and extra) to out. Returns 0; -EINVAL for an extra stat with a
 * bad, duplicate or reserved name (gmem_*, or one of the gmemscope_ families above), a counter
 * stat not ending in _total, or a probe row with a NULL string; -ENOMEM. On error out is left
 * as it was.
 */
int prom__render(const struct model *m, const struct prom_extra *extra, struct strbuf *out,
		 bool openmetrics);

/* Helpers the renderer is built from, exposed for tests and for other text sinks. */
/* ns as exact decimal seconds: 1024 -> "0.000001024", 2000000000 -> "2", 0 -> "0". */
int prom__fmt_seconds(char *buf, size_t len, __u64 ns);
/* A label value with \\, \" and \n escaped. */
int prom__escape_label(struct strbuf *out, const char *s);

#endif /* GMEM_PROM_H */
