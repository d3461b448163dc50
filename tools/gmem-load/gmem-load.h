/* SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause */
/*
 * gmem-load.h - what gmem-load's files share: the uapi it needs, the options, the counts and
 * the reports that carry them from a VM child to the parent, one VMM's state.
 *
 * main.c   options, the parent that forks the VMs, waits on them and prints
 * vm.c     one VMM: VM, memslots, guest_memfd files, vCPU and KVM_RUN, the steps, the child
 * guest.c  the real-mode guest code
 * churn.c  the --churn loop
 * truth.c  the ground truth: page-cache bookkeeping, reports, the counts as JSON
 */
#ifndef GMEM_LOAD_H
#define GMEM_LOAD_H
#ifdef __bpf__
#error "user-space only header"
#endif

#include <jansson.h>
#include <linux/kvm.h>
#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "gmem_events.h"

/*
 * uapi this tool needs from Linux 6.8-6.18. Distro headers often predate it (Debian 12 ships
 * 6.1), so keep local copies with the uapi layout and tie their sizes to the ioctl numbers the
 * probes decode, which would catch a layout slip at compile time.
 */
#ifndef KVM_CAP_USER_MEMORY2
#define KVM_CAP_USER_MEMORY2 231
#endif
#ifndef KVM_CAP_GUEST_MEMFD
#define KVM_CAP_GUEST_MEMFD 234
#endif
#ifndef KVM_CAP_GUEST_MEMFD_FLAGS
#define KVM_CAP_GUEST_MEMFD_FLAGS 244
#endif
#ifndef KVM_MEM_GUEST_MEMFD
#define KVM_MEM_GUEST_MEMFD GMEM_KVM_MEM_GUEST_MEMFD
#endif
#ifndef KVM_MEMORY_ATTRIBUTE_PRIVATE
#define KVM_MEMORY_ATTRIBUTE_PRIVATE GMEM_KVM_MEMORY_ATTRIBUTE_PRIVATE
#endif
#ifndef GUEST_MEMFD_FLAG_MMAP
#define GUEST_MEMFD_FLAG_MMAP (1ULL << 0)
#endif
#ifndef GUEST_MEMFD_FLAG_INIT_SHARED
#define GUEST_MEMFD_FLAG_INIT_SHARED (1ULL << 1)
#endif
#ifndef KVM_CAP_MEMORY_ATTRIBUTES
#define KVM_CAP_MEMORY_ATTRIBUTES 233
#endif
#ifndef KVM_CAP_VM_TYPES
#define KVM_CAP_VM_TYPES 235
#endif
#ifndef KVM_CAP_EXIT_HYPERCALL
#define KVM_CAP_EXIT_HYPERCALL 201
#endif
#ifndef KVM_X86_SW_PROTECTED_VM
#define KVM_X86_SW_PROTECTED_VM 1
#endif

#ifndef KVM_CREATE_GUEST_MEMFD
struct kvm_create_guest_memfd {
	__u64 size;
	__u64 flags;
	__u64 reserved[6];
};
#define KVM_CREATE_GUEST_MEMFD GMEM_KVM_CREATE_GUEST_MEMFD
#endif

#ifndef KVM_SET_USER_MEMORY_REGION2
struct kvm_userspace_memory_region2 {
	__u32 slot;
	__u32 flags;
	__u64 guest_phys_addr;
	__u64 memory_size;
	__u64 userspace_addr;
	__u64 guest_memfd_offset;
	__u32 guest_memfd;
	__u32 pad1;
	__u64 pad2[14];
};
#define KVM_SET_USER_MEMORY_REGION2 GMEM_KVM_SET_USER_MEMORY_REGION2
#endif

#ifndef KVM_SET_MEMORY_ATTRIBUTES
struct kvm_memory_attributes {
	__u64 address;
	__u64 size;
	__u64 attributes;
	__u64 flags;
};
#define KVM_SET_MEMORY_ATTRIBUTES GMEM_KVM_SET_MEMORY_ATTRIBUTES
#endif

_Static_assert(_IOC_SIZE(GMEM_KVM_CREATE_GUEST_MEMFD) == sizeof(struct kvm_create_guest_memfd),
	       "kvm_create_guest_memfd layout");
_Static_assert(_IOC_SIZE(GMEM_KVM_SET_USER_MEMORY_REGION2) ==
		       sizeof(struct kvm_userspace_memory_region2),
	       "kvm_userspace_memory_region2 layout");
_Static_assert(_IOC_SIZE(GMEM_KVM_SET_MEMORY_ATTRIBUTES) == sizeof(struct kvm_memory_attributes),
	       "kvm_memory_attributes layout");

/*
 * kvm_run's memory_fault member (6.8) is missing from old headers; it sits at the union's start.
 * hypercall (nr, args[6], ret) is old and stable; its longmode/flags word is not read here.
 */
struct gl_memory_fault {
	__u64 flags;
	__u64 gpa;
	__u64 size;
};

#ifndef SYS_memfd_secret
#define SYS_memfd_secret 447
#endif

#define PAGE_SZ 4096ULL
#define GMEM_FLAGS (GUEST_MEMFD_FLAG_MMAP | GUEST_MEMFD_FLAG_INIT_SHARED)
/* A software-protected VM's files: private memory, never mapped by the host. */
#define GMEM_FLAGS_PRIVATE 0ULL
/* A real-mode guest with plain segment:offset addressing reaches the first 1 MiB. */
#define REALMODE_PAGES 256ULL
#define MAX_VMS 256
#define MAX_FILES 256
#define MAX_FILE_SIZE (64ULL << 30)
#define JSON_VERSION 1

/* Exit statuses: 64 is argp's usage error; 77 is the automake convention for "skip". */
#define EXIT_FAIL 1
#define EXIT_UNSUPPORTED 77

/*
 * The page layout every VM uses. File 0: [0, user0) host writes (page 0 always, since the guest
 * code lives there when a vCPU runs), [user0, user0 + guest) guest writes, then the fallocate
 * range. Other files: [0, user) then the fallocate range. Churn ranges cycle through
 * [churn_first0, npages) of file 0 so the guest code survives.
 */
struct layout {
	__u64 npages;
	__u64 user0;
	__u64 guest;
	__u64 conv;   /* --guest-convert: pages [user0 + guest, + conv) of file 0 */
	__u64 churn_first0;
	__u64 mf_gpa; /* --mem-faults: the memslot without guest_memfd, after the files' */
};

struct opts {
	__u64 file_size;
	__u64 user_touch;
	__u64 guest_touch;
	__u64 falloc_pages;
	__u64 punch;
	__u64 punch_size;
	__u64 convert;
	__u64 convert_in_place;
	__u64 guest_convert;
	__u64 mem_faults;
	__u64 secret_pages;
	__u64 iterations;
	__u64 start_delay_ms;
	__u64 seed;
	double linger;
	double duration;
	double rate;
	long exit_early;
	struct layout lay; /* derived from the rest once parsing ends */
	unsigned int vms;
	unsigned int files;
	unsigned int vm_type; /* KVM_CREATE_VM's type: 0, or KVM_X86_SW_PROTECTED_VM */
	bool no_vcpu;
	bool stats_fds;
	bool pause;
	bool linger_set;
	bool churn;
	const char *advise; /* gmemd's control socket, with --advise */
};

enum rep_type {
	REP_PAUSED = 1,
	REP_DONE = 2,
	REP_EARLY = 3, /* like DONE, then the child _exits with everything open */
	REP_FINAL = 4, /* after closing everything */
};

enum secret_state {
	SECRET_UNTRIED = 0,
	SECRET_AVAILABLE = 1,
	SECRET_UNAVAILABLE = 2,
};

struct counts {
	__u64 alloc[GMEM_SRC_MAX]; /* by enum gmem_source */
	__u64 pages_freed;
	__u64 fallocates;
	__u64 punch_holes;
	__u64 invalidated_bytes;
	__u64 conv[GMEM_DIR_MAX][2]; /* [enum gmem_dir][0 ok, 1 error] */
	__u64 conv_in_place[GMEM_DIR_MAX][2]; /* of those, KVM_SET_MEMORY_ATTRIBUTES2 on gmem */
	int conv_in_place_errno;
	__u64 exits_hlt;
	__u64 exits_io;
	__u64 exits_hypercall;    /* KVM_HC_MAP_GPA_RANGE */
	__u64 exits_memory_fault; /* KVM_EXIT_MEMORY_FAULT */
	__u64 exits_other;
	__u32 vcpu_tid; /* the thread that runs vCPU 0 (0: no vCPU) */
	__u64 conv_requests[GMEM_DIR_MAX]; /* exits asking for a conversion, by what they asked */
	__u64 conv_on_exit[GMEM_DIR_MAX];  /* ... answered by a conversion to, then re-entered */
	__u64 secret_removed;
	__u64 secret_restored;
	__u64 iterations;
	__u64 churn_ns;
	__u64 advice_asked;     /* --advise: punch holes asked about */
	__u64 advice_answered;  /* ... that gmemd answered */
	__u64 advice_decisions; /* decisions in those answers */
	__u64 advice_errors;    /* refusals and socket errors */
	__u64 kvm_stat[6]; /* --stats-fds: kvm_stat_names, as the VM's own stats fds said */
	__u32 kvm_stats_read;
	__u32 files_created;
	__u32 files_released;
	__u32 memslot_binds;
	__s32 conv_errno;
	__s32 secret_errno;
	__u32 secret_state;
};

struct rep_hdr {
	__u32 type;
	__u32 nfiles;
	struct counts c;
};

struct rep_file {
	__u64 ino;
	__u64 size;
	__u64 flags;
	__u64 populated;
	__u32 released;
	__u32 pad;
};

struct gfile {
	int fd;
	__u64 ino;
	__u64 npages;
	__u64 populated;
	__u64 cursor; /* next sequential churn/punch offset, in pages */
	__u8 *map;
	__u8 *shared; /* sw-protected: the memslot's shared half (anonymous memory) */
	__u64 flags;  /* the guest_memfd's creation flags */
	__u64 *bits; /* pages known to be in the page cache */
	bool released;
};

struct vm {
	const struct opts *o;
	const struct layout *l;
	struct gfile *files;
	struct kvm_run *run;
	size_t run_size;
	__u8 *mf_map; /* --mem-faults: the memslot without guest_memfd */
	__u64 rng;
	struct counts c;
	unsigned int idx;
	int kvm_fd;
	int vm_fd;
	int vcpu_fd;
	int vm_stats_fd, vcpu_stats_fd; /* --stats-fds */
	int rep_fd;
	int ctl_fd;
	struct gmem_advice *adv;
};

static inline bool bit_test(const __u64 *bits, __u64 i)
{
	return bits[i / 64] & (1ULL << (i % 64));
}

static inline void bit_set(__u64 *bits, __u64 i)
{
	bits[i / 64] |= 1ULL << (i % 64);
}

static inline void bit_clear(__u64 *bits, __u64 i)
{
	bits[i / 64] &= ~(1ULL << (i % 64));
}

/* What the step that ran over a range should have left there. */
enum expect {
	EXPECT_ANY,
	EXPECT_PRESENT, /* a successful allocating fallocate */
	EXPECT_ABSENT,  /* a successful punch */
};

/* The parent's copy of one VM: its last report. */
struct vm_view {
	struct counts c;
	struct rep_file *files;
	pid_t pid;
	int rep_fd;
	int ctl_fd;
	__u32 last;
	bool early;
	bool reaped;
};

/* vm.c */
void vm_err(const struct vm *vm, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
int vm__user_touch(struct vm *vm, struct gfile *f, __u64 first, __u64 n);
int vm__fallocate(struct vm *vm, struct gfile *f, __u64 first, __u64 n);
int vm__punch(struct vm *vm, struct gfile *f, __u64 first, __u64 n);
int vm__secret(struct vm *vm, __u64 n);
int vm__guest_run(struct vm *vm);
__u64 gfile__pick(struct vm *vm, struct gfile *f, __u64 lo, __u64 len);
void vm__child(unsigned int idx, const struct opts *o, const struct layout *l, int rep_fd,
	       int ctl_fd);

/* guest.c */
size_t guest_code(__u8 *buf, __u64 first, __u64 n);
size_t guest_code_private(__u8 *buf, __u64 conv_gpa, __u64 nconv, __u64 mf_gpa, __u64 nmf);

/* churn.c */
__u64 now_ns(void);
int vm__churn(struct vm *vm);

/* truth.c */
extern bool advise_json;
int write_all(int fd, const void *buf, size_t len);
ssize_t read_all(int fd, void *buf, size_t len);
long gfile__sync(struct vm *vm, struct gfile *f, __u64 first, __u64 n, enum gmem_source src,
		 enum expect exp, __u64 *allocs, __u64 *frees);
int vm__sync_all(struct vm *vm, const char *when);
int vm__report(struct vm *vm, enum rep_type type);
void vm__read_stats(struct vm *vm);
json_t *counts__json(const struct counts *c, json_t *obj);
void counts__add(struct counts *t, const struct counts *c);
json_t *view__json(const struct vm_view *v);

#endif /* GMEM_LOAD_H */
