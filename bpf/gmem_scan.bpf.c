// SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause
/*
 * gmem_scan.bpf.c - find every live guest_memfd file on the host, on demand.
 *
 * No tracepoint fires when a file is released, and files made before gmemd started were never
 * seen being created. So user space runs these iterators (at start, when a VMM closes a gmem
 * fd or exits, and on a slow timer) and compares: a file no task holds by fd or by mapping is
 * gone; one it did not know existed before. Each record is a struct gmem_scan_rec; the same
 * file shows up once per holder, user space dedups. Cost: a walk of every task's fd table and
 * VMAs, paid only when a scan is asked for, never on a hot path.
 */
#include "gmem_common.bpf.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

static __always_inline void emit(struct seq_file *seq, struct file *file, __u32 holder)
{
	struct gmem_scan_rec r = {};
	struct inode *inode;

	if (!file)
		return;
	inode = BPF_CORE_READ(file, f_inode);
	if (!inode || !gmem_mapping_is_gmem(BPF_CORE_READ(inode, i_mapping), gmem_inode_magic(inode)))
		return;
	r.ino = BPF_CORE_READ(inode, i_ino);
	r.size = BPF_CORE_READ(inode, i_size);
	r.nrpages = BPF_CORE_READ(inode, i_mapping, nrpages);
	/* guest_memfd keeps its creation flags in i_private (6.8-6.18) */
	r.flags = (__u64)BPF_CORE_READ(inode, i_private);
	r.vm = gmem_vm_of_kvm(gmem_file_kvm(file));
	if (!r.vm)
		r.vm = gmem_inode_vm(inode, r.ino);
	else
		bpf_map_update_elem(&ino_vm, &r.ino, &r.vm, BPF_ANY);
	r.holder = holder;
	bpf_seq_write(seq, &r, sizeof(r));
}

SEC("iter/task_file")
int scan_files(struct bpf_iter__task_file *ctx)
{
	struct task_struct *task = ctx->task;
	struct file *file = ctx->file;

	/* load the nullable pointers once: the verifier tracks the checked copy only */
	if (!task || !file)
		return 0;
	emit(ctx->meta->seq, file, task->tgid);
	return 0;
}

SEC("iter/task_vma")
int scan_vmas(struct bpf_iter__task_vma *ctx)
{
	struct vm_area_struct *vma = ctx->vma;
	struct task_struct *task = ctx->task;

	if (!task || !vma)
		return 0;
	emit(ctx->meta->seq, BPF_CORE_READ(vma, vm_file), task->tgid);
	return 0;
}
