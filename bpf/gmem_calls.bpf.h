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
static __always_inline void gmem_fallocate_end(__u32 tid, __s32 ret, __u32 flags)
{
	struct call_ctx *c = bpf_map_lookup_elem(&calls, &tid);
	struct gmem_event *e;
	bool punch;

	if (!c || c->call != CALL_FALLOCATE)
		return;
	c->call = CALL_NONE;
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

#endif /* GMEM_CALLS_BPF_H */
