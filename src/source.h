/* SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause */
/*
 * source.h - the live event stream: the ring buffer, plus the records only user space can make
 * (files found or found gone by a scan, DirectMap samples, drops), in one ordered callback.
 *
 * Whatever consumes a source (the model, a recorder, a subscriber) sees exactly the records a
 * recording would hold, so a replay reproduces what the live consumer saw.
 */
#ifndef GMEM_SOURCE_H
#define GMEM_SOURCE_H
#ifdef __bpf__
#error "user-space only header"
#endif

#include "gmem_events.h"
#include "loader.h"

struct source;

typedef void (*source_cb)(void *ctx, const struct gmem_event *e);

struct source_opts {
	struct loader_opts loader;
	__u64 scan_interval_ns; /* slow liveness/discovery scan; 0 = 2 s */
	__u64 dmap_interval_ns; /* /proc/meminfo DirectMap sampling; 0 = 1 s */
	const char *meminfo;    /* path, for tests; NULL = /proc/meminfo */
	bool procfs_scan;       /* discover/release through /proc even if iterators work */
	/*
	 * Called around a scan's walk of every task (milliseconds with many files), during
	 * which the source touches neither the callback nor its own tables: a daemon that holds
	 * a lock around source__poll() can let a scrape through meanwhile. Optional.
	 */
	void (*walk_begin)(void *ctx);
	void (*walk_end)(void *ctx);
	void *walk_ctx;
};

struct source_stats {
	__u64 records;      /* ring buffer records consumed */
	__u64 synthesized;  /* records made by user space */
	__u64 dropped;      /* records lost: not reserved, or a program run skipped (LOST) */
	__u64 missed;       /* of those, program runs the kernel skipped (recursion_misses) */
	__u64 scans;
	__u64 scan_ns_last; /* how long the last scan took */
	__u64 scan_errors;
	__u64 counted_records; /* GMEM_EVF_COUNTED records made from the kernel's counters */
	__u64 counted_events;  /* the page events those records stand for */
	__u64 count_switches;  /* flips between records and kernel counting */
	bool counting;         /* the kernel counts page events now (records off) */
	bool scan_procfs; /* scans go through /proc (iterators refused, or asked) */
};

int source__open(struct source **out, const struct source_opts *opts, source_cb cb, void *ctx,
		 char *err, size_t errlen);
void source__close(struct source *s);
/* An fd that becomes readable when records are waiting (epoll on the ring buffer). */
int source__fd(const struct source *s);
/* Consume what is waiting and run due timers; waits at most timeout_ms. Returns records seen
 * or -errno (-EINTR is not an error). */
int source__poll(struct source *s, int timeout_ms);
/* Consume every record waiting in the ring now, whether or not a wakeup was sent (the probes
 * batch wakeups); returns records seen or -errno. */
int source__drain(struct source *s);
/*
 * Page events as records (on, the default), or counted per file in the kernel (off): the
 * hottest kinds, PAGE_ALLOC and PAGE_FREE folio by folio, then cost an atomic add each instead
 * of a ring record, and the source turns the counters into GMEM_EVF_COUNTED records every
 * 250 ms, before a scan tells releases, before a file's release, and on source__drain(). For a
 * consumer that needs only the totals (gmemd with nobody subscribed): a recording, a subscriber
 * or a policy needs each folio's index. Totals are exact across a switch: each event goes one
 * way. Turning records on first passes on what was counted. 0 or -errno (-ENOENT: the probes
 * cannot count).
 */
int source__set_records(struct source *s, bool on);
/* Force a scan now (after draining the ring), e.g. before a final snapshot. */
int source__scan(struct source *s);
const struct probe_table *source__table(const struct source *s);
/* The probes' own per-kind counts: records emitted into the ring and records that found it
 * full. emitted[k] is what a consumer that lost nothing has seen of kind k. */
/* Entries in one of the probes' shared BPF maps (loader__map_entries), or -errno. */
int source__map_entries(const struct source *s, const char *name);
int source__kernel_counters(const struct source *s, struct gmem_counters *c);
void source__stats(const struct source *s, struct source_stats *st);

/* CLOCK_MONOTONIC in ns: the clock bpf_ktime_get_ns() uses. */
__u64 source__now_ns(void);

/* Parse DirectMap4k/2M/1G (kB) from a meminfo text into bytes; 0 on success. */
int source__parse_directmap(const char *text, __u64 bytes[3]);

/* A slab cache's active objects from a /proc/slabinfo text ("name active total ..."); 0, or
 * -ENOENT when the cache is not listed (before 6.19 for kvm_gmem_inode_cache, or merged). */
int source__parse_slab_active(const char *text, const char *cache, __u64 *active);

#endif /* GMEM_SOURCE_H */
