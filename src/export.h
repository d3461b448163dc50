/* SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause */
/*
 * export.h - records as text, CSV, JSON lines and a Perfetto (Chrome trace-event JSON) trace.
 *
 * `gmemtrace cat` and `gmemtrace export` are thin loops around these. Kind names come from
 * this build (model__kind_name), else from the recording's own dictionary of kinds, else
 * "kind_N", so a recording made by a newer gmemscope still reads.
 *
 * The Perfetto trace: one process per VM (pid = the vm label, 0 = the host), one thread per
 * thread id seen; a conversion is a slice on its vCPU thread from CONV_REQUEST to VCPU_RESUME
 * with the attributes call nested in it as its own slice; populated bytes per VM and the host's
 * DirectMap 4k/2M/1G mix are counters, as are KVM's binary stats (a track per stat of the VM,
 * "KVM NAME", and per vCPU, "vCPU N NAME", in the VM's process); lifecycle, punch holes, fallocates, RMP, TDX, splits
 * and merges are instant events. Page-level records feed the counters only. ts is in
 * microseconds since the first record. JSON goes through jansson, element by element.
 */
#ifndef GMEM_EXPORT_H
#define GMEM_EXPORT_H
#ifdef __bpf__
#error "user-space only header"
#endif

#include <stdio.h>
#include <linux/types.h>
#include <jansson.h>

#include "gmem_events.h"
#include "strbuf.h"

/* A name for kind: this build's, the dictionary's (the recording's "kinds"), or "kind_N". */
const char *export__kind_name(const json_t *kinds, unsigned int kind, char *buf, size_t len);
/* The name of sub for kinds where it is an enum (source, direction, owner, op), else NULL. */
const char *export__sub_name(unsigned int kind, unsigned int sub);

/* One line (no newline): time since base_ns in seconds, kind, vm, tid, then the kind's fields
 * by meaning (gpa=, pages=, source=...). */
int export__text(struct strbuf *out, const struct gmem_event *e, __u64 base_ns,
		 const char *kind_name);
/* CSV: ts_ns, kind, vm, tid, then one column per field name cat prints (a kind fills its
 * own and leaves the rest empty), stat (a KVM_STAT_DESC's stat name), record_flags (names,
 * |-separated). */
int export__csv_header(FILE *f);
int export__csv(FILE *f, const struct gmem_event *e, const char *kind_name);
/* Every field, raw (a, b, c, sub...) and, under "fields", by the names cat prints. */
json_t *export__json(const struct gmem_event *e, const char *kind_name);
/* The kind's fields by the names cat prints, as one object. */
json_t *export__fields_json(const struct gmem_event *e);

struct perfetto;

struct perfetto_opts {
	__u64 counter_interval_ns; /* at most one populated-bytes sample per VM per interval */
	const json_t *kinds;       /* the recording's dictionary, for names of unknown kinds */
};

struct perfetto *perfetto__new(FILE *out, const struct perfetto_opts *opts);
int perfetto__add(struct perfetto *p, const struct gmem_event *e);
/* Closes open slices at the last timestamp, writes the last counter values, then otherData
 * (borrowed) and the end of the document. */
int perfetto__finish(struct perfetto *p, const json_t *other);
void perfetto__free(struct perfetto *p);

#endif /* GMEM_EXPORT_H */
