// SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause
/*
 * gmem_fentry.bpf.c - the fentry tier: guest_memfd seen from the kernel functions themselves,
 * on kernels that let BPF trampolines attach to kernel text.
 *
 * Hooks and why there:
 *  - kvm_gmem_create (fexit), kvm_gmem_release, kvm_gmem_bind (fexit): a file's life and its
 *    memslots, with the struct kvm in hand, so no ioctl decoding and no fd-to-VM guesswork.
 *  - kvm_gmem_fallocate (fentry + fexit): punch holes and allocating fallocates, only ever on a
 *    guest_memfd file, so no syscall hook decodes every fallocate on the host. It sets the same
 *    per-thread call context the tracepoint tier's syscall hooks do (gmem_calls.bpf.h), so the
 *    folio hooks still fold the call's folios into one record.
 *  - kvm_arch_vcpu_ioctl_run, kvm_vm_ioctl (SET_MEMORY_ATTRIBUTES only), kvm_gmem_populate
 *    (fentry + fexit), kvm_gmem_unbind: KVM_RUN, conversions, populate and memslot unbinds
 *    from KVM's own functions. With these and the rest, a kernel that allows fentry needs no
 *    syscall tracepoint at all, so no program runs for the host's other ioctls, closes and
 *    fallocates (bench/hostcost measures that cost).
 *  - kvm_gmem_get_pfn, kvm_gmem_fault_user_mapping (fentry + fexit): every guest (KVM MMU) and
 *    host-user fault on guest_memfd, timed, including the ones that find the folio already
 *    present and so never reach the page cache tracepoints.
 *  - kvm_arch_gmem_prepare / kvm_arch_gmem_invalidate (7.3: make_private / reclaim),
 *    rmp_make_private/shared, psmash,
 *    snp_leak_pages: SEV-SNP's RMP transitions. tdh_mem_* / tdh_phymem_page_wbinvd_hkid: TDX's
 *    S-EPT transitions. Neither has tracepoints.
 *  - kvm_arch_gmem_invalidate_range (7.3): a guest_memfd invalidation taking guest frames
 *    out of a VM's mappings, with the VM and the gfn range in hand.
 *  - folio_zap_direct_map / folio_restore_direct_map (+ kvm_gmem_free_folio, see below): folios
 *    of NO_DIRECT_MAP guest_memfd files leaving and rejoining the direct map (unmerged series).
 *  - kvm_gmem_{split,merge}_folio_in_filemap, tdh_mem_page_demote: huge folio restructuring
 *    (out-of-tree hugetlb guest_memfd and TDX huge page series).
 * Most targets exist only on some kernels or configs; the loader turns off (autoload) every
 * program whose target is not in the running kernel's BTF, and reuses the tracepoint object's
 * events/counters/ino_vm/vmm_tgids maps, so both tiers feed one ring buffer.
 *
 * Argument lists change between versions and CO-RE cannot relocate a function's arguments: each
 * program reads only the leading arguments that are the same in every version it can meet (and
 * says which), fexit programs read the return value with bpf_get_func_ret() instead of a fixed
 * arity, and pointers to types this vmlinux.h lacks are taken as u64 and read through types
 * that do exist (struct folio, struct inode).
 *
 * Cost: one trampoline per call of a hooked function. The hot ones are kvm_gmem_get_pfn (every
 * private-memory guest fault: two trampolines, one hash update and delete, one 64-byte record)
 * and, on TDX, tdh_mem_page_aug (one record per private page mapped). The rest fire per memslot,
 * file, conversion or teardown. No per-event work happens outside guest_memfd, SNP and TDX code.
 */
#include "gmem_calls.bpf.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

#define PF_KTHREAD 0x00200000

/*
 * How tdh_* level arguments are encoded: 0 = decide at run time (below), 1 = TDX S-EPT level
 * (0 = 4K, 1 = 2M; the int/u64 level of 6.16-6.18), 2 = enum pg_level (1 = 4K, 2 = 2M; later
 * kernels, where the same functions also take a kvm_pfn_t instead of a struct page *). The
 * loader may set it from the BTF type of tdh_mem_range_block's third parameter.
 */
const volatile __u32 targ_tdx_level_enc = 0;

enum { TDX_ENC_UNKNOWN = 0, TDX_ENC_SEPT = 1, TDX_ENC_PG_LEVEL = 2 };

/* Learned when targ_tdx_level_enc is 0: page add/aug/wbinvd pass a struct page * (old API, S-EPT
 * levels) or a pfn (new API, pg_level) in the same slot, and a kernel pointer is easy to tell
 * from a pfn. Until one of them is seen, assume the released 6.16-6.18 encoding. */
__u32 tdx_level_enc_seen;

/* ---- private maps ------------------------------------------------------------------------ */

enum timed_site {
	SITE_GET_PFN = 1,
	SITE_USER_FAULT = 2,
};

/* Entry timestamps of the timed functions, keyed by (site << 32 | tid). Entries are deleted at
 * exit; one left behind by a program detached mid-call is overwritten by that thread's next
 * call. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 8192);
	__type(key, __u64);
	__type(value, __u64);
} fault_start SEC(".maps");

/*
 * Folios of NO_DIRECT_MAP files taken out of the direct map: folio -> file. The restore happens
 * in the mapping's free_folio callback, after page_cache_delete() cleared folio->mapping, so
 * this is the only way to name the file (and to tell a gmem restore from a secretmem one: the
 * series moves secretmem onto the same helpers). Not preallocated: it costs nothing on kernels
 * without the series, and when it is full a restore is still seen through freeing_folio below.
 */
struct dmap_owner {
	__u64 ino;
	__u32 vm;
	__u32 pad;
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(max_entries, 262144);
	__type(key, __u64); /* struct folio * */
	__type(value, struct dmap_owner);
} dmap_zapped SEC(".maps");

/* tid -> the folio kvm_gmem_free_folio is freeing right now: a restore of that folio on that
 * thread is guest_memfd's, even when the zap happened before we started. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 4096);
	__type(key, __u32);
	__type(value, __u64);
} freeing_folio SEC(".maps");

/* ---- helpers ----------------------------------------------------------------------------- */

static __always_inline struct gmem_event *fe_reserve(__u32 kind)
{
	struct gmem_event *e = gmem_reserve(kind);

	if (e)
		e->flags |= GMEM_EVF_FENTRY;
	return e;
}

/* The VM of a function that has no struct kvm to hand: the VMM we know the current process to
 * be; a user thread we do not know is taken as its own VMM (as the tracepoint tier does);
 * kernel threads (reclaim, workqueues doing teardown) are unknown. */
static __always_inline __u32 current_vm(void)
{
	__u32 tgid = bpf_get_current_pid_tgid() >> 32;
	__u32 *vm = bpf_map_lookup_elem(&vmm_tgids, &tgid);
	struct task_struct *task;

	if (vm)
		return *vm;
	task = (struct task_struct *)bpf_get_current_task();
	if (BPF_CORE_READ(task, flags) & PF_KTHREAD)
		return 0;
	return tgid;
}

static __always_inline void remember_vmm(__u32 vm)
{
	__u32 tgid = bpf_get_current_pid_tgid() >> 32;

	if (vm && !bpf_map_lookup_elem(&vmm_tgids, &tgid))
		bpf_map_update_elem(&vmm_tgids, &tgid, &vm, BPF_ANY);
}

static __always_inline __u64 site_key(__u32 site)
{
	return ((__u64)site << 32) | (__u32)bpf_get_current_pid_tgid();
}

static __always_inline void timing_start(__u32 site)
{
	__u64 key = site_key(site);
	__u64 ts = bpf_ktime_get_ns();

	bpf_map_update_elem(&fault_start, &key, &ts, BPF_ANY);
}

/* Start time of this thread's call, 0 if its entry was not seen (attached mid-call). */
static __always_inline __u64 timing_end(__u32 site)
{
	__u64 key = site_key(site);
	__u64 *ts = bpf_map_lookup_elem(&fault_start, &key);
	__u64 t = 0;

	if (ts) {
		t = *ts;
		bpf_map_delete_elem(&fault_start, &key);
	}
	return t;
}

/* A guest_memfd folio's inode, or NULL (not gmem, or no longer in the page cache). */
static __always_inline struct inode *gmem_folio_inode(struct folio *folio)
{
	struct address_space *mapping = BPF_CORE_READ(folio, mapping);
	struct inode *host;

	if (!mapping)
		return NULL;
	host = BPF_CORE_READ(mapping, host);
	if (!host || !gmem_mapping_is_gmem(mapping, gmem_inode_magic(host)))
		return NULL;
	return host;
}

/* x86-64: kernel pointers live in the upper half; pfns are small. */
static __always_inline bool is_kernel_ptr(__u64 v)
{
	return v >= 0xffff800000000000ull;
}

/* pfn-typed argument in the new TDX API, struct page / folio pointer in the old one. */
static __always_inline __u64 tdx_pfn_arg(__u64 v)
{
	__u32 enc = is_kernel_ptr(v) ? TDX_ENC_SEPT : TDX_ENC_PG_LEVEL;

	if (tdx_level_enc_seen != enc)
		tdx_level_enc_seen = enc;
	return enc == TDX_ENC_PG_LEVEL ? v : 0;
}

static __always_inline __u32 tdx_order(__u64 level)
{
	__u32 enc = targ_tdx_level_enc ? targ_tdx_level_enc : tdx_level_enc_seen;

	if (level > 3)
		return 0;
	if (enc == TDX_ENC_PG_LEVEL)
		return level > 1 ? (level - 1) * 9 : 0;
	return level * 9;
}

static __always_inline __u32 rmp_order(__u64 level)
{
	return level == bpf_core_enum_value(enum pg_level, PG_LEVEL_2M) ? 9 : 0;
}

/* ---- file life and memslots -------------------------------------------------------------- */

/*
 * int kvm_gmem_create(struct kvm *kvm, struct kvm_create_guest_memfd *args), unchanged 6.8-6.18
 * and still the ioctl's entry point on 6.19 (where the work moved to __kvm_gmem_create(kvm,
 * size, flags), a static function that is usually inlined, so not a target). It returns the
 * new fd, already installed in the caller's table, so the inode comes from the fd at exit; args
 * is the kernel's copy of the ioctl argument.
 */
SEC("fexit/kvm_gmem_create")
int BPF_PROG(handle_gmem_create, struct kvm *kvm, struct kvm_create_guest_memfd *args)
{
	GMEM_EMPTY_BODY();
	struct gmem_event *e;
	__u64 ret = 0, ino = 0;
	__u32 vm;
	int fd;

	bpf_get_func_ret(ctx, &ret);
	fd = (int)ret;
	if (fd >= 0)
		ino = gmem_fd_ino(fd, NULL);
	vm = gmem_vm_of_kvm(kvm);
	if (ino && vm) {
		bpf_map_update_elem(&ino_vm, &ino, &vm, BPF_ANY);
		remember_vmm(vm);
	}
	e = fe_reserve(GMEM_EV_FILE_CREATE);
	if (!e)
		return 0;
	e->vm = vm;
	e->ino = ino;
	e->a = BPF_CORE_READ(args, size);
	e->b = BPF_CORE_READ(args, flags);
	e->result = fd;
	gmem_submit(e);
	return 0;
}

/*
 * int kvm_gmem_release(struct inode *inode, struct file *file): the file's last reference went.
 * At entry its kvm_gmem/gmem_file (private_data) still names the VM; at exit it is freed, so
 * this is fentry and the result (always 0) is not reported. The inode may outlive the file
 * while other files or mappings hold it; ino_vm keeps its VM for the folio frees that follow.
 */
SEC("fentry/kvm_gmem_release")
int BPF_PROG(handle_gmem_release, struct inode *inode, struct file *file)
{
	GMEM_EMPTY_BODY();
	struct gmem_event *e;
	__u64 ino = BPF_CORE_READ(inode, i_ino);
	__u32 vm = gmem_vm_of_kvm(gmem_file_kvm(file));

	if (!vm)
		vm = gmem_inode_vm(inode, ino);
	e = fe_reserve(GMEM_EV_FILE_RELEASE);
	if (!e)
		return 0;
	e->vm = vm;
	e->ino = ino;
	gmem_submit(e);
	return 0;
}

/*
 * int kvm_gmem_bind(struct kvm *kvm, struct kvm_memory_slot *slot, unsigned int fd,
 * loff_t offset), unchanged since 6.8. sub is (as_id << 16 | id), the uapi slot number the
 * tracepoint tier reports.
 */
SEC("fexit/kvm_gmem_bind")
int BPF_PROG(handle_gmem_bind, struct kvm *kvm, struct kvm_memory_slot *slot, unsigned int fd,
	     loff_t offset)
{
	GMEM_EMPTY_BODY();
	struct gmem_event *e;
	__u64 ret = 0;

	bpf_get_func_ret(ctx, &ret);
	e = fe_reserve(GMEM_EV_BIND);
	if (!e)
		return 0;
	e->vm = gmem_vm_of_kvm(kvm);
	e->ino = gmem_fd_ino((int)fd, NULL);
	e->a = BPF_CORE_READ(slot, base_gfn) << 12;
	e->b = (__u64)BPF_CORE_READ(slot, npages) << 12;
	e->c = offset;
	e->sub = ((__u32)BPF_CORE_READ(slot, as_id) << 16) | (__u16)BPF_CORE_READ(slot, id);
	e->result = (__s32)ret;
	gmem_submit(e);
	return 0;
}

/*
 * long kvm_gmem_fallocate(struct file *file, int mode, loff_t offset, loff_t len), the gmem
 * file's f_op->fallocate, unchanged since 6.8. vfs_fallocate() checks the mode before calling
 * it, so a fallocate the VFS refuses outright is not seen here (the syscall tier counts it as a
 * failed call); everything that reaches guest_memfd is.
 */
SEC("fentry/kvm_gmem_fallocate")
int BPF_PROG(handle_gmem_fallocate_entry, struct file *file, int mode, loff_t offset, loff_t len)
{
	GMEM_EMPTY_BODY();
	struct inode *inode = BPF_CORE_READ(file, f_inode);

	gmem_fallocate_begin((__u32)bpf_get_current_pid_tgid(), inode, BPF_CORE_READ(inode, i_ino),
			     (__u32)mode, offset, len);
	return 0;
}

SEC("fexit/kvm_gmem_fallocate")
int BPF_PROG(handle_gmem_fallocate_exit, struct file *file, int mode, loff_t offset, loff_t len,
	     long ret)
{
	GMEM_EMPTY_BODY();
	gmem_fallocate_end((__s32)ret, GMEM_EVF_FENTRY);
	return 0;
}

/*
 * void kvm_gmem_unbind(struct kvm_memory_slot *slot): a memslot lets go of its file, whether
 * the VMM deleted it or the VM is being torn down. Unchanged since 6.8. Optional: without it
 * unbinds stay with the tracepoint tier's ioctl hooks.
 */
SEC("fentry/kvm_gmem_unbind")
int BPF_PROG(handle_gmem_unbind, struct kvm_memory_slot *slot)
{
	GMEM_EMPTY_BODY();
	struct gmem_event *e = fe_reserve(GMEM_EV_UNBIND);
	struct file *file;

	if (!e)
		return 0;
	file = BPF_CORE_READ(slot, gmem.file);
	/* at a VM's teardown this may run from a workqueue (delayed fput): name the VM from
	 * the file, as kvm_gmem_release does, and only then from the current process */
	e->vm = gmem_vm_of_kvm(gmem_file_kvm(file)) ?: current_vm();
	e->ino = BPF_CORE_READ(file, f_inode, i_ino);
	e->sub = ((__u32)BPF_CORE_READ(slot, as_id) << 16) | (__u16)BPF_CORE_READ(slot, id);
	gmem_submit(e);
	return 0;
}

/* ---- KVM_RUN and the VM ioctls conversions take ----------------------------------------- */

/*
 * int kvm_arch_vcpu_ioctl_run(struct kvm_vcpu *vcpu): KVM_RUN itself, the same call the
 * tracepoint tier sees at the ioctl syscall, without a program on every ioctl of the host.
 * Sets the call context (guest faults inside it are named so) and reports the exits that ask
 * for a conversion (gmem_calls.bpf.h).
 */
SEC("fentry/kvm_arch_vcpu_ioctl_run")
int BPF_PROG(handle_vcpu_run_entry, struct kvm_vcpu *vcpu)
{
	GMEM_EMPTY_BODY();
	struct call_ctx *c = ctx_get((__u32)bpf_get_current_pid_tgid(), true);

	if (c)
		gmem_vcpu_run_begin(c, vcpu, GMEM_EVF_FENTRY);
	return 0;
}

SEC("fexit/kvm_arch_vcpu_ioctl_run")
int BPF_PROG(handle_vcpu_run_exit, struct kvm_vcpu *vcpu)
{
	GMEM_EMPTY_BODY();
	struct call_ctx *c = ctx_end(CALL_KVM_RUN);

	if (c)
		gmem_vcpu_run_end(c, GMEM_EVF_FENTRY);
	return 0;
}

/*
 * long kvm_vm_ioctl(struct file *filp, unsigned int ioctl, unsigned long arg): a VM fd's
 * ioctls, the way in of KVM_SET_MEMORY_ATTRIBUTES (a conversion's kernel part, timed).
 * Static, but reached only through kvm_vm_fops, so never inlined; unchanged since 2.6. Runs
 * for KVM's VM ioctls only.
 */
/* Runs of handle_vm_ioctl_entry, every ioctl: the loader checks with one of its own that the
 * trampoline really fires (on Debian's 6.18 it attaches and is never called). */
__u64 vm_ioctl_runs;

SEC("fentry/kvm_vm_ioctl")
int BPF_PROG(handle_vm_ioctl_entry, struct file *filp, unsigned int ioctl, unsigned long arg)
{
	struct call_ctx *c;

	__sync_fetch_and_add(&vm_ioctl_runs, 1);
	GMEM_EMPTY_BODY();

	if (ioctl != GMEM_KVM_SET_MEMORY_ATTRIBUTES)
		return 0;
	c = ctx_get((__u32)bpf_get_current_pid_tgid(), true);
	if (c)
		gmem_set_attr_begin(c, (const void *)arg);
	return 0;
}

SEC("fexit/kvm_vm_ioctl")
int BPF_PROG(handle_vm_ioctl_exit, struct file *filp, unsigned int ioctl, unsigned long arg,
	     long ret)
{
	GMEM_EMPTY_BODY();
	struct call_ctx *c;

	if (ioctl != GMEM_KVM_SET_MEMORY_ATTRIBUTES)
		return 0;
	c = ctx_end(CALL_SET_ATTR);
	if (c)
		gmem_set_attr_end(c, gmem_vm_of_kvm(BPF_CORE_READ(filp, private_data)), ret,
				  GMEM_EVF_FENTRY);
	return 0;
}

/*
 * long kvm_gmem_populate(struct kvm *kvm, gfn_t gfn, void __user *src, long npages, ...):
 * SNP's launch update and TDX's memory-region init (one a VM ioctl, the other a vCPU one)
 * fill private memory through it, so its folios are populate's. Only the first argument is
 * named (the callback's type changed over versions). Optional: a kernel without an arch that
 * populates has no such folios.
 */
SEC("fentry/kvm_gmem_populate")
int BPF_PROG(handle_gmem_populate_entry, struct kvm *kvm)
{
	GMEM_EMPTY_BODY();
	struct call_ctx *c = ctx_get((__u32)bpf_get_current_pid_tgid(), true);

	if (c)
		c->call = CALL_ENCRYPT_OP;
	return 0;
}

SEC("fexit/kvm_gmem_populate")
int BPF_PROG(handle_gmem_populate_exit, struct kvm *kvm)
{
	GMEM_EMPTY_BODY();
	ctx_end(CALL_ENCRYPT_OP);
	return 0;
}

/* ---- faults ------------------------------------------------------------------------------ */

/*
 * kvm_gmem_get_pfn(struct kvm *kvm, struct kvm_memory_slot *slot, gfn_t gfn, kvm_pfn_t *pfn,
 *                  [struct page **page,] int *max_order)
 * ~6.13 inserted the struct page ** before max_order, so only kvm, slot and gfn (the first
 * three, the same everywhere) are named here, and the int result comes from bpf_get_func_ret(),
 * which finds it after however many arguments this kernel's version has. Callers are the KVM
 * MMU's private fault path (the common case, hence GUEST_FAULT) and, on SNP/TDX, a few
 * arch paths that look up a gmem pfn for the VM.
 */
SEC("fentry/kvm_gmem_get_pfn")
int BPF_PROG(handle_get_pfn_entry, struct kvm *kvm, struct kvm_memory_slot *slot, gfn_t gfn)
{
	GMEM_EMPTY_BODY();
	timing_start(SITE_GET_PFN);
	return 0;
}

SEC("fexit/kvm_gmem_get_pfn")
int BPF_PROG(handle_get_pfn_exit, struct kvm *kvm, struct kvm_memory_slot *slot, gfn_t gfn)
{
	GMEM_EMPTY_BODY();
	__u64 start = timing_end(SITE_GET_PFN);
	struct gmem_event *e;
	struct file *file;
	__u64 ret = 0, index;

	if (!start)
		return 0;
	bpf_get_func_ret(ctx, &ret);
	/* The file offset KVM itself computes (kvm_gmem_get_index); gmem.pgoff has been in the
	 * memslot since 6.8, the check only keeps a kernel without it loadable. */
	index = gfn - BPF_CORE_READ(slot, base_gfn);
	if (bpf_core_field_exists(slot->gmem.pgoff))
		index += BPF_CORE_READ(slot, gmem.pgoff);
	else
		index = gfn;
	file = BPF_CORE_READ(slot, gmem.file);

	e = fe_reserve(GMEM_EV_FAULT);
	if (!e)
		return 0;
	e->vm = gmem_vm_of_kvm(kvm);
	e->ino = file ? BPF_CORE_READ(file, f_inode, i_ino) : 0;
	e->a = index;
	e->c = e->ts_ns - start;
	e->sub = GMEM_SRC_GUEST_FAULT;
	e->result = (__s32)ret;
	gmem_submit(e);
	return 0;
}

/*
 * vm_fault_t kvm_gmem_fault_user_mapping(struct vm_fault *vmf): the ->fault of an mmapped
 * guest_memfd (6.18+, MMAP flag). result is the vm_fault_t bit set (VM_FAULT_*), not an errno.
 */
SEC("fentry/kvm_gmem_fault_user_mapping")
int BPF_PROG(handle_user_fault_entry, struct vm_fault *vmf)
{
	GMEM_EMPTY_BODY();
	timing_start(SITE_USER_FAULT);
	return 0;
}

SEC("fexit/kvm_gmem_fault_user_mapping")
int BPF_PROG(handle_user_fault_exit, struct vm_fault *vmf)
{
	GMEM_EMPTY_BODY();
	__u64 start = timing_end(SITE_USER_FAULT);
	struct gmem_event *e;
	struct inode *inode;
	__u64 ret = 0, ino;

	if (!start)
		return 0;
	bpf_get_func_ret(ctx, &ret);
	inode = BPF_CORE_READ(vmf, vma, vm_file, f_inode);
	ino = inode ? BPF_CORE_READ(inode, i_ino) : 0;

	e = fe_reserve(GMEM_EV_FAULT);
	if (!e)
		return 0;
	e->vm = inode ? gmem_inode_vm(inode, ino) : 0;
	e->ino = ino;
	e->a = BPF_CORE_READ(vmf, pgoff);
	e->c = e->ts_ns - start;
	e->sub = GMEM_SRC_USER_FAULT;
	e->result = (__s32)ret;
	gmem_submit(e);
	return 0;
}

/* ---- SEV-SNP ----------------------------------------------------------------------------- */

/*
 * int kvm_arch_gmem_prepare(struct kvm *kvm, gfn_t gfn, kvm_pfn_t pfn, int max_order)
 * (CONFIG_HAVE_KVM_ARCH_GMEM_PREPARE, 6.10+: SNP builds). Note the order: gfn before pfn.
 */
SEC("fentry/kvm_arch_gmem_prepare")
int BPF_PROG(handle_gmem_prepare, struct kvm *kvm, u64 gfn, u64 pfn, int max_order)
{
	GMEM_EMPTY_BODY();
	struct gmem_event *e = fe_reserve(GMEM_EV_RMP);

	if (!e)
		return 0;
	e->vm = gmem_vm_of_kvm(kvm);
	e->a = pfn;
	e->b = gfn << 12;
	e->order = max_order > 0 && max_order < 64 ? max_order : 0;
	e->sub = GMEM_RMP_GMEM_PREPARE;
	gmem_submit(e);
	return 0;
}

/*
 * 7.3 replaced kvm_arch_gmem_prepare with kvm_arch_gmem_make_private(kvm, gfn, pfn, nr), called
 * on every private lookup from kvm_gmem_get_pfn: the same event, nr pages instead of an order.
 */
SEC("fentry/kvm_arch_gmem_make_private")
int BPF_PROG(handle_gmem_make_private, struct kvm *kvm, u64 gfn, u64 pfn, u64 nr)
{
	GMEM_EMPTY_BODY();
	struct gmem_event *e = fe_reserve(GMEM_EV_RMP);
	__u32 order = 0;

	if (!e)
		return 0;
	while (order < 18 && (1ull << (order + 1)) <= nr)
		order++;
	e->vm = gmem_vm_of_kvm(kvm);
	e->a = pfn;
	e->b = gfn << 12;
	e->order = order;
	e->sub = GMEM_RMP_GMEM_PREPARE;
	gmem_submit(e);
	return 0;
}

/* void kvm_arch_gmem_invalidate(kvm_pfn_t start, kvm_pfn_t end), from the gmem free_folio path:
 * no kvm, no gpa. c = pages. */
SEC("fentry/kvm_arch_gmem_invalidate")
int BPF_PROG(handle_gmem_invalidate, u64 start, u64 end)
{
	GMEM_EMPTY_BODY();
	struct gmem_event *e = fe_reserve(GMEM_EV_RMP);

	if (!e)
		return 0;
	e->vm = current_vm();
	e->a = start;
	e->c = end > start ? end - start : 0;
	e->sub = GMEM_RMP_GMEM_INVALIDATE;
	gmem_submit(e);
	return 0;
}

/* void kvm_arch_gmem_reclaim(kvm_pfn_t pfn, kvm_pfn_t nr_pages): 7.3's successor of the above
 * in kvm_gmem_free_folio (CONFIG_HAVE_KVM_ARCH_GMEM_RECLAIM), the same event. */
SEC("fentry/kvm_arch_gmem_reclaim")
int BPF_PROG(handle_gmem_reclaim, u64 pfn, u64 nr_pages)
{
	GMEM_EMPTY_BODY();
	struct gmem_event *e = fe_reserve(GMEM_EV_RMP);

	if (!e)
		return 0;
	e->vm = current_vm();
	e->a = pfn;
	e->c = nr_pages;
	e->sub = GMEM_RMP_GMEM_INVALIDATE;
	gmem_submit(e);
	return 0;
}

/*
 * void kvm_arch_gmem_invalidate_range(struct kvm *kvm, struct kvm_gfn_range *range): 7.3 calls
 * it under mmu_lock for each memslot range a guest_memfd invalidation (punch, truncate,
 * conversion) takes out of the guest's mappings, so unlike reclaim it names the VM and the guest
 * frames. a = first gfn, b = end gfn (exclusive), c = attr_filter (KVM_FILTER_SHARED 1,
 * KVM_FILTER_PRIVATE 2; 0 where the field does not exist). One record per call: per memslot
 * range, not per page.
 */
SEC("fentry/kvm_arch_gmem_invalidate_range")
int BPF_PROG(handle_gmem_invalidate_range, struct kvm *kvm, struct kvm_gfn_range *range)
{
	GMEM_EMPTY_BODY();
	struct gmem_event *e = fe_reserve(GMEM_EV_GFN_INVALIDATE);

	if (!e)
		return 0;
	e->vm = gmem_vm_of_kvm(kvm);
	e->a = BPF_CORE_READ(range, start);
	e->b = BPF_CORE_READ(range, end);
	if (bpf_core_field_exists(range->attr_filter))
		e->c = (__u32)BPF_CORE_READ(range, attr_filter);
	gmem_submit(e);
	return 0;
}

/* int rmp_make_private(u64 pfn, u64 gpa, enum pg_level level, u32 asid, bool immutable).
 * c = asid (the SNP guest's ASID, a second handle on the VM). */
SEC("fentry/rmp_make_private")
int BPF_PROG(handle_rmp_make_private, u64 pfn, u64 gpa, u64 level, u32 asid)
{
	GMEM_EMPTY_BODY();
	struct gmem_event *e = fe_reserve(GMEM_EV_RMP);

	if (!e)
		return 0;
	e->vm = current_vm();
	e->a = pfn;
	e->b = gpa;
	e->c = asid;
	e->order = rmp_order(level);
	e->sub = GMEM_RMP_MAKE_PRIVATE;
	gmem_submit(e);
	return 0;
}

/* int rmp_make_shared(u64 pfn, enum pg_level level) */
SEC("fentry/rmp_make_shared")
int BPF_PROG(handle_rmp_make_shared, u64 pfn, u64 level)
{
	GMEM_EMPTY_BODY();
	struct gmem_event *e = fe_reserve(GMEM_EV_RMP);

	if (!e)
		return 0;
	e->vm = current_vm();
	e->a = pfn;
	e->order = rmp_order(level);
	e->sub = GMEM_RMP_MAKE_SHARED;
	gmem_submit(e);
	return 0;
}

/* int psmash(u64 pfn): a 2M RMP entry becomes 512 4K ones; order is the entry smashed. */
SEC("fentry/psmash")
int BPF_PROG(handle_psmash, u64 pfn)
{
	GMEM_EMPTY_BODY();
	struct gmem_event *e = fe_reserve(GMEM_EV_RMP);

	if (!e)
		return 0;
	e->vm = current_vm();
	e->a = pfn;
	e->order = 9;
	e->sub = GMEM_RMP_PSMASH;
	gmem_submit(e);
	return 0;
}

/* void snp_leak_pages(u64 pfn, unsigned int npages): pages whose RMP state could not be
 * restored, lost to the host for good. c = pages. */
SEC("fentry/snp_leak_pages")
int BPF_PROG(handle_snp_leak, u64 pfn, unsigned int npages)
{
	GMEM_EMPTY_BODY();
	struct gmem_event *e = fe_reserve(GMEM_EV_RMP);

	if (!e)
		return 0;
	e->vm = current_vm();
	e->a = pfn;
	e->c = npages;
	e->sub = GMEM_RMP_LEAK;
	gmem_submit(e);
	return 0;
}

/* ---- TDX --------------------------------------------------------------------------------- */

/*
 * The SEAMCALL wrappers (6.16+) take struct tdx_td *, which this vmlinux.h does not have, so
 * every argument is a raw u64. Stable across versions: (td, gpa, level) for aug, remove,
 * range_block and demote; (td, gpa, page-or-pfn) for add; (hkid, page-or-pfn) for wbinvd.
 * a = gpa where there is one, b = pfn where the kernel passes one (later kernels; 6.16-6.18
 * pass a struct page *, whose pfn is not computable here without vmemmap_base), order from the
 * level. fentry: the TDX status the wrappers return is not reported.
 */
static __always_inline int tdx_event(__u32 op, __u64 gpa, __u64 pfn, __u32 order, __u64 c)
{
	struct gmem_event *e = fe_reserve(GMEM_EV_TDX);

	if (!e)
		return 0;
	e->vm = current_vm();
	e->a = gpa;
	e->b = pfn;
	e->c = c;
	e->order = order;
	e->sub = op;
	gmem_submit(e);
	return 0;
}

/* tdh_mem_page_add(td, gpa, struct page *page | kvm_pfn_t pfn, struct page *source, ...) */
SEC("fentry/tdh_mem_page_add")
int BPF_PROG(handle_tdx_page_add, u64 td, u64 gpa, u64 page_or_pfn)
{
	GMEM_EMPTY_BODY();
	return tdx_event(GMEM_TDX_PAGE_ADD, gpa, tdx_pfn_arg(page_or_pfn), 0, 0);
}

/* tdh_mem_page_aug(td, gpa, level, struct page *page | struct folio *folio | kvm_pfn_t pfn, ...)
 * (the learning of the level encoding happens before the level is used) */
SEC("fentry/tdh_mem_page_aug")
int BPF_PROG(handle_tdx_page_aug, u64 td, u64 gpa, u64 level, u64 page_or_pfn)
{
	GMEM_EMPTY_BODY();
	__u64 pfn = tdx_pfn_arg(page_or_pfn);

	return tdx_event(GMEM_TDX_PAGE_AUG, gpa, pfn, tdx_order(level), 0);
}

/* tdh_mem_page_remove(td, gpa, level, ...) */
SEC("fentry/tdh_mem_page_remove")
int BPF_PROG(handle_tdx_page_remove, u64 td, u64 gpa, u64 level)
{
	GMEM_EMPTY_BODY();
	return tdx_event(GMEM_TDX_PAGE_REMOVE, gpa, 0, tdx_order(level), 0);
}

/* tdh_mem_range_block(td, gpa, level, ...) */
SEC("fentry/tdh_mem_range_block")
int BPF_PROG(handle_tdx_range_block, u64 td, u64 gpa, u64 level)
{
	GMEM_EMPTY_BODY();
	return tdx_event(GMEM_TDX_RANGE_BLOCK, gpa, 0, tdx_order(level), 0);
}

/* tdh_mem_track(td): bumps the TD's TLB epoch after blocking; no address. */
SEC("fentry/tdh_mem_track")
int BPF_PROG(handle_tdx_track, u64 td)
{
	GMEM_EMPTY_BODY();
	return tdx_event(GMEM_TDX_TRACK, 0, 0, 0, 0);
}

/* tdh_phymem_page_wbinvd_hkid(u64 hkid, struct page *page | kvm_pfn_t pfn): the cache flush
 * of a page leaving a TD. No gpa: a = 0, b = pfn where passed, c = the TD's HKID. */
SEC("fentry/tdh_phymem_page_wbinvd_hkid")
int BPF_PROG(handle_tdx_wbinvd, u64 hkid, u64 page_or_pfn)
{
	GMEM_EMPTY_BODY();
	return tdx_event(GMEM_TDX_WBINVD, 0, tdx_pfn_arg(page_or_pfn), 0, hkid);
}

/*
 * tdh_mem_page_demote(td, gpa, level, ...) (TDX huge page series, unmerged; the later arguments
 * change with every revision). level is the mapping being split; SPLIT from that order to the
 * next one down. a = gfn, like the tracepoint tier's KVM MMU split.
 */
SEC("fentry/tdh_mem_page_demote")
int BPF_PROG(handle_tdx_demote, u64 td, u64 gpa, u64 level)
{
	GMEM_EMPTY_BODY();
	struct gmem_event *e;
	__u32 order = tdx_order(level);

	if (order < 9)
		order = 9; /* a demote is always of a huge mapping; 2M is what the series does */
	e = fe_reserve(GMEM_EV_SPLIT);
	if (!e)
		return 0;
	e->vm = current_vm();
	e->a = gpa >> 12;
	e->order = order;
	e->to_order = order - 9;
	gmem_submit(e);
	return 0;
}

/* ---- direct map (unmerged NO_DIRECT_MAP series) ------------------------------------------ */

/* One direct-map record for a guest_memfd folio; the index survives the folio leaving the
 * page cache, the file comes from what the zap remembered. */
static __always_inline void emit_dmap(__u32 kind, struct folio *folio,
				      const struct dmap_owner *owner)
{
	struct gmem_event *e = fe_reserve(kind);
	__u32 order;

	if (!e)
		return;
	order = gmem_folio_order(folio);
	e->vm = owner->vm;
	e->ino = owner->ino;
	e->a = BPF_CORE_READ(folio, index);
	e->b = 1ull << order;
	e->order = order;
	e->sub = GMEM_OWNER_GMEM;
	gmem_submit(e);
}

/*
 * int folio_zap_direct_map(struct folio *folio): guest_memfd calls it on a NO_DIRECT_MAP file's
 * folio right after getting it from the page cache, so the mapping names the file. The series
 * also moves secretmem onto this helper; secretmem zaps before adding the folio to its page
 * cache (no mapping yet) and the tracepoint tier already reports secretmem, so anything that is
 * not a gmem mapping is left alone. a = index (as in the tracepoint tier's DMAP records: the
 * pfn needs vmemmap_base, which BPF cannot read on this kernel config), b = pages.
 */
SEC("fentry/folio_zap_direct_map")
int BPF_PROG(handle_folio_zap, struct folio *folio)
{
	GMEM_EMPTY_BODY();
	struct inode *inode = gmem_folio_inode(folio);
	struct dmap_owner owner = {};
	__u64 key = (__u64)folio;

	if (!inode)
		return 0;
	owner.ino = BPF_CORE_READ(inode, i_ino);
	owner.vm = gmem_inode_vm(inode, owner.ino);
	bpf_map_update_elem(&dmap_zapped, &key, &owner, BPF_ANY);

	emit_dmap(GMEM_EV_DMAP_REMOVE, folio, &owner);
	return 0;
}

/*
 * void kvm_gmem_free_folio(struct folio *folio): guest_memfd's free_folio callback (mainline:
 * SNP builds only, where it calls kvm_arch_gmem_invalidate, reported above; the NO_DIRECT_MAP
 * series: where the direct map is restored). It emits nothing itself: PAGE_FREE is already
 * counted by the tracepoint tier, and folio->mapping is NULL here, so the file cannot be named.
 * It only marks "this thread is freeing this gmem folio" so that handle_folio_restore can tell
 * a gmem restore from a secretmem one for folios zapped before we started.
 */
SEC("fentry/kvm_gmem_free_folio")
int BPF_PROG(handle_free_folio, struct folio *folio)
{
	GMEM_EMPTY_BODY();
	__u32 tid = (__u32)bpf_get_current_pid_tgid();
	__u64 f = (__u64)folio;

	bpf_map_update_elem(&freeing_folio, &tid, &f, BPF_ANY);
	return 0;
}

/*
 * folio_restore_direct_map(struct folio *folio), from guest_memfd's free_folio (folio->mapping
 * already NULL; folio->index is kept) or from secretmem. Guest_memfd's if we saw the zap
 * (dmap_zapped: with its file) or if kvm_gmem_free_folio is freeing this very folio on this
 * thread (file unknown: ino 0).
 */
SEC("fentry/folio_restore_direct_map")
int BPF_PROG(handle_folio_restore, struct folio *folio)
{
	GMEM_EMPTY_BODY();
	__u32 tid = (__u32)bpf_get_current_pid_tgid();
	__u64 key = (__u64)folio;
	struct dmap_owner owner = {};
	struct dmap_owner *o;
	__u64 *freeing;

	o = bpf_map_lookup_elem(&dmap_zapped, &key);
	if (o) {
		owner = *o;
		bpf_map_delete_elem(&dmap_zapped, &key);
	} else {
		freeing = bpf_map_lookup_elem(&freeing_folio, &tid);
		if (!freeing || *freeing != key)
			return 0;
		owner.vm = current_vm();
	}
	bpf_map_delete_elem(&freeing_folio, &tid);

	emit_dmap(GMEM_EV_DMAP_RESTORE, folio, &owner);
	return 0;
}

/* ---- huge folios (out-of-tree hugetlb guest_memfd series) -------------------------------- */

/*
 * kvm_gmem_split_folio_in_filemap(struct inode *inode, struct folio *folio); an earlier revision
 * took (struct hstate *h, struct folio *folio), so only the folio is used: at entry it is still
 * in the page cache, and its mapping gives the inode. Split to order-0 folios.
 */
SEC("fentry/kvm_gmem_split_folio_in_filemap")
int BPF_PROG(handle_gmem_split, u64 arg0, struct folio *folio)
{
	GMEM_EMPTY_BODY();
	struct inode *inode = gmem_folio_inode(folio);
	struct gmem_event *e;
	__u32 order;
	__u64 ino;

	if (!inode)
		return 0;
	order = gmem_folio_order(folio);
	if (!order)
		return 0;
	ino = BPF_CORE_READ(inode, i_ino);
	e = fe_reserve(GMEM_EV_SPLIT);
	if (!e)
		return 0;
	e->vm = gmem_inode_vm(inode, ino);
	e->ino = ino;
	e->a = BPF_CORE_READ(folio, index);
	e->order = order;
	e->to_order = 0;
	gmem_submit(e);
	return 0;
}

/*
 * int kvm_gmem_merge_folio_in_filemap(struct inode *inode, struct folio *first_folio). fexit,
 * not fentry: the order merged to comes from the allocator's private data (out-of-tree types),
 * but after the call first_folio is the merged folio and carries it. A call that merged nothing
 * (already whole: returns 0 early) still leaves a whole folio; it is reported like a merge,
 * since entry state would need a second program. result = the return value (on failure the
 * series splits the folio back).
 */
SEC("fexit/kvm_gmem_merge_folio_in_filemap")
int BPF_PROG(handle_gmem_merge, u64 arg0, struct folio *folio)
{
	GMEM_EMPTY_BODY();
	struct inode *inode = gmem_folio_inode(folio);
	struct gmem_event *e;
	__u64 ret = 0, ino;
	__u32 order;

	if (!inode)
		return 0;
	bpf_get_func_ret(ctx, &ret);
	order = gmem_folio_order(folio);
	if (!order && !ret)
		return 0;
	ino = BPF_CORE_READ(inode, i_ino);
	e = fe_reserve(GMEM_EV_MERGE);
	if (!e)
		return 0;
	e->vm = gmem_inode_vm(inode, ino);
	e->ino = ino;
	e->a = BPF_CORE_READ(folio, index);
	e->order = 0;
	e->to_order = order;
	e->result = (__s32)ret;
	gmem_submit(e);
	return 0;
}
