/* SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause */
/*
 * gmem_common.bpf.h - what every gmemscope probe shares: the ring buffer and its drop counters,
 * and the CO-RE shims that recognise a guest_memfd folio or file and attribute it to its VM.
 *
 * Each shim names the kernel change it bridges. Layout differences are decided by CO-RE at load
 * time (bpf_core_type_exists / field_exists), never by #if on a version.
 */
#ifndef GMEM_COMMON_BPF_H
#define GMEM_COMMON_BPF_H

#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_tracing.h>
#include "gmem_events.h"

/* Sized by the loader before load (bpf_map__set_max_entries). */
struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 16 << 20);
} events SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct gmem_counters);
} counters SEC(".maps");

/*
 * Drops by the process that was running and the record kind: the ring-full path only, so the
 * hot path never touches it. Bumped after counters, so user space, reading this map before the
 * counters, never sees more here than there. LRU: a process that stops dropping ages out, and
 * its drops stay in the totals.
 */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 4096);
	__type(key, struct gmem_drop_key);
	__type(value, __u64);
} drops SEC(".maps");

/*
 * inode -> vm. A folio freed while its inode is evicted has lost the kvm_gmem that named its VM
 * (kvm_gmem_release unlinks it first), so the VM is remembered from the file's create, first
 * folio or discovery. LRU: an inode that is never seen again ages out.
 */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 16384);
	__type(key, __u64);
	__type(value, __u32);
} ino_vm SEC(".maps");

/* VMM processes we know of: tgid -> vm pid. Filled at create and by user space's scans. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 4096);
	__type(key, __u32);
	__type(value, __u32);
} vmm_tgids SEC(".maps");

/* Only every Nth record wakes the consumer (it also polls on a timer): a wakeup is an irq_work
 * in the producer's context, the largest fixed cost per record after the reservation. */
const volatile __u32 targ_wakeup_batch = 256;

/*
 * gmemd --empty-bodies: every program attaches exactly as usual but returns at once (the
 * verifier drops the rest, this being read-only data known at load). What is left is the
 * attachment's own cost, the floor the benchmarks compare the real bodies with.
 */
const volatile bool targ_empty_bodies = false;
#define GMEM_EMPTY_BODY()                 \
	do {                              \
		if (targ_empty_bodies)    \
			return 0;         \
	} while (0)

static __always_inline struct gmem_counters *gmem_counters_this_cpu(void)
{
	__u32 zero = 0;

	return bpf_map_lookup_elem(&counters, &zero);
}

static __always_inline struct gmem_event *gmem_reserve(__u32 kind)
{
	struct gmem_counters *c = gmem_counters_this_cpu();
	struct gmem_event *e;

	e = bpf_ringbuf_reserve(&events, sizeof(*e), 0);
	if (c && kind < GMEM_EV_KIND_MAX) {
		if (e)
			c->emitted[kind]++;
		else
			c->dropped[kind]++;
	}
	if (!e) {
		struct gmem_drop_key k = { .tgid = bpf_get_current_pid_tgid() >> 32, .kind = kind };
		__u64 one = 1, *n = bpf_map_lookup_elem(&drops, &k);

		if (n)
			__sync_fetch_and_add(n, 1);
		else
			bpf_map_update_elem(&drops, &k, &one, BPF_NOEXIST);
		return NULL;
	}
	e->ts_ns = bpf_ktime_get_ns();
	e->kind = kind;
	e->tid = (__u32)bpf_get_current_pid_tgid();
	e->ino = 0;
	e->a = 0;
	e->b = 0;
	e->c = 0;
	e->vm = 0;
	e->result = 0;
	e->sub = 0;
	e->order = 0;
	e->to_order = 0;
	e->flags = 0;
	return e;
}

static __always_inline void gmem_submit(struct gmem_event *e)
{
	struct gmem_counters *c = gmem_counters_this_cpu();
	__u64 flags = BPF_RB_NO_WAKEUP;

	/*
	 * Wake the consumer once per batch, and force it: the default (adaptive) wakeup only
	 * fires when the consumer has already caught up, which it never has mid-batch, so a
	 * batched producer would never wake it at all. It also polls on a short timer.
	 */
	if (c && (!targ_wakeup_batch ||
		  (c->emitted[e->kind < GMEM_EV_KIND_MAX ? e->kind : 0] % targ_wakeup_batch) == 0))
		flags = BPF_RB_FORCE_WAKEUP;
	bpf_ringbuf_submit(e, flags);
}

/* ---- VM attribution ------------------------------------------------------------------------ */

/*
 * kvm->stats_id is "kvm-<pid of the thread that created the VM>" (since 5.14); it is what the
 * exporter's vm label means. Parse it in place; fall back to kvm->userspace_pid (6.x) if the id
 * does not parse.
 */
static __always_inline __u32 gmem_vm_of_kvm(struct kvm *kvm)
{
	char id[16] = {};
	__u32 pid = 0;
	int i;

	if (!kvm)
		return 0;
	if (bpf_core_field_exists(kvm->stats_id))
		bpf_probe_read_kernel(id, sizeof(id), &kvm->stats_id);
	if (id[0] == 'k' && id[1] == 'v' && id[2] == 'm' && id[3] == '-') {
		for (i = 4; i < 14; i++) {
			char ch = id[i];

			if (ch < '0' || ch > '9')
				break;
			pid = pid * 10 + (ch - '0');
		}
		if (pid)
			return pid;
	}
	if (bpf_core_field_exists(kvm->userspace_pid))
		return BPF_CORE_READ(kvm, userspace_pid);
	return 0;
}

/* 6.19 gave guest_memfd its own pseudo-fs: struct gmem_inode wraps the inode, struct gmem_file
 * replaces struct kvm_gmem as the file's private data. */
struct gmem_file___v619 {
	struct kvm *kvm;
	struct list_head entry;
} __attribute__((preserve_access_index));

struct gmem_inode___v619 {
	struct inode vfs_inode;
	struct list_head gmem_file_list;
} __attribute__((preserve_access_index));

/* Is this mapping a guest_memfd's? 6.8-6.18: a per-file anon inode marked AS_INACCESSIBLE;
 * 6.19+: its own filesystem magic. */
static __always_inline bool gmem_mapping_is_gmem(struct address_space *mapping, __u64 magic)
{
	__u64 flags;

	if (magic == GMEM_GUEST_MEMFD_MAGIC)
		return true;
	if (magic != GMEM_ANON_INODE_MAGIC)
		return false;
	flags = BPF_CORE_READ(mapping, flags);
	return flags & (1ull << GMEM_AS_INACCESSIBLE);
}

static __always_inline __u64 gmem_inode_magic(struct inode *inode)
{
	return BPF_CORE_READ(inode, i_sb, s_magic);
}

/* file -> kvm: kvm_gmem (<= 6.18) and gmem_file (6.19+) both start with the kvm pointer. */
static __always_inline struct kvm *gmem_file_kvm(struct file *file)
{
	void *priv = BPF_CORE_READ(file, private_data);

	if (!priv)
		return NULL;
	if (bpf_core_type_exists(struct kvm_gmem))
		return BPF_CORE_READ((struct kvm_gmem *)priv, kvm);
	/* Guarded too: a kernel without guest_memfd has neither type, and an unguarded read
	 * would be a failed relocation the verifier meets, failing the whole program. */
	if (bpf_core_type_exists(struct gmem_file___v619))
		return BPF_CORE_READ((struct gmem_file___v619 *)priv, kvm);
	return NULL;
}

/* inode -> kvm, through the list of files bound to the inode; NULL once they are released. */
static __always_inline struct kvm *gmem_inode_kvm(struct inode *inode)
{
	struct list_head *head, *first;

	if (bpf_core_type_exists(struct kvm_gmem)) {
		head = &inode->i_data.i_private_list;
		first = BPF_CORE_READ(inode, i_data.i_private_list.next);
		if (!first || first == head)
			return NULL;
		return BPF_CORE_READ(container_of(first, struct kvm_gmem, entry), kvm);
	}
	if (bpf_core_type_exists(struct gmem_inode___v619)) {
		struct gmem_inode___v619 *gi = container_of(inode, struct gmem_inode___v619, vfs_inode);

		head = &gi->gmem_file_list;
		first = BPF_CORE_READ(gi, gmem_file_list.next);
		if (!first || first == head)
			return NULL;
		return BPF_CORE_READ(container_of(first, struct gmem_file___v619, entry), kvm);
	}
	return NULL;
}

/*
 * The VM a guest_memfd inode belongs to. The ino_vm cache is tried first: it is filled at
 * create, discovery and first sight, so the list walk and stats_id parse run about once per
 * file instead of once per folio.
 */
static __always_inline __u32 gmem_inode_vm(struct inode *inode, __u64 ino)
{
	__u32 *known = bpf_map_lookup_elem(&ino_vm, &ino);
	__u32 vm;

	if (known && *known)
		return *known;
	vm = gmem_vm_of_kvm(gmem_inode_kvm(inode));
	if (vm)
		bpf_map_update_elem(&ino_vm, &ino, &vm, BPF_ANY);
	return vm;
}

/* The file behind fd in the current task; NULL if none. */
static __always_inline struct file *gmem_fd_file(int fd)
{
	struct task_struct *task = (struct task_struct *)bpf_get_current_task();
	struct file **fds;
	struct file *file = NULL;
	unsigned int max;

	if (fd < 0)
		return NULL;
	max = BPF_CORE_READ(task, files, fdt, max_fds);
	if ((unsigned int)fd >= max)
		return NULL;
	fds = BPF_CORE_READ(task, files, fdt, fd);
	if (bpf_probe_read_kernel(&file, sizeof(file), &fds[fd]))
		return NULL;
	return file;
}

/* If fd is a guest_memfd, its inode number (and inode); else 0. */
static __always_inline __u64 gmem_fd_ino(int fd, struct inode **inodep)
{
	struct file *file = gmem_fd_file(fd);
	struct inode *inode;

	if (!file)
		return 0;
	inode = BPF_CORE_READ(file, f_inode);
	if (!inode || !gmem_mapping_is_gmem(BPF_CORE_READ(inode, i_mapping), gmem_inode_magic(inode)))
		return 0;
	if (inodep)
		*inodep = inode;
	return BPF_CORE_READ(inode, i_ino);
}

/* ---- folios -------------------------------------------------------------------------------- */

/* folio->flags became memdesc_flags_t (a struct around the same word) in 6.18. */
struct folio___memdesc {
	memdesc_flags_t flags;
} __attribute__((preserve_access_index));

struct folio___ulong {
	unsigned long flags;
} __attribute__((preserve_access_index));

/*
 * The order of a large folio sits in the low byte of _flags_1 (6.6+); mainline guest_memfd
 * folios are order 0. Plain loads: callers pass the trusted folio of a tp_btf program.
 */
static __always_inline __u32 gmem_folio_order(struct folio *folio)
{
	unsigned long flags;

	if (bpf_core_type_exists(memdesc_flags_t))
		flags = ((struct folio___memdesc *)folio)->flags.f;
	else
		flags = ((struct folio___ulong *)folio)->flags;
	if (!(flags & (1ul << bpf_core_enum_value(enum pageflags, PG_head))))
		return 0;
	if (bpf_core_field_exists(folio->_flags_1))
		return folio->_flags_1 & 0xff;
	return 0;
}

#endif /* GMEM_COMMON_BPF_H */
