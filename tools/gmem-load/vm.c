// SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause
/*
 * One VM child: a small VMM. It creates the VM, its guest_memfd files and their memslots, the
 * vCPU, runs the guest with KVM_RUN (answering the exits that ask for conversions), does each
 * step the options ask for, reports to the parent and closes everything.
 */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "gmem_advice.h"
#include "gmem-load.h"

void vm_err(const struct vm *vm, const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "gmem-load: vm %u (pid %d): ", vm->idx, (int)getpid());
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

/* splitmix64: turns neighbouring seeds (seed + VM index) into unrelated xorshift states. */
static __u64 rng_seed(__u64 x)
{
	x += 0x9E3779B97F4A7C15ULL;
	x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ULL;
	x = (x ^ (x >> 27)) * 0x94D049BB133111EBULL;
	x ^= x >> 31;
	return x ? x : 1;
}

static __u64 rng_next(__u64 *s)
{
	/* xorshift64*: reproducible offsets from --seed without libc's hidden state. */
	*s ^= *s >> 12;
	*s ^= *s << 25;
	*s ^= *s >> 27;
	return *s * 0x2545F4914F6CDD1DULL;
}

/*
 * A write to an mmapped gmem or secretmem page can fail only by SIGBUS (allocation refused).
 * Catch it so a failed touch is reported as one rather than killing the VMM mid-count. The
 * handler runs with SA_NODEFER, so siglongjmp without restoring the mask is safe and keeps the
 * hot path free of sigprocmask calls.
 */
static sigjmp_buf touch_env;
static volatile sig_atomic_t touch_armed;

static void on_sigbus(int sig)
{
	if (touch_armed)
		siglongjmp(touch_env, 1);
	signal(sig, SIG_DFL);
	raise(sig);
}

static int touch_page(volatile __u8 *p, __u8 val)
{
	if (sigsetjmp(touch_env, 0)) {
		touch_armed = 0;
		return -EFAULT;
	}
	touch_armed = 1;
	*p = val;
	touch_armed = 0;
	return 0;
}

/* Blocks until the parent says go (a byte) or goes away (EOF). */
static int vm__wait_go(struct vm *vm)
{
	char b;
	ssize_t n;

	do
		n = read(vm->ctl_fd, &b, 1);
	while (n < 0 && errno == EINTR);
	if (n != 1) {
		vm_err(vm, "parent went away while waiting");
		return -EPIPE;
	}
	return 0;
}

/*
 * A software-protected VM: private memory attributes must be there, and KVM_HC_MAP_GPA_RANGE
 * must exit to us (KVM answers it with -KVM_ENOSYS otherwise), since --guest-convert's guest
 * asks for its conversions that way.
 */
static int vm__create_private(struct vm *vm)
{
	struct kvm_enable_cap cap = { .cap = KVM_CAP_EXIT_HYPERCALL };
	int r;

	r = ioctl(vm->vm_fd, KVM_CHECK_EXTENSION, KVM_CAP_MEMORY_ATTRIBUTES);
	if (r < 0 || !(r & KVM_MEMORY_ATTRIBUTE_PRIVATE)) {
		vm_err(vm, "KVM here lacks KVM_SW_PROTECTED_VM private memory "
		       "(KVM_CAP_MEMORY_ATTRIBUTES = %d)", r);
		return -EOPNOTSUPP;
	}
	r = ioctl(vm->vm_fd, KVM_CHECK_EXTENSION, KVM_CAP_GUEST_MEMFD);
	if (r <= 0) {
		vm_err(vm, "KVM here lacks KVM_SW_PROTECTED_VM guest_memfd (KVM_CAP_GUEST_MEMFD = "
		       "%d)", r);
		return -EOPNOTSUPP;
	}
	if (!vm->o->guest_convert)
		return 0;
	r = ioctl(vm->vm_fd, KVM_CHECK_EXTENSION, KVM_CAP_EXIT_HYPERCALL);
	if (r < 0 || !(r & (1 << GMEM_KVM_HC_MAP_GPA_RANGE))) {
		vm_err(vm, "KVM here lacks KVM_SW_PROTECTED_VM hypercall exits for "
		       "KVM_HC_MAP_GPA_RANGE (KVM_CAP_EXIT_HYPERCALL = %d)", r);
		return -EOPNOTSUPP;
	}
	cap.args[0] = 1ULL << GMEM_KVM_HC_MAP_GPA_RANGE;
	if (ioctl(vm->vm_fd, KVM_ENABLE_CAP, &cap)) {
		r = -errno;
		vm_err(vm, "KVM_ENABLE_CAP(KVM_CAP_EXIT_HYPERCALL, MAP_GPA_RANGE): %s",
		       strerror(-r));
		return r;
	}
	return 0;
}

static int vm__create(struct vm *vm)
{
	int r;

	vm->kvm_fd = open("/dev/kvm", O_RDWR | O_CLOEXEC);
	if (vm->kvm_fd < 0) {
		r = -errno;
		vm_err(vm, "cannot open /dev/kvm: %s", strerror(-r));
		return r;
	}
	if (vm->o->vm_type) {
		r = ioctl(vm->kvm_fd, KVM_CHECK_EXTENSION, KVM_CAP_VM_TYPES);
		if (r < 0 || !(r & (1 << vm->o->vm_type))) {
			vm_err(vm, "KVM here lacks KVM_SW_PROTECTED_VM (KVM_CAP_VM_TYPES = %d, no bit "
			       "%u): it needs a kvm built with CONFIG_KVM_SW_PROTECTED_VM=y", r,
			       vm->o->vm_type);
			return -EOPNOTSUPP;
		}
	}
	do
		vm->vm_fd = ioctl(vm->kvm_fd, KVM_CREATE_VM, (unsigned long)vm->o->vm_type);
	while (vm->vm_fd < 0 && errno == EINTR);
	if (vm->vm_fd < 0) {
		r = -errno;
		vm_err(vm, "KVM_CREATE_VM (type %u): %s", vm->o->vm_type, strerror(-r));
		return r;
	}
	if (vm->o->vm_type)
		return vm__create_private(vm);
	/* The flags capability is per VM type; only a VM fd answers it for sure. */
	r = ioctl(vm->vm_fd, KVM_CHECK_EXTENSION, KVM_CAP_GUEST_MEMFD_FLAGS);
	if (r < 0 || (r & GMEM_FLAGS) != GMEM_FLAGS) {
		vm_err(vm, "guest_memfd here lacks MMAP|INIT_SHARED (KVM_CAP_GUEST_MEMFD_FLAGS = "
		       "%d); gmem-load needs Linux 6.18 or later", r);
		return -EOPNOTSUPP;
	}
	return 0;
}

static int vm__add_file(struct vm *vm, unsigned int i)
{
	bool priv = vm->o->vm_type == KVM_X86_SW_PROTECTED_VM;
	struct kvm_create_guest_memfd cg = { .size = vm->o->file_size,
					     .flags = priv ? GMEM_FLAGS_PRIVATE : GMEM_FLAGS };
	struct kvm_userspace_memory_region2 mr = { 0 };
	struct gfile *f = &vm->files[i];
	struct stat st;
	int r;

	f->flags = cg.flags;
	f->npages = vm->l->npages;
	f->bits = calloc((f->npages + 63) / 64, sizeof(*f->bits));
	if (!f->bits)
		return -ENOMEM;

	f->fd = ioctl(vm->vm_fd, KVM_CREATE_GUEST_MEMFD, &cg);
	if (f->fd < 0) {
		r = -errno;
		vm_err(vm, "KVM_CREATE_GUEST_MEMFD (file %u, %llu bytes, flags %#llx): %s", i,
		       (unsigned long long)cg.size, (unsigned long long)cg.flags, strerror(-r));
		return r;
	}
	vm->c.files_created++;
	if (fstat(f->fd, &st)) {
		r = -errno;
		vm_err(vm, "fstat on guest_memfd %d: %s", f->fd, strerror(-r));
		return r;
	}
	f->ino = st.st_ino;

	if (priv) {
		/* Shared accesses go to userspace_addr; the file holds only private pages. */
		f->shared = mmap(NULL, vm->o->file_size, PROT_READ | PROT_WRITE,
				 MAP_SHARED | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
		if (f->shared == MAP_FAILED) {
			r = -errno;
			f->shared = NULL;
			vm_err(vm, "mmap of %llu bytes of shared guest memory: %s",
			       (unsigned long long)vm->o->file_size, strerror(-r));
			return r;
		}
	} else {
		f->map = mmap(NULL, vm->o->file_size, PROT_READ | PROT_WRITE, MAP_SHARED, f->fd,
			      0);
		if (f->map == MAP_FAILED) {
			r = -errno;
			f->map = NULL;
			vm_err(vm, "mmap of guest_memfd ino %llu: %s", (unsigned long long)f->ino,
			       strerror(-r));
			return r;
		}
	}

	mr.slot = i;
	mr.flags = KVM_MEM_GUEST_MEMFD;
	mr.guest_phys_addr = (__u64)i * vm->o->file_size;
	mr.memory_size = vm->o->file_size;
	mr.userspace_addr = (__u64)(uintptr_t)(priv ? f->shared : f->map);
	mr.guest_memfd_offset = 0;
	mr.guest_memfd = f->fd;
	if (ioctl(vm->vm_fd, KVM_SET_USER_MEMORY_REGION2, &mr)) {
		r = -errno;
		vm_err(vm, "KVM_SET_USER_MEMORY_REGION2 (slot %u, gpa %#llx, ino %llu): %s", i,
		       (unsigned long long)mr.guest_phys_addr, (unsigned long long)f->ino,
		       strerror(-r));
		return r;
	}
	vm->c.memslot_binds++;
	return 0;
}

/* One byte to each page of [first, first + n): a write that succeeds made its page present. */
int vm__user_touch(struct vm *vm, struct gfile *f, __u64 first, __u64 n)
{
	__u64 p;

	for (p = first; p < first + n; p++) {
		if (touch_page(f->map + p * PAGE_SZ, 0xa5)) {
			vm_err(vm, "SIGBUS writing gmem ino %llu page %llu: the kernel refused the "
			       "page (out of memory?)", (unsigned long long)f->ino,
			       (unsigned long long)p);
			return -EFAULT;
		}
		if (!bit_test(f->bits, p)) {
			bit_set(f->bits, p);
			f->populated++;
			vm->c.alloc[GMEM_SRC_USER_FAULT]++;
		}
	}
	return 0;
}

int vm__fallocate(struct vm *vm, struct gfile *f, __u64 first, __u64 n)
{
	__u64 p, d, missing = 0;
	long r;

	if (!n)
		return 0;
	if (fallocate(f->fd, FALLOC_FL_KEEP_SIZE, first * PAGE_SZ, n * PAGE_SZ)) {
		int err = -errno;

		vm_err(vm, "fallocate(KEEP_SIZE) on gmem ino %llu, pages [%llu, %llu): %s",
		       (unsigned long long)f->ino, (unsigned long long)first,
		       (unsigned long long)(first + n), strerror(-err));
		/* It may have allocated part of the range before failing: book that too. */
		gfile__sync(vm, f, first, n, GMEM_SRC_FALLOCATE, EXPECT_ANY, NULL, NULL);
		return err;
	}
	vm->c.fallocates++;
	r = gfile__sync(vm, f, first, n, GMEM_SRC_FALLOCATE, EXPECT_PRESENT, NULL, &d);
	if (r < 0)
		return r;
	for (p = first; p < first + n; p++)
		if (!bit_test(f->bits, p))
			missing++;
	if (missing || d)
		vm_err(vm, "warning: fallocate on ino %llu succeeded but %llu page(s) of "
		       "[%llu, %llu) are absent", (unsigned long long)f->ino,
		       (unsigned long long)missing,
		       (unsigned long long)first, (unsigned long long)(first + n));
	return 0;
}

/* --advise: what gmemd's policy would decide for this punch, asked before doing it. */
static void vm__advise(struct vm *vm, struct gfile *f, __u64 first, __u64 n)
{
	struct gmem_advice_answer ans;
	int r;

	vm->c.advice_asked++;
	r = gmem_advice__punch(vm->adv, f->ino, first * PAGE_SZ, n * PAGE_SZ, &ans);
	if (r) {
		if (!vm->c.advice_errors)
			vm_err(vm, "advice for a punch of ino %llu: %s",
			       (unsigned long long)f->ino,
			       r == -EREMOTEIO ? gmem_advice__error(vm->adv) : strerror(-r));
		vm->c.advice_errors++;
		return;
	}
	vm->c.advice_answered++;
	vm->c.advice_decisions += ans.n;
}

int vm__punch(struct vm *vm, struct gfile *f, __u64 first, __u64 n)
{
	__u64 a;
	long r;

	if (vm->adv)
		vm__advise(vm, f, first, n);

	if (fallocate(f->fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, first * PAGE_SZ,
		      n * PAGE_SZ)) {
		int err = -errno;

		vm_err(vm, "fallocate(PUNCH_HOLE) on gmem ino %llu, pages [%llu, %llu): %s",
		       (unsigned long long)f->ino, (unsigned long long)first,
		       (unsigned long long)(first + n), strerror(-err));
		gfile__sync(vm, f, first, n, GMEM_SRC_OTHER, EXPECT_ANY, NULL, NULL);
		return err;
	}
	vm->c.punch_holes++;
	vm->c.invalidated_bytes += n * PAGE_SZ;
	r = gfile__sync(vm, f, first, n, GMEM_SRC_OTHER, EXPECT_ABSENT, &a, NULL);
	if (r < 0)
		return r;
	if (a)
		vm_err(vm, "warning: %llu page(s) appeared inside a punched hole (ino %llu)",
		       (unsigned long long)a, (unsigned long long)f->ino);
	return 0;
}

/* KVM_SET_MEMORY_ATTRIBUTES over [gpa, gpa + size): counted by direction and result. */
static int vm__set_attr(struct vm *vm, __u64 gpa, __u64 size, enum gmem_dir dir)
{
	struct kvm_memory_attributes ma = {
		.address = gpa,
		.size = size,
		.attributes = dir == GMEM_TO_PRIVATE ? KVM_MEMORY_ATTRIBUTE_PRIVATE : 0,
	};

	if (ioctl(vm->vm_fd, KVM_SET_MEMORY_ATTRIBUTES, &ma)) {
		vm->c.conv_errno = errno;
		vm->c.conv[dir][1]++;
		return -vm->c.conv_errno;
	}
	vm->c.conv[dir][0]++;
	return 0;
}

/* ---- the vCPU -------------------------------------------------------------------------------- */

/* Host writes page 0 (a user fault like any other), then the guest code goes in. */
static int vm__guest_code(struct vm *vm)
{
	__u8 code[160];
	size_t len;
	int r;

	if (vm->o->vm_type == KVM_X86_SW_PROTECTED_VM) {
		/* Page 0 is shared: the code lives in the memslot's anonymous half. */
		len = guest_code_private(code, (vm->l->user0 + vm->l->guest) * PAGE_SZ, vm->l->conv,
					 vm->l->mf_gpa, vm->o->mem_faults);
		memcpy(vm->files[0].shared, code, len);
		return 0;
	}

	r = vm__user_touch(vm, &vm->files[0], 0, 1);
	if (r)
		return r;
	len = guest_code(code, vm->l->user0, vm->l->guest);
	memcpy(vm->files[0].map, code, len);
	return 0;
}

static int vm__vcpu_create(struct vm *vm)
{
	int r, sz;

	vm->vcpu_fd = ioctl(vm->vm_fd, KVM_CREATE_VCPU, 0);
	if (vm->vcpu_fd < 0) {
		r = -errno;
		vm_err(vm, "KVM_CREATE_VCPU: %s", strerror(-r));
		return r;
	}
	/* gmem-load has one thread: the one that creates vCPU 0 runs it */
	vm->c.vcpu_tid = (__u32)syscall(SYS_gettid);
	if (vm->o->stats_fds) {
		/* as QEMU does at vCPU creation: the fds stay open for the VM's life */
		vm->vm_stats_fd = ioctl(vm->vm_fd, KVM_GET_STATS_FD, 0);
		vm->vcpu_stats_fd = ioctl(vm->vcpu_fd, KVM_GET_STATS_FD, 0);
		if (vm->vm_stats_fd < 0 || vm->vcpu_stats_fd < 0) {
			r = -errno;
			vm_err(vm, "KVM_GET_STATS_FD: %s", strerror(-r));
			return r;
		}
	}
	sz = ioctl(vm->kvm_fd, KVM_GET_VCPU_MMAP_SIZE, 0);
	if (sz < (int)sizeof(struct kvm_run)) {
		r = sz < 0 ? -errno : -EINVAL;
		vm_err(vm, "KVM_GET_VCPU_MMAP_SIZE: %s", strerror(-r));
		return r;
	}
	vm->run = mmap(NULL, sz, PROT_READ | PROT_WRITE, MAP_SHARED, vm->vcpu_fd, 0);
	if (vm->run == MAP_FAILED) {
		r = -errno;
		vm->run = NULL;
		vm_err(vm, "mmap of kvm_run: %s", strerror(-r));
		return r;
	}
	vm->run_size = sz;
	return 0;
}

/* Reset to real mode at 0000:0000 so the same code can run again each churn iteration. */
static int vm__vcpu_reset(struct vm *vm)
{
	struct kvm_sregs sregs;
	struct kvm_regs regs;
	int r;

	if (ioctl(vm->vcpu_fd, KVM_GET_SREGS, &sregs)) {
		r = -errno;
		vm_err(vm, "KVM_GET_SREGS: %s", strerror(-r));
		return r;
	}
	sregs.cs.base = 0;
	sregs.cs.selector = 0;
	sregs.ds.base = 0;
	sregs.ds.selector = 0;
	/* The software-protected guest reaches its pages with 32-bit offsets. */
	if (vm->o->vm_type == KVM_X86_SW_PROTECTED_VM)
		sregs.ds.limit = 0xffffffff;
	if (ioctl(vm->vcpu_fd, KVM_SET_SREGS, &sregs)) {
		r = -errno;
		vm_err(vm, "KVM_SET_SREGS: %s", strerror(-r));
		return r;
	}
	memset(&regs, 0, sizeof(regs));
	regs.rip = 0;
	regs.rflags = 0x2; /* bit 1 is reserved-as-one */
	if (ioctl(vm->vcpu_fd, KVM_SET_REGS, &regs)) {
		r = -errno;
		vm_err(vm, "KVM_SET_REGS: %s", strerror(-r));
		return r;
	}
	return 0;
}

static void vm__describe_exit(struct vm *vm)
{
	struct kvm_run *run = vm->run;
	struct gl_memory_fault mf;

	switch (run->exit_reason) {
	case KVM_EXIT_FAIL_ENTRY:
		vm_err(vm, "KVM_RUN: entry failed, hardware reason %#llx",
		       (unsigned long long)run->fail_entry.hardware_entry_failure_reason);
		break;
	case KVM_EXIT_INTERNAL_ERROR:
		vm_err(vm, "KVM_RUN: KVM internal error, suberror %u", run->internal.suberror);
		break;
	case KVM_EXIT_SHUTDOWN:
		vm_err(vm, "KVM_RUN: the guest shut down (triple fault)");
		break;
	case KVM_EXIT_MMIO:
		vm_err(vm, "KVM_RUN: the guest touched gpa %#llx outside every memslot",
		       (unsigned long long)run->mmio.phys_addr);
		break;
	case GMEM_KVM_EXIT_MEMORY_FAULT:
		memcpy(&mf, &run->hw, sizeof(mf));
		vm_err(vm, "KVM_RUN: memory fault at gpa %#llx size %llu flags %#llx "
		       "(private/shared mismatch or gmem refused the page)",
		       (unsigned long long)mf.gpa,
		       (unsigned long long)mf.size, (unsigned long long)mf.flags);
		break;
	default:
		vm_err(vm, "KVM_RUN: unexpected exit reason %u", run->exit_reason);
		break;
	}
}

/*
 * A KVM_HC_MAP_GPA_RANGE exit: convert as asked. On the way to shared the private copy is
 * discarded (punched), as a VMM does: the page the guest wrote while private is booked as its
 * guest fault first, then its free and the invalidation.
 */
static int vm__on_map_gpa(struct vm *vm)
{
	__u64 gpa = vm->run->hypercall.args[0], npages = vm->run->hypercall.args[1];
	enum gmem_dir dir = vm->run->hypercall.args[2] & GMEM_KVM_MAP_GPA_RANGE_ENCRYPTED ?
				    GMEM_TO_PRIVATE : GMEM_TO_SHARED;
	__u64 fi = gpa / vm->o->file_size, first = gpa % vm->o->file_size / PAGE_SZ;
	struct gfile *f;
	int r;

	vm->c.exits_hypercall++;
	vm->c.conv_requests[dir]++;
	if (fi >= vm->o->files || first + npages > vm->l->npages) {
		vm_err(vm, "KVM_HC_MAP_GPA_RANGE for gpa %#llx, %llu pages: outside the files",
		       (unsigned long long)gpa, (unsigned long long)npages);
		return -EINVAL;
	}
	f = &vm->files[fi];
	if (dir == GMEM_TO_SHARED) {
		r = gfile__sync(vm, f, first, npages, GMEM_SRC_GUEST_FAULT, EXPECT_ANY, NULL, NULL);
		if (r < 0)
			return r;
	}
	r = vm__set_attr(vm, gpa, npages * PAGE_SZ, dir);
	if (r) {
		vm_err(vm, "KVM_SET_MEMORY_ATTRIBUTES(gpa %#llx, %llu pages, %s) for the guest: %s",
		       (unsigned long long)gpa, (unsigned long long)npages,
		       dir == GMEM_TO_PRIVATE ? "private" : "shared", strerror(-r));
		return r;
	}
	if (dir == GMEM_TO_SHARED) {
		r = vm__punch(vm, f, first, npages);
		if (r)
			return r;
	}
	vm->c.conv_on_exit[dir]++;
	vm->run->hypercall.ret = 0;
	return 0;
}

/*
 * KVM_EXIT_MEMORY_FAULT: a private access KVM could not back. On the --mem-faults memslot,
 * which has no guest_memfd, the one way on is to make the page shared.
 */
static int vm__on_memory_fault(struct vm *vm)
{
	struct gl_memory_fault mf;
	enum gmem_dir asked;
	int r;

	memcpy(&mf, &vm->run->hw, sizeof(mf));
	asked = mf.flags & GMEM_KVM_MEMORY_EXIT_FLAG_PRIVATE ? GMEM_TO_PRIVATE : GMEM_TO_SHARED;
	vm->c.exits_memory_fault++;
	vm->c.conv_requests[asked]++;
	if (asked != GMEM_TO_PRIVATE || mf.gpa < vm->l->mf_gpa ||
	    mf.gpa + mf.size > vm->l->mf_gpa + vm->o->mem_faults * PAGE_SZ) {
		vm__describe_exit(vm);
		return -EIO;
	}
	r = vm__set_attr(vm, mf.gpa, mf.size, GMEM_TO_SHARED);
	if (r) {
		vm_err(vm, "KVM_SET_MEMORY_ATTRIBUTES(gpa %#llx, shared) after a memory fault: %s",
		       (unsigned long long)mf.gpa, strerror(-r));
		return r;
	}
	vm->c.conv_on_exit[GMEM_TO_SHARED]++;
	return 0;
}

/* The software-protected guest to its hlt, answering the exits that ask for conversions. */
static int vm__guest_run_private(struct vm *vm)
{
	__u64 budget = 4 * (vm->l->conv + vm->o->mem_faults) + 16;
	int r;

	r = vm__vcpu_reset(vm);
	if (r)
		return r;
	while (budget--) {
		r = ioctl(vm->vcpu_fd, KVM_RUN, 0) ? -errno : 0;
		if (r == -EINTR || r == -EAGAIN)
			continue;
		if (r == -EFAULT && vm->run->exit_reason == GMEM_KVM_EXIT_MEMORY_FAULT) {
			r = vm__on_memory_fault(vm);
			if (r)
				return r;
			continue;
		}
		if (r) {
			vm_err(vm, "KVM_RUN: %s", strerror(-r));
			return r;
		}
		switch (vm->run->exit_reason) {
		case KVM_EXIT_HLT:
			vm->c.exits_hlt++;
			return 0;
		case KVM_EXIT_HYPERCALL:
			if (vm->run->hypercall.nr == GMEM_KVM_HC_MAP_GPA_RANGE) {
				r = vm__on_map_gpa(vm);
				if (r)
					return r;
				continue;
			}
			break;
		case KVM_EXIT_IO:
			vm->c.exits_io++;
			continue;
		}
		vm->c.exits_other++;
		vm__describe_exit(vm);
		return -EIO;
	}
	vm_err(vm, "KVM_RUN: the guest did not reach its hlt within %llu exits",
	       (unsigned long long)(4 * (vm->l->conv + vm->o->mem_faults) + 16));
	return -EIO;
}

/*
 * Runs the guest to its hlt. Pages of file 0 that became present meanwhile were made by KVM on
 * the guest's behalf, so they are guest faults; the sync covers all the guest can reach, not
 * just the pages it meant to write.
 */
int vm__guest_run(struct vm *vm)
{
	struct gfile *f0 = &vm->files[0];
	__u64 reach = f0->npages < REALMODE_PAGES + 16 ? f0->npages : REALMODE_PAGES + 16;
	int r;

	if (vm->o->vm_type == KVM_X86_SW_PROTECTED_VM) {
		r = vm__guest_run_private(vm);
		reach = vm->l->user0 + vm->l->conv;
		if (reach > f0->npages)
			reach = f0->npages;
		if (gfile__sync(vm, f0, 0, reach, GMEM_SRC_GUEST_FAULT, EXPECT_ANY, NULL,
				NULL) < 0 && !r)
			r = -EIO;
		return r;
	}

	/* A punch over page 0 would leave the vCPU running zeros; put the code back first. */
	if (!bit_test(f0->bits, 0)) {
		r = vm__guest_code(vm);
		if (r)
			return r;
	}
	r = vm__vcpu_reset(vm);
	if (r)
		return r;
	for (;;) {
		if (ioctl(vm->vcpu_fd, KVM_RUN, 0)) {
			r = -errno;
			if (r == -EINTR || r == -EAGAIN)
				continue;
			vm_err(vm, "KVM_RUN: %s", strerror(-r));
			gfile__sync(vm, f0, 0, reach, GMEM_SRC_GUEST_FAULT, EXPECT_ANY, NULL, NULL);
			return r;
		}
		if (vm->run->exit_reason == KVM_EXIT_HLT) {
			vm->c.exits_hlt++;
			break;
		}
		if (vm->run->exit_reason == KVM_EXIT_IO) {
			/* Nothing here emulates a port; reads see whatever kvm_run holds. */
			vm->c.exits_io++;
			continue;
		}
		vm->c.exits_other++;
		vm__describe_exit(vm);
		gfile__sync(vm, f0, 0, reach, GMEM_SRC_GUEST_FAULT, EXPECT_ANY, NULL, NULL);
		return -EIO;
	}
	r = gfile__sync(vm, f0, 0, reach, GMEM_SRC_GUEST_FAULT, EXPECT_ANY, NULL, NULL);
	return r < 0 ? r : 0;
}

static int vm__guest_setup(struct vm *vm)
{
	int r;

	r = vm__guest_code(vm);
	if (r)
		return r;
	return vm__vcpu_create(vm);
}

/* ---- the other steps ------------------------------------------------------------------------- */

__u64 gfile__pick(struct vm *vm, struct gfile *f, __u64 lo, __u64 len)
{
	__u64 first;

	if (vm->o->seed)
		return lo + rng_next(&vm->rng) % (f->npages - lo - len + 1);
	if (f->cursor < lo || f->cursor + len > f->npages)
		f->cursor = lo;
	first = f->cursor;
	f->cursor += len;
	return first;
}

static int vm__punches(struct vm *vm)
{
	__u64 len = vm->o->punch_size / PAGE_SZ, k;
	unsigned int i;
	int r;

	for (i = 0; i < vm->o->files; i++) {
		struct gfile *f = &vm->files[i];
		/* Churn reruns the guest, so its code and pages in file 0 must survive. */
		__u64 lo = i ? 0 : vm->l->churn_first0;

		f->cursor = lo;
		for (k = 0; k < vm->o->punch; k++) {
			r = vm__punch(vm, f, gfile__pick(vm, f, lo, len), len);
			if (r)
				return r;
		}
	}
	return 0;
}

/*
 * KVM_SET_MEMORY_ATTRIBUTES2 on a guest_memfd fd: in-place conversion, queued upstream, not in
 * any kernel gmem-load has met. Its uapi struct is 128 bytes, of which offset, size, attributes
 * and flags lead; the ioctl number is all an older kernel needs to answer ENOTTY.
 */
struct gmem_attributes2 {
	__u64 offset;
	__u64 size;
	__u64 attributes;
	__u64 flags;
	__u64 reserved[12];
};
#define GMEM_LOAD_SET_MEMORY_ATTRIBUTES2 _IOWR(KVMIO, 0xd2, struct gmem_attributes2)

static void vm__set_attr_in_place(struct vm *vm, struct gfile *f, __u64 offset,
				  enum gmem_dir dir)
{
	struct gmem_attributes2 ma = {
		.offset = offset,
		.size = PAGE_SZ,
		.attributes = dir == GMEM_TO_PRIVATE ? KVM_MEMORY_ATTRIBUTE_PRIVATE : 0,
	};
	int ok = ioctl(f->fd, GMEM_LOAD_SET_MEMORY_ATTRIBUTES2, &ma) == 0;

	if (!ok)
		vm->c.conv_in_place_errno = errno;
	vm->c.conv[dir][!ok]++;
	vm->c.conv_in_place[dir][!ok]++;
}

static void vm__convert(struct vm *vm)
{
	__u64 k;

	for (k = 0; k < vm->o->convert; k++)
		vm__set_attr(vm, 0, PAGE_SZ, k % 2 ? GMEM_TO_SHARED : GMEM_TO_PRIVATE);
	for (k = 0; k < vm->o->convert_in_place && vm->o->files; k++)
		vm__set_attr_in_place(vm, &vm->files[0], (k % vm->l->npages) * PAGE_SZ,
				      k % 2 ? GMEM_TO_SHARED : GMEM_TO_PRIVATE);
}

/*
 * Each touched secretmem page left the direct map when it was faulted in; closing the last
 * reference frees the pages and puts them back. A failed memfd_secret means the feature is off,
 * which is reported, not fatal.
 */
int vm__secret(struct vm *vm, __u64 n)
{
	__u64 i, touched = 0;
	bool pinned = false;
	__u8 *map;
	int fd, r = 0;

	fd = syscall(SYS_memfd_secret, 0);
	if (fd < 0) {
		vm->c.secret_state = SECRET_UNAVAILABLE;
		vm->c.secret_errno = errno;
		return 0;
	}
	vm->c.secret_state = SECRET_AVAILABLE;
	if (!n)
		goto out_close;
	if (ftruncate(fd, n * PAGE_SZ)) {
		r = -errno;
		vm_err(vm, "ftruncate of memfd_secret to %llu pages: %s", (unsigned long long)n,
		       strerror(-r));
		goto out_close;
	}
	map = mmap(NULL, n * PAGE_SZ, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (map == MAP_FAILED) {
		r = -errno;
		vm_err(vm, "mmap of memfd_secret (%llu pages): %s (raise RLIMIT_MEMLOCK?)",
		       (unsigned long long)n, strerror(-r));
		goto out_close;
	}
	for (i = 0; i < n; i++) {
		if (touch_page(map + i * PAGE_SZ, 0x5e)) {
			vm_err(vm, "SIGBUS touching memfd_secret page %llu", (unsigned long long)i);
			r = -EFAULT;
			break;
		}
		touched++;
	}
	vm->c.secret_removed += touched;
	/* A mapping left behind would pin the file, and its pages would stay out of the map. */
	if (munmap(map, n * PAGE_SZ)) {
		r = -errno;
		vm_err(vm, "munmap of memfd_secret: %s", strerror(-r));
		pinned = true;
	}
out_close:
	if (close(fd)) {
		vm_err(vm, "close of memfd_secret: %s", strerror(errno));
		if (!r)
			r = -EIO;
	} else if (!pinned) {
		vm->c.secret_restored += touched;
	}
	return r;
}

/*
 * Drop every reference we hold. The mapping goes first: it pins the file too, and the file is
 * released (and every page it still holds freed) only when both are gone.
 */
static int vm__close(struct vm *vm)
{
	unsigned int i;
	int err = 0;

	for (i = 0; i < vm->o->files; i++) {
		struct gfile *f = &vm->files[i];
		bool ok = true;

		if (f->map && munmap(f->map, vm->o->file_size)) {
			vm_err(vm, "munmap of gmem ino %llu: %s", (unsigned long long)f->ino,
			       strerror(errno));
			ok = false;
		}
		f->map = NULL;
		if (f->shared && munmap(f->shared, vm->o->file_size)) {
			vm_err(vm, "munmap of shared guest memory: %s", strerror(errno));
			ok = false;
		}
		f->shared = NULL;
		if (f->fd >= 0 && close(f->fd)) {
			vm_err(vm, "close of gmem ino %llu: %s", (unsigned long long)f->ino,
			       strerror(errno));
			ok = false;
		}
		if (f->fd < 0)
			ok = false;
		f->fd = -1;
		if (ok) {
			vm->c.pages_freed += f->populated;
			f->populated = 0;
			memset(f->bits, 0, (f->npages + 63) / 64 * sizeof(*f->bits));
			f->released = true;
			vm->c.files_released++;
		} else {
			err = -EIO;
		}
	}
	if (vm->run)
		munmap(vm->run, vm->run_size);
	vm->run = NULL;
	if (vm->mf_map)
		munmap(vm->mf_map, vm->o->mem_faults * PAGE_SZ);
	vm->mf_map = NULL;
	if (vm->vcpu_fd >= 0)
		close(vm->vcpu_fd);
	if (vm->vm_fd >= 0)
		close(vm->vm_fd);
	if (vm->kvm_fd >= 0)
		close(vm->kvm_fd);
	if (vm->vm_stats_fd >= 0)
		close(vm->vm_stats_fd);
	if (vm->vcpu_stats_fd >= 0)
		close(vm->vcpu_stats_fd);
	vm->vm_stats_fd = vm->vcpu_stats_fd = -1;
	vm->vcpu_fd = vm->vm_fd = vm->kvm_fd = -1;
	return err;
}

static void vm__free(struct vm *vm)
{
	unsigned int i;

	if (!vm->files)
		return;
	for (i = 0; i < vm->o->files; i++)
		free(vm->files[i].bits);
	free(vm->files);
	vm->files = NULL;
}

/*
 * --mem-faults: a memslot of anonymous memory alone, after the files', with every page set
 * private (one call): a private access there has nothing to back it.
 */
static int vm__mem_fault_slot(struct vm *vm)
{
	struct kvm_userspace_memory_region2 mr = { 0 };
	__u64 size = vm->o->mem_faults * PAGE_SZ;
	int r;

	vm->mf_map = mmap(NULL, size, PROT_READ | PROT_WRITE,
			  MAP_SHARED | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (vm->mf_map == MAP_FAILED) {
		r = -errno;
		vm->mf_map = NULL;
		vm_err(vm, "mmap of %llu bytes for --mem-faults: %s", (unsigned long long)size,
		       strerror(-r));
		return r;
	}
	mr.slot = vm->o->files;
	mr.guest_phys_addr = vm->l->mf_gpa;
	mr.memory_size = size;
	mr.userspace_addr = (__u64)(uintptr_t)vm->mf_map;
	if (ioctl(vm->vm_fd, KVM_SET_USER_MEMORY_REGION2, &mr)) {
		r = -errno;
		vm_err(vm, "KVM_SET_USER_MEMORY_REGION2 (slot %u, gpa %#llx, no guest_memfd): %s",
		       mr.slot, (unsigned long long)mr.guest_phys_addr, strerror(-r));
		return r;
	}
	r = vm__set_attr(vm, vm->l->mf_gpa, size, GMEM_TO_PRIVATE);
	if (r)
		vm_err(vm, "KVM_SET_MEMORY_ATTRIBUTES(gpa %#llx, %llu pages, private): %s",
		       (unsigned long long)vm->l->mf_gpa, (unsigned long long)vm->o->mem_faults,
		       strerror(-r));
	return r;
}

static int vm__setup(struct vm *vm)
{
	const struct opts *o = vm->o;
	const struct layout *l = vm->l;
	unsigned int i;
	int r;

	r = vm__create(vm);
	if (r)
		return r;
	/* Learn whether secretmem exists now, so even the paused report can say. */
	r = vm__secret(vm, 0);
	if (r)
		return r;
	for (i = 0; i < o->files; i++) {
		r = vm__add_file(vm, i);
		if (r)
			return r;
	}
	if (!o->churn && !o->vm_type) {
		for (i = 0; i < o->files; i++) {
			r = vm__user_touch(vm, &vm->files[i], 0, i ? o->user_touch : l->user0);
			if (r)
				return r;
		}
	}
	if (o->mem_faults) {
		r = vm__mem_fault_slot(vm);
		if (r)
			return r;
	}
	if (!o->no_vcpu) {
		r = vm__guest_setup(vm);
		if (!r)
			r = vm__guest_run(vm);
		if (r)
			return r;
	}
	if (!o->churn) {
		for (i = 0; i < o->files; i++) {
			__u64 first = i ? o->user_touch : l->user0 + l->guest + l->conv;

			r = vm__fallocate(vm, &vm->files[i], first, o->falloc_pages);
			if (r)
				return r;
		}
	}
	return 0;
}

static int vm__main(struct vm *vm)
{
	const struct opts *o = vm->o;
	bool early = o->exit_early == (long)vm->idx;
	int r;

	if (o->start_delay_ms) {
		struct timespec ts = { .tv_sec = o->start_delay_ms / 1000,
				       .tv_nsec = (o->start_delay_ms % 1000) * 1000000 };

		while (nanosleep(&ts, &ts) && errno == EINTR)
			;
	}
	r = vm__setup(vm);
	if (r)
		return r;
	if (o->pause) {
		r = vm__sync_all(vm, "paused");
		if (!r)
			r = vm__report(vm, REP_PAUSED);
		if (!r)
			r = vm__wait_go(vm);
		if (r)
			return r;
	}
	r = vm__punches(vm);
	if (r)
		return r;
	vm__convert(vm);
	if (o->churn)
		r = vm__churn(vm);
	else if (o->secret_pages)
		r = vm__secret(vm, o->secret_pages);
	if (r)
		return r;
	r = vm__sync_all(vm, "done");
	if (r)
		return r;
	if (early) {
		/* The parent books the release once it has reaped us; the kernel does the rest. */
		vm__read_stats(vm);
		r = vm__report(vm, REP_EARLY);
		_exit(r ? EXIT_FAIL : 0);
	}
	vm__read_stats(vm);
	r = vm__report(vm, REP_DONE);
	if (!r && o->linger_set)
		r = vm__wait_go(vm);
	if (r)
		return r;
	r = vm__sync_all(vm, "before close");
	if (r)
		return r;
	r = vm__close(vm);
	if (r)
		return r;
	return vm__report(vm, REP_FINAL);
}

void vm__child(unsigned int idx, const struct opts *o, const struct layout *l, int rep_fd,
		      int ctl_fd)
{
	struct sigaction sa = { .sa_handler = on_sigbus, .sa_flags = SA_NODEFER };
	struct vm vm = {
		.o = o, .l = l, .idx = idx, .rep_fd = rep_fd, .ctl_fd = ctl_fd,
		.kvm_fd = -1, .vm_fd = -1, .vcpu_fd = -1, .vm_stats_fd = -1, .vcpu_stats_fd = -1,
	};
	unsigned int i;
	sigset_t none;
	int r;

	/* SIGUSR1 is the parent's business; a stray one to the group must not kill a VMM. */
	signal(SIGUSR1, SIG_IGN);
	signal(SIGINT, SIG_DFL);
	signal(SIGTERM, SIG_DFL);
	sigaction(SIGBUS, &sa, NULL);
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	prctl(PR_SET_PDEATHSIG, SIGKILL);

	vm.rng = rng_seed(rng_seed(o->seed) + idx);
	if (o->advise) {
		r = gmem_advice__open(&vm.adv, o->advise);
		if (r) {
			vm_err(&vm, "--advise: cannot talk to gmemd at %s: %s", o->advise,
			       strerror(-r));
			_exit(EXIT_FAIL);
		}
	}
	vm.files = calloc(o->files, sizeof(*vm.files));
	if (!vm.files) {
		vm_err(&vm, "out of memory");
		_exit(EXIT_FAIL);
	}
	for (i = 0; i < o->files; i++)
		vm.files[i].fd = -1;
	r = vm__main(&vm);
	gmem_advice__close(vm.adv);
	if (r) {
		/* Close what exists so the kernel frees it now rather than at our exit. */
		vm__close(&vm);
		vm__free(&vm);
		_exit(r == -EOPNOTSUPP ? EXIT_UNSUPPORTED : EXIT_FAIL);
	}
	vm__free(&vm);
	_exit(0);
}
