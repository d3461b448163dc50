// SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause
/*
 * gmem_tp.bpf.c - the tracepoint tier: what any kernel with guest_memfd lets us see without
 * fentry or kprobes.
 *
 * Hooks and why there:
 *  - syscalls:sys_{enter,exit}_ioctl, decoded only for KVM's own ioctl numbers: guest_memfd
 *    create, memslot bind, KVM_SET_MEMORY_ATTRIBUTES (the kernel part of a conversion, timed)
 *    and KVM_SET_MEMORY_ATTRIBUTES2 on a gmem fd (in place),
 *    KVM_RUN (marks "inside the guest" for fault attribution, reads the exit that asks for a
 *    conversion, and the next entry that ends one), KVM_MEMORY_ENCRYPT_OP (populate).
 *  - syscalls:sys_{enter,exit}_fallocate: allocating fallocates and punch holes on gmem fds.
 *  - syscalls:sys_enter_close: a hint that a VMM closed a gmem fd, so user space rescans.
 *  - filemap:mm_filemap_{add_to,delete_from}_page_cache (tp_btf): every guest_memfd folio is
 *    born and dies here, whoever caused it; the same hooks see secretmem folios, which leave and
 *    rejoin the direct map at exactly those points.
 *  - sched:sched_process_exit (tp_btf): a VMM went away.
 *  - kvm:kvm_rmp_fault, kvmmmu:kvm_mmu_split_huge_page (tp_btf), where the kernel has them.
 * Per-syscall tracepoints fire only for their syscall (raw_syscalls would fire for all); each
 * program bails out after one compare or one hash lookup when the call is not ours.
 * Cost: one 64-byte ring buffer record per guest_memfd folio event, per KVM ioctl of interest
 * and per conversion step; nothing per guest exit except one LRU-hash update per KVM_RUN. While
 * gmem_count_pages is set, a folio event is an atomic add to its file's per-CPU counters instead
 * of a record.
 */
#include "gmem_calls.bpf.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

/*
 * Record kinds (1 << kind) this tier must not emit because the fentry tier, attached after
 * us, emits them itself. Set by the loader at run time (.bss is mmapped), since whether fentry
 * attaches is only known after this object is loaded; the ioctl hooks stay attached for
 * conversions either way.
 */
__u32 tp_skip_kinds;

static __always_inline bool skip_kind(__u32 kind)
{
	return tp_skip_kinds & (1u << kind);
}

/*
 * Set by gmemd (.bss) while nobody records or subscribes and no policy runs: a folio's alloc or
 * free then adds to its file's counters in page_counts instead of reserving a record, and user
 * space reads the counters on a timer. Each event goes to exactly one of the two, so the totals
 * stay exact across a flip in either direction.
 */
__u32 gmem_count_pages;

/* Allocated on demand (a host with many CPUs pays for the files it has, not for the bound);
 * when it is full or an allocation fails, the event goes to the ring as a record. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_HASH);
	__uint(max_entries, 16384);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, __u64);
	__type(value, struct gmem_page_count);
} page_counts SEC(".maps");

/* uapi layouts read from the ioctl argument */
struct gmem_uapi_create {
	__u64 size;
	__u64 flags;
};

struct gmem_uapi_region2 {
	__u32 slot;
	__u32 flags;
	__u64 guest_phys_addr;
	__u64 memory_size;
	__u64 userspace_addr;
	__u64 guest_memfd_offset;
	__u32 guest_memfd;
};


/* The struct kvm behind a VM fd, or the vCPU behind a vCPU fd: both are the file's private
 * data; the ioctl number already says which it is (0xAE is KVM's ioctl type). */
static __always_inline void *fd_private(int fd)
{
	struct file *file = gmem_fd_file(fd);

	return file ? BPF_CORE_READ(file, private_data) : NULL;
}

static __always_inline void remember_vmm(__u32 vm)
{
	__u32 tgid = bpf_get_current_pid_tgid() >> 32;

	if (vm && !bpf_map_lookup_elem(&vmm_tgids, &tgid))
		bpf_map_update_elem(&vmm_tgids, &tgid, &vm, BPF_ANY);
}

SEC("tracepoint/syscalls/sys_enter_ioctl")
int handle_ioctl_enter(struct trace_event_raw_sys_enter *ctx)
{
	GMEM_EMPTY_BODY();
	__u32 cmd = (__u32)ctx->args[1];
	int fd = (int)ctx->args[0];
	void *uarg = (void *)ctx->args[2];
	__u32 tid = (__u32)bpf_get_current_pid_tgid();
	struct call_ctx *c;

	switch (cmd) {
	case GMEM_KVM_RUN:
		c = ctx_get(tid, true);
		if (!c)
			return 0;
		c->fd = fd;
		gmem_vcpu_run_begin(c, fd_private(fd), 0);
		return 0;
	case GMEM_KVM_CREATE_GUEST_MEMFD: {
		struct gmem_uapi_create args = {};

		c = ctx_get(tid, true);
		if (!c)
			return 0;
		bpf_probe_read_user(&args, sizeof(args), uarg);
		c->call = CALL_CREATE_GMEM;
		c->fd = fd;
		c->a = args.size;
		c->b = args.flags;
		return 0;
	}
	case GMEM_KVM_SET_USER_MEMORY_REGION2: {
		struct gmem_uapi_region2 r = {};

		if (bpf_probe_read_user(&r, sizeof(r), uarg) || !(r.flags & GMEM_KVM_MEM_GUEST_MEMFD))
			return 0;
		c = ctx_get(tid, true);
		if (!c)
			return 0;
		c->call = CALL_REGION2;
		c->fd = fd;
		c->sub = r.slot;
		c->a = r.guest_phys_addr;
		c->b = r.memory_size;
		c->c = r.guest_memfd_offset;
		c->ino = gmem_fd_ino((int)r.guest_memfd, NULL);
		return 0;
	}
	case GMEM_KVM_SET_MEMORY_ATTRIBUTES:
		c = ctx_get(tid, true);
		if (!c)
			return 0;
		c->fd = fd;
		gmem_set_attr_begin(c, uarg);
		return 0;
	case GMEM_KVM_SET_MEMORY_ATTRIBUTES2: {
		/* in-place conversion, on the guest_memfd fd itself (queued upstream): decoded
		 * here because this pair is attached anyway; an older kernel answers ENOTTY */
		struct inode *inode = NULL;
		__u64 ino = gmem_fd_ino(fd, &inode);

		if (!ino)
			return 0;
		c = ctx_get(tid, true);
		if (!c)
			return 0;
		c->fd = fd;
		gmem_set_attr_begin(c, uarg);
		c->call = CALL_SET_ATTR2;
		c->ino = ino;
		c->vm = gmem_inode_vm(inode, ino);
		return 0;
	}
	case GMEM_KVM_MEMORY_ENCRYPT_OP:
		c = ctx_get(tid, true);
		if (c) {
			c->call = CALL_ENCRYPT_OP;
			c->fd = fd;
		}
		return 0;
	default:
		return 0;
	}
}

SEC("tracepoint/syscalls/sys_exit_ioctl")
int handle_ioctl_exit(struct trace_event_raw_sys_exit *ctx)
{
	GMEM_EMPTY_BODY();
	__u32 tid = (__u32)bpf_get_current_pid_tgid();
	struct call_ctx *c = bpf_map_lookup_elem(&calls, &tid);
	long ret = ctx->ret;
	struct gmem_event *e;
	__u32 call;

	if (!c || !c->call)
		return 0;
	call = c->call;
	c->call = CALL_NONE;

	switch (call) {
	case CALL_KVM_RUN:
		gmem_vcpu_run_end(c, 0);
		return 0;
	case CALL_CREATE_GMEM: {
		struct inode *inode = NULL;
		__u64 ino = ret >= 0 ? gmem_fd_ino((int)ret, &inode) : 0;
		__u32 vm = gmem_vm_of_kvm(fd_private(c->fd));

		e = skip_kind(GMEM_EV_FILE_CREATE) ? NULL : gmem_reserve(GMEM_EV_FILE_CREATE);
		if (e) {
			e->vm = vm;
			e->ino = ino;
			e->a = c->a;
			e->b = c->b;
			e->result = (__s32)ret;
			gmem_submit(e);
		}
		if (ino && vm) {
			bpf_map_update_elem(&ino_vm, &ino, &vm, BPF_ANY);
			remember_vmm(vm);
		}
		return 0;
	}
	case CALL_REGION2: {
		__u32 kind = c->b ? GMEM_EV_BIND : GMEM_EV_UNBIND;
		__u32 vm;

		if (skip_kind(kind))
			return 0;
		vm = gmem_vm_of_kvm(fd_private(c->fd));
		e = gmem_reserve(kind);
		if (!e)
			return 0;
		e->vm = vm;
		e->ino = c->ino;
		e->a = c->a;
		e->b = c->b;
		e->c = c->c;
		e->sub = c->sub;
		e->result = (__s32)ret;
		gmem_submit(e);
		return 0;
	}
	case CALL_SET_ATTR:
		gmem_set_attr_end(c, gmem_vm_of_kvm(fd_private(c->fd)), ret, 0);
		return 0;
	case CALL_SET_ATTR2:
		gmem_set_attr_end(c, c->vm, ret, GMEM_EVF_INPLACE);
		return 0;
	default:
		return 0;
	}
}

SEC("tracepoint/syscalls/sys_enter_fallocate")
int handle_fallocate_enter(struct trace_event_raw_sys_enter *ctx)
{
	GMEM_EMPTY_BODY();
	__u32 tid = (__u32)bpf_get_current_pid_tgid();
	struct inode *inode = NULL;
	__u64 ino;

	ino = gmem_fd_ino((int)ctx->args[0], &inode);
	if (!ino)
		return 0;
	gmem_fallocate_begin(tid, inode, ino, (__u32)ctx->args[1], ctx->args[2], ctx->args[3]);
	return 0;
}

SEC("tracepoint/syscalls/sys_exit_fallocate")
int handle_fallocate_exit(struct trace_event_raw_sys_exit *ctx)
{
	GMEM_EMPTY_BODY();
	gmem_fallocate_end((__s32)ctx->ret, 0);
	return 0;
}

SEC("tracepoint/syscalls/sys_enter_close")
int handle_close_enter(struct trace_event_raw_sys_enter *ctx)
{
	GMEM_EMPTY_BODY();
	__u32 tgid = bpf_get_current_pid_tgid() >> 32;
	__u32 *vm = bpf_map_lookup_elem(&vmm_tgids, &tgid);
	struct gmem_event *e;
	__u64 ino;

	if (!vm)
		return 0;
	ino = gmem_fd_ino((int)ctx->args[0], NULL);
	if (!ino)
		return 0;
	e = gmem_reserve(GMEM_EV_FD_CLOSE);
	if (!e)
		return 0;
	e->vm = *vm;
	e->ino = ino;
	gmem_submit(e);
	return 0;
}

/* Which of our syscalls, if any, made this folio exist. */
static __always_inline __u32 alloc_source(struct call_ctx *c)
{
	if (c) {
		switch (c->call) {
		case CALL_KVM_RUN:
			return GMEM_SRC_GUEST_FAULT;
		case CALL_FALLOCATE:
			return GMEM_SRC_FALLOCATE;
		case CALL_ENCRYPT_OP:
			return GMEM_SRC_POPULATE;
		case CALL_NONE:
			break;
		default:
			return GMEM_SRC_OTHER;
		}
	}
	if (bpf_get_current_task_btf()->flags & 0x00200000 /* PF_KTHREAD */)
		return GMEM_SRC_OTHER;
	/* Not in a syscall we decode: gmem only gains folios outside one through a fault on
	 * its mmap (6.18+ MMAP flag). */
	return GMEM_SRC_USER_FAULT;
}

/*
 * Count one folio event on its file instead of sending a record; false when the file has no
 * entry and none can be made (the caller then sends the record). The adds are atomic: on a
 * preemptible kernel another run of this program can interrupt us on the same CPU.
 */
static __always_inline bool count_folio(struct inode *host, __u64 ino, bool add, __u64 pages,
					struct call_ctx *c)
{
	struct gmem_page_count *pc = bpf_map_lookup_elem(&page_counts, &ino);
	struct gmem_counters *k;
	__u32 src;

	if (!pc) {
		struct gmem_page_count zero = {};

		bpf_map_update_elem(&page_counts, &ino, &zero, BPF_NOEXIST);
		pc = bpf_map_lookup_elem(&page_counts, &ino);
		if (!pc)
			return false;
	}
	if (!pc->vm)
		pc->vm = gmem_inode_vm(host, ino);
	if (add) {
		src = alloc_source(c);
		if (src >= GMEM_SRC_MAX)
			src = GMEM_SRC_OTHER;
		__sync_fetch_and_add(&pc->alloc_pages[src], pages);
		__sync_fetch_and_add(&pc->alloc_events, 1);
	} else {
		__sync_fetch_and_add(&pc->free_pages, pages);
		__sync_fetch_and_add(&pc->free_events, 1);
	}
	k = gmem_counters_this_cpu();
	if (k)
		__sync_fetch_and_add(&k->counted[add ? GMEM_EV_PAGE_ALLOC : GMEM_EV_PAGE_FREE], 1);
	return true;
}

/*
 * The hottest path: every page-cache folio on the host passes here. tp_btf hands us a trusted
 * folio, so plain loads (inlined, fault-safe) replace bpf_probe_read_kernel() calls; a folio
 * that is not gmem or secretmem costs three loads and a compare.
 */
static __always_inline int folio_event(struct folio *folio, bool add)
{
	struct address_space *mapping = folio->mapping;
	struct inode *host;
	__u32 tid = (__u32)bpf_get_current_pid_tgid();
	struct gmem_event *e;
	__u64 magic, ino, index;
	struct call_ctx *c;
	__u32 order;

	if (!mapping)
		return 0;
	host = mapping->host;
	if (!host)
		return 0;
	magic = host->i_sb->s_magic;
	if (magic == GMEM_SECRETMEM_MAGIC) {
		/* secretmem took the folio out of the direct map just before adding it, and puts
		 * it back in its free_folio callback right after deleting it. */
		e = gmem_reserve(add ? GMEM_EV_DMAP_REMOVE : GMEM_EV_DMAP_RESTORE);
		if (!e)
			return 0;
		order = gmem_folio_order(folio);
		e->ino = host->i_ino;
		e->a = folio->index;
		e->b = 1ull << order;
		e->order = order;
		e->sub = GMEM_OWNER_SECRETMEM;
		e->vm = bpf_get_current_pid_tgid() >> 32;
		gmem_submit(e);
		return 0;
	}
	if (magic != GMEM_GUEST_MEMFD_MAGIC &&
	    (magic != GMEM_ANON_INODE_MAGIC || !(mapping->flags & (1ull << GMEM_AS_INACCESSIBLE))))
		return 0;
	ino = host->i_ino;
	order = gmem_folio_order(folio);
	index = folio->index;
	/* inside fallocate on this very file: fold into the call's one record (see exit) */
	c = bpf_map_lookup_elem(&calls, &tid);
	if (c && c->call == CALL_FALLOCATE && c->ino == ino &&
	    (add == !(c->sub & GMEM_FALLOC_FL_PUNCH_HOLE))) {
		if (!c->fold_pages || index < c->fold_first)
			c->fold_first = index;
		if (!c->fold_pages || index + (1ull << order) > c->fold_end)
			c->fold_end = index + (1ull << order);
		c->fold_pages += 1ull << order;
		return 0;
	}
	if (gmem_count_pages && count_folio(host, ino, add, 1ull << order, c))
		return 0;
	e = gmem_reserve(add ? GMEM_EV_PAGE_ALLOC : GMEM_EV_PAGE_FREE);
	if (!e)
		return 0;
	e->ino = ino;
	e->a = index;
	e->b = 1ull << order;
	e->order = order;
	e->vm = gmem_inode_vm(host, ino);
	if (add)
		e->sub = alloc_source(c);
	gmem_submit(e);
	return 0;
}

SEC("tp_btf/mm_filemap_add_to_page_cache")
int BPF_PROG(handle_folio_add, struct folio *folio)
{
	GMEM_EMPTY_BODY();
	return folio_event(folio, true);
}

SEC("tp_btf/mm_filemap_delete_from_page_cache")
int BPF_PROG(handle_folio_delete, struct folio *folio)
{
	GMEM_EMPTY_BODY();
	return folio_event(folio, false);
}

SEC("tp_btf/sched_process_exit")
int BPF_PROG(handle_process_exit, struct task_struct *task)
{
	GMEM_EMPTY_BODY();
	__u32 tgid = BPF_CORE_READ(task, tgid);
	__u32 *vm = bpf_map_lookup_elem(&vmm_tgids, &tgid);
	struct gmem_event *e;
	__u32 tid, v;

	if (!vm)
		return 0;
	/* a VMM thread (vCPU, main) leaves: its call context goes with it, so the map holds
	 * only live threads rather than filling to its LRU bound over many VMs */
	tid = BPF_CORE_READ(task, pid);
	bpf_map_delete_elem(&calls, &tid);
	/* do_exit() drops signal->live before this tracepoint: 0 means the last thread. */
	if (BPF_CORE_READ(task, signal, live.counter) != 0)
		return 0;
	v = *vm;
	bpf_map_delete_elem(&vmm_tgids, &tgid);
	e = gmem_reserve(GMEM_EV_VM_EXIT);
	if (!e)
		return 0;
	e->vm = v;
	e->tid = tgid;
	gmem_submit(e);
	return 0;
}

SEC("tp_btf/kvm_rmp_fault")
int BPF_PROG(handle_rmp_fault, struct kvm_vcpu *vcpu, u64 gpa, u64 pfn, u64 error_code,
	     int rmp_level, int psmash_ret)
{
	GMEM_EMPTY_BODY();
	struct gmem_event *e;

	/* raw tracepoint arguments are maybe-NULL to the verifier since 6.12 */
	if (!vcpu)
		return 0;
	e = gmem_reserve(GMEM_EV_RMP);
	if (!e)
		return 0;
	e->vm = gmem_vm_of_kvm(BPF_CORE_READ(vcpu, kvm));
	e->a = pfn;
	e->b = gpa;
	e->c = error_code;
	e->order = rmp_level > 1 ? 9 : 0; /* RMP level 2 = 2M */
	e->sub = GMEM_RMP_FAULT;
	e->result = psmash_ret;
	gmem_submit(e);
	return 0;
}

/* KVM's eager split of a huge mapping (TDP MMU): the tracepoint-tier view of huge pages being
 * broken up. It carries no kvm pointer: the caller (vCPU or dirty-log ioctl) is the VMM. */
SEC("tp_btf/kvm_mmu_split_huge_page")
int BPF_PROG(handle_mmu_split, u64 gfn, u64 spte, int level, int errno_)
{
	GMEM_EMPTY_BODY();
	__u32 tgid = bpf_get_current_pid_tgid() >> 32;
	__u32 *vm = bpf_map_lookup_elem(&vmm_tgids, &tgid);
	struct gmem_event *e;

	if (errno_ || level < 2)
		return 0;
	e = gmem_reserve(GMEM_EV_SPLIT);
	if (!e)
		return 0;
	e->vm = vm ? *vm : tgid;
	e->a = gfn;
	e->order = (level - 1) * 9;
	e->to_order = (level - 2) * 9;
	gmem_submit(e);
	return 0;
}
