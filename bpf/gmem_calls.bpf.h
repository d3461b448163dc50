/* SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause */
/*
 * gmem_calls.bpf.h - what a thread is in the middle of, shared by both tiers.
 *
 * The tracepoint tier sets a thread's call context at syscall entry (KVM ioctls, fallocate) and
 * the fentry tier at kvm_gmem_fallocate's entry; the folio hooks read it to name an allocation's
 * source and to fold a fallocate's folios into one record, and whichever tier owns the call's
 * exit emits it. The map is one map: the loader hands the tracepoint object's fd to the fentry
 * object (reuse_maps), so a context set by one tier is seen by the other.
 */
#ifndef GMEM_CALLS_BPF_H
#define GMEM_CALLS_BPF_H

#include "gmem_common.bpf.h"

enum call {
	CALL_NONE = 0,
	CALL_KVM_RUN,
	CALL_CREATE_GMEM,
	CALL_REGION2,
	CALL_SET_ATTR,
	CALL_SET_ATTR2, /* in place, on a guest_memfd fd */
	CALL_ENCRYPT_OP,
	CALL_FALLOCATE,
};

/* What a thread is in the middle of, from syscall entry to exit. Kept per thread (not deleted
 * at exit) so a vCPU's KVM_RUN loop updates in place; LRU ages out dead threads. */
struct call_ctx {
	__u64 ts;
	__u64 a;
	__u64 b;
	__u64 c;
	__u64 ino;
	void *vcpu;
	__u32 call;
	__s32 fd;
	__u32 vm;
	__u32 sub;
	__u32 pending_conv; /* a vCPU exit asked for a conversion: report the next entry */
	__u32 pad;
	/* folios a fallocate call added or removed on its own file, folded into one record */
	__u64 fold_pages;
	__u64 fold_first;
	__u64 fold_end;
};

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 16384);
	__type(key, __u32);
	__type(value, struct call_ctx);
} calls SEC(".maps");

static __always_inline struct call_ctx *ctx_get(__u32 tid, bool create)
{
	struct call_ctx *c = bpf_map_lookup_elem(&calls, &tid);
	struct call_ctx zero = {};

	if (c || !create)
		return c;
	bpf_map_update_elem(&calls, &tid, &zero, BPF_NOEXIST);
	return bpf_map_lookup_elem(&calls, &tid);
}

/*
 * The current thread's context if it is in the middle of call, which ends here; the call is
 * cleared, so whichever tier sees the end first handles it and the other finds nothing.
 */
static __always_inline struct call_ctx *ctx_end(__u32 call)
{
	__u32 tid = (__u32)bpf_get_current_pid_tgid();
	struct call_ctx *c = bpf_map_lookup_elem(&calls, &tid);

	if (!c || c->call != call)
		return NULL;
	c->call = CALL_NONE;
	return c;
}

/* A fallocate on a gmem file begins: remember it, so its folios fold into one record. */
static __always_inline void gmem_fallocate_begin(__u32 tid, struct inode *inode, __u64 ino,
						 __u32 mode, __u64 offset, __u64 len)
{
	struct call_ctx *c = ctx_get(tid, true);

	if (!c)
		return;
	c->call = CALL_FALLOCATE;
	c->ino = ino;
	c->fold_pages = 0;
	c->sub = mode;
	c->a = offset;
	c->b = len;
	/* what a punch can invalidate: the part of the range inside the file */
	{
		__u64 size = (__u64)BPF_CORE_READ(inode, i_size);

		c->c = offset >= size ? 0 : (len < size - offset ? len : size - offset);
	}
	c->vm = gmem_inode_vm(inode, ino);
}

/* It ends: the folded folios as one ranged record, then the call itself. flags marks the tier
 * (GMEM_EVF_FENTRY from the fentry tier). */
static __always_inline void gmem_fallocate_end(__s32 ret, __u32 flags)
{
	struct call_ctx *c = ctx_end(CALL_FALLOCATE);
	struct gmem_event *e;
	bool punch;

	if (!c)
		return;
	punch = c->sub & GMEM_FALLOC_FL_PUNCH_HOLE;
	if (c->fold_pages) {
		e = gmem_reserve(punch ? GMEM_EV_PAGE_FREE : GMEM_EV_PAGE_ALLOC);
		if (e) {
			e->vm = c->vm;
			e->ino = c->ino;
			e->a = c->fold_first;
			e->b = c->fold_pages;
			e->c = c->fold_end;
			e->sub = punch ? 0 : GMEM_SRC_FALLOCATE;
			e->flags = GMEM_EVF_RANGE | flags;
			gmem_submit(e);
		}
		c->fold_pages = 0;
	}
	e = gmem_reserve(punch ? GMEM_EV_PUNCH_HOLE : GMEM_EV_FALLOCATE);
	if (!e)
		return;
	e->vm = c->vm;
	e->ino = c->ino;
	e->a = c->a;
	e->b = c->b;
	e->result = ret;
	e->flags |= flags;
	if (punch) {
		e->c = c->c;
		e->flags |= GMEM_EVF_INFILE;
	}
	gmem_submit(e);
}

/*
 * KVM_RUN, and the memory-attribute ioctl: the same work whichever tier sees the call (the
 * tracepoint tier at the syscall, the fentry tier at kvm_arch_vcpu_ioctl_run and
 * kvm_vm_ioctl). Whoever sees the end first clears the call, so with both attached (one event
 * on each tier) nothing is emitted twice. flags marks the tier (GMEM_EVF_FENTRY or 0).
 */

/* KVM_RUN enters vcpu: the context the folio hooks name guest faults by, and the resume of a
 * vCPU whose last exit asked for a conversion. */
static __always_inline void gmem_vcpu_run_begin(struct call_ctx *c, struct kvm_vcpu *vcpu,
						__u32 flags)
{
	struct gmem_event *e;

	c->call = CALL_KVM_RUN;
	/* a vCPU thread runs the same vCPU: parse stats_id once, not per entry */
	if (vcpu != c->vcpu || !c->vm)
		c->vm = gmem_vm_of_kvm(BPF_CORE_READ(vcpu, kvm));
	if (vcpu != c->vcpu) {
		/* which thread runs which vCPU: once per thread, not per entry */
		e = gmem_reserve(GMEM_EV_VCPU_THREAD);
		if (e) {
			e->vm = c->vm;
			e->a = (__u64)BPF_CORE_READ(vcpu, vcpu_idx);
			e->flags |= flags;
			gmem_submit(e);
		}
	}
	c->vcpu = vcpu;
	if (c->pending_conv) {
		c->pending_conv = 0;
		e = gmem_reserve(GMEM_EV_VCPU_RESUME);
		if (e) {
			e->vm = c->vm;
			e->flags |= flags;
			gmem_submit(e);
		}
	}
}

/* KVM_RUN returns to the VMM: a conversion request if the exit asks for one. */
static __always_inline void gmem_vcpu_run_end(struct call_ctx *c, __u32 flags)
{
	struct kvm_vcpu *vcpu = c->vcpu;
	struct kvm_run *run;
	struct gmem_event *e;
	__u64 gpa, size, dir;
	__u32 reason;

	if (!vcpu)
		return;
	run = BPF_CORE_READ(vcpu, run);
	reason = BPF_CORE_READ(run, exit_reason);
	/* memory_fault joined kvm_run with guest_memfd (6.8): older kernels skip this arm */
	if (reason == GMEM_KVM_EXIT_MEMORY_FAULT && bpf_core_field_exists(run->memory_fault)) {
		__u64 fl = BPF_CORE_READ(run, memory_fault.flags);

		gpa = BPF_CORE_READ(run, memory_fault.gpa);
		size = BPF_CORE_READ(run, memory_fault.size);
		dir = (fl & GMEM_KVM_MEMORY_EXIT_FLAG_PRIVATE) ? GMEM_TO_PRIVATE : GMEM_TO_SHARED;
	} else if (reason == GMEM_KVM_EXIT_HYPERCALL &&
		   BPF_CORE_READ(run, hypercall.nr) == GMEM_KVM_HC_MAP_GPA_RANGE) {
		gpa = BPF_CORE_READ(run, hypercall.args[0]);
		size = BPF_CORE_READ(run, hypercall.args[1]) * 4096;
		dir = (BPF_CORE_READ(run, hypercall.args[2]) & GMEM_KVM_MAP_GPA_RANGE_ENCRYPTED) ?
			      GMEM_TO_PRIVATE : GMEM_TO_SHARED;
	} else {
		return;
	}
	c->pending_conv = 1;
	e = gmem_reserve(GMEM_EV_CONV_REQUEST);
	if (!e)
		return;
	e->vm = c->vm;
	e->a = gpa;
	e->b = size;
	e->sub = dir;
	e->c = reason;
	e->flags |= flags;
	gmem_submit(e);
}

/* the uapi struct kvm_memory_attributes, read from the ioctl argument */
struct gmem_uapi_attrs {
	__u64 address;
	__u64 size;
	__u64 attributes;
	__u64 flags;
};

/* KVM_SET_MEMORY_ATTRIBUTES begins, uarg its user-space argument. KVM_SET_MEMORY_ATTRIBUTES2's
 * 128-byte struct leads with the same four fields (its first is the offset in the file). */
static __always_inline void gmem_set_attr_begin(struct call_ctx *c, const void *uarg)
{
	struct gmem_uapi_attrs at = {};

	bpf_probe_read_user(&at, sizeof(at), uarg);
	c->call = CALL_SET_ATTR;
	c->a = at.address;
	c->b = at.size;
	c->sub = (at.attributes & GMEM_KVM_MEMORY_ATTRIBUTE_PRIVATE) ? GMEM_TO_PRIVATE :
								       GMEM_TO_SHARED;
	c->ts = bpf_ktime_get_ns();
}

/* It returned ret in VM vm: the conversion's kernel part, timed. */
static __always_inline void gmem_set_attr_end(struct call_ctx *c, __u32 vm, long ret, __u32 flags)
{
	struct gmem_event *e = gmem_reserve(GMEM_EV_CONV_ATTR);

	if (!e)
		return;
	e->vm = vm;
	e->a = c->a;
	e->b = c->b;
	e->sub = c->sub;
	e->c = e->ts_ns - c->ts;
	e->result = (__s32)ret;
	e->flags |= flags;
	if (flags & GMEM_EVF_INPLACE)
		e->ino = c->ino;
	gmem_submit(e);
}

#endif /* GMEM_CALLS_BPF_H */
