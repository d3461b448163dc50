/* SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause */
/*
 * model.h - the one model every front end reads.
 *
 * Pure logic: no BPF, no I/O, no clock. Live events from the ring buffer and records replayed
 * from a recording go through model__apply() alone, and time-driven work happens only in
 * model__tick() with a caller-supplied time, so a replay reproduces a live run's numbers
 * exactly. State is per VM (keyed by the VMM pid, 0 = unknown, a normal bucket) and per live
 * guest_memfd file (keyed by inode number). Several models may coexist: nothing is global.
 *
 * Front ends read through const views (struct model_vm, struct model_file, struct
 * model_totals) reached by lookup or by the sorted iterators. A view stays valid until the
 * next model__apply(), model__tick() or model__free() on that model. A model has no lock of
 * its own: a front end that reads from another thread than the one applying holds its own.
 */
#ifndef GMEM_MODEL_H
#define GMEM_MODEL_H

#ifdef __bpf__
#error "model.h is user-space only"
#endif

#include <stdbool.h>
#include <stddef.h>
#include <linux/types.h>
#include <jansson.h>

#include "gmem_events.h"
#include "histo.h"
#include "vmname.h"

#define MODEL_PAGE_SIZE       4096ull /* PAGE_ALLOC/PAGE_FREE b counts pages of this size */
#define MODEL_PENDING_DEFAULT 256     /* open conversion requests kept per VM by default */

/*
 * Names a VM when the model first meets it (a new pid, or a gone pid revived by a create: a
 * reused pid). The model does no I/O itself: a live caller reads /proc here (vmname__read),
 * while a replay leaves it NULL, since a recording's pids are not this host's processes.
 */
typedef void (*model_name_fn)(void *ctx, __u32 pid, char *buf, size_t len);

struct model_opts {
	model_name_fn name_fn; /* NULL: VMs stay unnamed ("") */
	void *name_ctx;
	__u64 retire_after_ns; /* how long a gone VM's series linger before model__tick drops it */
	__u32 max_file_series; /* files whose per-file series the exporter emits; 0 = no cap */
	__u32 max_pending;     /* open conversion requests per VM; 0 = MODEL_PENDING_DEFAULT */
};

enum model_result {
	MODEL_RESULT_OK = 0,
	MODEL_RESULT_ERROR = 1,
	MODEL_RESULT_MAX
};

/* gmem_host_direct_map_bytes{page_size}, in the order of DMAP_SAMPLE's a, b, c. */
enum model_page_size {
	MODEL_PS_4K = 0,
	MODEL_PS_2M = 1,
	MODEL_PS_1G = 2,
	MODEL_PS_MAX
};

/* A thread that ran one of a VM's vCPUs (VCPU_THREAD records), and what records showed it do:
 * counted from records only (with the kernel counting, gmemd keeps no thread per page). */
struct model_vcpu_thread {
	__u32 vcpu; /* the vCPU's index */
	__u32 tid;
	__u64 guest_fault_pages; /* PAGE_ALLOC records of source guest_fault on this thread */
	__u64 faults;            /* FAULT records on this thread (fentry tier) */
};

/* Huge-page splits and merges of one (from, to) order pair. */
struct model_order_count {
	__u64 splits;
	__u64 merges;
	__u8 from_order;
	__u8 to_order;
};

/*
 * The conversion state machine's bookkeeping per VM (JSON only). A request opens on
 * CONV_REQUEST, is attributed by an ok CONV_ATTR and closes on VCPU_RESUME.
 */
struct model_conv_stats {
	__u64 requests;         /* CONV_REQUEST records */
	__u64 completed;        /* closed attributed: exit_to_entry observed */
	__u64 abandoned;        /* closed by VCPU_RESUME with no ok attributes call */
	__u64 superseded;       /* replaced by a newer request of the same tid before resuming */
	__u64 evicted;          /* dropped oldest-first because max_pending were open */
	__u64 unfinished;       /* still open when the VM exited */
	__u64 unmatched_attr;   /* ok CONV_ATTR with no open request to attribute (VMM-initiated) */
	__u64 unmatched_resume; /* VCPU_RESUME of a tid with no open request */
	__u64 pending;          /* open now */
};

/* One VM: every counter of the exporter's contract plus the model's own bookkeeping. */
struct model_vm {
	__u64 first_ts_ns;
	__u64 last_ts_ns;
	__u64 gone_ts_ns; /* VM_EXIT time, when gone */
	__u64 events;     /* records applied to this VM */

	__u64 files;               /* gmem_files: live files now */
	__u64 files_created;       /* gmem_files_created_total */
	__u64 files_released;      /* gmem_files_released_total */
	__u64 files_discovered;    /* pre-existing files found by a scan (not created) */
	__u64 files_create_failed; /* FILE_CREATE with result < 0 */

	__u64 memslot_binds;       /* gmem_memslot_binds_total */
	__u64 memslot_bind_failed;
	__u64 memslot_unbinds;

	__u64 pages_allocated[GMEM_SRC_MAX]; /* gmem_pages_allocated_total{source} */
	__u64 pages_freed;                   /* gmem_pages_freed_total */
	__u64 punch_holes;                   /* gmem_punch_holes_total */
	__u64 punch_hole_failed;
	__u64 invalidated_bytes; /* gmem_invalidated_bytes_total */
	__u64 fallocates;        /* allocating fallocate calls that succeeded */
	__u64 fallocate_failed;
	__u64 fallocated_bytes;

	__u64 faults[GMEM_SRC_MAX]; /* gmem_faults_total{source} (fentry tier) */
	struct histo fault_ns;      /* fault latency (JSON only) */

	__u64 conversions[GMEM_DIR_MAX][MODEL_RESULT_MAX]; /* gmem_conversions_total{to,result} */
	/* of those, in place (KVM_SET_MEMORY_ATTRIBUTES2 on a gmem fd, GMEM_EVF_INPLACE) */
	__u64 conversions_in_place[GMEM_DIR_MAX][MODEL_RESULT_MAX];
	struct histo conversion_ns[GMEM_DIR_MAX];          /* gmem_conversion_seconds{to} */
	struct histo exit_to_entry_ns[GMEM_DIR_MAX]; /* gmem_conversion_exit_to_entry_seconds */
	struct model_conv_stats conv;

	__u64 rmp[GMEM_RMP_OP_MAX]; /* gmem_rmp_transitions_total{op} */
	__u64 tdx[GMEM_TDX_OP_MAX]; /* gmem_tdx_transitions_total{op} */
	/* 7.3+ fentry: gfn ranges a gmem invalidation unmapped, and their frames */
	__u64 mapping_invalidations;     /* gmem_mapping_invalidations_total */
	__u64 mapping_invalidated_pages; /* gmem_mapping_invalidated_pages_total */

	/*
	 * Direct-map pages of this VM's folios (JSON only; the exporter's series are host-wide by
	 * owner): gmem folios through their file, secretmem folios through the process. Counted
	 * only for a VM the model already tracks: another process's secretmem makes no VM.
	 */
	__u64 dmap_removals;
	__u64 dmap_restores;

	/* records about this VM's process the ring had no room for, by kind (LOST records that
	 * name it): gmem_events_dropped_total{vm,kind}. Drops in other contexts (kernel threads,
	 * probe runs the kernel skipped) are only in the host-wide total. */
	__u64 dropped[GMEM_EV_KIND_MAX];

	/* gmem_hugepage_{splits,merges}_total{from_order,to_order}, sorted by (from, to) */
	const struct model_order_count *hugepages;
	size_t nr_hugepages;

	/* (vCPU, thread) pairs in the order first seen (JSON only) */
	const struct model_vcpu_thread *vcpu_threads;
	size_t nr_vcpu_threads;

	char name[VMNAME_LEN]; /* gmem_vm_info{vm,name}: read when first met; "" = unknown */
	__u32 pid; /* the vm label; 0 = unknown */
	bool gone; /* VM_EXIT seen; retired by model__tick once lingered and fileless */
};

/* One live guest_memfd file. Released files are gone from the model. */
struct model_file {
	__u64 ino;
	__u64 size_bytes;      /* gmem_file_size_bytes */
	__u64 populated_pages; /* gmem_populated_bytes = populated_pages * MODEL_PAGE_SIZE */
	__u64 flags;           /* creation flags as reported */
	__u64 first_ts_ns;
	__u64 pages_allocated;
	__u64 pages_freed;
	__u64 punch_holes;
	__u64 invalidated_bytes;
	__u64 faults;
	__u64 binds;
	__u64 splits;
	__u64 merges;
	__u32 vm;        /* owner's pid */
	bool created;    /* a FILE_CREATE for it was seen */
	bool discovered; /* a FILE_DISCOVER for it was seen (it predates us) */
};

/* Things that should not happen, or that the model could not place. Never exported. */
struct model_anomalies {
	__u64 populated_underflow; /* PAGE_FREE of more pages than the file had populated */
	__u64 untracked_file;      /* file-scoped record naming an ino not live in the model */
	__u64 release_untracked;   /* FILE_RELEASE of an ino not live in the model */
	__u64 ino_reowned;         /* CREATE/DISCOVER of an ino live under another VM */
	__u64 bad_sub;             /* sub (source, direction, owner, op) out of range */
	__u64 late_events;         /* records for a VM already retired, dropped */
	__u64 nomem;               /* records not fully applied for lack of memory */
	__u64 creates_recovered;   /* FILE_DISCOVER with GMEM_EVF_LATE: a create whose record
				    * never came, counted as created */
	__u64 releases_recovered;  /* FILE_RELEASE with GMEM_EVF_LATE: a kernel release record
				    * lost, the release found by a scan */
	__u64 exits_recovered;     /* VM_EXIT with GMEM_EVF_LATE: a VMM found gone by a scan */
};

struct model_totals {
	__u64 events;         /* gmemscope_events_total: applied records, LOST excluded */
	__u64 events_dropped; /* gmemscope_events_dropped_total: sum of LOST a */
	__u64 unknown_kinds;  /* records of a kind this build does not know (or NONE) */
	__u64 by_kind[GMEM_EV_KIND_MAX];
	__u64 dmap_removals[GMEM_OWNER_MAX]; /* gmem_direct_map_removals_total{owner}, pages */
	__u64 dmap_restores[GMEM_OWNER_MAX]; /* gmem_direct_map_restores_total{owner}, pages */
	__u64 host_direct_map_bytes[MODEL_PS_MAX]; /* last DMAP_SAMPLE */
	__u64 vms_retired;
	__u64 last_ts_ns;
	struct model_anomalies anomalies;
};

struct model;

struct model *model__new(const struct model_opts *opts);
void model__free(struct model *m);

/*
 * Applies one record. Returns 0, or -ENOMEM when the record could not be fully applied (it is
 * still counted, and in anomalies.nomem). Unknown kinds are counted and ignored.
 */
int model__apply(struct model *m, const struct gmem_event *ev);
/* Kinds only a VMM's own KVM calls emit (creating a file, binding a memslot, memory
 * attributes, KVM_RUN): a process with one is a VMM even if all else it did was lost. */
bool model__kind_proves_vmm(__u32 kind);

/* Retires gone VMs that have lingered retire_after_ns and hold no live file; returns how many. */
unsigned int model__tick(struct model *m, __u64 now_ns);

const struct model_opts *model__opts(const struct model *m);
const struct model_totals *model__totals(const struct model *m);
size_t model__nr_vms(const struct model *m);
size_t model__nr_files(const struct model *m);
const struct model_vm *model__vm(const struct model *m, __u32 pid);
const struct model_file *model__file(const struct model *m, __u64 ino);

/*
 * Visit VMs by ascending pid, or live files by ascending (vm, ino) (only vm's files when vm
 * is not NULL). A callback returning non-zero stops the walk and that value is returned;
 * otherwise 0, or -ENOMEM. The model must not change during a walk.
 */
typedef int (*model_vm_cb)(const struct model_vm *vm, void *ctx);
typedef int (*model_file_cb)(const struct model_file *f, void *ctx);
int model__for_each_vm(const struct model *m, model_vm_cb cb, void *ctx);
int model__for_each_file(const struct model *m, const struct model_vm *vm, model_file_cb cb,
			 void *ctx);

/* A JSON snapshot of everything (json_decref() it), NULL when out of memory. */
json_t *model__to_json(const struct model *m);
/*
 * The same, with flags: MODEL_JSON_SPARSE leaves out of each VM the members with nothing to
 * say (zero counters, empty histograms and lists), which is most of an idle VM: for a reader
 * that takes a missing member as zero (gmemtop, a snapshot a second of every VM).
 */
#define MODEL_JSON_SPARSE 1u
json_t *model__to_json_opts(const struct model *m, unsigned int flags);

/* Label values shared by the exporter and the JSON ("?" when out of range). */
const char *model__source_name(unsigned int source);
const char *model__dir_name(unsigned int dir);
const char *model__result_name(unsigned int result);
const char *model__owner_name(unsigned int owner);
const char *model__page_size_name(unsigned int ps);
const char *model__rmp_op_name(unsigned int op);
const char *model__tdx_op_name(unsigned int op);
const char *model__kind_name(unsigned int kind);

#endif /* GMEM_MODEL_H */
