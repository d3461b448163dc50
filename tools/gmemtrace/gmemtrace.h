/* SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause */
/*
 * gmemtrace.h - what gmemtrace's files share: the long-option keys, the helpers several verbs
 * use, and the verbs themselves for the command table.
 *
 * main.c      the command table, usage, help and dispatch
 * common.c    sizes and times in words, signals, opening a recording, the inode set, the VM
 *             filter
 * record.c    record: from gmemd's event stream or in-process, rotation
 * report.c    report: a recording read through the model (text and JSON renderers)
 * replay.c    replay: a recording served as gmemd would (/metrics, control socket)
 * export.c    export: perfetto, csv, jsonl
 * cat.c       cat: events as text
 * info.c      info: header, chunks, integrity
 * features.c  features: the probe coverage table
 * whatif.c    whatif: a recording through huge-page policies, side by side
 * scenario.c  scenario (old name synth): constructed recordings
 */
#ifndef GMEMTRACE_H
#define GMEMTRACE_H
#ifdef __bpf__
#error "user-space only header"
#endif

#include <jansson.h>
#include <linux/types.h>
#include <stdbool.h>
#include <stddef.h>

#include "cli.h"

#define GMEMTRACE_VERSION GMEMSCOPE_VERSION

struct gmem_event;
struct recording;

/* Long options without a short letter: one numbering for every verb. */
enum {
	OPT_VM = 1000,
	OPT_IN_PROCESS,
	OPT_ROTATE_SIZE,
	OPT_ROTATE_TIME,
	OPT_MAX_FILES,
	OPT_CHUNK,
	OPT_LEVEL,
	OPT_NO_SYNC,
	OPT_RING,
	OPT_NO_FENTRY,
	OPT_SCAN,
	OPT_SPEED,
	OPT_MAX,
	OPT_EXIT_AT_END,
	OPT_RETIRE,
	OPT_NO_HTTP,
	OPT_COUNTER,
	OPT_KIND,
	OPT_VCPUS,
	OPT_EVENTS,
	OPT_LIST,
	OPT_MAXFILESERIES,
	OPT_FORCE,
	OPT_REC_KVM_STATS,
};

/* ---- common.c ---------------------------------------------------------------------------- */

int parse_size(const char *arg, unsigned long long *out);
__u64 now_ns(void);
__u64 wall_ns(void);
const char *human_bytes(double v, char *buf, size_t len);
const char *human_ns(double ns, char *buf, size_t len);
int signals_fd(void);
int read_signal(int fd);
struct recording *open_recording(const char *path);
int read_status(const char *path, struct recording *r, int status);
json_t *argv_json(int argc, char **argv);

/* A set of u64 keys (inode numbers), open addressing; 0 is never a member. */
struct u64set {
	__u64 *slots;
	size_t cap, n;
};

bool u64set_has(const struct u64set *s, __u64 k);
void u64set_add(struct u64set *s, __u64 k);
void u64set_del(struct u64set *s, __u64 k);

bool vm_filter_keep(struct u64set *inos, const __u32 *vms, int n, const struct gmem_event *e);

/* ---- the verbs --------------------------------------------------------------------------- */

int do_record(int argc, char **argv);
int do_report(int argc, char **argv);
int do_replay(int argc, char **argv);
int do_export(int argc, char **argv);
int do_cat(int argc, char **argv);
int do_info(int argc, char **argv);
int do_features(int argc, char **argv);
int do_whatif(int argc, char **argv);
int do_synth(int argc, char **argv);

#endif
