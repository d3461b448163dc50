/* SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause */
/*
 * gmem_events.h - the event record shared by the BPF probes, the consumer, the model and the
 * recording format.
 *
 * One fixed 64-byte record for every event: the probes emit it into the ring buffer, user space
 * synthesises the few kinds the kernel cannot see (discovery scans, DirectMap samples, drops),
 * and recordings store exactly these records. A reader that meets a kind it does not know skips
 * it. Widest fields first, fixed-width types only, no pointers.
 */
#ifndef GMEM_EVENTS_H
#define GMEM_EVENTS_H

/* BPF code gets the __u64 family from vmlinux.h. */
#ifndef __VMLINUX_H__
#include <linux/types.h>
#endif

#define GMEM_ABI_VERSION 1

/*
 * Event kinds. The meaning of the generic fields a, b, c, sub, order and to_order for each kind
 * is given beside it. vm is the VMM pid from kvm->stats_id ("kvm-PID"), 0 when unknown.
 * Numbers are part of the recording format: append, never renumber.
 */
enum gmem_ev_kind {
	GMEM_EV_NONE = 0,
	GMEM_EV_FILE_CREATE = 1,   /* ino, a=size, b=flags, result=fd or -errno */
	GMEM_EV_FILE_RELEASE = 2,  /* ino (user space, from a liveness scan; or fexit release) */
	GMEM_EV_FILE_DISCOVER = 3, /* ino, a=size, b=populated pages, c=flags; see GMEM_EVF_LATE */
	GMEM_EV_BIND = 4,          /* ino, a=gpa, b=size bytes, c=offset, sub=slot, result */
	GMEM_EV_UNBIND = 5,        /* sub=slot, result */
	GMEM_EV_PAGE_ALLOC = 6,    /* ino, a=index, b=pages, order, sub=gmem_source */
	GMEM_EV_PAGE_FREE = 7,     /* ino, a=index, b=pages, order */
	GMEM_EV_PUNCH_HOLE = 8,    /* ino, a=offset, b=len bytes, result; c: see GMEM_EVF_INFILE */
	GMEM_EV_FALLOCATE = 9,     /* ino, a=offset, b=len bytes, result (allocating fallocate) */
	GMEM_EV_FAULT = 10,        /* ino, a=index, c=latency ns, sub=gmem_source, result */
	GMEM_EV_CONV_REQUEST = 11, /* tid, a=gpa, b=size bytes, sub=gmem_dir, c=exit reason */
	GMEM_EV_CONV_ATTR = 12,    /* tid, a=gpa, b=size bytes, sub=gmem_dir, c=latency ns, result */
	GMEM_EV_VCPU_RESUME = 13,  /* tid: first KVM_RUN entry after a conversion request */
	GMEM_EV_DMAP_REMOVE = 14,  /* ino, a=folio index, b=pages, sub=gmem_owner, vm=tgid for secretmem */
	GMEM_EV_DMAP_RESTORE = 15, /* ino, a=folio index, b=pages, sub=gmem_owner */
	GMEM_EV_DMAP_SAMPLE = 16,  /* user space: a=4k bytes, b=2M bytes, c=1G bytes */
	GMEM_EV_RMP = 17,          /* a=pfn, b=gpa, order, sub=gmem_rmp_op, result */
	GMEM_EV_TDX = 18,          /* a=pfn or gpa, order, sub=gmem_tdx_op, result */
	GMEM_EV_SPLIT = 19,        /* ino, a=index, order=from, to_order=to */
	GMEM_EV_MERGE = 20,        /* ino, a=index, order=from, to_order=to */
	GMEM_EV_LOST = 21,         /* user space: a=records lost since the last LOST record */
	GMEM_EV_VM_EXIT = 22,      /* the VMM process (vm) exited */
	GMEM_EV_FD_CLOSE = 23,     /* ino: a VMM closed a gmem fd; a release may follow (a hint) */
	/*
	 * User space, on the tick: KVM binary stats (KVM_GET_STATS_FD). A DESC names stat id sub
	 * before the samples that use it, in every tick: order=scope (0 the VM's fd, 1 a vCPU's),
	 * to_order=part (bytes 24*part.. of the name, part 0 or 1), result=the descriptor's flags
	 * (type, unit, base), c=its exponent (s64), ino a b=24 bytes of the name, NUL-padded, byte
	 * i in bits 8*(i%8) of the i/8th; see GMEM_EVF_EXPORTED. A STAT is one value: vm, sub=id, order=scope, a=value
	 * in the descriptor's unit, b=vCPU index (scope 1).
	 */
	GMEM_EV_KVM_STAT_DESC = 24,
	GMEM_EV_KVM_STAT = 25,
	/*
	 * User space: the name of VM vm, as gmemd and gmemtop show it (the guest name on its
	 * VMM's command line, else comm), read when a recorder first meets the VM.
	 * to_order=part (bytes 32*part.. of the name, part 0 or 1), ino a b c=32 bytes of the
	 * name, NUL-padded, byte i in bits 8*(i%8) of the i/8th.
	 */
	GMEM_EV_VM_NAME = 26,
	/* tid runs vCPU a (its index) of vm: a thread's first KVM_RUN of that vCPU. */
	GMEM_EV_VCPU_THREAD = 27,
	/* 7.3+, fentry: guest frames [a, b) of vm taken out of its mappings by a guest_memfd
	 * invalidation (kvm_arch_gmem_invalidate_range), c = attr_filter (1 shared, 2 private). */
	GMEM_EV_GFN_INVALIDATE = 28,
	GMEM_EV_KIND_MAX
};

/* sub for PAGE_ALLOC and FAULT: who made the page exist. */
enum gmem_source {
	GMEM_SRC_OTHER = 0,
	GMEM_SRC_USER_FAULT = 1,  /* host user space touched an mmapped gmem page */
	GMEM_SRC_GUEST_FAULT = 2, /* inside KVM_RUN: the guest touched it */
	GMEM_SRC_FALLOCATE = 3,
	GMEM_SRC_POPULATE = 4,    /* KVM_MEMORY_ENCRYPT_OP / gmem populate */
	GMEM_SRC_MAX
};

/* sub for CONV_*: the direction of a conversion. */
enum gmem_dir {
	GMEM_TO_SHARED = 0,
	GMEM_TO_PRIVATE = 1,
	GMEM_DIR_MAX
};

/* sub for DMAP_*: whose folio left or rejoined the direct map. */
enum gmem_owner {
	GMEM_OWNER_GMEM = 0,
	GMEM_OWNER_SECRETMEM = 1,
	GMEM_OWNER_MAX
};

enum gmem_rmp_op {
	GMEM_RMP_MAKE_PRIVATE = 0,
	GMEM_RMP_MAKE_SHARED = 1,
	GMEM_RMP_PSMASH = 2,
	GMEM_RMP_FAULT = 3,
	GMEM_RMP_LEAK = 4,
	GMEM_RMP_GMEM_PREPARE = 5,
	GMEM_RMP_GMEM_INVALIDATE = 6,
	GMEM_RMP_OP_MAX
};

enum gmem_tdx_op {
	GMEM_TDX_PAGE_ADD = 0,
	GMEM_TDX_PAGE_AUG = 1,
	GMEM_TDX_PAGE_REMOVE = 2,
	GMEM_TDX_RANGE_BLOCK = 3,
	GMEM_TDX_TRACK = 4,
	GMEM_TDX_WBINVD = 5,
	GMEM_TDX_OP_MAX
};

/* flags */
#define GMEM_EVF_FENTRY   (1u << 0) /* emitted by the fentry tier */
#define GMEM_EVF_SYNTH    (1u << 1) /* made by user space (scan, sample, drop report) */
#define GMEM_EVF_SCENARIO (1u << 2) /* constructed for a scenario, never seen live */
/*
 * PAGE_ALLOC / PAGE_FREE summarising one syscall: b pages allocated or freed within the page
 * range [a, c) of the file (every page in it that was absent, for fallocate; every one that
 * was present, for a punch hole). The probes fold the folios a fallocate call adds or removes
 * on its own file into this one record, emitted just before the FALLOCATE / PUNCH_HOLE record.
 */
#define GMEM_EVF_RANGE    (1u << 3)
/*
 * PUNCH_HOLE: c is the part of [a, a + b) below the file's size when the call began, the bytes
 * the punch could invalidate (a punch past EOF succeeds and invalidates nothing). Recordings
 * made before this flag existed leave it clear; their punches count b.
 */
#define GMEM_EVF_INFILE   (1u << 4)
/*
 * FILE_DISCOVER by a scan after the first: the file was opened while we watched, yet no
 * FILE_CREATE told of it (a probe run the kernel skipped, or a record dropped on a full ring;
 * both are counted). It is counted as created, since it was, and in the snapshot's
 * anomalies.creates_recovered. A discovery without it predates the daemon.
 * On FILE_RELEASE and VM_EXIT made by user space: the kernel's own record of it was lost (see
 * source.c: a scan no longer finds a file, or the process is gone, after losses were counted);
 * anomalies.releases_recovered / exits_recovered.
 */
#define GMEM_EVF_LATE     (1u << 5)
/* KVM_STAT_DESC: the stat is in the recorder's /metrics set (gmemd --kvm-stats). */
#define GMEM_EVF_EXPORTED (1u << 6)
/*
 * PAGE_ALLOC / PAGE_FREE made by user space from the probes' per-file counters (gmemd while
 * nobody records or subscribes, see source.h): b pages in c events, since the last such record
 * for the file; a (the index) means nothing. PAGE_ALLOC: sub is the source, as usual.
 */
#define GMEM_EVF_COUNTED  (1u << 7)
/*
 * CONV_ATTR from KVM_SET_MEMORY_ATTRIBUTES2 on a guest_memfd fd (in-place conversion): ino is
 * the file and a the offset in it, not a gpa. Kernels without in-place conversion answer it
 * -ENOTTY, which the record carries like any other failure.
 */
#define GMEM_EVF_INPLACE  (1u << 8)

/* The key of the drops map: the process running when a record found the ring full. */
struct gmem_drop_key {
	__u32 tgid;
	__u32 kind;
};

struct gmem_event {
	__u64 ts_ns; /* CLOCK_MONOTONIC (bpf_ktime_get_ns) */
	__u64 ino;   /* guest_memfd inode number, 0 when none */
	__u64 a;
	__u64 b;
	__u64 c;
	__u32 kind; /* enum gmem_ev_kind */
	__u32 vm;   /* VMM pid */
	__u32 tid;  /* thread that caused it */
	__s32 result;
	__u32 sub;
	__u8 order;
	__u8 to_order;
	__u16 flags;
};

/*
 * Per-CPU counters the probes keep beside the ring buffer: records emitted and records lost
 * (failed reservations) per kind. The BPF ring buffer has no lost-event callback, so this is
 * the only place a drop is seen.
 */
struct gmem_counters {
	__u64 emitted[GMEM_EV_KIND_MAX];
	__u64 dropped[GMEM_EV_KIND_MAX];
	__u64 counted[GMEM_EV_KIND_MAX]; /* events added to page_counts instead of a record */
};

/*
 * The value of the page_counts map (per CPU, by inode): the page allocs and frees the probes
 * counted on one guest_memfd file instead of sending a record each. Totals since the entry was
 * made; user space turns their increase into GMEM_EVF_COUNTED records.
 */
struct gmem_page_count {
	__u64 alloc_pages[GMEM_SRC_MAX];
	__u64 alloc_events;
	__u64 free_pages;
	__u64 free_events;
	__u32 vm; /* as a record of the file would name it; 0 on a CPU that has not counted */
	__u32 pad;
};

/* What the liveness/discovery iterators report for each guest_memfd file reference. */
struct gmem_scan_rec {
	__u64 ino;
	__u64 size;     /* i_size */
	__u64 nrpages;  /* pages in its page cache */
	__u64 flags;    /* guest_memfd creation flags, when readable */
	__u32 vm;
	__u32 holder;   /* tgid of the process holding the fd or mapping */
};

/* The ioctls and constants the probes decode (stable uapi numbers). */
#define GMEM_KVM_RUN                      0xAE80u
#define GMEM_KVM_CREATE_GUEST_MEMFD       0xC040AED4u
#define GMEM_KVM_SET_USER_MEMORY_REGION2  0x40A0AE49u
#define GMEM_KVM_SET_MEMORY_ATTRIBUTES    0x4020AED2u
#define GMEM_KVM_SET_MEMORY_ATTRIBUTES2   0xC080AED2u /* on the gmem fd; 128-byte struct */
#define GMEM_KVM_MEMORY_ENCRYPT_OP        0xC008AEBAu
#define GMEM_KVM_MEM_GUEST_MEMFD          (1u << 2)
#define GMEM_KVM_MEMORY_ATTRIBUTE_PRIVATE (1ull << 3)
#define GMEM_KVM_EXIT_HYPERCALL           3
#define GMEM_KVM_EXIT_MEMORY_FAULT        39
#define GMEM_KVM_HC_MAP_GPA_RANGE         12
#define GMEM_KVM_MAP_GPA_RANGE_ENCRYPTED  (1ull << 4)
#define GMEM_KVM_MEMORY_EXIT_FLAG_PRIVATE (1ull << 3)
#define GMEM_FALLOC_FL_KEEP_SIZE          0x01
#define GMEM_FALLOC_FL_PUNCH_HOLE         0x02

#define GMEM_ANON_INODE_MAGIC 0x09041934u /* guest_memfd up to 6.18 */
#define GMEM_GUEST_MEMFD_MAGIC 0x474d454du /* guest_memfd's own fs, 6.19+ */
#define GMEM_SECRETMEM_MAGIC  0x5345434du
#define GMEM_AS_INACCESSIBLE  8

#endif /* GMEM_EVENTS_H */
