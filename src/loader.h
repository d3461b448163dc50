/* SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause */
/*
 * loader.h - probe the kernel, load the best tier per event, attach, and give user space the
 * handles it needs (ring buffer fd, drop counters, discovery scans).
 */
#ifndef GMEM_LOADER_H
#define GMEM_LOADER_H
#ifdef __bpf__
#error "user-space only header"
#endif

#include <stdbool.h>
#include <stddef.h>
#include "gmem_events.h"
#include "probe.h"

struct loader;

struct loader_opts {
	size_t ring_bytes; /* ring buffer size, power of two; 0 = 16 MiB */
	bool verbose;      /* route libbpf's log to stderr */
	bool no_fentry;    /* do not even try the fentry tier */
	bool probe_only;   /* gather facts and decide; load nothing */
	bool empty_bodies; /* attach as usual, programs return at once (a benchmark's floor) */
};

/*
 * Probe, decide and (unless probe_only) load and attach. On failure returns a negative errno
 * and writes a one-line explanation (what failed, on what, what to do) into err.
 */
int loader__open(struct loader **out, const struct loader_opts *opts, char *err, size_t errlen);
void loader__close(struct loader *l);

const struct probe_table *loader__table(const struct loader *l);
int loader__events_fd(const struct loader *l);
/* Sum of the per-CPU emitted/dropped counters. */
int loader__read_counters(const struct loader *l, struct gmem_counters *sum);
/* Runs of our attached programs the kernel skipped (recursion/preemption), summed. */
__u64 loader__prog_misses(const struct loader *l);
/* Run the discovery iterators; *recs is malloc'd (one per file, deduplicated). */
int loader__scan(struct loader *l, struct gmem_scan_rec **recs, size_t *n);
/* Scans go through /proc: discover/release stay live, and the table says how and why. */
void loader__use_procfs_scan(struct loader *l, const char *why);
/* Tell the probes that tgid is the VMM of vm (for VMs discovered by a scan). */
/* A released file's inode leaves the ino -> vm map (once its folios are gone). */
int loader__forget_ino(struct loader *l, __u64 ino);
/*
 * Per-file page counting in the kernel instead of a record per folio (see source.h): on or off.
 * 0, or -ENOENT when the probes cannot (no tracepoint object).
 */
int loader__count_pages(struct loader *l, bool on);
/* One file's counters summed over CPUs; -ENOENT when the map has no entry for it. */
int loader__read_page_count(const struct loader *l, __u64 ino, struct gmem_page_count *sum);
/* Every file the page_counts map holds, summed over CPUs. */
typedef void (*loader_page_count_cb)(void *ctx, __u64 ino, const struct gmem_page_count *sum);
int loader__read_page_counts(const struct loader *l, loader_page_count_cb cb, void *ctx);
/* A released file's counters leave the map (after their last read). */
int loader__forget_page_count(struct loader *l, __u64 ino);
/* Entries in one of the shared maps ("ino_vm", "vmm_tgids", "calls", "drops", "page_counts"),
 * or -errno. */
int loader__map_entries(const struct loader *l, const char *name);
/* Drop VMM processes that no longer exist from vmm_tgids; how many went. */
int loader__sweep_vmms(struct loader *l);
int loader__note_vmm(struct loader *l, __u32 tgid, __u32 vm);

/* Privilege and kernel preconditions, shared by every front end; 0 or -errno with err set. */
int loader__check_privileges(char *err, size_t errlen);
/* Every (process, kind) the drops map holds, with its count so far. Read it before the
 * counters: it never holds more than they do. */
typedef void (*loader_drop_cb)(void *ctx, __u32 tgid, __u32 kind, __u64 n);
int loader__read_drops(const struct loader *l, loader_drop_cb cb, void *ctx);
/* The capabilities loading needs here: CAP_BPF, CAP_PERFMON, CAP_SYS_ADMIN, and for a uid other
 * than 0 CAP_DAC_READ_SEARCH (a bit mask by capability number). */
__u64 loader__caps_needed(void);
/* After attaching: keep only CAP_BPF and CAP_PERFMON (and, for a /proc scan, CAP_SYS_PTRACE and
 * CAP_DAC_READ_SEARCH; with ptrace, CAP_SYS_PTRACE for KVM stats fds) in this thread's permitted and effective sets, before any other thread
 * exists. kept names what stayed. 0 or -errno. */
int loader__drop_privileges(bool procfs, bool ptrace, char *kept, size_t keptlen);
/* One line for --probe: what is needed to attach and what gmemd keeps afterwards. */
void loader__caps_plan(char *buf, size_t len);

#endif /* GMEM_LOADER_H */
